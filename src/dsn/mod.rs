//! Delivery-status notifications: turns one bounce message (bytes, as the
//! node MTA's pipe transport hands it over) into per-recipient outcomes.
//!
//! Pure: no I/O, no clock, no database — `bounce.rs` does the matching and
//! recording. Understands, in this order of preference:
//! - RFC 3464 reports: `multipart/report; report-type=delivery-status`
//!   (RFC 6522) with a `message/delivery-status` part (or RFC 6533's
//!   `message/global-delivery-status`), including the common deviations
//!   (`rfc3464.rs`), in any transfer encoding and charset, nested in
//!   `multipart/mixed` or not;
//! - the plain-text notices of MTAs that send no such part: Postfix's
//!   `<addr>: diagnostic`, Exim's "The following address(es) failed:" and
//!   its delay warnings, qmail-send's bounces (`legacy.rs`);
//! - as a last resort, any message that looks like a bounce (null-sender
//!   style From/Subject) and carries an SMTP or RFC 3463 failure code: it is
//!   reported with no recipient address, to be attributed by the caller from
//!   the matched message's own recipients.
//!
//! ## What a library does, and what stays here
//! The MIME layer is mail-parser's: header fields and their folding,
//! Content-Type parameters (RFC 2045, RFC 2231), multipart bodies (RFC 2046),
//! base64 and quoted-printable, RFC 2047 encoded words, and the charsets
//! (the single-byte ones — ISO 8859, windows-125x, KOI8 — UTF-7 and UTF-16;
//! a windows-1252 "€" stays a "€"; the multi-byte CJK ones would need its
//! `full_encoding` feature, encoding_rs, left out: what is matched and
//! recorded is ASCII). No library reads what the parts *mean*,
//! so that is hand-written: the RFC 3464 fields and their sloppy variants
//! (`rfc3464.rs`), the non-standard text formats (`legacy.rs`), and finding
//! scriptmail's own queue id in what came back (`qid.rs`).
//!
//! Nothing here trusts its input: a bounce can come from anyone who can send
//! mail to the node. Every value is returned raw; callers clean it before it
//! reaches a log, a terminal or a report.

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

mod legacy;
mod qid;
mod rfc3464;

pub use qid::{message_id_qid, trace_qid, verp_qid};

/// The largest nesting of MIME multiparts we descend into.
const MAX_DEPTH: usize = 6;
/// The most MIME parts we look at in one message.
const MAX_PARTS: usize = 64;
/// The most recipients we take from one report.
const MAX_RECIPIENTS: usize = 1000;

/// What the report says happened to one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Permanent failure: the mail is in error.
    Failed,
    /// Still being retried: a warning, not an error.
    Delayed,
    Delivered,
    Relayed,
    Expanded,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
        }
    }
}

/// Which format the outcomes were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An RFC 3464 `message/delivery-status` part.
    Rfc3464,
    /// Postfix's plain-text notice.
    PostfixText,
    /// Exim's classic text bounce or delay warning.
    Exim,
    /// qmail-send's bounce.
    Qmail,
    /// Something bounce-like with a failure code and no structure.
    Heuristic,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc3464 => "rfc3464",
            Format::PostfixText => "postfix-text",
            Format::Exim => "exim",
            Format::Qmail => "qmail",
            Format::Heuristic => "heuristic",
        }
    }
}

/// One recipient's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Final-Recipient` (or `X-Actual-Recipient`), address only.
    pub final_recipient: Option<String>,
    /// `Original-Recipient` (the ORCPT), address only.
    pub original_recipient: Option<String>,
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: Option<String>,
    /// The server's answer or the MTA's explanation, type prefix removed,
    /// folding collapsed.
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

impl RecipientStatus {
    fn new(action: Action) -> RecipientStatus {
        RecipientStatus {
            final_recipient: None,
            original_recipient: None,
            action,
            status: None,
            diagnostic: None,
            remote_mta: None,
        }
    }

    /// The address the report names, `Final-Recipient` first.
    pub fn address(&self) -> Option<&str> {
        self.final_recipient
            .as_deref()
            .or(self.original_recipient.as_deref())
    }

    /// One line saying why: the diagnostic, with the status code in front
    /// when the diagnostic does not already carry it.
    pub fn reason(&self) -> String {
        match (&self.status, &self.diagnostic) {
            (Some(s), Some(d)) if d.contains(s.as_str()) => d.clone(),
            (Some(s), Some(d)) => format!("{s} {d}"),
            (None, Some(d)) => d.clone(),
            (Some(s), None) => format!("{s} (no diagnostic in the report)"),
            (None, None) => "(no diagnostic in the report)".to_string(),
        }
    }
}

/// A parsed bounce.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Where the outcomes came from; `None` when the message is not a bounce.
    pub format: Option<Format>,
    /// `Original-Envelope-Id` (RFC 3464 §2.2.1): the ENVID we sent.
    pub envid: Option<String>,
    pub reporting_mta: Option<String>,
    /// The original envelope sender as the reporting MTA saw it, when it says
    /// (Postfix: `X-Postfix-Sender`): the VERP address.
    pub original_sender: Option<String>,
    pub recipients: Vec<RecipientStatus>,
    /// Header fields of the bounce itself, unfolded, in order; values as
    /// written (encoded words not decoded).
    pub headers: Vec<(String, String)>,
    /// Header fields of the returned original message, when included.
    pub original_headers: Vec<(String, String)>,
    /// The human-readable text, decoded: the first `text/plain` part (or the
    /// body), else the first `text/html` part as text.
    pub text: String,
}

impl Report {
    /// The first value of a header field of the bounce.
    pub fn header(&self, name: &str) -> Option<&str> {
        first(&self.headers, name)
    }

    /// Every value of a header field of the bounce, top first.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        all(&self.headers, name)
    }

    /// Every value of a header field of the returned original message.
    pub fn original_headers_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        all(&self.original_headers, name)
    }

    /// The recipients reported as permanently failed.
    pub fn failures(&self) -> impl Iterator<Item = &RecipientStatus> {
        self.recipients
            .iter()
            .filter(|r| r.action == Action::Failed)
    }

    /// Whether this is an automatic reply (RFC 3834) rather than a bounce.
    pub fn is_auto_reply(&self) -> bool {
        self.format.is_none()
            && self
                .header("Auto-Submitted")
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("auto-replied"))
    }
}

fn first<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn all<'a>(h: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    h.iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parse one bounce message.
pub fn parse(raw: &[u8]) -> Report {
    let raw = without_mbox_line(raw);
    let mut report = Report::default();
    let mut parts = Parts::default();
    let mut subject = String::new();
    match MessageParser::default().parse(raw) {
        Some(msg) => {
            if let Some(root) = msg.parts.first() {
                report.headers = fields(&msg, root);
            }
            subject = msg.subject().unwrap_or_default().to_owned();
            walk(&msg, 0, 0, &mut parts);
            dismantle(msg);
        }
        // Not even one header field: all of it is text.
        None => parts.text = Some(String::from_utf8_lossy(raw).into_owned()),
    }
    report.text = parts.text.or(parts.html).unwrap_or_default();
    if let Some(h) = parts.original {
        report.original_headers = h;
    }
    for status in &parts.status {
        rfc3464::read(status, &mut report);
    }
    if !parts.status.is_empty() {
        report.format = Some(Format::Rfc3464);
    }
    // A delivery-status part with no recipient block at all tells nothing
    // per recipient: fall through to the text formats. (A report with
    // per-message fields only stays `Rfc3464`: the caller knows it is a
    // bounce, with nothing to record.)
    if report.recipients.is_empty() {
        legacy::read(&subject, &mut report);
    }
    report.recipients.truncate(MAX_RECIPIENTS);
    report
}

/// Some pipe transports put an mbox `From ` line in front of the message
/// (Postfix pipe(8) `flags=F`); it is no header field.
fn without_mbox_line(raw: &[u8]) -> &[u8] {
    match raw.strip_prefix(b"From ") {
        Some(rest) => rest
            .iter()
            .position(|&b| b == b'\n')
            .and_then(|i| rest.get(i + 1..))
            .unwrap_or_default(),
        None => raw,
    }
}

/// What a walk over the MIME tree collects.
#[derive(Default)]
struct Parts {
    seen: usize,
    /// The bodies of the delivery-status parts.
    status: Vec<String>,
    /// The returned original message's header fields.
    original: Option<Vec<(String, String)>>,
    text: Option<String>,
    /// The first `text/html` part as text, for a bounce with no plain text.
    html: Option<String>,
}

/// Visit part `id` of `msg` and, for a multipart, its parts (mail-parser
/// keeps a message's parts in one list; a multipart names its children).
fn walk(msg: &Message<'_>, id: u32, depth: usize, out: &mut Parts) {
    out.seen += 1;
    if out.seen > MAX_PARTS {
        return;
    }
    let Some(part) = usize::try_from(id).ok().and_then(|i| msg.parts.get(i)) else {
        return;
    };
    if let PartType::Multipart(children) = &part.body {
        if depth < MAX_DEPTH {
            for &child in children {
                walk(msg, child, depth + 1, out);
            }
        }
        return;
    }
    let media = media_type(part);
    match media.as_str() {
        "message/delivery-status" | "message/global-delivery-status" => {
            out.status.push(body_text(part));
        }
        "message/rfc822" | "message/global" if out.original.is_none() => {
            out.original = Some(match &part.body {
                PartType::Message(inner) => inner
                    .parts
                    .first()
                    .map(|root| fields(inner, root))
                    .unwrap_or_default(),
                _ => header_block(body_text(part).as_bytes()),
            });
        }
        "text/rfc822-headers" | "message/global-headers" | "message/rfc822-headers"
            if out.original.is_none() =>
        {
            out.original = Some(header_block(body_text(part).as_bytes()));
        }
        "text/plain" if out.text.is_none() => out.text = Some(body_text(part)),
        "text/html" if out.html.is_none() => out.html = Some(html_to_text(&body_text(part))),
        // A multipart without a boundary: mail-parser leaves it one body.
        m if m.starts_with("multipart/") && out.text.is_none() => {
            out.text = Some(body_text(part));
        }
        _ => {}
    }
}

/// `type/subtype`, lowercase; no Content-Type means `text/plain`
/// (RFC 2045 §5.2).
fn media_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => {
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()).to_ascii_lowercase()
        }
        None => "text/plain".to_owned(),
    }
}

/// A part's content, transfer encoding undone and, for text, charset
/// decoded; anything else read as UTF-8 (RFC 6533 makes the global
/// delivery-status UTF-8; RFC 3464's is ASCII).
fn body_text(part: &MessagePart<'_>) -> String {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
        PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
        PartType::Multipart(_) => String::new(),
    }
}

/// The header fields of `part` (a part of `msg`), unfolded (RFC 5322
/// §2.2.3), values as written.
fn fields(msg: &Message<'_>, part: &MessagePart<'_>) -> Vec<(String, String)> {
    part.headers
        .iter()
        .map(|h| {
            let raw = usize::try_from(h.offset_start())
                .ok()
                .zip(usize::try_from(h.offset_end()).ok())
                .and_then(|(start, end)| msg.raw_message.get(start..end))
                .unwrap_or_default();
            (h.name().to_owned(), unfold(&String::from_utf8_lossy(raw)))
        })
        .collect()
}

/// A folded value on one line: each line trimmed, joined by one space.
fn unfold(value: &str) -> String {
    value
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The header fields at the start of `bytes` (a header block on its own, or
/// a message whose body is ignored).
fn header_block(bytes: &[u8]) -> Vec<(String, String)> {
    match MessageParser::default().parse_headers(bytes) {
        Some(m) => {
            let f = m.parts.first().map(|root| fields(&m, root));
            dismantle(m);
            f.unwrap_or_default()
        }
        None => Vec::new(),
    }
}

/// Drop a parsed message without recursing: mail-parser keeps each
/// `message/rfc822` part as a message inside its parent, and a bounce can
/// nest them by the hundred thousand, deeper than the stack a recursive
/// drop has (measured: 100,000 levels, 3 MB of input, overflowed it).
fn dismantle(msg: Message<'_>) {
    let mut stack = vec![msg];
    while let Some(mut m) = stack.pop() {
        for part in &mut m.parts {
            if let PartType::Message(inner) = std::mem::take(&mut part.body) {
                stack.push(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
