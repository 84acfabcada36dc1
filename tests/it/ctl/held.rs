//! Held mail: purge (counts, the terminal prompt), expiry by `sweep`, and
//! the held mail broken down, released and purged in part.

use super::*;

#[test]
fn purge_reports_what_it_dropped_and_ends_ok() {
    // A smarthost that answers 4xx: queued mail stays deferred, not sent.
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        None,
        None,
        Action::reply(451, "4.3.0 try again later"),
    );
    let env = Env::new(fake.port());
    send(&env, "a@example.com", "deferred 1");
    send(&env, "a@example.com", "deferred 2");
    wait_settled(&env);
    assert_eq!(env.count("state = 'deferred'"), 2);
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    for i in 0..3 {
        send(&env, "a@example.com", &format!("held {i}"));
    }
    let p = json(
        &env,
        &["purge", me(), "--yes", "--actor", "abuse-desk"],
        PURGE,
    );
    assert_eq!(p["dropped"], 5);
    // The two deferred ones were held by the block (a blocked account starts
    // no delivery), so all five were held when the purge came.
    assert_eq!(
        (p["dropped_held"].as_i64(), p["dropped_queued"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        (p["old_state"].as_str(), p["new_state"].as_str()),
        (Some("spam"), Some("ok"))
    );
    assert_eq!(p["released"], 0);
    assert_eq!(env.count("1"), 0, "purge leaves no mail of the account");
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ok"), Some("purge"))
    );
    let h = json(&env, &["history", me()], HISTORY);
    let news: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["new_state"].as_str().unwrap())
        .collect();
    assert_eq!(news, ["spam", "purging", "ok"]);
    assert_eq!(h["events"][2]["actor"], "abuse-desk");
    // The human form says the count too.
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "held again");
    let text = ok(env.ctl(&["purge", me(), "-y"]));
    assert!(
        text.contains("dropped 1 message(s) (1 held, 0 queued/deferred)"),
        "{text}"
    );
    assert_eq!(fake.delivered().len(), 0);
}

#[test]
fn sweep_expires_held_mail_past_hold_max_age() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.hold_max_age = \"1s\"");
    send(&env, "a@example.com", "sent");
    sink.wait_for(1, WAIT);
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "old 1");
    send(&env, "a@example.com", "old 2");
    std::thread::sleep(Duration::from_millis(1300));
    send(&env, "a@example.com", "young");
    let s = status(&env);
    assert_eq!(s["queue"]["held"], 3);
    assert_eq!(s["expires_in_s"], 0);
    let w = json(&env, &["sweep"], SWEEP);
    assert_eq!(w["expired"], 2);
    assert_eq!(w["expired_by_account"][0]["account"], me());
    assert_eq!(w["hold_max_age_s"], 1);
    assert_eq!(env.count("state = 'expired'"), 2);
    assert_eq!(held(&env), 1);
    // Expired mail has no body left, and is counted for the day.
    let bodies: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM bodies b JOIN messages m ON m.id = b.message_id
             WHERE m.state = 'expired'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bodies, 0);
    let st = json(&env, &["stats", me(), "--days", "1"], STATS);
    assert_eq!(st["days"][0]["expired"], 2);
    assert_eq!(st["days"][0]["held"], 3);
    assert_eq!(st["days"][0]["sent"], 1);
    assert!(
        env.log_lines()
            .iter()
            .any(|l| l.contains(&format!("account={} expired=2", me())))
    );
    // A second sweep finds nothing more; the young one still waits.
    assert_eq!(json(&env, &["sweep"], SWEEP)["expired"], 0);
    let q = json(&env, &["queue", "--state", "expired"], QUEUE_LIST);
    assert_eq!(q["messages"].as_array().unwrap().len(), 2);
    // Unblocking releases only what is still held.
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 1);
    let got = sink.wait_for(2, WAIT);
    assert_eq!(got[1].header("Subject").as_deref(), Some("young"));
}

/// On a terminal, purge asks first; "n" keeps everything (77), "y" purges.
#[test]
fn purge_asks_on_a_terminal() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "x");
    // Delivered before the block (which would hold it otherwise).
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 1);
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "held");
    env.settle();
    let purge_on_tty = |answer: &str| -> Output {
        let cmd = format!("{SCRIPTMAIL} mailq-ctl purge {}", me());
        let mut c = std::process::Command::new("script");
        c.args(["-qefc", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SCRIPTMAIL_CONFIG", &env.config);
        run_with_input(&mut c, answer.as_bytes())
    };
    let no = purge_on_tty("n\n");
    assert_eq!(no.status.code(), Some(77), "{}", stdout(&no));
    let text = stdout(&no);
    assert!(
        text.contains(&format!(
            "Drop 1 held and 0 queued/deferred message(s) of {}",
            me()
        )),
        "{text}"
    );
    assert!(text.contains("purge cancelled"), "{text}");
    assert_eq!(held(&env), 1);
    assert_eq!(status(&env)["state"], "ko");
    let yes = purge_on_tty("y\n");
    assert_ok(&yes);
    assert!(
        stdout(&yes).contains("dropped 1 message(s)"),
        "{}",
        stdout(&yes)
    );
    assert_eq!(held(&env), 0);
    assert_eq!(status(&env)["state"], "ok");
}

// ---------------------------------------------------------------------------
// The held mail in part (issue 15 item 3).

/// Make the message with this subject `secs` seconds older, as if it had
/// been held that long (the age filters need mail of different ages).
fn backdate(env: &Env, subject: &str, secs: i64) {
    env.settle();
    let c = rusqlite::Connection::open(env.queue.join("queue.db")).expect("open rw");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    let n = c
        .execute(
            "UPDATE messages SET created = created - ?1 * 1000 WHERE subject = ?2",
            rusqlite::params![secs, subject],
        )
        .expect("update");
    assert_eq!(n, 1, "{subject}");
}

/// `[{<key>: name, held: n}]` as pairs.
fn counts<'a>(v: &'a Value, key: &str) -> Vec<(&'a str, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| (c[key].as_str().unwrap(), c["held"].as_i64().unwrap()))
        .collect()
}

/// A blocked account's held mail, from two real PHP scripts and the `-t`
/// path: broken down by script and recipient domain, previewed with a
/// filter, then released in part (by script: delivered, the account stays
/// blocked) and purged in part (by age, by domain and age); a filter that
/// matches nothing is 0, not an error; none of it changes the state.
#[test]
fn held_mail_by_script_domain_and_age_released_or_purged_in_part() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    json(&env, &["block", me(), "--note", "spam run"], CHANGE);
    let mail = |to: &str, subject: &str| {
        format!("echo mail(\"{to}\", \"{subject}\", \"hello\") ? \"sent\\n\" : \"failed\\n\";\n")
    };
    php_script(
        &env,
        "contact.php",
        &(mail("a@example.org", "contact 1") + &mail("b@example.org, c@gmail.com", "contact 2")),
    );
    php_script(&env, "wp-login.php", &mail("d@gmail.com", "login"));
    // The -t path, a script of another uid, held three hours ago.
    let old =
        b"To: e@yahoo.com\r\nSubject: old\r\nX-PHP-Originating-Script: 33:old.php\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], old));
    backdate(&env, "old", 3 * 3600);
    assert_eq!(held(&env), 4);

    // What is held: by script (most first, then by name) and by domain
    // (a message to two domains counts for both).
    let h = json(&env, &["held", me()], HELD);
    assert_eq!(
        (
            h["held"].as_i64(),
            h["state"].as_str(),
            h["sends"].as_bool()
        ),
        (Some(4), Some("ko"), Some(false))
    );
    // PHP writes its own uid before the script's name.
    let contact = format!("{}:contact.php", my_uid());
    let login = format!("{}:wp-login.php", my_uid());
    let mut by_script = vec![
        (contact.as_str(), 2),
        (login.as_str(), 1),
        ("33:old.php", 1),
    ];
    by_script.sort_by_key(|&(name, n)| (-n, name));
    assert_eq!(counts(&h["scripts"], "script"), by_script);
    assert_eq!(
        counts(&h["domains"], "domain"),
        [("example.org", 2), ("gmail.com", 2), ("yahoo.com", 1)]
    );
    assert!(h["filter"]["script"].is_null() && h["filter"]["older_than_s"].is_null());
    // The oldest was held three hours ago: 72 h - 3 h left before expiry,
    // minus the few seconds the test took.
    let left = h["expires_in_s"].as_i64().unwrap();
    assert!((69 * 3600 - 60..=69 * 3600).contains(&left), "{left}");
    assert!(h["oldest_age_s"].as_i64().unwrap() >= 3 * 3600);
    assert!(h["newest"].as_str().unwrap() > h["oldest"].as_str().unwrap());
    let top = json(&env, &["held", me(), "--limit", "1"], HELD);
    assert_eq!(counts(&top["scripts"], "script"), [(contact.as_str(), 2)]);
    assert_eq!(top["distinct_scripts"], 3);
    // A filter previews what release or purge with it would take.
    let gmail = json(&env, &["held", me(), "--domain", "@GMAIL.com"], HELD);
    assert_eq!(
        (gmail["held"].as_i64(), gmail["filter"]["domain"].as_str()),
        (Some(2), Some("gmail.com"))
    );
    let text = ok(env.ctl(&["held", me()]));
    assert!(
        text.contains(&format!(
            "{}: 4 held message(s) (all held mail); the account is ko",
            me()
        )) && text.contains(&contact)
            && text.contains("RECIPIENT DOMAIN"),
        "{text}"
    );

    // Release by script (without the UID: prefix): relayed at once
    // although the account stays blocked.
    let r = json(
        &env,
        &["release", me(), "--script", "wp-login.php"],
        HELD_RELEASE,
    );
    assert_eq!(
        (
            r["released"].as_i64(),
            r["held"].as_i64(),
            r["state"].as_str()
        ),
        (Some(1), Some(3), Some("ko"))
    );
    assert_eq!(r["filter"]["script"], "wp-login.php");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("login"));
    assert_eq!(status(&env)["state"], "ko");

    // Purge by age: only the mail submitted at least two hours ago.
    let p = json(
        &env,
        &[
            "purge",
            me(),
            "--older-than",
            "2h",
            "--yes",
            "--note",
            "old spam",
        ],
        HELD_PURGE,
    );
    assert_eq!(
        (
            p["dropped"].as_i64(),
            p["held"].as_i64(),
            p["filter"]["older_than_s"].as_i64()
        ),
        (Some(1), Some(2), Some(7200))
    );
    assert_eq!(env.count("subject = 'old'"), 0);
    // By domain and age together, in the human form.
    let text = ok(env.ctl(&[
        "purge",
        me(),
        "--domain",
        "gmail.com",
        "--newer-than",
        "1h",
        "-y",
    ]));
    assert!(
        text.contains(&format!(
            "{}: dropped 1 held message(s) (domain gmail.com, newer than 1h00m); 1 still held, the account stays ko",
            me()
        )),
        "{text}"
    );
    assert_eq!(env.count("subject = 'contact 2'"), 0);

    // Nothing matching is 0, not an error.
    let none = json(
        &env,
        &["release", me(), "--script", "nothing.php"],
        HELD_RELEASE,
    );
    assert_eq!(
        (none["released"].as_i64(), none["held"].as_i64()),
        (Some(0), Some(1))
    );
    let none = json(
        &env,
        &["purge", me(), "--domain", "nowhere.example", "--yes"],
        HELD_PURGE,
    );
    assert_eq!(
        (none["dropped"].as_i64(), none["held"].as_i64()),
        (Some(0), Some(1))
    );
    // A filtered purge drops mail: --yes without a terminal; bad filters.
    let line = refused(&env, &["purge", me(), "--script", "contact.php"], 64);
    assert!(line.contains("--yes"), "{line}");
    refused(&env, &["held", me(), "--domain", "a@b.example"], 64);
    refused(&env, &["release", me(), "--older-than", "soon"], 64);
    assert_eq!(held(&env), 1);

    // Each partial change is logged; none is a state change.
    let logs = env.log_lines().join("\n");
    assert!(
        logs.contains(&format!(
            "account={me} released=1 held=3 script=\"wp-login.php\" actor=\"{me}\"",
            me = me()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "account={me} dropped=1 held=2 older_than=7200s actor=\"{me}\" note=\"old spam\"",
            me = me()
        )),
        "{logs}"
    );
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 1);
    sink.wait_for(2, WAIT);
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(got, ["contact 1", "login"]);
    let events = json(&env, &["history", me()], HISTORY)["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 2, "{events}");
}
