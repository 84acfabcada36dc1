//! Whole `-bs` sessions: scripts in, replies and accepted messages out.

use super::*;

/// Run a session over `script`; return the replies as text and every accepted call.
fn run_with(
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

fn run(script: &[u8], max: u64) -> (String, Vec<(Envelope, Vec<u8>)>) {
    run_with(script, max, |n| Verdict::Accepted(format!("Q{n}")))
}

fn replies(out: &str) -> Vec<&str> {
    out.split_terminator("\r\n").collect()
}

fn codes(out: &str) -> Vec<&str> {
    // Only final lines of multi-line replies count.
    replies(out)
        .into_iter()
        .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
        .map(|l| &l[..3])
        .collect()
}

const MAX_RECIPIENTS: usize = 1000;

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
fn sequence_errors() {
    let script = b"RCPT TO:<r@y>\r\n\
        DATA\r\n\
        MAIL FROM:<a@x>\r\n\
        MAIL FROM:<b@x>\r\n\
        DATA\r\n\
        RCPT TO:<r@y>\r\n\
        DATA\r\n\
        .\r\n\
        QUIT\r\n";
    let (out, got) = run(script, 1000);
    assert_eq!(
        replies(&out)[1..5],
        [
            "503 5.5.1 Error: need MAIL command",
            "503 5.5.1 Error: need MAIL command",
            "250 2.1.0 Ok",
            "503 5.5.1 Error: nested MAIL command",
        ]
    );
    // DATA without RCPT keeps the transaction, so a later RCPT completes it.
    assert_eq!(replies(&out)[5], "503 5.5.1 Error: need RCPT command");
    assert_eq!(codes(&out)[6..], ["250", "354", "250", "221"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.sender.as_deref(), Some("a@x"));
    assert_eq!(got[0].1, b"");
}

#[test]
fn syntax_errors_and_other_commands() {
    let cases: &[(&str, &str)] = &[
        ("FOO", "500 5.5.2 Error: command not recognized"),
        ("", "500 5.5.2 Error: command not recognized"),
        ("EHLO", "501 Syntax: EHLO hostname"),
        ("HELO", "501 Syntax: HELO hostname"),
        ("MAIL", "501 5.1.7 Error: bad sender address syntax"),
        (
            "MAIL TO:<a@b>",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "MAIL FROM:<a@b",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "MAIL FROM:<a b@c>",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "MAIL FROM:<a@b>x",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "MAIL FROM:<a@b> BODY=BINARYMIME",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "MAIL FROM:<a@b> SIZE=12k",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "MAIL FROM:<a@b> RET=ALL",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "MAIL FROM:<a@b> ENVID=a=b",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "MAIL FROM:<a@b> ENVID=a+0A",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "MAIL FROM:<a@b> BODY=7BIT BODY=7BIT",
            "501 5.5.4 Error: duplicate parameter",
        ),
        (
            "MAIL FROM:<a@b> SMTPUTF8",
            "555 5.5.4 Error: unsupported parameter",
        ),
        (
            "MAIL FROM:<a@b> AUTH=<>",
            "555 5.5.4 Error: unsupported parameter",
        ),
        ("VRFY", "501 5.5.4 Syntax: VRFY address"),
        (
            "VRFY root",
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
        ),
        ("EXPN list", "502 5.5.1 Error: command not implemented"),
        (
            "HELP",
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
        ),
        ("NOOP anything", "250 2.0.0 Ok"),
        ("RSET x", "501 5.5.4 Syntax: RSET"),
        ("DATA x", "501 5.5.4 Syntax: DATA"),
        ("BDAT 10 LAST", "500 5.5.2 Error: command not recognized"),
    ];
    for (cmd, want) in cases {
        let script = format!("{cmd}\r\nQUIT\r\n");
        let (out, got) = run(script.as_bytes(), 1000);
        assert_eq!(replies(&out)[1], *want, "command {cmd:?}");
        assert!(got.is_empty());
    }
}

#[test]
fn rcpt_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "RCPT TO:<>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
        (
            "RCPT FROM:<a@b>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
        (
            "RCPT TO:<a@b> NOTIFY=sometimes",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "RCPT TO:<a@b> NOTIFY=NEVER,DELAY",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "RCPT TO:<a@b> ORCPT=rfc822",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "RCPT TO:<a@b> NOTIFY",
            "501 5.5.4 Error: bad parameter value",
        ),
        (
            "RCPT TO:<a@b> FOO=1",
            "555 5.5.4 Error: unsupported parameter",
        ),
    ];
    for (cmd, want) in cases {
        let script = format!("MAIL FROM:<s@x>\r\n{cmd}\r\nQUIT\r\n");
        let (out, _) = run(script.as_bytes(), 1000);
        assert_eq!(replies(&out)[2], *want, "command {cmd:?}");
    }
}

#[test]
fn address_forms() {
    let script = b"MAIL FROM:bare@x\r\n\
        RCPT TO:<@relay.example,@r2.example:user@y>\r\n\
        RCPT TO:<\"john doe\"@y>\r\n\
        RCPT TO:<Postmaster>\r\n\
        DATA\r\n\
        .\r\n\
        QUIT\r\n";
    let (out, got) = run(script, 1000);
    assert_eq!(
        codes(&out),
        vec!["220", "250", "250", "250", "250", "354", "250", "221"]
    );
    assert_eq!(got[0].0.sender.as_deref(), Some("bare@x"));
    assert_eq!(
        got[0].0.recipients,
        vec![
            "user@y".to_string(),
            "\"john doe\"@y".to_string(),
            "Postmaster".to_string()
        ]
    );
}

/// A path the relay could not send is refused at MAIL or RCPT, where the
/// client learns which address is wrong (`envelope`).
#[test]
fn unsendable_paths_are_refused_at_once() {
    for (cmd, want) in [
        (
            "MAIL FROM:<a..b@x>",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "MAIL FROM:<\"a>b\"@x>",
            "501 5.1.7 Error: bad sender address syntax",
        ),
        (
            "RCPT TO:<a@x..y>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
        (
            "RCPT TO:<\"john doe>\"@y>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
        (
            "RCPT TO:<a@[1.2.3]>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
        (
            "RCPT TO:<a\u{fffd}@x>",
            "501 5.1.3 Error: bad recipient address syntax",
        ),
    ] {
        let script = if cmd.starts_with("MAIL") {
            format!("{cmd}\r\nQUIT\r\n")
        } else {
            format!("MAIL FROM:<s@x>\r\n{cmd}\r\nQUIT\r\n")
        };
        let (out, _) = run(script.as_bytes(), 1000);
        let r = replies(&out);
        assert!(r.contains(&want), "{cmd}: {r:?}");
    }
}

#[test]
fn size_limits() {
    // Declared SIZE above the limit: refused at MAIL (RFC 1870).
    let (out, _) = run(b"MAIL FROM:<a@x> SIZE=1001\r\nQUIT\r\n", 1000);
    assert_eq!(
        replies(&out)[1],
        "552 5.3.4 Error: message size exceeds fixed maximum message size"
    );
    let (out, _) = run(
        b"MAIL FROM:<a@x> SIZE=99999999999999999999999\r\nQUIT\r\n",
        1000,
    );
    assert!(replies(&out)[1].starts_with("552 "));
    let (out, _) = run(b"MAIL FROM:<a@x> SIZE=1000\r\nQUIT\r\n", 1000);
    assert_eq!(replies(&out)[1], "250 2.1.0 Ok");

    // Data over the limit: read to the end, 552, nothing accepted, session goes on.
    let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
    for _ in 0..20 {
        script.extend_from_slice(b"0123456789\r\n");
    }
    script.extend_from_slice(
        b"..\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n",
    );
    let (out, got) = run(&script, 100);
    assert_eq!(
        replies(&out)[4],
        "552 5.3.4 Error: message size exceeds fixed limit"
    );
    assert_eq!(codes(&out)[5..], ["250", "250", "354", "250", "221"]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"small\r\n");

    // Exactly at the limit is fine: 10 lines of 8 + CRLF = 100 bytes.
    let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
    for _ in 0..10 {
        script.extend_from_slice(b"01234567\r\n");
    }
    script.extend_from_slice(b".\r\n");
    let (_, got) = run(&script, 100);
    assert_eq!(got[0].1.len(), 100);

    // One huge line without any line break is discarded, not buffered.
    let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
    script.extend(std::iter::repeat_n(b'x', 100_000));
    script.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    let (out, got) = run(&script, 1000);
    assert!(out.contains("\r\n552 5.3.4 "));
    assert!(got.is_empty());
}

#[test]
fn zero_max_size_means_unlimited() {
    let (out, got) = run(
        b"EHLO c\r\nMAIL FROM:<a@x> SIZE=123456789\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n",
        0,
    );
    assert!(out.contains("\r\n250-SIZE\r\n"));
    assert_eq!(got.len(), 1);
}

#[test]
fn too_many_recipients() {
    let mut script = b"MAIL FROM:<a@x>\r\n".to_vec();
    for n in 0..=MAX_RECIPIENTS {
        script.extend_from_slice(format!("RCPT TO:<r{n}@y>\r\n").as_bytes());
    }
    script.extend_from_slice(b"DATA\r\nhi\r\n.\r\nQUIT\r\n");
    let (out, got) = run(&script, 1000);
    let r = replies(&out);
    assert_eq!(r[MAX_RECIPIENTS + 1], "250 2.1.5 Ok");
    assert_eq!(
        r[MAX_RECIPIENTS + 2],
        "452 4.5.3 Error: too many recipients"
    );
    assert_eq!(got[0].0.recipients.len(), MAX_RECIPIENTS);
}

#[test]
fn long_command_line() {
    let mut script = b"NOOP ".to_vec();
    script.extend(std::iter::repeat_n(b'a', MAX_COMMAND_LINE));
    script.extend_from_slice(b"\r\nNOOP\r\n");
    // Exactly at the limit (with CRLF) is still a command.
    script.extend_from_slice(b"NOOP ");
    script.extend(std::iter::repeat_n(b'b', MAX_COMMAND_LINE - 5));
    script.extend_from_slice(b"\r\nQUIT\r\n");
    let (out, _) = run(&script, 1000);
    assert_eq!(
        replies(&out),
        vec![
            "220 mx.test ESMTP scriptmail",
            "500 5.5.2 Error: line too long",
            "250 2.0.0 Ok",
            "250 2.0.0 Ok",
            "221 2.0.0 Bye",
        ]
    );
}

#[test]
fn rejected_verdicts() {
    let script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
        MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
        MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
        MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
    let (out, got) = run_with(script, 1000, |n| match n {
        1 => Verdict::Rejected {
            code: 451,
            text: "4.3.0 queue unavailable".into(),
        },
        2 => Verdict::Rejected {
            code: 552,
            text: "too big\r\nfor us".into(),
        },
        3 => Verdict::Rejected {
            code: 250,
            text: String::new(),
        },
        _ => Verdict::Accepted("id with\r\nspace".into()),
    });
    let finals: Vec<&str> = replies(&out)
        .into_iter()
        .filter(|l| {
            ["451 ", "552 ", "250 2.0.0 Ok: queued"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(
        finals,
        vec![
            "451 4.3.0 queue unavailable",
            "552 5.0.0 too big  for us",
            "451 4.0.0 Error: message not accepted",
            "250 2.0.0 Ok: queued as id?with??space",
        ]
    );
    assert_eq!(got.len(), 4);
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
fn eight_bit_data_and_invalid_utf8_commands() {
    let script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\ncaf\xc3\xa9 \xff\r\n.\r\nMAIL FROM:<\xff@x>\r\nQUIT\r\n";
    let (out, got) = run(script, 1000);
    assert_eq!(got[0].1, b"caf\xc3\xa9 \xff\r\n");
    assert!(got[0].0.body_8bit);
    assert!(out.contains("500 5.5.2 Error: command is not valid UTF-8\r\n"));
    // UTF-8 addresses are recorded as given.
    let (_, got) = run(
        "MAIL FROM:<jörg@x>\r\nRCPT TO:<r@ÿ.example>\r\nDATA\r\n.\r\n".as_bytes(),
        1000,
    );
    assert_eq!(got[0].0.sender.as_deref(), Some("jörg@x"));
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
