//! Integration tests: bounce capture (`scriptmail bounce`, fed real DSNs; a
//! real private Postfix instance feeding it through its pipe transport is in
//! tests/root/postfix.rs), the daily error report, and the error-ratio rule
//! (docs/bounces.md).

use std::process::Output;
use std::time::Duration;

use scriptmail::config::Config;
use scriptmail::report::{self, Options};
use scriptmail::store::{Durability, Store};

use crate::fake_smtp::{Action, FakeSmtp};
use crate::util::{Env, assert_ok, me, run_with_input, stderr, wait_until};

const LONG: Duration = Duration::from_secs(60);

/// A bounce a real Postfix 3.7 produced for an unknown local user (see
/// tests/root/postfix.rs, which makes such bounces live; this copy lets the
/// other tests forge one for any message).
const PF_LOCAL: &str = include_str!("../fixtures/bounces/postfix-local-unknown.eml");

// ---------------------------------------------------------------------------
// Helpers.

/// `scriptmail bounce [RECIPIENT]` with `raw` on stdin, as the pipe runs it.
fn bounce(env: &Env, recipient: Option<&str>, raw: &[u8]) -> Output {
    let mut cmd = env.scriptmail();
    cmd.arg("bounce");
    if let Some(r) = recipient {
        cmd.arg(r);
    }
    run_with_input(&mut cmd, raw)
}

fn account_state(env: &Env, account: &str) -> String {
    env.db()
        .query_row(
            "SELECT state FROM accounts WHERE name = ?1",
            [account],
            |r| r.get(0),
        )
        .unwrap_or_default()
}

/// A bounce as Postfix writes it, about recipient `rcpt` of message `qid`.
fn forged_dsn(qid: &str, rcpt: &str) -> String {
    PF_LOCAL
        .replace("6740A1B2C3D4E5F7", qid)
        .replace("nosuchuser@test.example", rcpt)
}

fn open_store(env: &Env) -> (Config, Store) {
    let cfg = Config::load(Some(&env.config)).expect("config");
    let store = Store::open(&cfg.db_path(), Durability::Full).expect("store");
    (cfg, store)
}

fn today() -> i64 {
    scriptmail::clock::day_of(scriptmail::clock::now_ms())
}

// ---------------------------------------------------------------------------
// Real DSNs.

/// Input that matches no message: one clear line, exit 65 (the MTA returns
/// it permanently), logged with the queue it was meant for, and kept.
#[test]
fn unmatched_bounce_exits_65_and_is_kept() {
    let env = Env::new(crate::util::closed_port());
    let raw = forged_dsn("00000000DEADBEEF", "someone@example.com");
    let out = bounce(
        &env,
        Some("bounces+00000000DEADBEEF@node1.example.net"),
        raw.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("scriptmail: no message matches this bounce"),
        "{err}"
    );
    assert!(err.contains("saved as unmatched bounce #1"), "{err}");
    let log = env.log_lines().join("\n");
    assert!(log.contains("status=unmatched id=1"), "{log}");
    assert!(
        log.contains(&format!("queue={}", env.queue.display())),
        "{log}"
    );
    let (rcpt, data): (String, Vec<u8>) = env
        .db()
        .query_row(
            "SELECT envelope_rcpt, data FROM bounces_unmatched",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rcpt, "bounces+00000000DEADBEEF@node1.example.net");
    assert_eq!(data, raw.as_bytes());
    // Not a report at all: also kept, also 65.
    let out = bounce(&env, None, b"From: x@example.com\nSubject: hi\n\nhello\n");
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a delivery status notification"));
}

/// Outside input with a multi-byte character where the VERP prefix ends
/// (issue 11 item 1): no abort (it was exit 134, retried by the MTA for
/// days), but the ordinary "matches no message" outcome.
#[test]
fn non_ascii_verp_local_part_is_unmatched_not_a_crash() {
    let env = Env::with_config(crate::util::closed_port(), "bounce.verp = true");
    for (arg, to) in [
        (
            "bounces+0000AAAA0000BBBB0000@node1.example.net",
            "bounce\u{e9}@node1.example.net",
        ),
        ("bounce\u{e9}@node1.example.net", "x@example.com"),
    ] {
        let raw = format!("To: {to}\n\nx\n");
        let out = bounce(&env, Some(arg), raw.as_bytes());
        assert_eq!(out.status.code(), Some(65), "{arg} {to}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
}

// ---------------------------------------------------------------------------
// The daily report.

const HOSTILE_SUBJECT: &str = "=?utf-8?Q?Win!=0D=0ABcc:_victim@example.com=0D=0A=0D=0A?= \u{1b}[31mred\u{1b}[0m \u{202e}gpj.exe";

/// A day with a mail in error, an expired held mail and state changes, some
/// of it written by a hostile script: the report lists all of it, readable
/// and inert, and goes out once, as system mail, to the recipient only.
#[test]
fn daily_report_lists_errors_expirations_and_state_changes_safely() {
    let relay = FakeSmtp::start();
    relay.on(
        "RCPT",
        Some("bad"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    let env = Env::with_sections(
        relay.port(),
        "queue.hold_max_age = \"1s\"\nreport.from = \"reports@node1.example.net\"",
        "",
    );
    let _relayd = env.relayd();
    assert_ok(&env.ctl(&["set", me(), "--report-to", "admin@example.com"]));

    let hostile = format!(
        "To: \"bad; Bcc: x\"@example.com\r\nSubject: {HOSTILE_SUBJECT}\r\n\
X-PHP-Originating-Script: 1000:/var/www/\u{1b}]0;pwned\u{7}/form.php\r\n\r\nspam\r\n"
    );
    assert_ok(&env.submit(&["-t", "-i"], hostile.as_bytes()));
    wait_until(LONG, || env.error_total(me()) == 1);
    assert_ok(&env.ctl(&["block", me()]));
    assert_ok(&env.submit(
        &["-t", "-i"],
        b"To: good@example.com\r\nSubject: held one\r\n\r\nx\r\n",
    ));
    assert_eq!(env.count("state = 'held'"), 1);
    std::thread::sleep(Duration::from_millis(1100));
    assert_ok(&env.ctl(&["sweep"]));
    assert_eq!(env.count("state = 'expired'"), 1);
    assert_ok(&env.ctl(&["unblock", me()]));

    let (cfg, mut store) = open_store(&env);
    let day = today();
    let o = report::execute(
        &cfg,
        &mut store,
        &Options {
            account: None,
            send: false,
            day: Some(day),
        },
        scriptmail::clock::now_ms(),
    )
    .expect("report");
    assert_eq!(o.queued, 0);
    let r = &o.json["reports"][0];
    assert_eq!(r["account"], me());
    assert_eq!(r["report_to"], "admin@example.com");
    assert_eq!(r["errors"]["total"], 1);
    assert_eq!(
        r["errors"]["items"][0]["rcpt"],
        "\"bad; Bcc: x\"@example.com"
    );
    assert_eq!(r["errors"]["items"][0]["kind"], "rejected");
    assert_eq!(r["expired"]["total"], 1);
    assert_eq!(
        r["expired"]["items"][0]["recipients"][0],
        "good@example.com"
    );
    let events: Vec<(String, String)> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["old_state"].as_str().unwrap().into(),
                e["new_state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [("ok".into(), "ko".into()), ("ko".into(), "ok".into())]
    );
    let text = &o.text;
    for line in text.lines() {
        assert!(
            !line.chars().any(char::is_control),
            "control character in {line:?}"
        );
        assert!(!line.starts_with("Bcc:"), "{line:?}");
    }
    assert!(text.contains("to: \"bad; Bcc: x\"@example.com"), "{text}");
    assert!(
        text.contains("server answer: 550 5.1.1 no such user"),
        "{text}"
    );
    assert!(
        text.contains("subject: Win!??Bcc: victim@example.com????"),
        "{text}"
    );
    assert!(text.contains("?[31mred?[0m ?gpj.exe"), "{text}");
    assert!(
        text.contains("script: 1000:/var/www/?]0;pwned?/form.php"),
        "{text}"
    );
    assert!(text.contains("to: good@example.com"), "{text}");
    assert!(
        text.contains("ok -> ko") && text.contains("ko -> ok"),
        "{text}"
    );

    // --send: queued as system mail, delivered to the recipient only.
    let now = scriptmail::clock::now_ms();
    let send_all = Options {
        account: None,
        send: true,
        day: Some(day),
    };
    let sent = report::execute(&cfg, &mut store, &send_all, now).expect("send");
    assert_eq!(sent.queued, 1);
    assert_eq!(sent.json["reports"][0]["status"], "queued");
    scriptmail::wake::relay(&cfg, Some(&env.config));
    let got = relay.wait_for(1, LONG);
    let mail = &got[0];
    assert_eq!(mail.rcpt_to, ["admin@example.com"]);
    assert_eq!(mail.mail_from, "reports@node1.example.net");
    let data = mail.text();
    let (head, body) = data.split_once("\r\n\r\n").unwrap();
    let names: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.eq_ignore_ascii_case("bcc") || n.eq_ignore_ascii_case("cc")),
        "{head}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case("to"))
            .count(),
        1
    );
    assert!(
        head.contains(&format!(
            "Subject: scriptmail report for {} on node1.example.net: {}",
            me(),
            scriptmail::clock::format_day(day)
        )),
        "{head}"
    );
    assert!(
        body.contains("Mails in error") && body.contains("Held mail that expired"),
        "{body}"
    );
    // Not counted against the account; not sent twice.
    let sent_total: i64 = env
        .db()
        .query_row(
            "SELECT sent_total FROM accounts WHERE name = ?1",
            [me()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sent_total, 0);
    let again = report::execute(&cfg, &mut store, &send_all, now).expect("again");
    assert_eq!(again.queued, 0);
    assert_eq!(again.json["reports"][0]["status"], "already-sent");
}

/// An account with a report recipient and a quiet day gets nothing.
#[test]
fn no_report_when_there_is_nothing_to_say() {
    let relay = FakeSmtp::start();
    let env = Env::new(relay.port());
    assert_ok(&env.ctl(&["set", me(), "--report-to", "admin@example.com"]));
    // Yesterday's mail in error is not today's news, and vice versa.
    relay.on("RCPT", Some("bad"), None, Action::reply(550, "5.1.1 no"));
    let _relayd = env.relayd();
    assert_ok(&env.submit(
        &["-t", "-i"],
        b"To: bad@example.com\r\nSubject: s\r\n\r\nx\r\n",
    ));
    wait_until(LONG, || env.error_total(me()) == 1);
    let (cfg, mut store) = open_store(&env);
    let now = scriptmail::clock::now_ms();
    for day in [None, Some(today() + 1)] {
        let o = report::execute(
            &cfg,
            &mut store,
            &Options {
                account: None,
                send: true,
                day,
            },
            now,
        )
        .expect("report");
        assert_eq!(o.queued, 0);
        assert_eq!(o.json["reports"].as_array().unwrap().len(), 0);
        assert!(o.text.starts_with("Nothing to report for "), "{}", o.text);
    }
    assert_eq!(env.count("system = 1"), 0);
    // The same day with --account, to show the report would not be empty.
    let o = report::execute(
        &cfg,
        &mut store,
        &Options {
            account: Some(me()),
            send: false,
            day: Some(today()),
        },
        now,
    )
    .expect("report");
    assert_eq!(o.json["reports"][0]["errors"]["total"], 1);
}

// ---------------------------------------------------------------------------
// The error-ratio rule.

fn mail_to(rcpt: &str) -> Vec<u8> {
    format!("To: {rcpt}\r\nSubject: ratio\r\n\r\nx\r\n").into_bytes()
}

/// `bounce_ratio = 0.5`, `bounce_min_sample = 4`: 3 rejections of 4 trip the
/// account into `bounce` (new mail is then held); after `unblock --force`
/// the allowed ratio is doubled, so 4 of 5 no longer trip it.
#[test]
fn error_ratio_trips_into_bounce_and_force_doubles_it() {
    let relay = FakeSmtp::start();
    relay.on(
        "RCPT",
        Some("bad"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    let env = Env::with_config(
        relay.port(),
        "limits.bounce_ratio = 0.5\nlimits.bounce_min_sample = 4",
    );
    let _relayd = env.relayd();
    assert_ok(&env.submit(&["-t", "-i"], &mail_to("good@example.com")));
    wait_until(LONG, || env.count("state = 'sent'") == 1);
    for i in 1..=2 {
        assert_ok(&env.submit(&["-t", "-i"], &mail_to(&format!("bad{i}@example.com"))));
    }
    wait_until(LONG, || env.error_total(me()) == 2);
    // 2 of 3: above the ratio, below the sample.
    assert_eq!(account_state(&env, me()), "ok");
    assert_ok(&env.submit(&["-t", "-i"], &mail_to("bad3@example.com")));
    wait_until(LONG, || account_state(&env, me()) == "bounce");
    let (reason, actor, note): (String, String, String) = env
        .db()
        .query_row(
            "SELECT reason, actor, note FROM events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((reason.as_str(), actor.as_str()), ("bounce", "scriptmail"));
    assert!(
        note.contains("3/4 (75%)") && note.contains("above 50%"),
        "{note}"
    );
    assert!(
        env.log_lines()
            .iter()
            .any(|l| l.contains("state=bounce reason=bounce"))
    );
    // Blocked: held, not sent.
    assert_ok(&env.submit(&["-t", "-i"], &mail_to("good2@example.com")));
    assert_eq!(env.count("state = 'held'"), 1);

    assert_ok(&env.ctl(&["unblock", me(), "--force"]));
    assert_eq!(account_state(&env, me()), "force");
    wait_until(LONG, || env.count("state = 'sent'") == 2);
    for i in 4..=7 {
        assert_ok(&env.submit(&["-t", "-i"], &mail_to(&format!("bad{i}@example.com"))));
    }
    wait_until(LONG, || env.error_total(me()) == 7);
    // 4 of 5 since the unblock: above 50 %, not above the doubled 100 %.
    assert_eq!(account_state(&env, me()), "force");
}

/// A DSN that pushes the account over the ratio blocks it, and the report
/// recipient gets a notice at once (not only in tomorrow's report).
#[test]
fn dsn_trip_blocks_and_notifies_the_report_recipient() {
    let relay = FakeSmtp::start();
    let env = Env::with_config(
        relay.port(),
        "limits.bounce_ratio = 0.5\nlimits.bounce_min_sample = 2\nbounce.verp = true",
    );
    assert_ok(&env.ctl(&["set", me(), "--report-to", "admin@example.com"]));
    let _relayd = env.relayd();
    assert_ok(&env.submit(&["-t", "-i"], &mail_to("ann@example.org")));
    assert_ok(&env.submit(&["-t", "-i"], &mail_to("bob@example.org")));
    let got = relay.wait_for(2, LONG);
    // VERP: the relay sent as bounces+QID@node1.example.net.
    let q = env.qids();
    assert!(
        got.iter()
            .any(|d| d.mail_from == format!("bounces+{}@node1.example.net", q[0]))
    );
    wait_until(LONG, || env.count("state = 'sent'") == 2);

    let verp = |qid: &str| format!("bounces+{qid}@node1.example.net");
    let out = bounce(
        &env,
        Some(&verp(&q[0])),
        forged_dsn(&q[0], "ann@example.org").as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(env.error_total(me()), 1);
    assert_eq!(account_state(&env, me()), "ok", "1 of 2 is not above 50%");
    let out = bounce(
        &env,
        Some(&verp(&q[1])),
        forged_dsn(&q[1], "bob@example.org").as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(account_state(&env, me()), "bounce");
    let got = relay.wait_for(3, LONG);
    let notice = &got[2];
    assert_eq!(notice.rcpt_to, ["admin@example.com"]);
    let text = notice.text();
    assert!(
        text.contains(&format!(
            "Subject: scriptmail: account {} blocked (bounce) on node1.example.net",
            me()
        )),
        "{text}"
    );
    assert!(
        text.contains("too many of its mails came back in error"),
        "{text}"
    );
    // A second delivery of the same DSN changes nothing and sends nothing.
    let out = bounce(
        &env,
        Some(&verp(&q[1])),
        forged_dsn(&q[1], "bob@example.org").as_bytes(),
    );
    assert_ok(&out);
    assert_eq!(env.error_total(me()), 2);
    assert_eq!(env.count("system = 1"), 1);
}
