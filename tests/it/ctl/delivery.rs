//! Delivery: the daily limit, the `test` verb, `flush`, and the
//! per-message queue verbs (show, release, delete).

use super::*;

#[test]
fn daily_limit_trips_to_ko_limit_and_holds() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "limits.max_per_day = 3");
    for i in 0..5 {
        // Past the limit the sender still gets 0: held, not lost.
        send(&env, "a@example.com", &format!("m{i}"));
        if i < 3 {
            // Delivered before the limit trips: the block would hold it
            // if it were still queued.
            sink.wait_for(i + 1, WAIT);
            wait_until(WAIT, || env.count("state = 'sent'") == i as i64 + 1);
        }
    }
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ko"), Some("limit"))
    );
    assert_eq!(
        (
            s["max_per_day"].as_i64(),
            s["max_per_day_default"].as_bool()
        ),
        (Some(3), Some(true))
    );
    assert_eq!(s["queue"]["held"], 2);
    assert_eq!(s["today"]["submitted"], 5);
    assert_eq!(s["changed_by"], "scriptmail");
    let text = ok(env.ctl(&["status", me()]));
    assert!(text.contains("3 / 3"), "sent today / max_per_day: {text}");
    let h = json(&env, &["history", me()], HISTORY);
    assert_eq!(h["events"][0]["reason"], "limit");
    // A per-account override set by the panel lifts it for this account.
    let set = json(&env, &["set", me(), "--max-per-day", "100"], SET);
    assert_eq!(
        (
            set["max_per_day"].as_i64(),
            set["max_per_day_default"].as_bool()
        ),
        (Some(100), Some(false))
    );
    assert_eq!(set["created"], false);
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 2);
    send(&env, "a@example.com", "m5");
    sink.wait_for(6, WAIT);
    assert_eq!(status(&env)["state"], "ok");
    // Back to the node default: the next mail trips it again (6 > 3).
    json(&env, &["set", me(), "--max-per-day", "default"], SET);
    send(&env, "a@example.com", "m6");
    assert_eq!(status(&env)["state"], "ko");
    assert_eq!(held(&env), 1);
}

#[test]
fn test_verb_reports_delivered_failed_deferred_and_held() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        Some("<bad@"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    fake.on(
        "RCPT",
        Some("<slow@"),
        None,
        Action::reply(451, "4.7.1 greylisted"),
    );
    let env = Env::new(fake.port());

    let t = json(&env, &["test", me(), "--to", "good@example.com"], TEST);
    assert_eq!(
        (t["outcome"].as_str(), t["state"].as_str()),
        (Some("delivered"), Some("sent"))
    );
    let d = fake.wait_for(1, WAIT);
    assert_eq!(d[0].rcpt_to, ["good@example.com"]);
    assert!(
        d[0].text().contains(&format!("account {}", me())),
        "trace names the account"
    );
    assert_eq!(d[0].mail_from, format!("{}@node1.example.net", me()));

    let t = json(&env, &["test", me(), "--to", "bad@example.com"], TEST);
    assert_eq!(t["outcome"], "failed");
    assert!(
        t["answer"].as_str().unwrap().contains("5.1.1 no such user"),
        "{t}"
    );
    let e = json(&env, &["errors", me()], ERRORS);
    assert_eq!(e["errors"][0]["recipient"], "bad@example.com");
    assert_eq!(e["errors"][0]["kind"], "rejected");
    assert_eq!(e["errors"][0]["script"], "mailq-ctl test");
    let text = ok(env.ctl(&["errors", me()]));
    assert!(
        text.contains("bad@example.com") && text.contains("no such user"),
        "{text}"
    );

    let t = json(&env, &["test", me(), "--to", "slow@example.com"], TEST);
    assert_eq!(t["outcome"], "deferred");
    assert!(t["answer"].as_str().unwrap().contains("greylisted"), "{t}");

    json(&env, &["block", me()], CHANGE);
    let t = json(&env, &["test", me(), "--to", "good@example.com"], TEST);
    assert_eq!(
        (t["outcome"].as_str(), t["account_state"].as_str()),
        (Some("held"), Some("ko"))
    );
    let text = ok(env.ctl(&["test", me(), "--to", "good@example.com"]));
    assert!(text.contains("held") && text.contains("unblock"), "{text}");
    // The test mails count like any other mail of the account.
    let s = status(&env);
    assert_eq!(
        (s["sent_total"].as_i64(), s["error_total"].as_i64()),
        (Some(1), Some(1))
    );
    // The two test mails sent while blocked, and the deferred one: a block
    // holds what was not yet delivered.
    assert_eq!(s["queue"]["held"], 3);
    refused(&env, &["test", me(), "--to", "x@y\r\nBcc: z@w"], 64);
}

#[test]
fn flush_relays_deferred_mail_now_in_the_foreground() {
    let fake = FakeSmtp::start();
    fake.down();
    let env = Env::with_config(fake.port(), "");
    send(&env, "a@example.com", "one");
    send(&env, "b@example.com", "two");
    wait_settled(&env);
    assert_eq!(env.count("state = 'deferred'"), 2);
    fake.up();
    // No daemon: flush relays in this process and reports each message.
    let f = json(&env, &["flush", "--account", me()], FLUSH);
    assert_eq!(
        (f["via"].as_str(), f["due"].as_i64(), f["sent"].as_i64()),
        (Some("foreground"), Some(2), Some(2))
    );
    assert_eq!(f["messages"][0]["state"], "sent");
    assert_eq!(fake.delivered().len(), 2);
    // Nothing due: a no-op that says so.
    let f = json(&env, &["flush"], FLUSH);
    assert_eq!(
        (f["due"].as_i64(), f["via"].as_str()),
        (Some(0), Some("none"))
    );
    assert!(ok(env.ctl(&["flush"])).contains("nothing to flush"));
}

#[test]
fn flush_wakes_a_running_daemon_and_waits_for_the_outcome() {
    let fake = FakeSmtp::start();
    fake.on("RCPT", None, Some(1), Action::reply(451, "4.3.0 later"));
    let env = Env::new(fake.port());
    let _daemon = env.relayd();
    send(&env, "a@example.com", "retry me");
    wait_until(WAIT, || {
        env.count("state = 'deferred' AND attempts = 1") == 1
    });
    let f = json(&env, &["flush"], FLUSH);
    assert_eq!(
        (f["via"].as_str(), f["sent"].as_i64()),
        (Some("daemon"), Some(1))
    );
    assert_eq!(fake.delivered().len(), 1);
}

#[test]
fn queue_show_release_delete() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "delivered");
    sink.wait_for(1, WAIT);
    json(&env, &["block", me()], CHANGE);
    let msg = b"To: a@example.com, b@example.com\r\nSubject: keep \x1b[31mme\r\nX-PHP-Originating-Script: 1000:contact.php\r\n\r\nline one\r\nline two\r\n";
    assert_ok(&env.submit(&["-t", "-i"], msg));
    send(&env, "c@example.com", "drop me");
    let q = json(&env, &["queue", "--account", me()], QUEUE_LIST);
    let list = q["messages"].as_array().unwrap();
    assert_eq!(list.len(), 2, "only not-yet-done mail by default: {q}");
    let keep = list.iter().find(|m| m["nrcpt"] == 2).unwrap()["qid"]
        .as_str()
        .unwrap()
        .to_string();
    let drop = list.iter().find(|m| m["nrcpt"] == 1).unwrap()["qid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(list[0]["state"], "held");
    assert_eq!(list[0]["script"], "1000:contact.php");

    // show: headers only, unless --body; terminal output cleaned.
    let s = json(&env, &["show", &keep], SHOW);
    assert!(s["headers"].as_str().unwrap().contains("Subject: keep"));
    assert!(s["body"].is_null());
    assert_eq!(s["recipients"].as_array().unwrap().len(), 2);
    let s = json(&env, &["show", &keep, "--body"], SHOW);
    assert!(s["body"].as_str().unwrap().contains("line two"));
    let text = ok(env.ctl(&["show", &keep]));
    assert!(text.contains("Subject: keep ?[31mme"), "{text}");
    assert!(
        !text.contains('\x1b') && !text.contains("line two"),
        "{text}"
    );
    assert!(ok(env.ctl(&["show", &keep, "--body"])).contains("line two"));

    // release one held message: relayed although the account is blocked.
    let r = json(&env, &["release", &keep], MOVE);
    assert_eq!(
        (r["old_state"].as_str(), r["new_state"].as_str()),
        (Some("held"), Some("queued"))
    );
    let got = sink.wait_for(2, WAIT);
    assert!(got.iter().any(|m| m.rcpt_to.len() == 2));
    wait_until(WAIT, || env.count("state = 'sent'") == 2);
    let line = refused(&env, &["release", &keep], 77);
    assert!(line.contains("not held"), "{line}");
    // delete the other; sent mail cannot be deleted.
    let d = json(&env, &["delete", &drop], MOVE);
    assert_eq!(
        (d["old_state"].as_str(), d["new_state"].is_null()),
        (Some("held"), true)
    );
    refused(&env, &["show", &drop], 67);
    let line = refused(&env, &["delete", &keep], 77);
    assert!(line.contains("sent"), "{line}");
    assert_eq!(held(&env), 0);
    let sent = json(&env, &["queue", "--state", "sent"], QUEUE_LIST);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    assert_eq!(status(&env)["state"], "ko");
}

/// `test` goes through the same gate as sendmail: an account outside
/// `accounts.allow` is refused (77), nothing is queued.
#[test]
fn test_verb_honours_accounts_allow() {
    let sink = Sink::start();
    let env = Env::with_sections(sink.port(), "", "[accounts]\nallow = [\"someone-else\"]");
    let line = refused(&env, &["test", me(), "--to", "a@example.com"], 77);
    assert!(line.contains("accounts.allow"), "{line}");
    assert_eq!(env.count("1"), 0);
}
