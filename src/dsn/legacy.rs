//! The plain-text notices of MTAs that send no RFC 3464 part (or whose
//! report part names no recipient): Postfix's human-readable notice (all of
//! a Postfix bounce before 2.3), Exim's classic bounce and delay warning,
//! qmail-send's bounce, and a last-resort reading of anything bounce-like
//! that carries a failure code.
//!
//! These are texts written for people, each MTA its own way; no library
//! reads them, so they are matched here on the sentences those MTAs write.

use super::rfc3464::{find_status_code, smtp_code};
use super::{Action, Format, RecipientStatus, Report, header_block};

/// Read the outcomes from the report's text, trying each format in turn;
/// `subject` is the bounce's Subject, RFC 2047 words decoded.
pub(super) fn read(subject: &str, report: &mut Report) {
    let text = std::mem::take(&mut report.text);
    let _ = read_qmail(&text, report)
        || read_exim(&text, report)
        || read_postfix_text(&text, report)
        || read_heuristic(&text, subject, report);
    report.text = text;
}

/// qmail-send: recipients as `<addr>:` lines, each followed by its
/// explanation, until "--- Below this line is a copy of the message."
fn read_qmail(text: &str, report: &mut Report) -> bool {
    if !(text.contains("This is the qmail-send program")
        || text.contains("I'm afraid I wasn't able to deliver your message"))
    {
        return false;
    }
    let (notice, copy) = match text.find("--- Below this line is a copy of the message") {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let delayed = notice.contains("This is a temporary error");
    let mut cur: Option<(String, Vec<String>)> = None;
    let flush = |cur: &mut Option<(String, Vec<String>)>, report: &mut Report| {
        if let Some((addr, lines)) = cur.take() {
            let mut r = RecipientStatus::new(if delayed {
                Action::Delayed
            } else {
                Action::Failed
            });
            let diag = lines.join(" ");
            r.status = find_status_code(&diag);
            r.diagnostic = (!diag.is_empty()).then_some(diag);
            r.final_recipient = Some(addr);
            report.recipients.push(r);
        }
    };
    for line in notice.lines() {
        let t = line.trim_end_matches('\r');
        if let Some(addr) = t
            .strip_prefix('<')
            .and_then(|s| s.split_once(">:"))
            .map(|(a, _)| a)
            .filter(|a| a.contains('@') && !a.contains(char::is_whitespace))
        {
            flush(&mut cur, report);
            cur = Some((addr.to_string(), Vec::new()));
            let rest = t.split_once(">:").map(|(_, r)| r.trim()).unwrap_or("");
            if !rest.is_empty()
                && let Some((_, l)) = cur.as_mut()
            {
                l.push(rest.to_string());
            }
        } else if t.trim().is_empty() {
            flush(&mut cur, report);
        } else if let Some((_, l)) = cur.as_mut() {
            l.push(t.trim().to_string());
        }
    }
    flush(&mut cur, report);
    if let Some(copy) = copy {
        set_inline_original(copy, report);
    }
    report.format = Some(Format::Qmail);
    true
}

/// Exim's text bounce: addresses indented by two spaces after "The
/// following address(es) failed:", explanations indented deeper, until
/// "------ This is a copy of the message". Its delay warning lists
/// addresses the same way, each with a "Delay reason".
fn read_exim(text: &str, report: &mut Report) -> bool {
    let failed = text.find("following address(es) failed");
    let delayed = text
        .find("has not yet been delivered to one or more of its")
        .filter(|_| failed.is_none());
    let Some(start) = failed.or(delayed) else {
        return false;
    };
    let action = if failed.is_some() {
        Action::Failed
    } else {
        Action::Delayed
    };
    let rest = &text[start..];
    let (notice, copy) = match rest.find("------ This is a copy of the message") {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let mut cur: Option<(String, Vec<String>)> = None;
    let flush = |cur: &mut Option<(String, Vec<String>)>, report: &mut Report| {
        if let Some((addr, lines)) = cur.take() {
            let mut r = RecipientStatus::new(action);
            let diag = lines.join(" ");
            r.status = find_status_code(&diag);
            r.diagnostic = (!diag.is_empty()).then_some(diag);
            r.final_recipient = Some(addr);
            report.recipients.push(r);
        }
    };
    // Skip the first line: it is the sentence that introduced the list.
    for line in notice.lines().skip(1) {
        let t = line.trim_end_matches('\r');
        let indent = t.len() - t.trim_start().len();
        let body = t.trim();
        if body.is_empty() {
            continue;
        }
        if (1..=3).contains(&indent) && body.contains('@') && !body.contains(' ') {
            flush(&mut cur, report);
            let addr = body
                .trim_end_matches(':')
                .trim_start_matches('<')
                .trim_end_matches('>');
            cur = Some((addr.to_string(), Vec::new()));
        } else if indent >= 4 {
            if let Some((_, l)) = cur.as_mut()
                && !body.starts_with("(generated from")
            {
                l.push(body.to_string());
            }
        } else {
            // Back at the left margin: the list is over.
            flush(&mut cur, report);
            if indent == 0 && !report.recipients.is_empty() {
                break;
            }
        }
    }
    flush(&mut cur, report);
    if report.recipients.is_empty() {
        return false;
    }
    if let Some(copy) = copy {
        set_inline_original(copy, report);
    }
    report.format = Some(Format::Exim);
    true
}

/// Postfix's human-readable notice: `<addr>: explanation`, continued on
/// lines indented by four spaces. Delay warnings say "THIS IS A WARNING
/// ONLY".
fn read_postfix_text(text: &str, report: &mut Report) -> bool {
    let action = if text.contains("THIS IS A WARNING ONLY") {
        Action::Delayed
    } else {
        Action::Failed
    };
    let mut found = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim_end_matches('\r');
        let parsed = t.strip_prefix('<').and_then(|s| s.split_once(">: "));
        if let Some((addr, diag)) = parsed.filter(|(a, _)| a.contains('@'))
            && !a_has_space(addr)
        {
            if let Some(c) = cur.take() {
                found.push(c);
            }
            cur = Some((addr.to_string(), diag.trim().to_string()));
        } else if t.starts_with(char::is_whitespace) && !t.trim().is_empty() {
            if let Some((_, d)) = cur.as_mut() {
                d.push(' ');
                d.push_str(t.trim());
            }
        } else if let Some(c) = cur.take() {
            found.push(c);
        }
    }
    if let Some(c) = cur.take() {
        found.push(c);
    }
    if found.is_empty() {
        return false;
    }
    for (addr, diag) in found {
        let mut r = RecipientStatus::new(action);
        r.status = find_status_code(&diag);
        r.diagnostic = Some(diag);
        r.final_recipient = Some(addr);
        report.recipients.push(r);
    }
    report.format = Some(Format::PostfixText);
    true
}

fn a_has_space(a: &str) -> bool {
    a.contains(char::is_whitespace)
}

/// Anything that presents itself as a bounce and carries a failure code:
/// one outcome without an address, with the line that holds the code.
fn read_heuristic(text: &str, subject: &str, report: &mut Report) -> bool {
    let from = report.header("From").unwrap_or("").to_ascii_lowercase();
    let subject = subject.to_ascii_lowercase();
    let bounce_sender = ["mailer-daemon", "postmaster", "mail delivery"]
        .iter()
        .any(|k| from.contains(k));
    let bounce_subject = [
        "undeliver",
        "undelivered",
        "delivery status notification",
        "delivery failure",
        "delivery has failed",
        "failure notice",
        "returned mail",
        "mail delivery failed",
        "could not be delivered",
        "non-delivery",
        "nondeliverable",
        "delivery report",
        "delayed mail",
        "delivery delayed",
    ]
    .iter()
    .any(|k| subject.contains(k));
    if !(bounce_sender || bounce_subject) {
        return false;
    }
    let line = text.lines().map(str::trim).find(|l| {
        find_status_code(l).is_some_and(|c| !c.starts_with('2')) || smtp_code(l).is_some()
    });
    let Some(line) = line else { return false };
    let lower = text.to_ascii_lowercase();
    let delayed = [
        "will be retried",
        "will keep trying",
        "still trying",
        "not yet been delivered",
        "warning only",
        "delivery delayed",
        "delayed mail",
    ]
    .iter()
    .any(|k| lower.contains(k) || subject.contains(k));
    let code = find_status_code(line).or_else(|| smtp_code(line));
    let action = if delayed || code.as_deref().is_some_and(|c| c.starts_with('4')) {
        Action::Delayed
    } else {
        Action::Failed
    };
    let mut r = RecipientStatus::new(action);
    r.status = find_status_code(line);
    r.diagnostic = Some(line.split_whitespace().collect::<Vec<_>>().join(" "));
    report.recipients.push(r);
    report.format = Some(Format::Heuristic);
    true
}

/// The original message copied inline after a marker line: its header
/// block starts after the marker and any blank lines.
fn set_inline_original(copy: &str, report: &mut Report) {
    if !report.original_headers.is_empty() {
        return;
    }
    let after_marker = copy.split_once('\n').map(|(_, r)| r).unwrap_or("");
    let start = after_marker.trim_start_matches(['\r', '\n', ' ', '\t']);
    report.original_headers = header_block(start.as_bytes());
}

#[cfg(test)]
mod tests {
    use crate::dsn::{Action, Format, message_id_qid, parse, trace_qid};

    const QMAIL: &str = "Return-Path: <>\n\
From: MAILER-DAEMON@mail.example.com\n\
To: bounces+AAAA0000BBBB1111@node1.example.net\n\
Subject: failure notice\n\
\n\
Hi. This is the qmail-send program at mail.example.com.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\
\n\
<gone@example.com>:\n\
Sorry, no mailbox here by that name. (#5.1.1)\n\
\n\
<full@example.com>:\n\
192.0.2.7 does not like recipient.\n\
Remote host said: 552 mailbox over quota\n\
Giving up on 192.0.2.7.\n\
\n\
--- Below this line is a copy of the message.\n\
\n\
Return-Path: <bounces+AAAA0000BBBB1111@node1.example.net>\n\
Received: by node1.example.net (scriptmail, from userid 1001 account acme)\n\
\tid AAAA0000BBBB1111; Sun, 22 Nov 2026 13:24:18 +0000\n\
Subject: hi\n\
\n\
body\n";

    #[test]
    fn qmail_bounce() {
        let r = parse(QMAIL.as_bytes());
        assert_eq!(r.format, Some(Format::Qmail));
        assert_eq!(r.recipients.len(), 2);
        assert_eq!(
            r.recipients[0].final_recipient.as_deref(),
            Some("gone@example.com")
        );
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            r.recipients[0].diagnostic.as_deref(),
            Some("Sorry, no mailbox here by that name. (#5.1.1)")
        );
        assert!(r.recipients[1].reason().contains("552 mailbox over quota"));
        assert!(r.recipients.iter().all(|x| x.action == Action::Failed));
        assert_eq!(
            trace_qid(&r.original_headers, "node1.example.net").as_deref(),
            Some("AAAA0000BBBB1111")
        );
    }

    const EXIM: &str = r"From: Mail Delivery System <Mailer-Daemon@mx.example.com>
To: bounces+CCCC@node1.example.net
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  nobody@example.com
    host mx.example.com [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<nobody@example.com>:
    550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown
  alias@example.com
    (generated from list@example.com)
    Unrouteable address

------ This is a copy of the message, including all the headers. ------

Return-path: <bounces+CCCC@node1.example.net>
Message-ID: <1795353858000.CCCC@node1.example.net>
Subject: hi

body
";

    #[test]
    fn exim_bounce() {
        let r = parse(EXIM.as_bytes());
        assert_eq!(r.format, Some(Format::Exim));
        assert_eq!(r.recipients.len(), 2, "{:?}", r.recipients);
        assert_eq!(
            r.recipients[0].final_recipient.as_deref(),
            Some("nobody@example.com")
        );
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        assert!(r.recipients[0].reason().contains("User unknown"));
        assert_eq!(
            r.recipients[1].final_recipient.as_deref(),
            Some("alias@example.com")
        );
        assert_eq!(
            r.recipients[1].diagnostic.as_deref(),
            Some("Unrouteable address")
        );
        let mid = r.original_headers_named("Message-ID").next().unwrap();
        assert_eq!(
            message_id_qid(mid, "node1.example.net").as_deref(),
            Some("CCCC")
        );
        assert!(!r.is_auto_reply());
    }

    #[test]
    fn exim_delay_warning() {
        let m = r"From: Mail Delivery System <Mailer-Daemon@mx.example.com>
Subject: Warning: message 1abc-000 delayed 24 hours

This message was created automatically by mail delivery software.

A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.com.

The message identifier is:     1abc-000

The address(es) affected are:
  slow@example.com
    Delay reason: SMTP error from remote mail server after RCPT TO:<slow@example.com>:
    451 4.7.1 try later

No action is required on your part.
";
        let r = parse(m.as_bytes());
        assert_eq!(r.format, Some(Format::Exim));
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].action, Action::Delayed);
        assert_eq!(r.failures().count(), 0);
    }

    #[test]
    fn postfix_text_only() {
        // Postfix before 2.3 (and any relay that strips the report part).
        let m = r"From: MAILER-DAEMON@old.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender

This is the Postfix program at host old.example.com.

<x@example.com>: host mx.example.com[192.0.2.9] said: 550 5.1.1 <x@example.com>:
    Recipient address rejected: User unknown (in reply to RCPT TO command)
";
        let r = parse(m.as_bytes());
        assert_eq!(r.format, Some(Format::PostfixText));
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(
            r.recipients[0].final_recipient.as_deref(),
            Some("x@example.com")
        );
        assert_eq!(r.recipients[0].status.as_deref(), Some("5.1.1"));
        assert!(
            r.recipients[0]
                .reason()
                .ends_with("(in reply to RCPT TO command)")
        );
    }

    #[test]
    fn heuristic_bounce_without_addresses() {
        let m = "From: \"Mail Delivery Subsystem\" <mailer-daemon@isp.example>\n\
Subject: Returned mail: see transcript for details\n\n\
The original message was received at Sun, 22 Nov 2026\n\n\
   ----- The following addresses had permanent fatal errors -----\n\
(reason: 550 Requested action not taken: mailbox unavailable)\n";
        let r = parse(m.as_bytes());
        assert_eq!(r.format, Some(Format::Heuristic));
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].address(), None);
        assert_eq!(r.recipients[0].action, Action::Failed);
        assert!(
            r.recipients[0]
                .reason()
                .contains("550 Requested action not taken")
        );
    }
}
