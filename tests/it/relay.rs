//! Integration tests: the relay (docs/relay.md, issue 3) — retries, per-recipient
//! outcomes, crashes, signals and bursts — against the scripted fake SMTP
//! server (fault injection) and Postfix's real smtp-sink (everything else).

use std::collections::HashSet;
use std::fs::File;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fake_smtp::{Action, FakeSmtp};
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(30);

fn relayd_stderr(env: &Env) -> String {
    std::fs::read_to_string(env.path().join("relayd.stderr")).unwrap_or_default()
}

/// Submit one message with `-t -i`, asserting exit 0.
fn send(env: &Env, to: &str, subject: &str) {
    let out = env.submit(&["-t", "-i"], &simple_message(to, subject));
    assert_ok(&out);
}

fn query_i64(env: &Env, sql: &str) -> i64 {
    env.db().query_row(sql, [], |r| r.get(0)).expect(sql)
}

fn query_rows(env: &Env, sql: &str) -> Vec<(String, String, String)> {
    let db = env.db();
    let mut st = db.prepare(sql).expect(sql);
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect(sql)
        .collect::<Result<_, _>>()
        .expect(sql)
}

/// Wait until every message is in a final state (sent or failed).
fn wait_all_done(env: &Env, n: i64, timeout: Duration) {
    let start = Instant::now();
    loop {
        let done = env.count("state IN ('sent', 'failed')");
        if done >= n {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "only {done} of {n} messages done within {timeout:?}; states: {:?}",
            query_rows(
                env,
                "SELECT state, CAST(count(*) AS TEXT), coalesce(max(last_error), '') FROM messages GROUP BY state"
            )
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn temporary_failure_then_delivered_once() {
    let fake = FakeSmtp::start();
    fake.on(
        "DOT",
        None,
        Some(1),
        Action::reply(451, "4.3.0 try again later"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    send(&env, "a@example.org", "retry me");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'sent' AND attempts = 2"), 1);
    let got = fake.delivered();
    assert_eq!(got.len(), 1, "{}", fake.transcript_text());
    assert_eq!(got[0].rcpt_to, ["a@example.org"]);
    // The first attempt's 451 is what the log said before the retry.
    let log = env.log_lines().join("\n");
    assert!(log.contains("status=deferred"), "{log}");
    assert!(log.contains("451 4.3.0 try again later"), "{log}");
    assert!(log.contains("status=sent"), "{log}");
}

#[test]
fn permanent_failure_is_recorded_with_the_servers_text() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        None,
        None,
        Action::reply(550, "5.1.1 no such user here"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    send(&env, "nobody@example.org", "bounce me");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'failed'"), 1);
    assert!(fake.delivered().is_empty());
    let last: String = env
        .db()
        .query_row("SELECT last_error FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, "550 5.1.1 no such user here");
    let errors = query_rows(&env, "SELECT rcpt, kind, message FROM errors");
    assert_eq!(
        errors,
        [(
            "nobody@example.org".to_string(),
            "rejected".to_string(),
            "550 5.1.1 no such user here".to_string()
        )]
    );
    assert_eq!(query_i64(&env, "SELECT error_total FROM accounts"), 1);
    assert_eq!(query_i64(&env, "SELECT sum(errors) FROM daily"), 1);
    // The session was left clean: RSET after the refused transaction.
    assert!(fake.transcript_text().contains("RSET"));
}

#[test]
fn one_rejected_recipient_of_three_does_not_lose_the_others() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        Some("<b@"),
        None,
        Action::reply(550, "5.1.1 b is gone"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    let msg = b"To: a@example.org, b@example.org, c@example.org\r\nSubject: three\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], msg));
    wait_all_done(&env, 1, WAIT);
    let got = fake.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["a@example.org", "c@example.org"]);
    assert_eq!(got[0].rcpt_rejected, ["b@example.org"]);
    assert_eq!(env.count("state = 'sent'"), 1);
    let states = query_rows(&env, "SELECT rcpt, state, '' FROM recipients ORDER BY rcpt");
    let states: Vec<_> = states.into_iter().map(|(r, s, _)| (r, s)).collect();
    assert_eq!(
        states,
        [
            ("a@example.org".into(), "sent".into()),
            ("b@example.org".into(), "failed".into()),
            ("c@example.org".into(), "sent".into())
        ]
    );
    let errors = query_rows(&env, "SELECT rcpt, kind, message FROM errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "b@example.org");
    assert_eq!(errors[0].2, "550 5.1.1 b is gone");
}

#[test]
fn a_temporarily_refused_recipient_is_retried_alone() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        Some("<b@"),
        Some(1),
        Action::reply(451, "4.2.0 b later"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    let msg = b"To: a@example.org, b@example.org\r\nSubject: two\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], msg));
    wait_all_done(&env, 1, WAIT);
    let got = fake.delivered();
    assert_eq!(got.len(), 2, "{}", fake.transcript_text());
    assert_eq!(got[0].rcpt_to, ["a@example.org"]);
    assert_eq!(got[1].rcpt_to, ["b@example.org"]);
    assert_eq!(query_i64(&env, "SELECT count(*) FROM errors"), 0);
    assert_eq!(query_i64(&env, "SELECT sent_total FROM accounts"), 1);
}

#[test]
fn connection_dropped_mid_data_is_retried_and_delivered_once() {
    let fake = FakeSmtp::start();
    fake.on("DATA", None, Some(1), Action::DropMidData);
    let env = Env::new(fake.port());
    let _d = env.relayd();
    send(&env, "a@example.org", "cut me");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'sent' AND attempts = 2"), 1);
    let got = fake.delivered();
    assert_eq!(got.len(), 1);
    assert!(got[0].text().contains("Subject: cut me"));
    assert!(fake.connections() >= 2);
}

#[test]
fn server_closing_a_reused_connection_costs_no_retry_delay() {
    // The first message leaves a cached connection; the server then drops
    // it (as an idle timeout would). The next message must go out on a
    // fresh connection in the same attempt, not be deferred.
    let fake = FakeSmtp::start();
    let env = Env::with_config(fake.port(), "relay.connections = 1");
    let _d = env.relayd();
    send(&env, "a@example.org", "first");
    fake.wait_for(1, WAIT);
    fake.kill_connections();
    send(&env, "a@example.org", "second");
    wait_all_done(&env, 2, WAIT);
    assert_eq!(env.count("state = 'sent' AND attempts = 1"), 2);
    assert_eq!(fake.delivered().len(), 2);
}

#[test]
fn connections_are_reused_across_messages() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "relay.connections = 1");
    let _d = env.relayd();
    for i in 0..5 {
        send(&env, "a@example.org", &format!("reuse {i}"));
    }
    wait_all_done(&env, 5, WAIT);
    let msgs = sink.wait_for(5, WAIT);
    let conns: HashSet<usize> = msgs.iter().map(|m| m.connection).collect();
    assert_eq!(conns.len(), 1, "one connection for all: {conns:?}");
    assert_eq!(sink.connections(), 1);
}

#[test]
fn smarthost_down_then_up_delivers_everything_once() {
    let fake = FakeSmtp::start();
    fake.down();
    let env = Env::new(fake.port());
    let d = env.relayd();
    let started = Instant::now();
    for i in 0..20 {
        send(&env, "a@example.org", &format!("outage {i}"));
    }
    // Every message was tried and deferred, some more than once.
    wait_until(WAIT, || {
        env.count("state = 'deferred' AND attempts >= 2") == 20
    });
    let last: String = env
        .db()
        .query_row("SELECT max(last_error) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(last.contains("connect"), "{last}");
    // Backoff, not a spin: retries are at least 0.75 s apart (75 % of the
    // 1 s retry_initial), so no message can have more tries than that allows.
    let max_tries = query_i64(&env, "SELECT max(attempts) FROM messages");
    let allowed = (started.elapsed().as_secs_f64() / 0.75).ceil() as i64 + 1;
    assert!(
        max_tries <= allowed,
        "{max_tries} tries in {:?}",
        started.elapsed()
    );
    fake.up();
    wait_all_done(&env, 20, WAIT);
    let got = fake.delivered();
    let distinct: HashSet<String> = got
        .iter()
        .map(|m| {
            m.text()
                .lines()
                .find(|l| l.starts_with("Subject:"))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(got.len(), 20, "each exactly once");
    assert_eq!(distinct.len(), 20);
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn expired_past_queue_lifetime_with_each_recipient_in_error() {
    let env = Env::with_config(closed_port(), "queue.queue_lifetime = \"2s\"");
    let _d = env.relayd();
    let msg = b"To: a@example.org, b@example.org\r\nSubject: doomed\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], msg));
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'failed'"), 1);
    let errors = query_rows(&env, "SELECT rcpt, kind, message FROM errors ORDER BY rcpt");
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (e, rcpt) in errors.iter().zip(["a@example.org", "b@example.org"]) {
        assert_eq!(e.0, rcpt);
        assert_eq!(e.1, "expired");
        assert!(
            e.2.contains("expired") && e.2.contains("connect"),
            "{}",
            e.2
        );
    }
    assert_eq!(query_i64(&env, "SELECT error_total FROM accounts"), 2);
    // The body is gone with the message.
    assert_eq!(query_i64(&env, "SELECT count(*) FROM bodies"), 0);
}

#[test]
fn body_8bitmime_and_dsn_parameters_are_passed_when_offered() {
    let fake = FakeSmtp::start();
    let env = Env::new(fake.port());
    let _d = env.relayd();
    let msg = "To: a@example.org\r\nSubject: caf\u{e9}\r\n\r\nd\u{e9}j\u{e0} vu\r\n";
    let out = env.submit(
        &[
            "-t",
            "-i",
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "id+1 x",
        ],
        msg.as_bytes(),
    );
    assert_ok(&out);
    let got = fake.wait_for(1, WAIT);
    let args = &got[0].mail_args;
    assert!(args.contains("BODY=8BITMIME"), "{args}");
    assert!(args.contains("RET=HDRS"), "{args}");
    // Stored decoded, sent as xtext (RFC 3461 §4).
    assert!(args.contains("ENVID=id+2B1+20x"), "{args}");
    let t = fake.transcript_text();
    assert!(t.contains("NOTIFY=SUCCESS,FAILURE"), "{t}");
    assert!(
        got[0].text().contains("d\u{e9}j\u{e0} vu"),
        "{}",
        got[0].text()
    );
}

#[test]
fn no_dsn_parameters_to_a_server_that_does_not_offer_dsn() {
    let fake = FakeSmtp::start();
    fake.on(
        "EHLO",
        None,
        None,
        Action::reply(250, "fake-smtp.test\nPIPELINING\nENHANCEDSTATUSCODES"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    let out = env.submit(
        &["-t", "-i", "-N", "never", "-R", "full", "-V", "abc"],
        &simple_message("a@example.org", "plain"),
    );
    assert_ok(&out);
    let got = fake.wait_for(1, WAIT);
    assert_eq!(got[0].mail_args, format!("<{}>", got[0].mail_from));
    assert!(!fake.transcript_text().contains("NOTIFY"));
}

#[test]
fn kill_9_during_a_burst_loses_nothing() {
    const N: usize = 300;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let d = env.relayd();
    let (failed, at_kill) = std::thread::scope(|s| {
        let senders = s.spawn(|| burst(&env, 4, N / 4, "kill9"));
        wait_until(Duration::from_secs(120), || sink.stats().messages >= N / 5);
        d.kill9();
        let at_kill = sink.stats().messages;
        // Submissions go on meanwhile: with no daemon listening, they
        // start one-shot deliveries, which take over the orphaned claims.
        std::thread::sleep(Duration::from_millis(300));
        let d2 = env.relayd();
        (senders.join().expect("senders"), (at_kill, d2))
    });
    let (at_kill, _d2) = at_kill;
    assert!(failed.is_empty(), "{failed:?}");
    wait_all_done(&env, N as i64, Duration::from_secs(120));
    sink.wait_for(N, WAIT);
    let seen = subjects(&sink);
    let total: usize = seen.values().sum();
    eprintln!(
        "kill -9 after {at_kill} deliveries; {} duplicate(s)",
        total - N
    );
    assert_eq!(seen.len(), N, "every message arrived");
    // Only a message whose 250 came back but whose commit did not happen
    // can arrive twice: at most one per connection (relay.connections = 2).
    assert!(
        total - N <= 2,
        "{} duplicates (killed after {at_kill} deliveries)",
        total - N
    );
    assert_eq!(env.count("state = 'sent'"), N as i64);
}

/// 16 concurrent senders × 100 messages through the real sendmail.
fn sixteen_by_hundred(with_daemon: bool) {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let d = with_daemon.then(|| env.relayd());
    let failed = burst(&env, 16, 100, "burst");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    wait_all_done(&env, 1600, Duration::from_secs(180));
    sink.wait_for(1600, WAIT);
    let seen = subjects(&sink);
    assert_eq!(seen.len(), 1600, "1600 distinct messages");
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
    assert_eq!(env.count("state = 'sent'"), 1600);
    if let Some(d) = d {
        let (status, _) = d.stop();
        assert!(status.success());
    } else {
        // No daemon was ever started: one-shots did it all, and none is left.
        assert!(!env.queue.join("relayd.pid").exists());
    }
}

#[test]
fn sixteen_concurrent_senders_with_the_daemon() {
    sixteen_by_hundred(true);
}

#[test]
fn sixteen_concurrent_senders_with_one_shot_deliveries_only() {
    sixteen_by_hundred(false);
}

#[test]
fn sigterm_finishes_the_message_in_flight_and_exits_0() {
    let fake = FakeSmtp::start();
    // The first message's final dot is answered slowly: SIGTERM arrives
    // while it is in flight.
    fake.on(
        "DOT",
        None,
        Some(1),
        Action::delay(Duration::from_secs(2), Action::Pass),
    );
    let env = Env::with_config(fake.port(), "relay.connections = 1");
    // Queue five with nobody relaying (the one-shot program does nothing),
    // so the daemon finds them all due.
    queue_idle(&env, 5, "term");
    let d = env.relayd();
    wait_until(WAIT, || fake.transcript().iter().any(|(_, l)| l == "."));
    // The connection claims one message at a time: the others stay queued.
    assert_eq!(env.count("state = 'sending'"), 1, "one message on the wire");
    assert_eq!(env.count("state = 'queued'"), 4);
    let (status, err) = d.stop();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(
        fake.delivered().len(),
        1,
        "the message in flight was finished"
    );
    assert_eq!(env.count("state = 'sending'"), 0, "no claim left behind");
    assert_eq!(env.count("state = 'sent'"), 1);
    // The four others were never tried.
    assert_eq!(env.count("state = 'queued' AND attempts = 0"), 4);
    assert!(!env.queue.join("relayd.sock").exists());
    // A restart sends the rest, and the finished one not again.
    let _d = env.relayd();
    wait_all_done(&env, 5, WAIT);
    let got = fake.delivered();
    assert_eq!(got.len(), 5);
    let distinct: HashSet<String> = got.iter().map(|m| m.text()).collect();
    assert_eq!(distinct.len(), 5);
}

#[test]
fn a_second_relayd_on_the_same_queue_refuses_to_start() {
    let fake = FakeSmtp::start();
    let env = Env::new(fake.port());
    let d = env.relayd();
    let out = env
        .scriptmail()
        .arg("relayd")
        .stdin(Stdio::null())
        .output()
        .expect("second relayd");
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(msg.contains("already running"), "{msg}");
    assert!(msg.contains(&d.pid().to_string()), "{msg}");
    // The first one is unharmed.
    send(&env, "a@example.org", "still here");
    fake.wait_for(1, WAIT);
}

#[test]
fn sighup_reloads_the_configuration() {
    let first = FakeSmtp::start();
    let second = FakeSmtp::start();
    let env = Env::new(first.port());
    let d = env.relayd();
    send(&env, "a@example.org", "to the first");
    first.wait_for(1, WAIT);
    let text = std::fs::read_to_string(&env.config).unwrap();
    let changed = text.replace(
        &format!("relay.port = {}", first.port()),
        &format!("relay.port = {}", second.port()),
    );
    assert_ne!(text, changed);
    std::fs::write(&env.config, changed).unwrap();
    env.log_lines();
    d.signal(libc::SIGHUP);
    wait_until(WAIT, || {
        env.log_lines()
            .iter()
            .any(|l| l.contains("configuration reloaded"))
    });
    send(&env, "a@example.org", "to the second");
    let got = second.wait_for(1, WAIT);
    assert!(got[0].text().contains("to the second"));
    assert_eq!(first.delivered().len(), 1);
    // A broken file is refused and the running configuration kept.
    std::fs::write(&env.config, "relay.nonsense = 1\n").unwrap();
    d.signal(libc::SIGHUP);
    wait_until(WAIT, || {
        env.log_lines().iter().any(|l| l.contains("reload failed"))
    });
    // Back to a valid file naming the first server, without a SIGHUP: the
    // daemon still relays with what it loaded last, the second.
    std::fs::write(&env.config, &text).unwrap();
    send(&env, "a@example.org", "still to the second");
    second.wait_for(2, WAIT);
    let (status, _) = d.stop();
    assert!(status.success());
}

#[test]
fn starttls_not_offered_defers_and_never_falls_back_to_plain_text() {
    let fake = FakeSmtp::start();
    let env = Env::with_config(fake.port(), "relay.tls = \"starttls\"");
    let _d = env.relayd();
    send(&env, "a@example.org", "secret");
    wait_until(WAIT, || env.count("state = 'deferred'") == 1);
    let last: String = env
        .db()
        .query_row("SELECT last_error FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(last.contains("STARTTLS"), "{last}");
    let t = fake.transcript_text();
    assert!(!t.contains("MAIL FROM"), "{t}");
    assert_eq!(query_i64(&env, "SELECT count(*) FROM errors"), 0);
}

#[test]
fn implicit_tls_handshake_failure_defers() {
    let fake = FakeSmtp::start();
    let env = Env::with_config(fake.port(), "relay.tls = \"tls\"");
    let _d = env.relayd();
    send(&env, "a@example.org", "secret");
    wait_until(WAIT, || env.count("state = 'deferred'") == 1);
    assert!(fake.delivered().is_empty());
    assert_eq!(query_i64(&env, "SELECT count(*) FROM errors"), 0);
}

#[test]
fn auth_with_credentials_from_a_private_file() {
    let fake = FakeSmtp::start();
    fake.on(
        "EHLO",
        None,
        None,
        Action::reply(250, "fake-smtp.test\nAUTH PLAIN LOGIN\n8BITMIME"),
    );
    fake.on("AUTH", None, None, Action::reply(235, "2.7.0 ok"));
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("relay-auth");
    std::fs::write(&auth, "relayuser s3cret pass\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = Env::with_config(
        fake.port(),
        &format!("relay.auth_file = \"{}\"", auth.display()),
    );
    // World-readable: refused at start, with the reason.
    let out = env
        .scriptmail()
        .arg("relayd")
        .stdin(Stdio::null())
        .output()
        .expect("relayd");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("0600"), "{}", stderr(&out));
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let _d = env.relayd();
    send(&env, "a@example.org", "authenticated");
    fake.wait_for(1, WAIT);
    // AUTH PLAIN: base64("\0relayuser\0s3cret pass").
    let t = fake.transcript_text();
    assert!(
        t.contains("AUTH PLAIN AHJlbGF5dXNlcgBzM2NyZXQgcGFzcw=="),
        "{t}"
    );
    // The password never reaches the log.
    let log = env.log_lines().join("\n") + &relayd_stderr(&env);
    assert!(!log.contains("s3cret"), "{log}");
}

#[test]
fn a_starting_daemon_takes_over_from_a_one_shot_delivery() {
    let fake = FakeSmtp::start();
    // Slow server: the one-shot started by the first sendmail is still
    // busy when the daemon starts.
    fake.on(
        "DOT",
        None,
        None,
        Action::delay(Duration::from_millis(300), Action::Pass),
    );
    let env = Env::new(fake.port());
    for i in 0..6 {
        send(&env, "a@example.org", &format!("handover {i}"));
    }
    wait_until(WAIT, || !fake.delivered().is_empty());
    let d = env.relayd();
    wait_all_done(&env, 6, WAIT);
    let got = fake.delivered();
    assert_eq!(got.len(), 6, "each once: {}", fake.transcript_text());
    // The daemon is the relayer now: a new message goes through it.
    send(&env, "a@example.org", "after handover");
    fake.wait_for(7, WAIT);
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
}

/// `openssl s_server` with a fresh self-signed certificate on 127.0.0.1:
/// an implicit-TLS SMTP server whose replies are all written at once (our
/// client sends one command per reply and reads them in order). What the
/// client sent ends up in `out`.
struct TlsServer {
    child: std::process::Child,
    _stdin: std::process::ChildStdin,
    port: u16,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start(replies: &str) -> TlsServer {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let made = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=smarthost.test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl req");
        assert!(made.success());
        let port = closed_port();
        let out = dir.path().join("out");
        let mut child = std::process::Command::new("openssl")
            .arg("s_server")
            .args(["-accept", &format!("127.0.0.1:{port}"), "-naccept", "1"])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        // Kept open: s_server ends the session at EOF on its stdin.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(replies.as_bytes()).unwrap();
        stdin.flush().unwrap();
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&out).is_ok_and(|t| t.contains("ACCEPT"))
        });
        TlsServer {
            child,
            _stdin: stdin,
            port,
            out,
            _dir: dir,
        }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn implicit_tls_verifies_the_certificate_by_default() {
    let server = TlsServer::start("220 smarthost.test ESMTP\r\n");
    let env = Env::with_config(server.port, "relay.tls = \"tls\"");
    let _d = env.relayd();
    send(&env, "a@example.org", "not to an unknown certificate");
    wait_until(WAIT, || env.count("state = 'deferred'") == 1);
    let last: String = env
        .db()
        .query_row("SELECT last_error FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(last.to_lowercase().contains("certificate"), "{last}");
    assert!(!server.received().contains("MAIL FROM"));
    assert_eq!(query_i64(&env, "SELECT count(*) FROM errors"), 0);
}

#[test]
fn implicit_tls_delivers_when_verification_is_turned_off() {
    let server = TlsServer::start(
        "220 smarthost.test ESMTP\r\n250-smarthost.test\r\n250 8BITMIME\r\n\
         250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n250 2.0.0 queued\r\n221 bye\r\n",
    );
    let env = Env::with_config(
        server.port,
        "relay.tls = \"tls\"\nrelay.verify_certificate = false",
    );
    let _d = env.relayd();
    send(&env, "a@example.org", "over tls");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'sent'"), 1);
    let got = server.received();
    assert!(got.contains("MAIL FROM:<"), "{got}");
    assert!(got.contains("RCPT TO:<a@example.org>"), "{got}");
    assert!(got.contains("Subject: over tls"), "{got}");
}

#[test]
fn the_backlog_goes_out_as_soon_as_the_smarthost_is_back() {
    // After a long outage, deferred mail is far into its backoff. An idle
    // relayd probes the smarthost and, once it answers, sends the backlog
    // at once instead of at each message's next retry.
    let fake = FakeSmtp::start();
    fake.down();
    let env = Env::new(fake.port());
    let _d = env.relayd();
    for i in 0..5 {
        send(&env, "a@example.org", &format!("backlog {i}"));
    }
    wait_until(WAIT, || env.count("state = 'deferred'") == 5);
    // As if the outage had lasted hours: next tries a day away.
    let db = rusqlite::Connection::open(env.queue.join("queue.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE messages SET next_attempt = next_attempt + 86400000 WHERE state = 'deferred'",
        [],
    )
    .unwrap();
    drop(db);
    env.log_lines();
    fake.up();
    wait_all_done(&env, 5, WAIT);
    assert_eq!(fake.delivered().len(), 5);
    let log = env.log_lines().join("\n");
    assert!(log.contains("reachable again"), "{log}");
}

#[test]
fn a_command_timeout_defers_and_the_retry_delivers_once() {
    let fake = FakeSmtp::start();
    // The first MAIL is answered after 3 s; relayd gives up after 1 s.
    fake.on(
        "MAIL",
        None,
        Some(1),
        Action::delay(Duration::from_secs(3), Action::Pass),
    );
    let env = Env::new(fake.port());
    let text = std::fs::read_to_string(&env.config).unwrap();
    let short = text.replace(
        "relay.command_timeout = \"10s\"",
        "relay.command_timeout = \"1s\"",
    );
    assert_ne!(text, short);
    std::fs::write(&env.config, short).unwrap();
    let _d = env.relayd();
    send(&env, "a@example.org", "slow server");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'sent' AND attempts >= 2"), 1);
    let got = fake.delivered();
    assert_eq!(got.len(), 1, "{}", fake.transcript_text());
    let log = env.log_lines().join("\n");
    assert!(log.contains("status=deferred"), "{log}");
}

#[test]
fn a_busy_greeting_defers_without_an_error() {
    let fake = FakeSmtp::start();
    fake.on(
        "CONNECT",
        None,
        Some(1),
        Action::reply(421, "4.3.2 too busy"),
    );
    let env = Env::new(fake.port());
    let _d = env.relayd();
    send(&env, "a@example.org", "busy server");
    wait_all_done(&env, 1, WAIT);
    assert_eq!(env.count("state = 'sent' AND attempts = 2"), 1);
    assert_eq!(fake.delivered().len(), 1);
    assert_eq!(query_i64(&env, "SELECT count(*) FROM errors"), 0);
}

/// RFC 5321 §4.5.3.1.10: a 552 to RCPT ("too many recipients") is treated
/// as temporary: the recipient is retried, not bounced.
#[test]
fn rcpt_552_defers_the_recipient_instead_of_failing_it() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        Some("two@example.com"),
        Some(1),
        Action::reply(552, "5.5.3 Too many recipients"),
    );
    let env = Env::new(fake.port());
    // The daemon retries deferred mail on time (a one-shot does not wait).
    let _relayd = env.relayd();
    let out = env.submit(
        &["-i", "one@example.com", "two@example.com"],
        b"Subject: x\r\n\r\nbody\r\n",
    );
    assert_ok(&out);
    let first = fake.wait_for(1, Duration::from_secs(20));
    assert_eq!(first[0].rcpt_to, ["one@example.com"]);
    // Retried (retry_initial is 1s in tests), then delivered; never an error.
    let all = fake.wait_for(2, Duration::from_secs(30));
    assert_eq!(all[1].rcpt_to, ["two@example.com"]);
    let errors: i64 = env
        .db()
        .query_row("SELECT count(*) FROM errors", [], |r| r.get(0))
        .unwrap();
    assert_eq!(errors, 0);
}

// ---------------------------------------------------------------------------
// Issue 11: what the relay has claimed must not outlive a block, a purge, a
// delete or the death of its owner.

/// Queue `n` messages with nobody relaying them (the one-shot program is
/// `/bin/true` while they are submitted, and the sweep imports them from the
/// maildrop), so a relayer started afterwards finds them all due at once.
fn queue_idle(env: &Env, n: usize, tag: &str) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(SCRIPTMAIL, "/bin/true")).unwrap();
    for i in 0..n {
        send(env, "a@example.org", &format!("{tag} {i}"));
    }
    assert_eq!(env.maildrop().len(), n, "no relayd: each in the maildrop");
    // Not `env.ctl`: it would wait for an import only the sweep does here.
    let out = env
        .scriptmail()
        .args(["mailq-ctl", "sweep"])
        .output()
        .unwrap();
    assert_ok(&out);
    std::fs::write(&env.config, &text).unwrap();
    assert_eq!(env.count("state = 'queued'"), n as i64);
}

/// A smarthost that takes 0.5 s per message, 12 messages queued, relayd
/// with two connections busy on the first two.
fn slow_smarthost_busy_with(n: usize, tag: &str) -> (FakeSmtp, Env, Daemon) {
    let fake = FakeSmtp::start();
    fake.on(
        "DOT",
        None,
        None,
        Action::delay(Duration::from_millis(500), Action::Pass),
    );
    let env = Env::with_config(fake.port(), "relay.connections = 2");
    queue_idle(&env, n, tag);
    let d = env.relayd();
    // Both connections have a message on the wire (data sent, the final
    // answer not yet given).
    wait_until(WAIT, || {
        fake.transcript().iter().filter(|(_, l)| l == ".").count() >= 2
    });
    (fake, env, d)
}

/// Wait until nothing of the queue is being delivered or due.
fn wait_relay_idle(env: &Env) {
    wait_until(WAIT, || {
        env.count("state IN ('queued', 'deferred', 'sending')") == 0
    });
}

/// After `purge` returns, only the messages already on a connection may
/// still be delivered: one per connection. (Before issue 11 each worker
/// claimed a batch of 8 as `sending`, which purge skipped: 10 of 12 went out.)
#[test]
fn purge_stops_every_message_not_yet_on_the_wire() {
    let (fake, env, _d) = slow_smarthost_busy_with(12, "purge");
    let out = env.ctl(&["--json", "purge", me(), "--yes"]);
    assert_ok(&out);
    let at_return = fake.delivered().len();
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    wait_relay_idle(&env);
    let delivered = fake.delivered().len();
    assert!(
        delivered - at_return <= 2,
        "{} message(s) delivered after purge returned (2 connections): {}",
        delivered - at_return,
        fake.transcript_text()
    );
    let dropped = p["dropped"].as_u64().unwrap() as usize;
    assert_eq!(delivered + dropped, 12, "{p}");
    assert_eq!(env.count("1"), delivered as i64, "only sent mail is left");
    assert_eq!(env.count("state = 'sent'"), delivered as i64);
}

/// After `block` returns, no further message of the account starts
/// delivery; what was not yet on the wire is held, and `unblock` sends it,
/// each message once.
#[test]
fn block_stops_every_message_not_yet_on_the_wire() {
    let (fake, env, _d) = slow_smarthost_busy_with(12, "block");
    let out = env.ctl(&["--json", "block", me()]);
    assert_ok(&out);
    let at_return = fake.delivered().len();
    let b: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(b["held"].as_i64().unwrap() >= 8, "{b}");
    wait_relay_idle(&env);
    let delivered = fake.delivered().len();
    assert!(
        delivered - at_return <= 2,
        "{} message(s) delivered after block returned (2 connections)",
        delivered - at_return
    );
    let held = env.count("state = 'held'");
    assert_eq!(delivered as i64 + held, 12);
    assert!(held >= 8, "{held} held");
    assert_ok(&env.ctl(&["unblock", me()]));
    wait_all_done(&env, 12, WAIT);
    let got = fake.delivered();
    let distinct: HashSet<String> = got.iter().map(|m| m.text()).collect();
    assert_eq!((got.len(), distinct.len()), (12, 12));
}

/// `delete` takes a message the relay has not started yet, even while the
/// relay is busy with others of the same account.
#[test]
fn delete_takes_a_queued_message_while_the_relay_is_busy() {
    let fake = FakeSmtp::start();
    fake.on(
        "DOT",
        None,
        None,
        Action::delay(Duration::from_millis(500), Action::Pass),
    );
    let env = Env::with_config(fake.port(), "relay.connections = 1");
    queue_idle(&env, 3, "delete");
    let last: String = env
        .db()
        .query_row(
            "SELECT qid FROM messages ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let _d = env.relayd();
    wait_until(WAIT, || fake.transcript().iter().any(|(_, l)| l == "."));
    let out = env.ctl(&["delete", &last]);
    assert_ok(&out);
    wait_relay_idle(&env);
    let got = fake.delivered();
    assert_eq!(got.len(), 2, "{}", fake.transcript_text());
    assert!(got.iter().all(|m| !m.text().contains("delete 2")));
}

/// Issue 11 item 5: a one-shot delivery killed mid-delivery (kill -9, or
/// PHP-FPM's cgroup going away) while no daemon runs. Its claim must come
/// back: through the sweep timer when nothing else happens, through the
/// next one-shot a submission starts, or through relayd when it starts.
#[test]
fn a_one_shot_killed_mid_delivery_leaves_nothing_stuck_in_sending() {
    let fake = FakeSmtp::start();
    // The first try of each message: the end of data is never answered
    // while its relayer lives (the server closes once it is dead).
    for tag in ["orphan 0", "orphan 1", "orphan 2"] {
        fake.on(
            "DOT",
            Some(tag),
            Some(1),
            Action::delay(Duration::from_secs(3), Action::Drop),
        );
    }
    let env = Env::new(fake.port());
    let dots = || fake.transcript().iter().filter(|(_, l)| l == ".").count();
    let kill_one_shot_mid_delivery = || {
        let before = dots();
        let mut once = env
            .scriptmail()
            .args(["relayd", "--once"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("one-shot");
        wait_until(WAIT, || dots() > before);
        once.kill().expect("kill -9");
        once.wait().expect("reap");
        assert_eq!(env.count("state = 'sending'"), 1);
    };

    // No daemon and no further submission: the hourly sweep recovers it.
    queue_idle(&env, 1, "orphan");
    kill_one_shot_mid_delivery();
    assert_ok(&env.ctl(&["sweep"]));
    let got = fake.wait_for(1, WAIT);
    assert!(got[0].text().contains("orphan 0"));
    wait_until(WAIT, || env.count("state = 'sent'") == 1);

    // The next one-shot (started by the next submission) recovers it too.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(SCRIPTMAIL, "/bin/true")).unwrap();
    send(&env, "a@example.org", "orphan 1");
    std::fs::write(&env.config, &text).unwrap();
    kill_one_shot_mid_delivery();
    send(&env, "a@example.org", "after the orphan");
    wait_all_done(&env, 3, WAIT);
    let got = fake.delivered();
    assert_eq!(got.len(), 3, "{}", fake.transcript_text());
    assert_eq!(env.count("state = 'sent'"), 3);

    // relayd, started with no submission and no sweep, recovers it at start.
    queue_idle(&env, 1, "orphan 2");
    kill_one_shot_mid_delivery();
    let _d = env.relayd();
    wait_until(WAIT, || env.count("state = 'sent'") == 4);
    assert_eq!(fake.delivered().len(), 4, "{}", fake.transcript_text());
}
