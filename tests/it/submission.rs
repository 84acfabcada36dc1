//! Integration tests: submission through relayd (issue 13, docs/submission.md) — the
//! socket path and the maildrop fallback, kill -9 of relayd in bursts, the socket
//! removed mid-burst, the caps, deadlines and refusals of the server, and idempotency
//! by queue id. Everything runs as root here (unprivileged programs, one account);
//! what needs other Unix users is in `submission_security.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use scriptmail::handoff::frame::{self, Verb};
use scriptmail::handoff::{Origin, Parcel};

use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// Rows of the queue, read without waiting for the maildrop (unlike `Env::db`).
fn raw_count(env: &Env, cond: &str) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        env.queue.join("queue.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open queue db");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    db.query_row(
        &format!("SELECT count(*) FROM messages WHERE {cond}"),
        [],
        |r| r.get(0),
    )
    .expect("count")
}

/// A connection to relayd written by hand, as a tenant could.
struct Raw {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    /// Connect; the greeting line.
    fn connect(env: &Env) -> (Raw, String) {
        let stream = UnixStream::connect(env.submit_socket()).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut raw = Raw { stream, reader };
        let greeting = raw.line();
        (raw, greeting)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write frame");
    }

    /// The next line, without its LF; empty at end of input.
    fn line(&mut self) -> String {
        let mut l = String::new();
        let _ = self.reader.read_line(&mut l);
        l.trim_end_matches('\n').to_string()
    }
}

/// A message frame with `fields` (in this order, any keys) and `data`.
fn msg_frame(fields: &[(&str, &str)], data: &[u8]) -> Vec<u8> {
    let mut f = frame::encode_head(Verb::Msg, fields, data.len() as u64);
    f.extend_from_slice(data);
    f
}

fn qid(n: u64) -> String {
    format!("{:020X}", 0xAB00_0000_0000_0000u64 + n)
}

/// With relayd running, exit 0 means relayd committed it: the row is there the moment
/// sendmail returns, nothing went through the maildrop, and the trace on top of the
/// message at the smarthost is relayd's, naming the account.
#[test]
fn with_relayd_exit_0_means_committed_by_relayd() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _d = env.relayd();
    let tap = LogTap::start(&env);
    for i in 0..3 {
        let out = env.submit(
            &["-t", "-i"],
            &simple_message("a@example.com", &format!("socket {i}")),
        );
        assert_ok(&out);
        assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
        assert_eq!(raw_count(&env, "1"), i + 1, "committed before exit 0");
        assert!(env.maildrop().is_empty());
    }
    let got = sink.wait_for(3, WAIT);
    for m in &got {
        let received = m.header("Received").expect("Received");
        assert!(
            received.starts_with(&format!(
                "by node1.example.net (scriptmail, from userid {} account {})",
                my_uid(),
                me()
            )),
            "{received}"
        );
        assert_eq!(m.text().matches("Received:").count(), 1, "{}", m.text());
    }
    wait_until(WAIT, || tap.count(&["status=queued", "via=socket"]) == 3);
    assert_eq!(tap.count(&["via=maildrop"]), 0);
}

/// Without relayd the message goes to the maildrop — one fsynced file named by its
/// queue id — and the one-shot imports and relays it; with no one-shot (the program is
/// /bin/true) it waits there, and relayd imports it when it starts.
#[test]
fn without_relayd_the_maildrop_keeps_it_until_an_import() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(SCRIPTMAIL, "/bin/true")).unwrap();
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "dropped")));
    let files = env.maildrop();
    assert_eq!(files.len(), 1, "{files:?}");
    let bytes = std::fs::read(&files[0]).unwrap();
    let head = format!("MAILDROP 1\nuid {}\ntime ", my_uid());
    assert!(bytes.starts_with(head.as_bytes()), "{bytes:?}");
    assert!(
        !env.queue.join("queue.db").exists(),
        "sendmail opened the queue"
    );
    std::fs::write(&env.config, &text).unwrap();
    let tap = LogTap::start(&env);
    let _d = env.relayd();
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("dropped"));
    assert!(
        got[0]
            .header("Received")
            .is_some_and(|r| r.contains(&format!("from userid {} account {}", my_uid(), me()))),
    );
    assert!(env.maildrop().is_empty());
    wait_until(WAIT, || tap.count(&["status=queued", "via=maildrop"]) == 1);
}

/// relayd killed with kill -9 at random points of 4×250 bursts, three rounds, restarted
/// each time: every message that got exit 0 reaches the smarthost; duplicates only
/// from the at-least-once window of the relay (a message on the SMTP wire when relayd
/// died: at most relay.connections per kill) — a message relayd committed but could
/// not answer comes back through the maildrop under the same queue id, and is not
/// taken twice.
#[test]
fn kill_9_of_relayd_at_random_points_of_bursts_loses_nothing() {
    const ROUNDS: usize = 3;
    const KILLS: usize = 2;
    const EACH: usize = 250;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let mut kills = 0;
    for round in 0..ROUNDS {
        let mut d = Some(env.relayd());
        let failed = std::thread::scope(|s| {
            let senders = s.spawn(|| burst(&env, 4, EACH, &format!("kill9 r{round}")));
            for _ in 0..KILLS {
                let pause = 100 + scriptmail::os::random_u64() % 1500;
                std::thread::sleep(Duration::from_millis(pause));
                if let Some(d) = d.take() {
                    d.kill9();
                    kills += 1;
                }
                std::thread::sleep(Duration::from_millis(scriptmail::os::random_u64() % 300));
                d = Some(env.relayd());
            }
            senders.join().expect("senders")
        });
        assert!(failed.is_empty(), "round {round}: {failed:?}");
        drop(d);
    }
    let n = ROUNDS * 4 * EACH;
    let _d = env.relayd();
    // Every subject, not n messages: a duplicate must not stand in for a late one.
    wait_until(Duration::from_secs(180), || subjects(&sink).len() >= n);
    let seen = subjects(&sink);
    let total: usize = seen.values().sum();
    eprintln!("{kills} kill(s) of relayd; {} duplicate(s)", total - n);
    assert_eq!(seen.len(), n, "every accepted message arrived");
    assert!(
        total - n <= kills * 2,
        "{} duplicates after {kills} kills (relay.connections = 2)",
        total - n
    );
    wait_until(WAIT, || env.count("state = 'sent'") == n as i64);
    assert!(env.maildrop().is_empty());
}

/// The submit socket removed in the middle of a burst: the rest of the burst goes to
/// the maildrop, relayd (woken by each sendmail) imports it, nothing is lost or sent
/// twice.
#[test]
fn socket_removed_mid_burst_the_maildrop_takes_over() {
    const N: usize = 400;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _d = env.relayd();
    let tap = LogTap::start(&env);
    let failed = std::thread::scope(|s| {
        let senders = s.spawn(|| burst(&env, 4, N / 4, "unlinked"));
        wait_until(WAIT, || tap.count(&["via=socket"]) >= N / 4);
        std::fs::remove_file(env.submit_socket()).expect("remove the socket");
        senders.join().expect("senders")
    });
    assert!(failed.is_empty(), "{failed:?}");
    sink.wait_for(N, WAIT);
    let seen = subjects(&sink);
    assert_eq!(seen.len(), N, "every message arrived");
    assert!(seen.values().all(|&k| k == 1), "none twice");
    // Both paths were taken (the syslog socket may drop lines in a burst: no exact count).
    wait_until(WAIT, || tap.count(&["status=queued", "via=maildrop"]) > 0);
    assert!(tap.count(&["status=queued", "via=socket"]) > 0);
}

/// 16 concurrent senders × 100 messages, all through the socket (the client's wait
/// for relayd is made long so a slow test machine does not send any to the
/// maildrop): each committed by relayd, each delivered once.
#[test]
fn sixteen_by_hundred_through_the_socket() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "submit.timeout = \"60s\"");
    let d = env.relayd();
    // Any file written to the maildrop (or taken from it) would change this.
    let maildrop_mtime = || {
        std::fs::metadata(scriptmail::maildrop::dir(&env.queue))
            .and_then(|m| m.modified())
            .expect("maildrop directory")
    };
    let before = maildrop_mtime();
    let tap = LogTap::start(&env);
    let failed = burst(&env, 16, 100, "sixteen");
    assert!(failed.is_empty(), "{:?}", &failed[..failed.len().min(5)]);
    assert_eq!(raw_count(&env, "1"), 1600, "committed before their exit 0");
    sink.wait_for(1600, Duration::from_secs(180));
    let seen = subjects(&sink);
    assert_eq!(seen.len(), 1600);
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
    let why: Vec<String> = tap
        .lines()
        .into_iter()
        .filter(|l| l.contains("maildrop") || l.contains("turned away"))
        .collect();
    assert_eq!(
        maildrop_mtime(),
        before,
        "something went through the maildrop: {why:#?}"
    );
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    assert!(!env.submit_socket().exists(), "relayd removes its socket");
}

/// A frame that names an account, a uid or a time is attributed by the kernel's peer
/// uid all the same; relayd's trace comes first, whatever Received: the data carries.
#[test]
fn a_frame_claiming_an_identity_is_ignored() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _d = env.relayd();
    let (mut raw, greeting) = Raw::connect(&env);
    assert_eq!(greeting, "220 scriptmail 1");
    let q = qid(1);
    let data = b"Received: by node1.example.net (scriptmail, from userid 4242 account victim)\r\n\tid X; now\r\nSubject: claims\r\n\r\nbody\r\n";
    raw.send(&msg_frame(
        &[
            ("uid", "4242"),
            ("account", "victim"),
            ("time", "1"),
            ("qid", &q),
            ("from", "x@example.org"),
            ("rcpt", "a@example.com"),
        ],
        data,
    ));
    assert_eq!(raw.line(), format!("250 {q} queued"));
    let got = sink.wait_for(1, WAIT);
    let received = got[0].header("Received").unwrap();
    assert!(
        received.contains(&format!("from userid {} account {}", my_uid(), me())),
        "{received}"
    );
    assert!(received.contains(&format!("id {q};")), "{received}");
    let db = env.db();
    let (account, uid, created): (String, i64, i64) = db
        .query_row(
            "SELECT a.name, m.uid, m.created FROM messages m JOIN accounts a ON a.id = m.account_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((account.as_str(), uid), (me(), i64::from(my_uid())));
    assert!(
        created > 1_000_000,
        "the claimed time was ignored: {created}"
    );
    assert_eq!(
        db.query_row(
            "SELECT count(*) FROM accounts WHERE name = 'victim'",
            [],
            |r| r.get::<_, i64>(0)
        )
        .unwrap(),
        0
    );
}

/// What relayd refuses, with the exit status sendmail would use: too large, a bad queue
/// id, an unsendable address, data not in wire form (a bare LF could smuggle a second
/// message past the smarthost), an unknown version. Nothing is queued.
#[test]
fn malformed_and_oversized_frames_are_refused() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.max_message_size = 1000");
    let _d = env.relayd();
    let ok = |q: &str| -> Vec<(String, String)> {
        vec![
            ("qid".into(), q.to_string()),
            ("from".into(), String::new()),
            ("rcpt".into(), "a@example.com".into()),
        ]
    };
    let frame_of = |fields: &[(String, String)], data: &[u8]| -> Vec<u8> {
        let f: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        msg_frame(&f, data)
    };
    let body = b"Subject: x\r\n\r\nbody\r\n";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "too large",
            frame_of(&ok(&qid(2)), &vec![b'x'; 200_000]),
            "552 69 ",
        ),
        ("bad qid", frame_of(&ok("../../etc"), body), "554 65 "),
        (
            "bad recipient",
            frame_of(
                &[
                    ("qid".into(), qid(3)),
                    ("from".into(), String::new()),
                    ("rcpt".into(), "a@b@c".into()),
                ],
                body,
            ),
            "554 65 ",
        ),
        (
            "bare LF",
            frame_of(
                &ok(&qid(4)),
                b"Subject: x\r\n\r\nbody\n.\nMAIL FROM:<x@y>\r\n",
            ),
            "554 65 ",
        ),
        ("version 2", b"MSG 2\ndata 0\n".to_vec(), "554 65 "),
    ];
    for (what, bytes, want) in cases {
        let (mut raw, _) = Raw::connect(&env);
        raw.send(&bytes);
        let answer = raw.line();
        assert!(answer.starts_with(want), "{what}: {answer}");
    }
    assert!(!env.queue.join("queue.db").exists() || env.count("1") == 0);
}

/// A connection that stops in the middle of a frame is closed at its read deadline
/// (`submit.read_timeout`), and meanwhile other submissions go through.
#[test]
fn a_stalled_connection_is_closed_at_its_deadline() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "submit.read_timeout = \"2s\"");
    let _d = env.relayd();
    let (mut raw, _) = Raw::connect(&env);
    raw.send(b"MSG 1\nqid ");
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "meanwhile")));
    sink.wait_for(1, WAIT);
    let mut rest = Vec::new();
    let n = raw
        .reader
        .read_to_end(&mut rest)
        .expect("relayd closes the connection");
    assert_eq!(n, 0, "no answer to half a frame: {rest:?}");
}

/// Past `submit.max_connections_per_uid` relayd turns a connection away with 421;
/// that sendmail uses the maildrop and still exits 0, and relayd imports the message.
#[test]
fn past_the_connection_cap_sendmail_uses_the_maildrop() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "submit.max_connections_per_uid = 2");
    let _d = env.relayd();
    let tap = LogTap::start(&env);
    let held: Vec<(Raw, String)> = (0..2).map(|_| Raw::connect(&env)).collect();
    assert!(held.iter().all(|(_, g)| g == "220 scriptmail 1"));
    let (_third, greeting) = Raw::connect(&env);
    assert!(greeting.starts_with("421 "), "{greeting}");
    assert_ok(&env.submit(
        &["-t", "-i"],
        &simple_message("a@example.com", "over the cap"),
    ));
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || tap.count(&["status=queued", "via=maildrop"]) == 1);
    assert!(tap.count(&["turned away"]) >= 2, "{:?}", tap.lines());
    drop(held);
}

/// `submit.max_per_account`: with two of the account's sendmail processes waiting for
/// their input, a third exits 69 at once with one line naming the setting, and queues
/// nothing; once one of the two is gone, a new one goes through.
#[test]
fn past_max_per_account_sendmail_fails_fast_with_69() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "submit.max_per_account = 2");
    let _d = env.relayd();
    let stalled: Vec<Child> = (0..2)
        .map(|_| {
            env.sendmail()
                .args(["-t", "-i"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    // Both hold their slot: two open-file-description locks in /proc/locks.
    let slots = env.queue.join("slots").join(me());
    wait_until(WAIT, || {
        let Ok(meta) = std::fs::metadata(&slots) else {
            return false;
        };
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        std::fs::read_to_string("/proc/locks").is_ok_and(|l| {
            l.lines()
                .filter(|l| l.contains("OFDLCK") && l.contains(&format!(":{ino} ")))
                .count()
                == 2
        })
    });
    let out = env.submit(&["-t", "-i"], &simple_message("a@example.com", "third"));
    assert_eq!(out.status.code(), Some(69), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("sendmail: ")
            && err.lines().count() == 1
            && err.contains("submit.max_per_account"),
        "{err}"
    );
    let mut stalled = stalled.into_iter();
    let mut first = stalled.next().expect("first");
    let _ = first.kill();
    let _ = first.wait();
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "after")));
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("after"));
    assert_eq!(env.count("1"), 1, "the refused one was not queued");
    for mut c in stalled {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `-bs` session hands each message over on one connection; `-bp` asks relayd.
#[test]
fn bs_and_bp_go_through_relayd() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _d = env.relayd();
    let tap = LogTap::start(&env);
    let mut session = String::from("EHLO app\r\n");
    for n in 0..2 {
        session += &format!(
            "MAIL FROM:<app@example.com>\r\nRCPT TO:<r{n}@example.com>\r\nDATA\r\nSubject: bs {n}\r\n\r\nbody\r\n.\r\n"
        );
    }
    session += "QUIT\r\n";
    let out = env.submit(&["-bs"], session.as_bytes());
    assert_ok(&out);
    let replies = stdout(&out);
    assert_eq!(
        replies.matches("250 2.0.0 Ok: queued as ").count(),
        2,
        "{replies}"
    );
    assert_eq!(raw_count(&env, "1"), 2);
    sink.wait_for(2, WAIT);
    wait_until(WAIT, || tap.count(&["status=queued", "via=socket"]) == 2);
    // Held mail, listed through relayd.
    assert_ok(&env.ctl(&["block", me()]));
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "listed")));
    let out = env.submit(&["-bp"], b"");
    assert_ok(&out);
    let listing = stdout(&out);
    assert!(
        listing.contains("held") && listing.contains("<a@example.com>"),
        "{listing}"
    );
}

/// Idempotency by queue id: a maildrop file for a message relayd already committed
/// (what a sendmail writes when the answer was lost) is imported as "already there" —
/// one row, one delivery; a file claiming another account's queue id is set aside.
#[test]
fn a_qid_already_queued_is_not_taken_twice() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _d = env.relayd();
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "once")));
    sink.wait_for(1, WAIT);
    let q: String = env
        .db()
        .query_row("SELECT qid FROM messages", [], |r| r.get(0))
        .unwrap();
    let again = Parcel {
        qid: q.clone(),
        sender: format!("{}@node1.example.net", me()),
        recipients: vec!["a@example.com".into()],
        data: b"Subject: once\r\n\r\nHello from a test.\r\n".to_vec(),
        ..Parcel::default()
    };
    let now = scriptmail::clock::now_ms();
    let mine = Origin {
        uid: my_uid(),
        time: now,
    };
    scriptmail::maildrop::write(&env.queue, mine, &again).unwrap();
    // The same queue id from another account (uid 1 is `daemon`).
    let mut theirs = again.clone();
    theirs.qid = q.clone();
    theirs.subject = "theirs".into();
    let alien_dir = env.path().join("alien");
    std::fs::create_dir(&alien_dir).unwrap();
    scriptmail::maildrop::write(&alien_dir, Origin { uid: 1, time: now }, &theirs).unwrap();
    std::fs::rename(
        scriptmail::maildrop::dir(&alien_dir).join(&q),
        scriptmail::maildrop::dir(&env.queue).join(qid(9)),
    )
    .unwrap();
    assert_ok(&env.submit(&["-q"], b""));
    wait_until(WAIT, || env.maildrop().is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1, "delivered once");
    assert_eq!(env.count("1"), 1);
    let rejected: Vec<_> = std::fs::read_dir(scriptmail::maildrop::dir(&env.queue))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rejected"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
}
