//! The DSN parser against whole bounces: real ones from Postfix (captured from
//! the private instance of tests/it/bounce.rs), and ones written from what Exim,
//! Exchange Online and Gmail send (tests/fixtures/bounces/README.md says which).

use super::*;

// Bounces a real Postfix 3.7 produced (captured from a private instance
// receiving mail with a VERP sender; see tests/it/bounce.rs).
const PF_LOCAL: &[u8] = include_bytes!("../../tests/fixtures/bounces/postfix-local-unknown.eml");
const PF_SMTP: &[u8] = include_bytes!("../../tests/fixtures/bounces/postfix-smtp-reject.eml");
const PF_DELAY: &[u8] = include_bytes!("../../tests/fixtures/bounces/postfix-delayed.eml");

#[test]
fn postfix_unknown_local_user() {
    let r = parse(PF_LOCAL);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.envid.as_deref(), Some("6740A1B2C3D4E5F7"));
    assert_eq!(r.reporting_mta.as_deref(), Some("mx.test.example"));
    assert_eq!(
        r.original_sender.as_deref(),
        Some("bounces+6740A1B2C3D4E5F7@node1.example.net")
    );
    assert_eq!(r.recipients.len(), 1);
    let f = &r.recipients[0];
    assert_eq!(f.action, Action::Failed);
    assert_eq!(
        f.final_recipient.as_deref(),
        Some("nosuchuser@test.example")
    );
    assert_eq!(
        f.original_recipient.as_deref(),
        Some("nosuchuser@test.example")
    );
    assert_eq!(f.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        f.diagnostic.as_deref(),
        Some("unknown user: \"nosuchuser\"")
    );
    assert_eq!(f.reason(), "5.1.1 unknown user: \"nosuchuser\"");
    // The returned headers (text/rfc822-headers) carry our trace.
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F7")
    );
    assert_eq!(
        r.original_headers_named("Message-ID").next(),
        Some("<1.6740A1B2C3D4E5F7@node1.example.net>")
    );
    assert!(r.text.contains("could not"));
}

#[test]
fn postfix_remote_rejection_with_full_copy() {
    let r = parse(PF_SMTP);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.envid, None);
    let f: Vec<_> = r.failures().collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].final_recipient.as_deref(), Some("bob@reject.example"));
    assert_eq!(f[0].remote_mta.as_deref(), Some("127.0.0.1"));
    assert_eq!(f[0].reason(), "500 5.3.0 Error: command failed");
    // message/rfc822: the whole original came back.
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F6")
    );
    assert_eq!(r.original_headers_named("Subject").next(), Some("hello"));
}

#[test]
fn postfix_delay_warning_is_not_a_failure() {
    let r = parse(PF_DELAY);
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].action, Action::Delayed);
    assert_eq!(r.failures().count(), 0);
    assert_eq!(
        r.recipients[0].diagnostic.as_deref(),
        Some("connect to 127.0.0.1[127.0.0.1]:25999: Connection refused")
    );
}

#[test]
fn crlf_input_parses_the_same() {
    let crlf = String::from_utf8_lossy(PF_LOCAL).replace('\n', "\r\n");
    let r = parse(crlf.as_bytes());
    assert_eq!(r.recipients.len(), 1);
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F7")
    );
}

const NESTED_BASE64: &str = "From: postmaster@outlook.example\r\n\
Subject: Undeliverable: hi\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Delivery has failed to these recipients or groups:=0D=0A=\r\n\
ann@example.org\r\n\
--inner\r\n\
Content-Type: message/delivery-status\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UmVwb3J0aW5nLU1UQTogZG5zO214LmV4YW1wbGUub3JnCgpGaW5hbC1yZWNpcGllbnQ6IHJmYzgy\r\n\
Mjthbm5AZXhhbXBsZS5vcmcKQWN0aW9uOiBmYWlsZWQKU3RhdHVzOiA1LjIuMgpEaWFnbm9zdGlj\r\n\
LUNvZGU6IHNtdHA7NTUyIDUuMi4yIE1haWxib3ggZnVsbAo=\r\n\
--inner--\r\n\
--outer--\r\n";

#[test]
fn nested_and_encoded_parts() {
    let r = parse(NESTED_BASE64.as_bytes());
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.reporting_mta.as_deref(), Some("mx.example.org"));
    let f: Vec<_> = r.failures().collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].final_recipient.as_deref(), Some("ann@example.org"));
    assert_eq!(f[0].reason(), "552 5.2.2 Mailbox full");
    assert!(r.text.contains("Delivery has failed"), "{}", r.text);
}

#[test]
fn sloppy_delivery_status_blocks() {
    // No blank line after the per-message fields, two recipients in one
    // block, one without Final-Recipient and one without Action.
    let m = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n\
--b\n\
Content-Type: message/delivery-status\n\n\
Reporting-MTA: dns; mx.example.com\n\
Original-Envelope-Id: ABC+2B1\n\
Final-Recipient: rfc822; <one@example.com>\n\
Original-Recipient: rfc822; one@example.com\n\
Action: failed (bad mailbox)\n\
Status: 5.1.1 (unknown)\n\
Original-Recipient: rfc822;two@example.com\n\
Status: 5.7.1\n\
Diagnostic-Code: smtp; 550 5.7.1 relaying denied\n\
\n\
Action: failed\n\
Status: 5.0.0\n\
--b--\n";
    let r = parse(m.as_bytes());
    assert_eq!(r.envid.as_deref(), Some("ABC+1"));
    assert_eq!(r.recipients.len(), 3, "{:?}", r.recipients);
    assert_eq!(
        r.recipients[0].final_recipient.as_deref(),
        Some("one@example.com")
    );
    assert_eq!(r.recipients[0].action, Action::Failed);
    assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(r.recipients[1].final_recipient, None);
    assert_eq!(r.recipients[1].address(), Some("two@example.com"));
    assert_eq!(
        r.recipients[1].action,
        Action::Failed,
        "inferred from 5.7.1"
    );
    assert_eq!(r.recipients[2].address(), None);
    assert_eq!(r.failures().count(), 3);
}

#[test]
fn status_class_inference() {
    let m = "Content-Type: message/delivery-status\n\n\
Reporting-MTA: dns; x\n\n\
Final-Recipient: rfc822; a@x\nStatus: 4.2.2\n\n\
Final-Recipient: rfc822; b@x\nStatus: 2.0.0\n\n\
Final-Recipient: rfc822; c@x\nDiagnostic-Code: smtp; 554 no thanks\n\n\
Final-Recipient: rfc822; d@x\nX-Unknown: 1\n";
    let r = parse(m.as_bytes());
    let actions: Vec<_> = r.recipients.iter().map(|r| r.action).collect();
    // d@x says nothing about what happened: no outcome.
    assert_eq!(
        actions,
        [Action::Delayed, Action::Delivered, Action::Failed]
    );
    assert_eq!(r.recipients[2].reason(), "554 no thanks");
}

#[test]
fn not_a_bounce() {
    let vacation = "From: ann@example.org\nSubject: Out of office\n\
Auto-Submitted: auto-replied\n\nI am away until Monday. Call 555 1234.\n";
    let r = parse(vacation.as_bytes());
    assert_eq!(r.format, None);
    assert!(r.recipients.is_empty());
    assert!(r.is_auto_reply());
    let junk = parse(b"\x00\xff garbage without headers");
    assert_eq!(junk.format, None);
    assert!(parse(b"").recipients.is_empty());
}

#[test]
fn hostile_input_does_not_panic() {
    // Unterminated multiparts, boundaries without parts, deep nesting,
    // non-UTF-8 bytes, odd xtext.
    let mut deep = String::new();
    for i in 0..50 {
        deep.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    deep.push_str("Content-Type: message/delivery-status\n\nAction: failed\n");
    let _ = parse(deep.as_bytes());
    for s in [
        "Content-Type: multipart/report; boundary=\"\"\n\n--\n",
        "Content-Type: multipart/report; boundary=x\n\n--x\n",
        "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822;+\nAction: failed\n",
        "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822;a+4@b\nStatus: 5\n",
        "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=",
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n====",
        "From: mailer-daemon\nSubject: Undeliverable\n\n5",
        "\n\n\n",
    ] {
        let _ = parse(s.as_bytes());
    }
    let mut bytes = PF_LOCAL.to_vec();
    bytes[200] = 0xff;
    bytes.truncate(bytes.len() / 2);
    let _ = parse(&bytes);
}

/// A bounce can nest `message/rfc822` parts as deep as its size allows;
/// mail-parser keeps each as a message inside its parent, and dropping that
/// chain recursively overflowed the stack (`dismantle`).
#[test]
fn deeply_nested_messages_do_not_overflow_the_stack() {
    let mut m = "Content-Type: message/rfc822\n\n".repeat(100_000);
    m.push_str("Subject: x\n\nhello\n");
    let r = parse(m.as_bytes());
    assert_eq!(r.format, None);
    // The first nested message is the "original": its only field is the
    // next Content-Type.
    assert_eq!(
        r.original_headers,
        [("Content-Type".to_string(), "message/rfc822".to_string())]
    );
    // Multiparts nested as deep are fine as well (mail-parser keeps them flat).
    let mut m = String::new();
    for i in 0..20_000 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\n"
        ));
    }
    let _ = parse(m.as_bytes());
}

// ---------------------------------------------------------------------------
// One fixture per MTA (tests/fixtures/bounces/README.md).

const PF_THREE: &[u8] = include_bytes!("../../tests/fixtures/bounces/postfix-three-recipients.eml");
const EXIM_DSN: &[u8] = include_bytes!("../../tests/fixtures/bounces/exim-4.96-failed.eml");
const EXCHANGE: &[u8] = include_bytes!("../../tests/fixtures/bounces/exchange-online-ndr.eml");
const GMAIL: &[u8] = include_bytes!("../../tests/fixtures/bounces/gmail-no-such-user.eml");
const CP1252: &[u8] = include_bytes!("../../tests/fixtures/bounces/windows-1252-text.eml");

/// (address, status, reason) of each failure, in report order.
fn failures(r: &Report) -> Vec<(&str, &str, String)> {
    r.failures()
        .map(|f| {
            (
                f.address().unwrap_or(""),
                f.status.as_deref().unwrap_or(""),
                f.reason(),
            )
        })
        .collect()
}

#[test]
fn postfix_three_recipients_local_and_remote() {
    let r = parse(PF_THREE);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.envid.as_deref(), Some("6740A1B2C3D4E5F8"));
    assert_eq!(
        failures(&r),
        [
            (
                "ghost2@test.example",
                "5.1.1",
                "5.1.1 unknown user: \"ghost2\"".to_string()
            ),
            (
                "bob@reject.example",
                "5.1.1",
                // The folded Diagnostic-Code, on one line.
                "550 5.1.1 <bob@reject.example>: Recipient address rejected: User unknown \
                 in virtual mailbox table"
                    .to_string()
            ),
            (
                "ghost1@test.example",
                "5.1.1",
                "5.1.1 unknown user: \"ghost1\"".to_string()
            ),
        ]
    );
    assert_eq!(r.recipients[1].remote_mta.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F8")
    );
    // Header values stay as written: the encoded word is not decoded.
    assert_eq!(
        r.original_headers_named("Subject").next(),
        Some("=?UTF-8?Q?Bestellbest=C3=A4tigung?=")
    );
    assert!(r.text.contains("<ghost1@test.example>: unknown user"));
}

#[test]
fn exim_multipart_report() {
    let r = parse(EXIM_DSN);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.reporting_mta.as_deref(), Some("mx.example.com"));
    assert_eq!(
        failures(&r),
        [
            (
                "nobody@example.com",
                // Exim's "Status: 5.0.0" gives way to the server's 5.1.1.
                "5.1.1",
                "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
                    .to_string()
            ),
            (
                "list@example.com",
                "5.0.0",
                "5.0.0 (no diagnostic in the report)".to_string()
            ),
        ]
    );
    assert_eq!(
        r.recipients[0].remote_mta.as_deref(),
        Some("mx2.example.com")
    );
    // The returned message (message/rfc822) carries our trace and Message-ID.
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F9")
    );
    let mid = r.original_headers_named("Message-ID").next().unwrap();
    assert_eq!(
        message_id_qid(mid, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5F9")
    );
    assert_eq!(
        r.header("To"),
        Some("bounces+6740A1B2C3D4E5F9@node1.example.net")
    );
    assert!(!r.is_auto_reply());
}

#[test]
fn exchange_online_ndr() {
    let r = parse(EXCHANGE);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(
        r.reporting_mta.as_deref(),
        Some("AM9PR01MB7250.eurprd01.prod.exchangelabs.com")
    );
    assert_eq!(
        failures(&r),
        [(
            "ghost@contoso.example",
            // RFC 3463 allows three digits of detail.
            "5.1.10",
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP \
             address lookup"
                .to_string()
        )]
    );
    // The plain alternative, quoted-printable soft breaks undone; not the HTML.
    assert!(
        r.text.contains(
            "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"
        ),
        "{}",
        r.text
    );
    assert!(!r.text.contains("<html>"));
    // text/rfc822-headers with CRLF line ends and folded trace fields.
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5FA")
    );
    assert_eq!(
        r.header("To"),
        Some("<bounces+6740A1B2C3D4E5FA@node1.example.net>")
    );
    // An NDR says Auto-Submitted too; it is still a bounce.
    assert!(!r.is_auto_reply());
}

#[test]
fn gmail_no_such_user() {
    let r = parse(GMAIL);
    assert_eq!(r.format, Some(Format::Rfc3464));
    assert_eq!(r.reporting_mta.as_deref(), Some("googlemail.com"));
    let f: Vec<_> = r.failures().collect();
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].final_recipient.as_deref(),
        Some("nosuchuser.4711@gmail.com")
    );
    assert_eq!(f[0].status.as_deref(), Some("5.1.1"));
    let d = f[0].diagnostic.as_deref().unwrap();
    assert!(
        d.starts_with("550-5.1.1 The email account that you tried to reach does not exist.")
            && d.ends_with(" - gsmtp"),
        "{d}"
    );
    assert_eq!(
        f[0].remote_mta.as_deref(),
        Some("gmail-smtp-in.l.google.com. (142.250.153.26, the server for the domain gmail.com.)")
    );
    // The text/plain three multiparts down (report > related > alternative).
    assert!(r.text.contains("** Address not found **"), "{}", r.text);
    assert_eq!(
        trace_qid(&r.original_headers, "node1.example.net").as_deref(),
        Some("6740A1B2C3D4E5FB")
    );
}

#[test]
fn windows_1252_text_bounce_keeps_its_euro_sign() {
    let r = parse(CP1252);
    assert_eq!(r.format, Some(Format::PostfixText));
    assert_eq!(
        failures(&r),
        [(
            "kunde@beispiel.example",
            "5.2.2",
            "552 5.2.2 Postfach voll – Speicherplatz erschöpft (Erweiterung für 2 € im Monat: \
             https://beispiel.example/speicher)"
                .to_string()
        )]
    );
    assert!(r.text.contains("„Rechnung über 100 €“"), "{}", r.text);
    assert!(!r.text.contains('\u{fffd}'));
}

/// A bounce whose only text is HTML (no RFC 3464 part, no text/plain): the
/// HTML is read as text, so the last-resort reading still finds the code.
#[test]
fn html_only_bounce() {
    let m = "From: postmaster@mail.example.org\n\
Subject: =?utf-8?Q?Unzustellbar=3A_Ihre_Nachricht?=\n\
Content-Type: text/html; charset=utf-8\n\
Content-Transfer-Encoding: quoted-printable\n\
\n\
<html><body><p>Delivery has failed to these recipients:</p>\n\
<p><a href=3D\"mailto:ann@example.org\">ann@example.org</a><br>\n\
550 5.1.1 RESOLVER.ADR.RecipNotFound; not found</p></body></html>\n";
    let r = parse(m.as_bytes());
    assert_eq!(r.format, Some(Format::Heuristic));
    assert_eq!(
        r.recipients[0].diagnostic.as_deref(),
        Some("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
    );
    assert!(r.text.contains("ann@example.org"));
    assert!(!r.text.contains("<p>"));
}

/// The heuristic reads the Subject with its RFC 2047 words decoded.
#[test]
fn encoded_subject_counts_for_the_heuristic() {
    let m = "From: robot@isp.example\n\
Subject: =?utf-8?B?VW5kZWxpdmVyYWJsZTogQmVzdGVsbGJlc3TDpHRpZ3VuZw==?=\n\
\n\
Remote said: 550 mailbox unavailable\n";
    let r = parse(m.as_bytes());
    assert_eq!(r.format, Some(Format::Heuristic));
    assert_eq!(
        r.recipients[0].reason(),
        "Remote said: 550 mailbox unavailable"
    );
}

#[test]
fn mbox_from_line_is_skipped() {
    let mut m = b"From MAILER-DAEMON Wed Dec  2 17:43:02 2026\n".to_vec();
    m.extend_from_slice(PF_THREE);
    let r = parse(&m);
    assert_eq!(
        r.header("From"),
        Some("Mail Delivery System <MAILER-DAEMON@mx.test.example>")
    );
    assert_eq!(r.failures().count(), 3);
}
