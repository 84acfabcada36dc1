//! `-bs` refusals: commands out of sequence or malformed, addresses and sizes
//! refused, verdicts of the queue, input that is not text.

use super::*;

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
