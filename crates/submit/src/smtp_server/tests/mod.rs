//! Whole `-bs` sessions: scripts in, replies and accepted messages out; the
//! dialogues here, the refusals in `refusals.rs`.

use super::*;

mod refusals;

/// Run a session over `script`; return the replies as text and every accepted call.
pub(super) fn run_with(
    script: &[u8],
    max: u64,
    mut verdict: impl FnMut(usize) -> Verdict,
) -> (String, Vec<(Envelope, Vec<u8>)>) {
    let mut out = Vec::new();
    let mut got = Vec::new();
    let settings = Settings {
        hostname: "mx.test",
        max_size: max,
        max_recipients: MAX_RECIPIENTS,
        domain: "mx.test",
    };
    serve(script, &mut out, &settings, |env, body| {
        got.push((env.clone(), body.to_vec()));
        verdict(got.len())
    })
    .expect("session");
    (String::from_utf8(out).expect("utf8 replies"), got)
}

pub(super) fn run(script: &[u8], max: u64) -> (String, Vec<(Envelope, Vec<u8>)>) {
    run_with(script, max, |n| Verdict::Accepted(format!("Q{n}")))
}

pub(super) fn replies(out: &str) -> Vec<&str> {
    out.split_terminator("\r\n").collect()
}

pub(super) fn codes(out: &str) -> Vec<&str> {
    // Only final lines of multi-line replies count.
    replies(out)
        .into_iter()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(|l| &l[..3])
        .collect()
}

pub(super) const MAX_RECIPIENTS: usize = 1000;

#[test]
fn symfony_dialogue() {
    // What Symfony Mailer's SmtpTransport writes to `sendmail -bs` (it says HELO;
    // SwiftMailer and EsmtpTransport say EHLO — both are covered).
    let script = b"HELO [127.0.0.1]\r\n\
        MAIL FROM:<app@site.example>\r\n\
        RCPT TO:<a@x.example>\r\n\
        RCPT TO:<b@y.example>\r\n\
        DATA\r\n\
        From: app@site.example\r\n\
        Subject: hi\r\n\
        \r\n\
        ..leading dot\r\n\
        ...two\r\n\
        end\r\n\
        .\r\n\
        QUIT\r\n";
    let (out, got) = run(script, 1_000_000);
    assert_eq!(
        replies(&out),
        vec![
            "220 mx.test ESMTP scriptmail",
            "250 mx.test",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "221 2.0.0 Bye",
        ]
    );
    assert_eq!(got.len(), 1);
    let (env, body) = &got[0];
    assert_eq!(
        env,
        &Envelope {
            sender: Some("app@site.example".into()),
            recipients: vec!["a@x.example".into(), "b@y.example".into()],
            ..Envelope::default()
        }
    );
    assert_eq!(
        body.as_slice(),
        b"From: app@site.example\r\nSubject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
    );
}

#[test]
fn ehlo_lists_extensions() {
    let (out, _) = run(b"EHLO client.example\r\nQUIT\r\n", 10_000_000);
    assert_eq!(
        replies(&out),
        vec![
            "220 mx.test ESMTP scriptmail",
            "250-mx.test",
            "250-PIPELINING",
            "250-8BITMIME",
            "250-SIZE 10000000",
            "250-DSN",
            "250 ENHANCEDSTATUSCODES",
            "221 2.0.0 Bye",
        ]
    );
}

#[test]
fn pipelined_transaction_with_dsn_parameters() {
    // All commands arrive in one write, as a PIPELINING client sends them (RFC 2920).
    let script = b"ehlo c\r\n\
        mail from: <s@x> BODY=8BITMIME SIZE=100 RET=hdrs ENVID=ab+2Bc\r\n\
        rcpt to:<r1@y> NOTIFY=success,failure ORCPT=rfc822;r1+40y\r\n\
        RCPT TO:<r2@y> NOTIFY=NEVER\r\n\
        data\r\n\
        x\r\n\
        .\r\n\
        quit\r\n";
    let (out, got) = run(script, 1000);
    assert_eq!(
        codes(&out),
        vec!["220", "250", "250", "250", "250", "354", "250", "221"]
    );
    let (env, body) = &got[0];
    assert_eq!(
        env,
        &Envelope {
            sender: Some("s@x".into()),
            recipients: vec!["r1@y".into(), "r2@y".into()],
            body_8bit: true,
            dsn_ret: Some(Ret::Hdrs),
            envid: Envid::new(b"ab+c").ok(),
            dsn_notify: "success,failure".parse().ok(),
        }
    );
    assert_eq!(body.as_slice(), b"x\r\n");
}

#[test]
fn two_messages_rset_and_null_sender() {
    let script = b"EHLO c\r\n\
        MAIL FROM:<a@x>\r\n\
        RCPT TO:<r@y>\r\n\
        RSET\r\n\
        MAIL FROM:<>\r\n\
        RCPT TO:<r2@y>\r\n\
        DATA\r\n\
        one\r\n\
        .\r\n\
        MAIL FROM:<b@x>\r\n\
        RCPT TO:<r3@y>\r\n\
        DATA\r\n\
        two\r\n\
        .\r\n\
        QUIT\r\n";
    let (out, got) = run(script, 1000);
    assert_eq!(
        codes(&out),
        vec![
            "220", "250", "250", "250", "250", "250", "250", "354", "250", "250", "250", "354",
            "250", "221"
        ]
    );
    assert!(out.contains("queued as Q1\r\n") && out.contains("queued as Q2\r\n"));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.sender, None);
    assert_eq!(got[0].0.recipients, vec!["r2@y".to_string()]);
    assert_eq!(got[0].1, b"one\r\n");
    assert_eq!(got[1].0.sender.as_deref(), Some("b@x"));
    assert_eq!(got[1].0.recipients, vec!["r3@y".to_string()]);
    assert_eq!(got[1].1, b"two\r\n");
}

#[test]
fn lf_only_input_and_stray_crs() {
    // Commands and data lines may end in a bare LF; only <CRLF>.<CRLF> ends DATA.
    let script = b"HELO c\nMAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\r\n\
        l1\nbare\rcr\nl3\r\r\n..\r\n.\r\nQUIT\n";
    let (out, got) = run(script, 1000);
    assert_eq!(
        codes(&out),
        vec!["220", "250", "250", "250", "354", "250", "221"]
    );
    assert_eq!(got[0].1, b"l1\r\nbare\rcr\r\nl3\r\n.\r\n");
}

/// SMTP smuggling (CVE-2023-51764): a "." line that is not exactly
/// <CRLF>.<CRLF> is message text, so a second transaction written inside a
/// message body never becomes a message of its own.
#[test]
fn only_crlf_dot_crlf_ends_data() {
    let smuggled = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@z>\r\nDATA\r\nspoofed\r\n";
    for (name, end, kept) in [
        ("LF . LF", &b"\n.\n"[..], &b"\r\n.\r\n"[..]),
        ("LF . CRLF", b"\n.\r\n", b"\r\n.\r\n"),
        ("CRLF . LF", b"\r\n.\n", b"\r\n.\r\n"),
        ("CR . CRLF", b"\r.\r\n", b"\r.\r\n"),
        ("CRLF . CR CRLF", b"\r\n.\r\r\n", b"\r\n.\r\n"),
        ("CR CRLF . CRLF", b"\r\r\n.\r\n", b"\r\n.\r\n"),
    ] {
        let mut script = b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nhello".to_vec();
        script.extend_from_slice(end);
        script.extend_from_slice(smuggled);
        script.extend_from_slice(b".\r\nQUIT\r\n");
        let (out, got) = run(&script, 1000);
        assert_eq!(got.len(), 1, "{name}: {out}");
        assert_eq!(got[0].0.recipients, ["r@y"], "{name}");
        let mut want = b"hello".to_vec();
        want.extend_from_slice(kept);
        want.extend_from_slice(smuggled);
        assert_eq!(
            String::from_utf8_lossy(&got[0].1),
            String::from_utf8_lossy(&want),
            "{name}"
        );
        assert_eq!(
            replies(&out)
                .iter()
                .filter(|r| r.starts_with("354"))
                .count(),
            1,
            "{name}: {out}"
        );
    }
    // The DATA command's own line end counts as the CRLF before an empty message's dot.
    let (_, got) = run(
        b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n.\r\nQUIT\r\n",
        1000,
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"");
    let (_, got) = run(
        b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\n.\r\n.\r\n",
        1000,
    );
    assert_eq!(got[0].1, b".\r\n");
}

#[test]
fn end_of_input() {
    // No QUIT: the session just ends.
    let (out, got) = run(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\n", 1000);
    assert_eq!(codes(&out), vec!["220", "250", "250", "250"]);
    assert!(got.is_empty());
    // Input ends inside DATA: the message never completed, so it is not accepted.
    let (out, got) = run(
        b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\npartial\r\n",
        1000,
    );
    assert_eq!(codes(&out), vec!["220", "250", "250", "354"]);
    assert!(got.is_empty());
    // A last command without its line end still counts.
    let (out, _) = run(b"QUIT", 1000);
    assert_eq!(codes(&out), vec!["220", "221"]);
    // Commands after QUIT are not read.
    let (out, _) = run(b"QUIT\r\nNOOP\r\n", 1000);
    assert_eq!(codes(&out), vec!["220", "221"]);
    let (out, _) = run(b"", 1000);
    assert_eq!(codes(&out), vec!["220"]);
}

#[test]
fn ehlo_resets_transaction() {
    let (out, got) = run(
        b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nEHLO c\r\nDATA\r\nQUIT\r\n",
        1000,
    );
    assert!(out.contains("503 5.5.1 Error: need MAIL command"));
    assert!(got.is_empty());
}

#[test]
fn output_error_ends_session() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let settings = Settings {
        hostname: "h",
        max_size: 10,
        max_recipients: 10,
        domain: "h",
    };
    let r = serve(&b"QUIT\r\n"[..], Broken, &settings, |_, _| {
        Verdict::Accepted("x".into())
    });
    assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
}
