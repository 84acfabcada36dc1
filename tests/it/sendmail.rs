//! Integration tests: the sendmail interface (README, "The `sendmail` interface")
//! through the real binary, with real PHP and Postfix's smtp-sink as the smarthost.

use std::process::Command;
use std::time::Duration;

use crate::fake_smtp::FakeSmtp;
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(20);

/// Run `php -r CODE` with sendmail_path pointing at our binary.
fn php(env: &Env, sendmail_args: &str, code: &str) -> std::process::Output {
    Command::new("php")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .arg("-n")
        .arg("-d")
        .arg(format!("sendmail_path={SENDMAIL} {sendmail_args}"))
        .arg("-r")
        .arg(code)
        .current_dir(env.path())
        .output()
        .expect("run php")
}

/// The message as text with CRLF shown as LF (the wire bytes are checked
/// separately where CRLF matters).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).replace("\r\n", "\n")
}

/// The header block of a captured message, unfolded lines.
fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\n\n").next().unwrap_or("");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim())
        .collect()
}

#[test]
fn php_mail_with_crlf_layout_arrives_at_a_real_smtp_server() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let out = php(
        &env,
        "-t -i",
        r#"var_dump(mail("bob@example.com, \"Doe, Jane\" <jane@example.org>", "Hello there",
            "Line one\r\n.\r\nLine three", "From: Site <site@example.com>\r\nBcc: hidden@example.net\r\nX-Extra: 1"));"#,
    );
    assert_ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        "bool(true)",
        "stderr: {}",
        stderr(&out)
    );
    let got = sink.wait_for(1, WAIT);
    let m = &got[0];
    assert_eq!(m.mail_from, format!("{}@node1.example.net", me()));
    let mut rcpts = m.rcpt_to.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["bob@example.com", "hidden@example.net", "jane@example.org"]
    );
    let msg = text(&m.data);
    assert!(header(&msg, "Bcc").is_empty(), "Bcc leaked:\n{msg}");
    assert_eq!(header(&msg, "Subject"), ["Hello there"]);
    assert_eq!(header(&msg, "From"), ["Site <site@example.com>"]);
    assert_eq!(header(&msg, "X-Extra"), ["1"]);
    assert_eq!(header(&msg, "Date").len(), 1);
    assert_eq!(header(&msg, "Message-ID").len(), 1);
    assert!(
        msg.contains(&format!(
            "(scriptmail, from userid {} account {})",
            my_uid(),
            me()
        )),
        "{msg}"
    );
    // -i: the lone dot is data, and survives the trip (dot-stuffed on the wire).
    let body = msg.split("\n\n").nth(1).unwrap_or("");
    assert!(
        body.starts_with("Line one\n.\nLine three\n"),
        "body: {body:?}"
    );
}

#[test]
fn php_script_headers_with_bare_lf_are_not_merged() {
    // PHP 8 writes To/Subject with CRLF and the script's own headers as they
    // are: bare LF here. Each line must stay its own header (Exim's bug).
    let fake = FakeSmtp::start();
    let env = Env::new(fake.port());
    let out = php(
        &env,
        "-t -i",
        r#"mail("bob@example.com", "Mixed", "Body\nsecond line", "From: a@example.com\nReply-To: b@example.com\nX-Mailer: test");"#,
    );
    assert_ok(&out);
    let got = fake.wait_for(1, WAIT);
    let data = &got[0].data;
    // Canonical CRLF only: no bare LF and no bare CR on the wire.
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(
                data.get(i.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF at {i}: {:?}",
                text(data)
            );
        }
        if b == b'\r' {
            assert_eq!(data.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    let msg = text(data).replace("\r\n", "\n");
    assert_eq!(header(&msg, "Reply-To"), ["b@example.com"]);
    assert_eq!(header(&msg, "X-Mailer"), ["test"]);
    assert_eq!(header(&msg, "From"), ["a@example.com"]);
    assert!(msg.ends_with("\n\nBody\nsecond line\n"), "{msg:?}");
}

#[test]
fn php_fifth_argument_sets_the_envelope_sender() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let out = php(
        &env,
        "-t -i",
        r#"mail("bob@example.com", "S", "B", "", "-fbounce@example.com");"#,
    );
    assert_ok(&out);
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].mail_from, "bounce@example.com");
    // No From: header given: it is the envelope sender.
    assert_eq!(header(&text(&got[0].data), "From"), ["bounce@example.com"]);
}

#[test]
fn smtp_dialogue_as_symfony_mailer_speaks_it() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let script = "HELO localhost\r\n\
                  MAIL FROM:<app@example.com>\r\n\
                  RCPT TO:<one@example.com>\r\n\
                  RCPT TO:<two@example.com>\r\n\
                  DATA\r\n\
                  From: app@example.com\r\n\
                  To: one@example.com\r\n\
                  Subject: via -bs\r\n\
                  \r\n\
                  ..leading dot\r\n\
                  .\r\n\
                  QUIT\r\n";
    let out = env.submit(&["-bs"], script.as_bytes());
    assert_ok(&out);
    let replies = stdout(&out);
    let codes: Vec<&str> = replies.lines().map(|l| &l[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "250", "354", "250", "221"],
        "{replies}"
    );
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].mail_from, "app@example.com");
    assert_eq!(got[0].rcpt_to.len(), 2);
    assert!(text(&got[0].data).contains("\n.leading dot\n"));
}

#[test]
fn message_is_fixed_up_like_a_real_mta() {
    let fake = FakeSmtp::start();
    let env = Env::new(fake.port());
    let input = b"From someone@example.com Sat Jan  3 01:05:34 1996\n\
        To: a@example.com\n\
        Return-Path: <forged@example.com>\n\
        Content-Length: 9999\n\
        Resent-Bcc: x@example.com\n\
        Subject: caf\xc3\xa9\n\
        \n\
        8-bit body: \xe2\x82\xac\n\
        .\n\
        after the dot\n";
    let out = env.submit(&["-t", "-F", "Web Site"], input);
    assert_ok(&out);
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let got = fake.wait_for(1, WAIT);
    let msg = text(&got[0].data).replace("\r\n", "\n");
    assert!(!msg.starts_with("From "), "mbox From line kept");
    assert!(header(&msg, "Return-Path").is_empty());
    assert!(header(&msg, "Content-Length").is_empty());
    assert!(header(&msg, "Resent-Bcc").is_empty());
    assert_eq!(
        header(&msg, "From"),
        [format!("Web Site <{}@node1.example.net>", me())]
    );
    // Without -i the lone dot ends the message; 8-bit passes unchanged.
    assert!(msg.ends_with("\n\n8-bit body: \u{20ac}\n"), "{msg:?}");
    assert!(
        got[0].mail_args.contains("BODY=8BITMIME"),
        "{}",
        got[0].mail_args
    );
    // Received names the account and the queue id recorded in the queue.
    let qid: String = env
        .db()
        .query_row("SELECT qid FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(
        msg.starts_with(&format!(
            "Received: by node1.example.net (scriptmail, from userid {} account {})\n",
            my_uid(),
            me()
        )),
        "{msg}"
    );
    assert!(msg.contains(&format!("id {qid};")));
}

#[test]
fn sending_script_and_directory_are_recorded() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let out = php(
        &env,
        "-t -i",
        r#"mail("bob@example.com", "S", "B", "X-PHP-Originating-Script: 1000:contact.php");"#,
    );
    assert_ok(&out);
    sink.wait_for(1, WAIT);
    let (script, cwd, account): (String, String, String) = env
        .db()
        .query_row(
            "SELECT m.script, m.cwd, a.name FROM messages m JOIN accounts a ON a.id = m.account_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(script, "1000:contact.php");
    assert_eq!(cwd, env.path().display().to_string());
    assert_eq!(account, me());
    let logged = env.log_lines().join("\n");
    assert!(
        logged.contains(&format!("account={}", me()))
            && logged.contains("script=\"1000:contact.php\""),
        "{logged}"
    );
}

#[test]
fn recipients_from_headers_and_arguments_are_united_once() {
    let fake = FakeSmtp::start();
    let env = Env::new(fake.port());
    let input = b"To: Friends: a@example.com, \"Last, First\" <b@EXAMPLE.com>;\r\n\
        Cc: (comment) c@example.com,\r\n d@example.com\r\n\
        Bcc: bob\r\n\r\nhi\r\n";
    let out = env.submit(&["-t", "-i", "--", "b@example.COM", "e@example.com"], input);
    assert_ok(&out);
    let got = fake.wait_for(1, WAIT);
    let mut r = got[0].rcpt_to.clone();
    r.sort();
    assert_eq!(
        r,
        [
            "a@example.com",
            "b@example.COM",
            "bob@node1.example.net",
            "c@example.com",
            "d@example.com",
            "e@example.com"
        ]
    );
}

#[test]
fn exit_zero_means_committed_even_with_the_smarthost_down() {
    let env = Env::new(closed_port());
    for i in 0..3 {
        let out = env.submit(
            &["-t", "-i"],
            &simple_message("a@example.com", &format!("m{i}")),
        );
        assert_ok(&out);
    }
    // Committed and waiting for a retry, not lost.
    wait_until(WAIT, || env.count("state = 'deferred'") == 3);
}

#[test]
fn mailq_and_newaliases_names() {
    let env = Env::new(closed_port());
    let out = env.submit(&["-t"], &simple_message("a@example.com", "s"));
    assert_ok(&out);
    let dir = env.path().join("bin");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(SENDMAIL, dir.join("mailq")).unwrap();
    std::os::unix::fs::symlink(SENDMAIL, dir.join("newaliases")).unwrap();
    let mut mailq = env.sendmail();
    let mailq = mailq.arg0(dir.join("mailq"));
    let out = mailq.output().unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("<a@example.com>"), "{}", stdout(&out));
    let out = Command::new(dir.join("newaliases"))
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .output()
        .unwrap();
    assert_ok(&out);
}

use std::os::unix::process::CommandExt;

/// The privileged drop-in links no SMTP, TLS, clap or bounce-parsing code
/// (README, "Code layout"), and no SQLite: it hands the message to relayd or
/// drops it into the maildrop, and never opens the queue database
/// (docs/submission.md), nor HTTP or PostgreSQL code (the panel API and
/// cluster mode are the `scriptmail` program's). What guarantees it is
/// crates/submit's manifest (crates/submit/tests/manifest.rs); this looks at
/// the built binary too.
#[test]
fn sendmail_binary_links_no_smtp_tls_clap_or_sqlite() {
    let out = Command::new("nm")
        .arg("-C")
        .arg(SENDMAIL)
        .output()
        .expect("nm (binutils)");
    assert_ok(&out);
    let symbols = stdout(&out);
    assert!(
        symbols.contains("scriptmail_submit::submit::run"),
        "nm saw no symbols"
    );
    for forbidden in [
        "lettre::",
        "rustls::",
        "clap::",
        "clap_builder::",
        "ring::",
        "mail_parser::",
        "rusqlite::",
        "libsqlite3_sys::",
        // The panel API: its HTTP server and the tokens' hash.
        "scriptmail::api::",
        "sha2::",
        "postgres::",
        "tokio_postgres::",
        "tokio::",
    ] {
        // A crate path, not a suffix of another name (`String::`).
        let linked = symbols.match_indices(forbidden).any(|(i, _)| {
            !symbols[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        });
        assert!(!linked, "sendmail links {forbidden}");
    }
    // SQLite's own C functions (bundled by libsqlite3-sys).
    assert!(
        !symbols
            .lines()
            .any(|l| l.ends_with(" sqlite3_open_v2") || l.ends_with(" sqlite3_prepare_v2")),
        "sendmail links SQLite"
    );
    // The scriptmail program does (the check above can see it).
    let out = Command::new("nm").arg(SCRIPTMAIL).output().expect("nm");
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.ends_with(" sqlite3_open_v2"))
    );
}

/// `scriptmail sendmail ...` and a `mailq-ctl` link behave like the drop-in
/// and the admin CLI (README, "Code layout": one program, dispatching on argv[0]).
#[test]
fn scriptmail_program_dispatches_on_subcommand_and_argv0() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let out = run_with_input(
        env.scriptmail()
            .args(["sendmail", "-t", "-i", "-fsite@example.com"]),
        &simple_message("a@example.com", "via scriptmail sendmail"),
    );
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].mail_from, "site@example.com");

    let link = env.path().join("mailq-ctl");
    std::os::unix::fs::symlink(SCRIPTMAIL, &link).unwrap();
    let out = Command::new(&link)
        .env_clear()
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .args(["status", me(), "--json"])
        .output()
        .unwrap();
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["account"], me(), "{v}");
}

/// A long `-bs` session (Symfony keeps one open): every message is relayed
/// promptly, not only the first — even with no daemon, where the one-shot
/// woken by the first message may be gone before the second is committed.
#[test]
fn every_message_of_a_long_bs_session_is_relayed() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let mut child = env
        .sendmail()
        .arg("-bs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    let one = |n: u32| {
        format!(
            "MAIL FROM:<app@example.com>\r\nRCPT TO:<r{n}@example.com>\r\nDATA\r\nSubject: m{n}\r\n\r\nbody\r\n.\r\n"
        )
    };
    stdin.write_all(b"EHLO app\r\n").unwrap();
    stdin.write_all(one(1).as_bytes()).unwrap();
    stdin.flush().unwrap();
    sink.wait_for(1, WAIT);
    // The first one-shot has had time to finish; the session goes on.
    std::thread::sleep(Duration::from_millis(700));
    stdin.write_all(one(2).as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Delivered while the session is still open: it was woken for.
    let got = sink.wait_for(2, Duration::from_secs(5));
    assert_eq!(got[1].rcpt_to, ["r2@example.com"]);
    stdin.write_all(b"QUIT\r\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Recipient handling is linear (issue 11 item 3): 100,000 recipients in the
/// headers (each written twice, the domain in another case: they count once)
/// and more on the command line are queued well within a minute; the
/// quadratic version needed minutes for a tenth of that.
#[test]
fn a_hundred_thousand_recipients_are_handled_in_linear_time() {
    let env = Env::with_config(closed_port(), "queue.max_recipients = 200000");
    // Held mail is not relayed: the test measures submission alone.
    assert_ok(&env.submit(&["-t"], &simple_message("a@example.com", "first")));
    assert_ok(&env.ctl(&["block", me()]));
    let mut input = b"Subject: newsletter\r\nTo: ".to_vec();
    for n in 0..100_000 {
        input.extend_from_slice(format!("r{n}@example.com,\r\n ").as_bytes());
    }
    input.extend_from_slice(b"last@example.com\r\nCc: ");
    for n in 0..100_000 {
        input.extend_from_slice(format!("r{n}@EXAMPLE.COM, ").as_bytes());
    }
    input.extend_from_slice(b"\r\n\r\nhello\r\n");
    let args: Vec<String> = (0..2000).map(|n| format!("arg{n}@example.com")).collect();
    let mut cmd = env.sendmail();
    cmd.args(["-t", "-i", "--"]).args(&args);
    let out = run_within(&mut cmd, &input, Duration::from_secs(60))
        .expect("sendmail was still running after 60 s");
    assert_ok(&out);
    let n: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message_id \
             WHERE m.subject = 'newsletter'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 100_000 + 1 + 2000);
}

/// Past `queue.max_recipients` (default 1000, counted once each after
/// qualification, headers and command line together) the mail is refused
/// with 65 and one line naming the limit; at the limit it goes through.
#[test]
fn too_many_recipients_are_refused_with_65() {
    let env = Env::new(closed_port());
    let list = |from: usize, to: usize| {
        (from..to)
            .map(|n| format!("r{n}@example.com"))
            .collect::<Vec<_>>()
    };
    let message = |rcpts: &[String]| {
        format!("To: {}\r\nSubject: s\r\n\r\nx\r\n", rcpts.join(",\r\n "),).into_bytes()
    };
    // 1000 in the header, the same 1000 again on the command line: fine.
    let args = list(0, 1000);
    let mut argv = vec!["-t", "-i", "--"];
    argv.extend(args.iter().map(String::as_str));
    assert_ok(&env.submit(&argv, &message(&list(0, 1000))));
    // 600 + 401 others: one too many.
    let args = list(0, 600);
    let mut argv = vec!["-t", "-i", "--"];
    argv.extend(args.iter().map(String::as_str));
    for (what, argv, input) in [
        ("headers", vec!["-t", "-i"], message(&list(0, 1001))),
        ("headers and arguments", argv, message(&list(600, 1001))),
    ] {
        let out = env.submit(&argv, &input);
        assert_eq!(out.status.code(), Some(65), "{what}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.starts_with("sendmail: too many recipients") && err.contains("1000"),
            "{what}: {err}"
        );
    }
    assert_eq!(env.count("1"), 1);
}

/// `-bs` honours the same limit per transaction: RCPT past it gets 452
/// (RFC 5321 §4.5.3.1.10) and the message goes to the recipients accepted.
#[test]
fn bs_rcpt_past_the_limit_gets_452() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.max_recipients = 3");
    let mut script = String::from("EHLO x\r\nMAIL FROM:<app@example.com>\r\n");
    for n in 0..4 {
        script.push_str(&format!("RCPT TO:<r{n}@example.com>\r\n"));
    }
    script.push_str("DATA\r\nSubject: s\r\n\r\nx\r\n.\r\nQUIT\r\n");
    let out = env.submit(&["-bs"], script.as_bytes());
    assert_ok(&out);
    let replies = stdout(&out);
    assert!(
        replies.contains("\r\n452 4.5.3 Error: too many recipients\r\n"),
        "{replies}"
    );
    let got = sink.wait_for(1, WAIT);
    assert_eq!(
        got[0].rcpt_to,
        ["r0@example.com", "r1@example.com", "r2@example.com"]
    );
}

/// Start `sendmail ARGS` with `input` written and stdin left open, as a
/// caller that never finishes; wait up to 30 s for it to give up.
fn stalled(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let (mut child, mut stdin) = spawn_piped(env.sendmail().args(args));
    stdin.write_all(input).expect("write");
    stdin.flush().expect("flush");
    assert!(
        wait_within(&mut child, Duration::from_secs(30)),
        "sendmail {args:?} still waiting for input after 30 s"
    );
    drop(stdin);
    child.wait_with_output().expect("collect output")
}

/// A caller that starts a message and never finishes it (the pipe held
/// open) does not hold the process forever (issue 11 item 6): after
/// `queue.read_timeout` it exits 65 with one line, and nothing is queued.
#[test]
fn unfinished_input_times_out_with_65_and_queues_nothing() {
    let env = Env::with_config(closed_port(), "queue.read_timeout = \"2s\"");
    for args in [vec!["-t", "-i"], vec!["-i", "a@example.com"], vec!["-t"]] {
        let out = stalled(
            &env,
            &args,
            b"To: a@example.com\r\nSubject: half\r\n\r\nstarted",
        );
        assert_eq!(out.status.code(), Some(65), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("sendmail: ") && err.contains("queue.read_timeout"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(!env.queue.join("queue.db").exists() || env.count("1") == 0);
}

/// `-bs` honours the same bound: a client that stops talking gets
/// `421 4.4.2` and the process ends (65); a message it left unfinished in
/// DATA is not queued, one it completed before is.
#[test]
fn stalled_bs_session_gets_421_and_ends() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.read_timeout = \"2s\"");
    // Silent after EHLO.
    let out = stalled(&env, &["-bs"], b"EHLO x\r\n");
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    let replies = stdout(&out);
    assert!(
        replies.ends_with("\r\n421 4.4.2 node1.example.net Error: timeout exceeded\r\n"),
        "{replies}"
    );
    assert!(
        stderr(&out).contains("queue.read_timeout"),
        "{}",
        stderr(&out)
    );
    // One message done, the next stalled inside DATA.
    let out = stalled(
        &env,
        &["-bs"],
        b"EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<one@example.com>\r\nDATA\r\n\
          Subject: one\r\n\r\ndone\r\n.\r\n\
          MAIL FROM:<a@example.com>\r\nRCPT TO:<two@example.com>\r\nDATA\r\nSubject: two\r\n\r\nhalf",
    );
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(stdout(&out).contains("421 4.4.2 "), "{}", stdout(&out));
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_to, ["one@example.com"]);
    assert_eq!(env.count("1"), 1);
}

/// The bound counts from the last accepted message, so a long-lived `-bs`
/// session that keeps sending (a Symfony worker) is not cut off, while one
/// that only idles is: each message costs the caller a queued mail.
#[test]
fn bs_session_that_keeps_sending_is_not_cut_off() {
    use std::io::Write;
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.read_timeout = \"4s\"");
    let mut child = env
        .sendmail()
        .arg("-bs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"EHLO app\r\n").unwrap();
    for n in 0..3 {
        // 3 x 1.5 s: longer than the bound in all, shorter between messages.
        std::thread::sleep(Duration::from_millis(1500));
        stdin
            .write_all(
                format!(
                    "MAIL FROM:<app@example.com>\r\nRCPT TO:<r{n}@example.com>\r\nDATA\r\n\
                     Subject: m{n}\r\n\r\nbody\r\n.\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        stdin.flush().unwrap();
    }
    stdin.write_all(b"QUIT\r\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let replies = stdout(&out);
    assert!(!replies.contains("421"), "{replies}");
    assert_eq!(
        replies.matches("250 2.0.0 Ok: queued").count(),
        3,
        "{replies}"
    );
    sink.wait_for(3, WAIT);
}

/// `-bv` checks the addresses on its command line and never reads stdin
/// (issue 11 item 16): with stdin a pipe nobody closes it still returns.
#[test]
fn bv_does_not_read_stdin() {
    let env = Env::new(closed_port());
    let out = stalled(&env, &["-bv", "a@example.com", "bob"], b"");
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "a@example.com... deliverable: relayed to 127.0.0.1\n\
         bob@node1.example.net... deliverable: relayed to 127.0.0.1\n"
    );
}

/// A bad value of a DSN or body-type option is not worth losing the mail
/// over (issue 11 item 14; Postfix does the same): one warning line on
/// stderr, the option ignored, exit 0, the mail relayed without it.
#[test]
fn bad_dsn_and_body_values_warn_and_the_mail_goes_out() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let cases: [(&[&str], &str); 5] = [
        (&["-N", "bogus"], "-N"),
        (&["-R", "bogus"], "-R"),
        (&["-B", "bogus"], "-B"),
        (&["-V", "a\tb"], "-V"),
        (&["-Nsometimes"], "-N"),
    ];
    for (n, (opts, which)) in cases.iter().enumerate() {
        let mut args = opts.to_vec();
        args.extend(["-t", "-i"]);
        let out = env.submit(&args, &simple_message("a@example.com", &format!("w{n}")));
        assert_ok(&out);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{opts:?}: {err}");
        assert!(
            err.starts_with(&format!("sendmail: warning: {which}")) && err.contains("ignored"),
            "{opts:?}: {err}"
        );
        assert!(!err.contains('\t'), "{err:?}");
        let got = sink.wait_for(n + 1, WAIT);
        let m = &got[n];
        assert!(
            !m.mail_args.contains("RET=") && !m.mail_args.contains("ENVID="),
            "{}",
            m.mail_args
        );
        assert!(!m.rcpt_args[0].contains("NOTIFY="), "{:?}", m.rcpt_args);
    }
}

/// SMTP smuggling through `-bs` (CVE-2023-51764, issue 11 item 13): a
/// message whose body holds `<LF>.<LF>` and a second transaction is one
/// message to its own recipient; the smuggled one reaches nobody.
#[test]
fn bs_smuggled_transaction_is_not_relayed() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let script =
        b"EHLO app\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<one@example.com>\r\nDATA\r\n\
        Subject: real\r\n\r\nhello\n.\nMAIL FROM:<ceo@example.com>\nRCPT TO:<victim@example.org>\n\
        DATA\nSubject: smuggled\n\nsend money\r\n.\r\nQUIT\r\n";
    let out = env.submit(&["-bs"], script);
    assert_ok(&out);
    let replies = stdout(&out);
    assert_eq!(
        replies.matches("250 2.0.0 Ok: queued").count(),
        1,
        "{replies}"
    );
    let got = sink.wait_for(1, WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let got_all = sink.messages();
    assert_eq!(got_all.len(), 1, "{got_all:?}");
    assert_eq!(got[0].mail_from, "app@example.com");
    assert_eq!(got[0].rcpt_to, ["one@example.com"]);
    assert!(
        got[0]
            .text()
            .contains("\r\nRCPT TO:<victim@example.org>\r\n")
    );
    assert_eq!(env.count("1"), 1);
}

/// Refused with 65 and one line that contains `reason`; nothing queued.
#[track_caller]
fn refused_65(env: &Env, args: &[&str], input: &[u8], reason: &str) {
    let before = if env.queue.join("queue.db").exists() {
        env.count("1")
    } else {
        0
    };
    let out = env.submit(args, input);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(65), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("sendmail: ") && err.contains(reason),
        "{args:?}: want {reason:?} in {err:?}"
    );
    let after = if env.queue.join("queue.db").exists() {
        env.count("1")
    } else {
        0
    };
    assert_eq!(after, before, "{args:?}: something was queued");
}

/// Text that is not an address list as RFC 5322 §3.4 writes one must not
/// lose an address or make one up (issue 11 item 7): an address where a
/// group or display name goes, words that would each become a recipient.
#[test]
fn addresses_made_of_other_text_are_refused() {
    let env = Env::new(closed_port());
    let cases: [(&str, &str); 5] = [
        // joe was silently dropped as the "group name".
        ("joe@x.org Team: ann@y.org;", "'joe@x.org Team'"),
        // ann was the display name of bob.
        ("ann@y.org <bob@y.org>", "'ann@y.org'"),
        ("joe@x.org Ann <ann@y.org>", "'joe@x.org Ann'"),
        // John@DOMAIN and Smith@DOMAIN were invented.
        ("John Smith, jane@x.org", "'John Smith'"),
        ("b@x.org hello world", "'b@x.org hello world'"),
    ];
    for (to, reason) in cases {
        let msg = format!("To: {to}\r\nSubject: s\r\n\r\nx\r\n");
        refused_65(&env, &["-t", "-i"], msg.as_bytes(), reason);
    }
    // The common "address as its own display name" still works.
    assert_ok(&env.submit(
        &["-t", "-i"],
        b"To: info@x.org <info@x.org>, a@x.org b@x.org\r\n\r\nx\r\n",
    ));
}

/// CR-only line ends: the whole input is one header line. It was delivered
/// to cr@DOMAIN and body.more@DOMAIN while b@x.org was lost.
#[test]
fn cr_only_input_is_refused_not_sent_to_invented_addresses() {
    let env = Env::new(closed_port());
    refused_65(
        &env,
        &["-t", "-i"],
        b"To: b@x.org\rSubject: cr\r\rbody\r.\rmore\r",
        "bare CR in the To header",
    );
    refused_65(
        &env,
        &["-t"],
        b"Cc: a@x.org\rb@y.org\n\nbody\n",
        "bare CR in the Cc header",
    );
}

/// `-f 'a b@x.org'` was sent as `a@DOMAIN` (issue 11 item 8): a sender that
/// is not exactly one address is refused, never replaced by part of it.
#[test]
fn a_sender_that_is_not_one_address_is_refused() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let msg = simple_message("a@example.com", "s");
    for (f, reason) in [
        ("a b@x.org", "'a b@x.org'"),
        ("a@x.org, b@x.org", "more than one address"),
        ("a@x.org b@x.org", "more than one address"),
        ("Site a@x.org", "'Site a@x.org'"),
    ] {
        refused_65(&env, &["-t", "-i", "-f", f], &msg, reason);
    }
    // The forms that are one address still work, as given.
    for (f, want) in [("Site <s@x.org>", "s@x.org"), ("<t@x.org>", "t@x.org")] {
        assert_ok(&env.submit(&["-t", "-i", "-f", f], &msg));
        let n = sink.messages().len();
        let got = sink.wait_for(n + 1, WAIT);
        assert_eq!(got[n].mail_from, want);
    }
}

/// What `sendmail` accepts the relay must be able to send (issue 11 item 9):
/// an address that is not UTF-8 or that the relay's address rules refuse is
/// refused here with 65, not accepted and failed after exit 0.
#[test]
fn unsendable_addresses_are_refused_with_65() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new(closed_port());
    let msg = simple_message("a@example.com", "s");
    // Not UTF-8, on the command line and as the sender.
    for args in [
        vec![OsStr::from_bytes(b"-i"), OsStr::from_bytes(b"b\xff@x.org")],
        vec![
            OsStr::from_bytes(b"-f"),
            OsStr::from_bytes(b"\xfe@x.org"),
            OsStr::from_bytes(b"a@x.org"),
        ],
    ] {
        let out = run_with_input(env.sendmail().args(&args), &msg);
        assert_eq!(out.status.code(), Some(65), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    // Not UTF-8 in a -t header.
    refused_65(
        &env,
        &["-t"],
        b"To: b\xff@x.org\r\n\r\nx\r\n",
        "not valid UTF-8",
    );
    for (rcpt, reason) in [
        ("a..b@x.org", "empty word in the local part"),
        (".a@x.org", "empty word in the local part"),
        ("a@x..org", "empty label in the domain"),
        ("a@-x.org", "must start and end with a letter or digit"),
        ("a@x_y.org", "'_' in the domain"),
        ("\"a\"b\"@x.org", "quoted"),
        ("a@[1.2.3]", "address literal"),
        ("\u{1F600}@x.org", "'\u{1F600}' in the local part"),
    ] {
        refused_65(&env, &["-i", rcpt], &msg, reason);
    }
    let long = format!("{}@x.org", "a".repeat(65));
    refused_65(&env, &["-i", &long], &msg, "longer than 64");
    // And what is fine stays fine.
    for rcpt in [
        "jösé@例え.jp",
        "\"john doe\"@x.org",
        "a@[192.0.2.1]",
        "a@[IPv6:2001:db8::1]",
    ] {
        assert_ok(&env.submit(&["-i", rcpt], &msg));
    }
}

/// Quoted-printable decoding (RFC 2045 §6.7), written here so the test does
/// not trust the encoder's own idea of it.
fn qp_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'=' {
            if s[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = std::str::from_utf8(&s[i + 1..i + 3]).expect("escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Every line of the DATA payload as it went over the wire is at most 998
/// octets before its CRLF.
#[track_caller]
fn assert_wire_lines_fit(m: &crate::sink::Captured) {
    for (n, line) in m.wire.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= 998, "wire line {n} has {} octets", line.len());
    }
}

/// (unfolded header, body) of a captured message.
fn head_and_body(data: &[u8]) -> (String, Vec<u8>) {
    let at = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank line");
    let head = String::from_utf8_lossy(&data[..at + 2])
        .replace("\r\n ", " ")
        .replace("\r\n\t", "\t");
    (head, data[at + 4..].to_vec())
}

/// No line on the wire over 998 octets (issue 11 item 15, RFC 5321
/// §4.5.3.1.6): a plain message with a 5,000-byte line arrives at a real
/// smtp-sink as MIME quoted-printable whose decoding is exactly the body that
/// was sent; a long Subject is folded and unfolds to the same text.
#[test]
fn long_lines_are_reencoded_so_the_reader_sees_the_same_text() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let mut long = String::new();
    let mut k = 0;
    while long.len() < 5000 {
        long.push_str(&format!(
            "Caf\u{e9} n\u{b0}{k}: the quick brown fox jumps over the lazy dog, 3 = 3. "
        ));
        k += 1;
    }
    let body = format!("Hello\r\n{long}\r\n.\r\n..two\r\nFrom here\r\nbye   \r\n");
    let subject: Vec<String> = (0..300).map(|n| format!("word{n}")).collect();
    let subject = subject.join(" ");
    let input = format!("To: a@example.com\r\nSubject: {subject}\r\n\r\n{body}");
    assert_ok(&env.submit(&["-t", "-i"], input.as_bytes()));
    let got = sink.wait_for(1, WAIT);
    let m = &got[0];
    assert_wire_lines_fit(m);
    let (head, enc) = head_and_body(&m.data);
    assert!(head.contains("\r\nMIME-Version: 1.0\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
        "{head}"
    );
    assert!(
        head.contains(&format!("\r\nSubject: {subject}\r\n")),
        "{head}"
    );
    assert_eq!(
        String::from_utf8_lossy(&qp_decode(&enc)),
        body,
        "decoded body differs"
    );
    assert_eq!(qp_decode(&enc), body.as_bytes());
}

/// What PHP pages do: `mail()` with a whole HTML page on one line and their
/// own MIME headers. The HTML part keeps its type and charset; in a
/// multipart message only the part with the long line is re-encoded.
#[test]
fn php_html_on_one_line_and_multipart_arrive_within_998() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let out = php(
        &env,
        "-t -i",
        r#"$h = str_repeat("<tr><td class=\"c\">Bestellung \u{00fc}bersicht</td><td>42,00 \u{20ac}</td></tr>", 120);
           var_dump(mail("a@example.com", "html", "<html><body><table>$h</table></body></html>",
               "MIME-Version: 1.0\r\nContent-type: text/html; charset=UTF-8"));"#,
    );
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "bool(true)", "{}", stderr(&out));
    let got = sink.wait_for(1, WAIT);
    assert_wire_lines_fit(&got[0]);
    let (head, enc) = head_and_body(&got[0].data);
    assert!(
        head.contains("Content-type: text/html; charset=UTF-8\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
        "{head}"
    );
    let html = String::from_utf8(qp_decode(&enc)).expect("utf-8");
    assert!(html.starts_with("<html><body><table><tr><td class=\"c\">Bestellung übersicht</td>"));
    assert!(html.ends_with("</table></body></html>\r\n"), "{html}");
    assert_eq!(html.lines().count(), 1);

    let long_html = "<b>x</b> ".repeat(400);
    let text_part = "Content-Type: text/plain; charset=us-ascii\r\n\r\nshort\r\n";
    let input = format!(
        "To: a@example.com\r\nSubject: mp\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
         --b1\r\n{text_part}--b1\r\nContent-Type: text/html\r\n\r\n{long_html}\r\n--b1--\r\n"
    );
    assert_ok(&env.submit(&["-t", "-i"], input.as_bytes()));
    let got = sink.wait_for(2, WAIT);
    let m = &got[1];
    assert_wire_lines_fit(m);
    let (_, body) = head_and_body(&m.data);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with(&format!("--b1\r\n{text_part}--b1\r\n")),
        "{body}"
    );
    let html = body.split("--b1\r\n").nth(2).unwrap();
    let (part_head, enc) = html.split_once("\r\n\r\n").unwrap();
    assert!(
        part_head.contains("Content-Transfer-Encoding: quoted-printable"),
        "{part_head}"
    );
    let enc = enc
        .strip_suffix("\r\n--b1--\r\n")
        .expect("closing delimiter");
    assert_eq!(qp_decode(enc.as_bytes()), long_html.as_bytes());
}
