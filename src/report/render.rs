//! The report's and the notice's text and the message that carries them,
//! built purely from a [`Report`] or a [`BlockNotice`] and the
//! configuration: every untrusted value decoded, sanitised and capped, the
//! header fields from trusted values only (see `mod.rs`).

use std::fmt::Write as _;

use serde_json::json;

use super::{MAX_VALUE, Report};
use crate::account::{BlockReason, Reason, State};
use crate::clock;
use crate::config::Config;
use crate::queue::FailureKind;
use crate::sanitize;
use crate::store::BlockNotice;

/// An untrusted value as one line of a report: RFC 2047 encoded words
/// decoded (so subjects read as their sender meant them), then through the
/// sanitiser (`sanitize.rs`) and cut at `max` characters.
pub(super) fn shown(s: &str, max: usize) -> String {
    sanitize::truncate(&sanitize::line(&decode_encoded_words(s)), max).into_owned()
}

/// Decode RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?windows-1252?Q?...?=`)
/// in a header value, so subjects read as the sender meant them, in any
/// charset mail-parser knows (the bounce parser's MIME library, `dsn`):
/// a windows-1252 "€" stays a "€". Malformed words are left as they are.
pub fn decode_encoded_words(s: &str) -> String {
    if !s.contains("=?") {
        return s.to_string();
    }
    // A line break would end the field: one line at a time.
    s.split_inclusive('\n')
        .map(|line| {
            let text = line.trim_end_matches(['\r', '\n']);
            let field = format!("Subject: {text}\n\n");
            let decoded = mail_parser::MessageParser::new()
                .parse_headers(field.as_bytes())
                .and_then(|m| m.subject().map(str::to_owned))
                .unwrap_or_else(|| text.to_owned());
            decoded + &line[text.len()..]
        })
        .collect()
}

/// An account name as it may appear in a header: letters, digits and
/// `._-+@` only (account names come from passwd or the configuration, but
/// a header is no place to find out they were odd).
fn header_safe_name(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn when(ms: i64) -> String {
    clock::format_rfc3339(ms)
}

/// The subject of an account's daily report.
pub fn subject(r: &Report, hostname: &str) -> String {
    format!(
        "scriptmail report for {} on {}: {}",
        header_safe_name(&r.account),
        hostname,
        clock::format_day(r.day)
    )
}

/// The plain-text body of an account's daily report.
pub fn render(r: &Report, hostname: &str) -> String {
    let mut t = String::new();
    let day = clock::format_day(r.day);
    let _ = writeln!(
        t,
        "Mail report for the account \"{}\" on {hostname}",
        shown(&r.account, 64)
    );
    let _ = writeln!(t, "Day: {day} (00:00 to 24:00 UTC)");
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "{} mail(s) in error, {} held mail(s) expired, {} change(s) of the account's state.",
        r.errors_total,
        r.expired_total,
        r.events.len()
    );
    if r.errors_total > 0 {
        let _ = writeln!(t);
        heading(&mut t, "Mails in error");
        let _ = writeln!(
            t,
            "The receiving side refused these mails, or they could not be delivered in time."
        );
        for e in &r.errors {
            let _ = writeln!(t);
            let _ = writeln!(t, "{}  to: {}", when(e.at), shown(&e.rcpt, MAX_VALUE));
            let _ = writeln!(t, "    server answer: {}", shown(&e.message, MAX_VALUE * 2));
            let _ = writeln!(t, "    subject: {}", shown(&e.subject, MAX_VALUE));
            let _ = writeln!(t, "    script: {}", or_unknown(&e.script));
            let _ = writeln!(
                t,
                "    queue id: {} ({})",
                shown(&e.qid, 64),
                kind_text(e.kind)
            );
        }
        more(&mut t, r.errors_total, r.errors.len());
    }
    if r.expired_total > 0 {
        let _ = writeln!(t);
        heading(&mut t, "Held mail that expired");
        let _ = writeln!(
            t,
            "These mails were held while the account was blocked and were dropped, unsent,"
        );
        let _ = writeln!(t, "when they reached the maximum holding time.");
        for m in &r.expired {
            let _ = writeln!(t);
            let to: Vec<String> = m.recipients.iter().map(|a| shown(a, MAX_VALUE)).collect();
            let _ = writeln!(t, "{}  to: {}", when(m.at), to.join(", "));
            let _ = writeln!(t, "    written: {}", when(m.created));
            let _ = writeln!(t, "    subject: {}", shown(&m.subject, MAX_VALUE));
            let _ = writeln!(t, "    script: {}", or_unknown(&m.script));
            let _ = writeln!(t, "    queue id: {}", shown(&m.qid, 64));
        }
        more(&mut t, r.expired_total, r.expired.len());
    }
    if !r.events.is_empty() {
        let _ = writeln!(t);
        heading(&mut t, "Changes of the account's state");
        for e in &r.events {
            let _ = writeln!(t);
            let _ = writeln!(
                t,
                "{}  {} -> {} ({})",
                when(e.at),
                e.old,
                e.new,
                state_text(e.new)
            );
            let _ = writeln!(
                t,
                "    reason: {}, by: {}",
                shown(&e.reason, 32),
                shown(&e.actor, 64)
            );
            if !e.note.is_empty() {
                let _ = writeln!(t, "    note: {}", shown(&e.note, MAX_VALUE));
            }
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "-- ");
    let _ = writeln!(
        t,
        "Sent by scriptmail on {hostname} once a day when there is something to report."
    );
    t
}

fn heading(t: &mut String, title: &str) {
    let _ = writeln!(t, "{title}");
    let _ = writeln!(t, "{}", "=".repeat(title.chars().count()));
}

fn more(t: &mut String, total: i64, shown: usize) {
    if total > shown as i64 {
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "... and {} more (mailq-ctl errors lists them all).",
            total - shown as i64
        );
    }
}

fn or_unknown(script: &str) -> String {
    if script.is_empty() {
        "(unknown)".into()
    } else {
        shown(script, MAX_VALUE)
    }
}

fn kind_text(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Rejected => "refused by the relay",
        FailureKind::Expired => "expired in the queue",
        FailureKind::Dsn => "returned later by a delivery report",
    }
}

fn state_text(state: State) -> &'static str {
    match state {
        State::Ok => "sending",
        State::Force => "sending, with a doubled error allowance",
        State::Ko => "blocked: new mail is held",
        State::Bounce => "blocked for too many mails in error: new mail is held",
        State::Spam => "blocked by abuse handling: new mail is held",
        State::Purging => "held mail being deleted",
    }
}

/// Subject and body of the notice sent when an account is blocked
/// automatically.
pub fn render_notice(n: &BlockNotice, cfg: &Config) -> (String, String) {
    let account = shown(&n.account, 64);
    let subject = format!(
        "scriptmail: account {} blocked ({}) on {}",
        header_safe_name(&n.account),
        n.event.new,
        cfg.hostname
    );
    let mut t = String::new();
    let _ = writeln!(
        t,
        "The account \"{account}\" on {} was blocked automatically at {}.",
        cfg.hostname,
        when(n.event.at)
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "    new state: {} ({})",
        n.event.new,
        state_text(n.event.new)
    );
    let _ = writeln!(t, "    was: {}", n.event.old);
    let why = match Reason::parse(&n.event.reason) {
        Some(Reason::Bounce) => "too many of its mails came back in error",
        Some(Reason::Block(BlockReason::Limit)) => "it sent more mail than its limit allows",
        _ => "automatic protection",
    };
    let _ = writeln!(t, "    reason: {why}");
    if !n.event.note.is_empty() {
        let _ = writeln!(t, "    detail: {}", shown(&n.event.note, MAX_VALUE));
    }
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "While it is blocked, mail its scripts send is held, not delivered, for at most {}.",
        clock::format_age(crate::store::ms(cfg.hold_max_age))
    );
    let _ = writeln!(
        t,
        "An administrator can release it (mailq-ctl unblock) or delete it (mailq-ctl purge)."
    );
    let _ = writeln!(
        t,
        "The mails in error are listed by mailq-ctl errors and in the next daily report."
    );
    (subject, t)
}

/// The whole message, CRLF line endings, ready for the queue. The body is
/// 7-bit as is, or quoted-printable (RFC 2045 §6.7) when it holds UTF-8.
pub fn compose(
    cfg: &Config,
    to: &str,
    subject: &str,
    kind: &str,
    body: &str,
    qid: &str,
    now: i64,
) -> Vec<u8> {
    let ascii = body.is_ascii();
    let mut m = String::new();
    let mut h = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    h(
        "Received",
        &format!(
            "by {} (scriptmail report)\r\n\tid {qid}; {}",
            cfg.hostname,
            clock::format_rfc5322(now)
        ),
    );
    h("From", &format!("scriptmail <{}>", cfg.report_from));
    h("To", &format!("<{to}>"));
    h("Subject", &encode_subject(subject));
    h("Date", &clock::format_rfc5322(now));
    h("Message-ID", &format!("<{now}.{qid}@{}>", cfg.hostname));
    h("MIME-Version", "1.0");
    h("Content-Type", "text/plain; charset=utf-8");
    h(
        "Content-Transfer-Encoding",
        if ascii { "7bit" } else { "quoted-printable" },
    );
    // RFC 3834 §5: machine-generated; autoresponders must not answer.
    h("Auto-Submitted", "auto-generated");
    h("X-Scriptmail-Report", kind);
    m.push_str("\r\n");
    for line in body.lines() {
        if ascii {
            m.push_str(line);
            m.push_str("\r\n");
        } else {
            qp_line(&mut m, line);
        }
    }
    m.into_bytes()
}

/// A subject with non-ASCII (a hostname or account cannot have any, but a
/// configuration might) becomes one RFC 2047 `B` word per chunk.
fn encode_subject(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?utf-8?B?{}?=", base64_encode(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

fn base64_encode(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One body line, quoted-printable, soft-broken before 76 characters.
fn qp_line(m: &mut String, line: &str) {
    let bytes = line.as_bytes();
    let mut width = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let last = i + 1 == bytes.len();
        let lit = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
        let piece = if lit {
            (b as char).to_string()
        } else {
            format!("={b:02X}")
        };
        if width + piece.len() > 75 {
            m.push_str("=\r\n");
            width = 0;
        }
        m.push_str(&piece);
        width += piece.len();
    }
    m.push_str("\r\n");
}

/// The stable JSON form of one report (raw values: JSON escapes them).
pub fn report_json(r: &Report, status: &str, qid: Option<&str>) -> serde_json::Value {
    json!({
        "account": r.account,
        "report_to": r.report_to,
        "day": clock::format_day(r.day),
        "status": status,
        "qid": qid,
        "errors": {
            "total": r.errors_total,
            "items": r.errors.iter().map(|e| json!({
                "at": when(e.at),
                "at_ms": e.at,
                "qid": e.qid,
                "rcpt": e.rcpt,
                "kind": e.kind.as_str(),
                "message": e.message,
                "subject": e.subject,
                "script": e.script,
            })).collect::<Vec<_>>(),
        },
        "expired": {
            "total": r.expired_total,
            "items": r.expired.iter().map(|m| json!({
                "at": when(m.at),
                "at_ms": m.at,
                "created": when(m.created),
                "qid": m.qid,
                "sender": m.sender,
                "recipients": m.recipients,
                "subject": m.subject,
                "script": m.script,
            })).collect::<Vec<_>>(),
        },
        "events": r.events.iter().map(|e| json!({
            "at": when(e.at),
            "at_ms": e.at,
            "old_state": e.old.as_str(),
            "new_state": e.new.as_str(),
            "reason": e.reason,
            "actor": e.actor,
            "note": e.note,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::clock::DAY_MS;
    use crate::store::{ErrorRow, Event, ExpiredMail};

    const T0: i64 = 1_795_353_858_000; // 2026-11-22T13:24:18Z

    fn cfg() -> Config {
        Config::parse(
            "node.domain = \"node1.example.net\"\nreport.from = \"reports@node1.example.net\"\n",
            Path::new("/t.toml"),
        )
        .unwrap()
    }

    const HOSTILE: &str =
        "Win!\r\nBcc: victim@example.com\r\n\r\n\u{1b}[31mred\u{1b}[0m \u{202e}fdp.exe\u{7f}\u{85}";

    fn hostile_report() -> Report {
        Report {
            account: "acme\nX-Evil: 1".into(),
            report_to: Some("admin@example.com".into()),
            day: clock::day_of(T0),
            errors: vec![ErrorRow {
                at: T0,
                qid: "Q1\r\nX: y".into(),
                rcpt: "bob@example.com\r\nCc: all@example.com".into(),
                kind: FailureKind::Dsn,
                message: "550 5.1.1 <bob@example.com>: unknown\r\n.\r\nQUIT".into(),
                subject: HOSTILE.into(),
                script: "/var/www/\u{1b}]0;pwned\u{7}x.php".into(),
            }],
            errors_total: 1,
            expired: vec![ExpiredMail {
                at: T0,
                created: T0 - 3 * DAY_MS,
                qid: "H1".into(),
                sender: "a@b".into(),
                recipients: vec!["x@example.com\nTo: y@example.com".into()],
                subject: "=?UTF-8?B?SMOpbGxvIHfDtnJsZA==?=".into(),
                script: String::new(),
            }],
            expired_total: 1,
            events: vec![Event {
                at: T0,
                old: State::Ok,
                new: State::Bounce,
                reason: "bounce".into(),
                actor: "scriptmail".into(),
                note: "error ratio 3/4 (75%)".into(),
            }],
        }
    }

    #[test]
    fn shown_decodes_sanitises_and_caps_length() {
        assert_eq!(shown("a\r\nb\u{1b}[1m", 100), "a??b?[1m");
        assert_eq!(shown("x\u{202e}y\u{2028}z\u{200b}", 100), "x?y?z?");
        assert_eq!(shown("abcdef", 4), "abc…");
        assert_eq!(shown("é\u{85}", 10), "é?");
    }

    #[test]
    fn encoded_words_decode() {
        assert_eq!(decode_encoded_words("=?UTF-8?B?SMOpbGxv?="), "Héllo");
        assert_eq!(
            decode_encoded_words("=?iso-8859-1?Q?caf=E9_cr=E8me?= ok"),
            "café crème ok"
        );
        assert_eq!(decode_encoded_words("=?utf-8?q?a?= =?utf-8?q?b?="), "ab");
        // Charsets beyond Latin-1 and UTF-8: windows-1252's euro sign and
        // quotes (they came out as C1 controls, then "?"), KOI8-R.
        assert_eq!(
            decode_encoded_words("=?windows-1252?Q?=84Rechnung_=FCber_100_=80=93?="),
            "„Rechnung über 100 €“"
        );
        assert_eq!(decode_encoded_words("=?koi8-r?B?8NLJ18XU?="), "Привет");
        assert_eq!(shown("=?windows-1252?Q?100_=80?=", 20), "100 €");
        assert_eq!(decode_encoded_words("=?utf-8?B?!!!?="), "=?utf-8?B?!!!?=");
        assert_eq!(decode_encoded_words("no words"), "no words");
        // A decoded control character is still sanitised by `shown`.
        assert_eq!(shown("=?utf-8?Q?a=0D=0AB?=", 10), "a??B");
    }

    #[test]
    fn hostile_values_stay_on_their_line_in_the_body() {
        let r = hostile_report();
        let body = render(&r, "node1.example.net");
        for line in body.lines() {
            assert!(
                !line.chars().any(sanitize::is_unsafe),
                "control character in {line:?}"
            );
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("Cc:") && !line.starts_with("To: y")
            );
            assert!(line != ".", "a lone dot line");
        }
        assert!(
            body.contains("to: bob@example.com??Cc: all@example.com"),
            "{body}"
        );
        assert!(
            body.contains("subject: Win!??Bcc: victim@example.com?????[31mred?[0m ?fdp.exe??"),
            "{body}"
        );
        assert!(body.contains("subject: Héllo wörld"), "{body}");
        assert!(body.contains("script: /var/www/?]0;pwned?x.php"), "{body}");
        assert!(body.contains("script: (unknown)"));
        assert!(body.contains("ok -> bounce"));
        assert!(body.contains("note: error ratio 3/4 (75%)"));
        assert!(body.contains("1 mail(s) in error, 1 held mail(s) expired, 1 change(s)"));
    }

    #[test]
    fn headers_come_from_trusted_values_only() {
        let c = cfg();
        let r = hostile_report();
        let subject = subject(&r, &c.hostname);
        assert_eq!(
            subject,
            "scriptmail report for acme_X-Evil__1 on node1.example.net: 2026-11-22"
        );
        let body = render(&r, &c.hostname);
        let m = compose(
            &c,
            "admin@example.com",
            &subject,
            "daily",
            &body,
            "QID1",
            T0,
        );
        let text = String::from_utf8(m.clone()).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        let names: Vec<&str> = head
            .split("\r\n")
            .filter(|l| !l.starts_with('\t'))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "Received",
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
                "Content-Transfer-Encoding",
                "Auto-Submitted",
                "X-Scriptmail-Report"
            ]
        );
        assert!(head.contains("To: <admin@example.com>\r\n"));
        assert!(head.contains("From: scriptmail <reports@node1.example.net>\r\n"));
        assert!(head.contains("Message-ID: <1795353858000.QID1@node1.example.net>"));
        // UTF-8 in the body: quoted-printable, 7-bit on the wire, no bare CR/LF.
        assert!(head.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(m.is_ascii());
        assert!(!rest.replace("\r\n", "").contains(['\r', '\n']));
        assert!(rest.split("\r\n").all(|l| l.len() <= 76), "line too long");
        assert!(rest.contains("H=C3=A9llo"), "{rest}");
        // The trace and Message-ID let a bounce of the report be matched.
        let report = crate::dsn::parse(&m);
        assert_eq!(
            crate::dsn::trace_qid(&report.headers, "node1.example.net"),
            None,
            "the report's own trace is not a script's"
        );
        assert_eq!(
            crate::dsn::message_id_qid(report.header("Message-ID").unwrap(), "node1.example.net")
                .as_deref(),
            Some("QID1")
        );
    }

    #[test]
    fn ascii_body_is_sent_as_is() {
        let c = cfg();
        let m = compose(
            &c,
            "a@example.com",
            "s",
            "daily",
            "line one\n.\nend\n",
            "Q",
            T0,
        );
        let text = String::from_utf8(m).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: 7bit"));
        assert!(text.ends_with("\r\n\r\nline one\r\n.\r\nend\r\n"));
    }

    #[test]
    fn quoted_printable_lines() {
        let mut m = String::new();
        qp_line(&mut m, &"é".repeat(40));
        assert!(m.lines().all(|l| l.len() <= 76));
        assert!(m.contains("=\r\n"));
        let mut m = String::new();
        qp_line(&mut m, "a = b ");
        assert_eq!(m, "a =3D b=20\r\n");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(encode_subject("Café"), "=?utf-8?B?Q2Fmw6k=?=");
    }

    #[test]
    fn notice_text() {
        let c = cfg();
        let n = BlockNotice {
            account: "acme".into(),
            report_to: "admin@example.com".into(),
            event: Event {
                at: T0,
                old: State::Ok,
                new: State::Bounce,
                reason: "bounce".into(),
                actor: "scriptmail".into(),
                note: "error ratio 3/4 (75%) since 2026-11-21T13:24:18Z is above 50%".into(),
            },
        };
        let (subject, body) = render_notice(&n, &c);
        assert_eq!(
            subject,
            "scriptmail: account acme blocked (bounce) on node1.example.net"
        );
        assert!(body.contains("too many of its mails came back in error"));
        assert!(body.contains("above 50%"));
        assert!(body.contains("at most 3d00h"));
    }
}
