//! Account state transitions and refusals (docs/design.md, "Account
//! states"), the submit/unblock race, and accounts before their first mail.

use super::*;

// ---------------------------------------------------------------------------
// State transitions (docs/design.md, "Account states").

#[test]
fn block_holds_with_exit_0_and_unblock_relays_the_held_mail() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "before");
    sink.wait_for(1, WAIT);

    let b = json(&env, &["block", me(), "--note", "ticket 42"], CHANGE);
    assert_eq!(
        (b["old_state"].as_str(), b["new_state"].as_str()),
        (Some("ok"), Some("ko"))
    );
    assert_eq!(b["reason"], "manual");
    assert_eq!(b["actor"], me());
    send(&env, "a@example.com", "held 1");
    send(&env, "a@example.com", "held 2");
    assert_eq!(held(&env), 2);
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["sends"].as_bool()),
        (Some("ko"), Some(false))
    );
    assert_eq!(s["queue"]["held"], 2);
    assert_eq!(s["note"], "ticket 42");
    assert_eq!(s["changed_by"], me());
    assert!(s["oldest_held"].is_string());
    // 72 h by default, minus the few seconds the test took.
    let left = s["expires_in_s"].as_i64().unwrap();
    assert!((72 * 3600 - 60..=72 * 3600).contains(&left), "{left}");
    // Nothing reached the smarthost while blocked.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 1);

    let u = json(&env, &["unblock", me(), "--actor", "panel:alice"], CHANGE);
    assert_eq!(
        (u["old_state"].as_str(), u["new_state"].as_str()),
        (Some("ko"), Some("ok"))
    );
    assert_eq!(
        (u["released"].as_i64(), u["actor"].as_str()),
        (Some(2), Some("panel:alice"))
    );
    sink.wait_for(3, WAIT);
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(got, ["before", "held 1", "held 2"]);
    assert_eq!(held(&env), 0);

    // Every change is in the history, with its actor, and in syslog.
    let h = json(&env, &["history", me()], HISTORY);
    let ev: Vec<(&str, &str, &str)> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["old_state"].as_str().unwrap(),
                e["new_state"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ev, [("ok", "ko", me()), ("ko", "ok", "panel:alice")]);
    let logs = env.log_lines().join("\n");
    assert!(
        logs.contains(&format!(
            "account={me} old=ok new=ko reason=manual actor=\"{me}\"",
            me = me()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "account={} old=ko new=ok reason=unblock actor=\"panel:alice\" released=2",
            me()
        )),
        "{logs}"
    );
    // The human history names the same.
    let text = ok(env.ctl(&["history", me()]));
    assert!(
        text.contains("panel:alice") && text.contains("ticket 42"),
        "{text}"
    );
    // Behind sudo, the admin's own name is the default actor.
    let out = env
        .scriptmail()
        .env("SUDO_USER", "jdoe")
        .args(["mailq-ctl", "--json", "block", me()])
        .output()
        .expect("run");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["actor"], "jdoe");
    json(&env, &["unblock", me()], CHANGE);
    // Unblocking a sending account is a harmless no-op.
    let again = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(again["changed"], false);
    assert_eq!(
        json(&env, &["history", me()], HISTORY)["events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn spam_and_bounce_refusals_and_force() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "first");
    sink.wait_for(1, WAIT);

    // spam with held mail: plain unblock refused (77), nothing moves.
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    send(&env, "a@example.com", "spam held");
    let line = refused(&env, &["unblock", me()], 77);
    assert!(line.contains("purge") && line.contains("spam"), "{line}");
    assert_eq!(held(&env), 1);
    assert_eq!(status(&env)["state"], "spam");
    // --force from spam leads to ok and releases.
    let u = json(&env, &["unblock", me(), "--force"], CHANGE);
    assert_eq!(
        (u["new_state"].as_str(), u["released"].as_i64()),
        (Some("ok"), Some(1))
    );
    sink.wait_for(2, WAIT);

    // spam with nothing held: plain unblock is fine.
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["new_state"], "ok");

    // bounce (set by the error-ratio rule) with held mail: refused; --force → force (green).
    set_state_sql(&env, "bounce");
    send(&env, "a@example.com", "bounce held");
    assert_eq!(held(&env), 1);
    let line = refused(&env, &["unblock", me()], 77);
    assert!(line.contains("bounce"), "{line}");
    let u = json(&env, &["unblock", me(), "--force"], CHANGE);
    assert_eq!(
        (u["old_state"].as_str(), u["new_state"].as_str()),
        (Some("bounce"), Some("force"))
    );
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["sends"].as_bool()),
        (Some("force"), Some(true))
    );
    sink.wait_for(3, WAIT);
    // force sends: new mail is relayed, not held.
    send(&env, "a@example.com", "from force");
    sink.wait_for(4, WAIT);
    assert_eq!(held(&env), 0);
}

#[test]
fn block_refusals_and_unknown_accounts() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    // Unknown account: one line naming it, exit 67, for every account verb.
    for args in [
        &["status", "nosuchacct"][..],
        &["block", "nosuchacct"],
        &["unblock", "nosuchacct"],
        &["purge", "nosuchacct", "--yes"],
        &["stats", "nosuchacct"],
        &["errors", "nosuchacct"],
        &["history", "nosuchacct"],
        &["queue", "--account", "nosuchacct"],
        &["flush", "--account", "nosuchacct"],
        &["test", "nosuchacct", "--to", "a@example.com"],
        &["held", "nosuchacct"],
        &["release", "nosuchacct", "--script", "contact.php"],
        &["purge", "nosuchacct", "--domain", "example.com", "--yes"],
    ] {
        let line = refused(&env, args, 67);
        assert_eq!(line, "scriptmail: no such account: nosuchacct", "{args:?}");
    }
    let line = refused(&env, &["show", "0000000000000000"], 67);
    assert!(line.contains("no such message"), "{line}");
    // --json errors are JSON on stdout too, for the panel.
    let out = env.ctl(&["--json", "status", "nosuchacct"]);
    assert_eq!(out.status.code(), Some(67));
    let v: Value = serde_json::from_slice(&out.stdout).expect("error document");
    check(&v, &J::Obj(ERROR), "error");
    assert_eq!(
        (v["error"].as_str(), v["exit"].as_i64()),
        (Some("no such account: nosuchacct"), Some(67))
    );

    send(&env, "a@example.com", "hello");
    json(&env, &["block", me()], CHANGE);
    // Blocking a blocked account again is refused; spam upgrades ko.
    let line = refused(&env, &["block", me()], 77);
    assert!(line.contains("already blocked"), "{line}");
    let up = json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    assert_eq!(
        (up["old_state"].as_str(), up["new_state"].as_str()),
        (Some("ko"), Some("spam"))
    );
    refused(&env, &["block", me(), "--reason", "manual"], 77);
    // purge needs --yes without a terminal (64); purging refuses unblock (77).
    let line = refused(&env, &["purge", me()], 64);
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(status(&env)["state"], "spam");
    set_state_sql(&env, "purging");
    let line = refused(&env, &["unblock", me(), "--force"], 77);
    assert!(line.contains("purge"), "{line}");
    refused(&env, &["block", me()], 77);
    // Running purge again finishes an interrupted one.
    let p = json(&env, &["purge", me(), "--yes"], PURGE);
    assert_eq!(
        (p["old_state"].as_str(), p["new_state"].as_str()),
        (Some("purging"), Some("ok"))
    );
    // Bad input: 64 and one line.
    refused(&env, &["set", me()], 64);
    refused(&env, &["set", me(), "--report-to", "not an address"], 64);
    refused(&env, &["set", me(), "--report-to", "a@b\r\nBcc: x@y"], 64);
    refused(&env, &["block", me(), "--actor", ""], 64);
}

/// A state change and a concurrent enqueue never strand a message
/// (docs/design.md, "Invariants").
/// sendmail submits in a loop (two processes at a time) while block/unblock
/// toggle; a reader checks throughout that no message is ever held in a
/// sending account; at the end every message is delivered exactly as sent.
#[test]
fn submit_while_block_unblock_toggle_strands_nothing() {
    const N: usize = 200;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _daemon = env.relayd();
    send(&env, "race@example.org", "warm-up");
    sink.wait_for(1, WAIT);
    let done = AtomicBool::new(false);
    let released = AtomicU64::new(0);
    let toggles = AtomicU64::new(0);
    let violations = AtomicU64::new(0);
    std::thread::scope(|s| {
        let submitters: Vec<_> = (0..2)
            .map(|t| {
                let env = &env;
                s.spawn(move || {
                    for i in 0..N / 2 {
                        let out = env.submit(
                            &["-t", "-i"],
                            &simple_message("race@example.org", &format!("race {t}-{i}")),
                        );
                        assert_ok(&out);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) || toggles.load(Ordering::SeqCst) < 10 {
                let b = env.ctl(&["block", me()]);
                assert_ok(&b);
                let u = env.ctl(&["--json", "unblock", me()]);
                assert_ok(&u);
                let v: Value = serde_json::from_slice(&u.stdout).expect("json");
                released.fetch_add(v["released"].as_u64().unwrap(), Ordering::SeqCst);
                toggles.fetch_add(1, Ordering::SeqCst);
            }
        });
        s.spawn(|| {
            let db = env.db();
            while !done.load(Ordering::SeqCst) {
                // One read transaction: a consistent snapshot of both tables.
                let n: i64 = db
                    .query_row(
                        "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id
                         WHERE m.state = 'held' AND a.state IN ('ok', 'force')",
                        [],
                        |r| r.get(0),
                    )
                    .expect("query");
                if n > 0 {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        for h in submitters {
            h.join().expect("submitter");
        }
        done.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "held mail seen in an ok account"
    );
    // The toggler always ends with unblock: the account sends and holds nothing.
    let s = status(&env);
    assert_eq!(s["state"], "ok");
    assert_eq!(
        held(&env),
        0,
        "a message was stranded held in an ok account"
    );
    assert!(toggles.load(Ordering::SeqCst) >= 10);
    assert!(
        released.load(Ordering::SeqCst) > 0,
        "the race never held anything: the test did not exercise it"
    );
    // Every message is delivered; none lost, none invented.
    sink.wait_for(N + 1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == (N + 1) as i64);
    let got: HashSet<String> = subjects(&sink).into_iter().collect();
    let want: HashSet<String> = (0..2)
        .flat_map(|t| (0..N / 2).map(move |i| format!("race {t}-{i}")))
        .chain(["warm-up".to_string()])
        .collect();
    assert_eq!(got, want);
    assert_eq!(env.count("1"), (N + 1) as i64);
}

/// Item 17: a panel blocks or configures an account before its first mail:
/// any name the node resolves (a Unix user, or a name of `[accounts.map]`).
/// A name that resolves to nothing is still 67.
#[test]
fn block_set_and_status_work_before_the_first_mail() {
    let sink = Sink::start();
    let env = Env::with_sections(
        sink.port(),
        "",
        &format!("[accounts.map]\n\"{}\" = \"site-42\"\n", my_uid()),
    );
    // `daemon`: a Unix user that never sent mail through this node.
    let b = json(&env, &["block", "daemon", "--note", "pre-emptive"], CHANGE);
    assert_eq!(
        (b["old_state"].as_str(), b["new_state"].as_str()),
        (Some("ok"), Some("ko"))
    );
    assert_eq!(json(&env, &["status", "daemon"], STATUS)["state"], "ko");
    let s = json(&env, &["set", "daemon", "--max-per-day", "5"], SET);
    assert_eq!(
        (s["created"].as_bool(), s["max_per_day"].as_i64()),
        (Some(false), Some(5))
    );
    // A name only the configuration's map knows: shown as a fresh account
    // without being created, blocked, and its first mail is held.
    let s = json(&env, &["status", "site-42"], STATUS);
    assert_eq!(
        (
            s["state"].as_str(),
            s["sent_total"].as_i64(),
            s["queue"]["held"].as_i64()
        ),
        (Some("ok"), Some(0), Some(0))
    );
    assert!(
        json(&env, &["accounts"], ACCOUNTS)["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["account"] != "site-42"),
        "status created the account"
    );
    json(&env, &["block", "site-42"], CHANGE);
    send(&env, "a@example.com", "first mail of site-42");
    assert_eq!(held(&env), 1);
    assert_eq!(
        json(&env, &["status", "site-42"], STATUS)["queue"]["held"],
        1
    );
    assert!(sink.messages().is_empty());
    // Nothing resolves this name: 67, and nothing is created.
    for args in [
        &["block", "no-such-user-xyz"][..],
        &["status", "no-such-user-xyz"],
        &["set", "no-such-user-xyz", "--max-per-day", "1"],
    ] {
        let line = refused(&env, args, 67);
        assert_eq!(
            line, "scriptmail: no such account: no-such-user-xyz",
            "{args:?}"
        );
    }
    assert_eq!(
        json(&env, &["accounts"], ACCOUNTS)["accounts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
