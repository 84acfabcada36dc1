//! Delivery-status notifications: turns one bounce message (bytes, as the
//! node MTA's pipe transport hands it over) into per-recipient outcomes.
//!
//! Pure: no I/O, no clock, no database — `bounce.rs` does the matching and
//! recording. Understands, in this order of preference:
//! - RFC 3464 reports: `multipart/report; report-type=delivery-status`
//!   (RFC 6522) with a `message/delivery-status` part (or RFC 6533's
//!   `message/global-delivery-status`), including the common deviations:
//!   per-recipient fields without the blank line that should separate them
//!   from the per-message fields, several recipients in one block, no
//!   `Final-Recipient` (only `Original-Recipient`/`X-Actual-Recipient`, or no
//!   address at all), no `Action` (inferred from `Status`), base64 or
//!   quoted-printable encoded parts, and reports nested in `multipart/mixed`;
//! - Postfix's plain-text notices (`<addr>: diagnostic`, pre-2.3 and the
//!   human-readable part of every Postfix bounce);
//! - Exim's classic text bounces ("The following address(es) failed:") and
//!   its delay warnings;
//! - qmail-send's bounces ("Hi. This is the qmail-send program ...");
//! - as a last resort, any message that looks like a bounce (null-sender
//!   style From/Subject) and carries an SMTP or RFC 3463 failure code: it is
//!   reported with no recipient address, to be attributed by the caller from
//!   the matched message's own recipients.
//!
//! Nothing here trusts its input: a bounce can come from anyone who can send
//! mail to the node. Every value is returned raw; callers clean it before it
//! reaches a log, a terminal or a report.

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

    fn parse(s: &str) -> Option<Action> {
        // Some MTAs append a comment: "failed (bad destination mailbox)".
        let word = s.split_whitespace().next()?.to_ascii_lowercase();
        Some(match word.trim_end_matches([';', ',']) {
            "failed" | "failure" => Action::Failed,
            "delayed" | "delay" => Action::Delayed,
            "delivered" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => return None,
        })
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
    /// Header fields of the bounce itself, unfolded, in order.
    pub headers: Vec<(String, String)>,
    /// Header fields of the returned original message, when included.
    pub original_headers: Vec<(String, String)>,
    /// The human-readable text (first `text/plain` part, or the body).
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
    let text = String::from_utf8_lossy(raw);
    let (headers, body) = split_headers(&text);
    let mut parts = Parts::default();
    walk(&headers, body, 0, &mut parts);
    let mut report = Report {
        headers,
        ..Report::default()
    };
    report.text = parts.text.unwrap_or_default();
    if let Some(h) = parts.original {
        report.original_headers = h;
    }
    for status in &parts.status {
        read_delivery_status(status, &mut report);
    }
    if !parts.status.is_empty() {
        report.format = Some(Format::Rfc3464);
    }
    // A delivery-status part with no recipient block at all tells nothing
    // per recipient: fall through to the text formats.
    if report.recipients.is_empty() {
        let text = report.text.clone();
        // A report with per-message fields only stays `Rfc3464`: the caller
        // knows it is a bounce, with nothing to record.
        let _ = read_qmail(&text, &mut report)
            || read_exim(&text, &mut report)
            || read_postfix_text(&text, &mut report)
            || read_heuristic(&text, &mut report);
    }
    report.recipients.truncate(MAX_RECIPIENTS);
    report
}

/// What a walk over the MIME tree collects.
#[derive(Default)]
struct Parts {
    seen: usize,
    status: Vec<String>,
    original: Option<Vec<(String, String)>>,
    text: Option<String>,
}

fn walk(headers: &[(String, String)], body: &str, depth: usize, out: &mut Parts) {
    out.seen += 1;
    if out.seen > MAX_PARTS {
        return;
    }
    let (mime, params) = content_type(first(headers, "Content-Type"));
    // A multipart without a boundary (or nested too deep) is read as text.
    if mime.starts_with("multipart/")
        && let Some(boundary) = param(&params, "boundary")
        && depth < MAX_DEPTH
    {
        for part in split_multipart(body, boundary) {
            let (h, b) = split_headers(part);
            walk(&h, b, depth + 1, out);
        }
        return;
    }
    match mime.as_str() {
        "message/delivery-status" | "message/global-delivery-status" => {
            out.status.push(decode_body(headers, body));
        }
        "message/rfc822"
        | "message/global"
        | "text/rfc822-headers"
        | "message/global-headers"
        | "message/rfc822-headers"
            if out.original.is_none() =>
        {
            let inner = decode_body(headers, body);
            out.original = Some(split_headers(&inner).0);
        }
        "text/plain" | "" if out.text.is_none() => {
            out.text = Some(decode_body(headers, body));
        }
        m if m.starts_with("multipart/") && out.text.is_none() => {
            out.text = Some(decode_body(headers, body));
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// RFC 3464 §2: the delivery-status body.

fn read_delivery_status(body: &str, report: &mut Report) {
    let mut cur: Option<RecipientFields> = None;
    for block in field_blocks(body) {
        for (name, value) in block {
            let lname = name.to_ascii_lowercase();
            match lname.as_str() {
                // Per-message fields (§2.2).
                "original-envelope-id" => {
                    let v = value.trim();
                    if !v.is_empty() && report.envid.is_none() {
                        report.envid = Some(xtext_decode(v));
                    }
                }
                "reporting-mta" => {
                    report
                        .reporting_mta
                        .get_or_insert_with(|| typed_value(&value));
                }
                "x-postfix-sender" => {
                    if let Some(a) = address_of(&value) {
                        report.original_sender.get_or_insert(a);
                    }
                }
                // Per-recipient fields (§2.3).
                "final-recipient" | "original-recipient" | "x-actual-recipient" | "action"
                | "status" | "diagnostic-code" | "remote-mta" => {
                    // A field seen twice means a new recipient started
                    // without the blank line that should separate them.
                    if cur.as_ref().is_some_and(|c| c.has(&lname)) {
                        push_recipient(cur.take(), report);
                    }
                    cur.get_or_insert_with(RecipientFields::default)
                        .set(&lname, &value);
                }
                _ => {}
            }
        }
        push_recipient(cur.take(), report);
    }
}

#[derive(Default)]
struct RecipientFields {
    final_recipient: Option<String>,
    original_recipient: Option<String>,
    actual_recipient: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
    remote_mta: Option<String>,
}

impl RecipientFields {
    fn slot(&mut self, lname: &str) -> &mut Option<String> {
        match lname {
            "final-recipient" => &mut self.final_recipient,
            "original-recipient" => &mut self.original_recipient,
            "x-actual-recipient" => &mut self.actual_recipient,
            "action" => &mut self.action,
            "status" => &mut self.status,
            "diagnostic-code" => &mut self.diagnostic,
            _ => &mut self.remote_mta,
        }
    }

    fn has(&self, lname: &str) -> bool {
        match lname {
            "final-recipient" => self.final_recipient.is_some(),
            "original-recipient" => self.original_recipient.is_some(),
            "x-actual-recipient" => self.actual_recipient.is_some(),
            "action" => self.action.is_some(),
            "status" => self.status.is_some(),
            "diagnostic-code" => self.diagnostic.is_some(),
            _ => self.remote_mta.is_some(),
        }
    }

    fn set(&mut self, lname: &str, value: &str) {
        *self.slot(lname) = Some(value.to_string());
    }
}

fn push_recipient(f: Option<RecipientFields>, report: &mut Report) {
    let Some(f) = f else { return };
    let status = f.status.as_deref().and_then(status_code);
    let diagnostic = f
        .diagnostic
        .as_deref()
        .map(typed_value)
        .filter(|d| !d.is_empty());
    // RFC 3464 requires Action; when it is missing, the status class says
    // what happened (RFC 3463 §3.1: 2 success, 4 persistent transient, 5
    // permanent), and failing that, the SMTP reply code in the diagnostic.
    let action = f
        .action
        .as_deref()
        .and_then(Action::parse)
        .or_else(|| status.as_deref().and_then(action_from_class))
        .or_else(|| {
            diagnostic
                .as_deref()
                .and_then(smtp_code)
                .and_then(|c| action_from_class(&c))
        });
    let Some(action) = action else { return };
    let mut r = RecipientStatus::new(action);
    r.final_recipient = f
        .final_recipient
        .as_deref()
        .and_then(address_of)
        .or_else(|| f.actual_recipient.as_deref().and_then(address_of));
    r.original_recipient = f.original_recipient.as_deref().and_then(address_of);
    r.status = status.or_else(|| diagnostic.as_deref().and_then(find_status_code));
    r.diagnostic = diagnostic;
    r.remote_mta = f.remote_mta.as_deref().map(typed_value);
    report.recipients.push(r);
}

fn action_from_class(code: &str) -> Option<Action> {
    match code.as_bytes().first()? {
        b'5' => Some(Action::Failed),
        b'4' => Some(Action::Delayed),
        b'2' => Some(Action::Delivered),
        _ => None,
    }
}

/// `rfc822; user@example.com` → `user@example.com` (RFC 3464 §2.3.2: an
/// address-type, `;`, the address). Angle brackets are tolerated.
fn address_of(value: &str) -> Option<String> {
    let v = typed_value(value);
    let v = v
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!v.is_empty() && v.contains('@')).then(|| v.to_string())
}

/// Strip the `type;` prefix of a typed field (address-type, mta-name-type,
/// diagnostic-type) and collapse folding whitespace.
fn typed_value(value: &str) -> String {
    let v = match value.split_once(';') {
        Some((ty, rest)) if is_type_token(ty.trim()) => rest,
        _ => value,
    };
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_type_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// RFC 3461 §4 xtext, as some MTAs copy the ENVID into the report without
/// decoding it: `+HH` stands for one byte. Decoded only when every `+` is
/// followed by two uppercase hex digits.
fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut all_hex = s.contains('+');
    let mut i = 0;
    while all_hex && i < b.len() {
        if b[i] == b'+' {
            // xtext hex digits are uppercase (RFC 3461 §4).
            let hex = |c: &u8| c.is_ascii_digit() || (b'A'..=b'F').contains(c);
            all_hex = b.get(i + 1).is_some_and(hex) && b.get(i + 2).is_some_and(hex);
            i += 3;
        } else {
            i += 1;
        }
    }
    if !all_hex {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole-field RFC 3463 status: `5.1.1`, possibly followed by a comment.
fn status_code(value: &str) -> Option<String> {
    let v = value.split_whitespace().next()?;
    is_status_code(v).then(|| v.to_string())
}

fn is_status_code(s: &str) -> bool {
    let mut it = s.split('.');
    let (Some(c), Some(a), Some(b), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return false;
    };
    matches!(c, "2" | "4" | "5")
        && (1..=3).contains(&a.len())
        && (1..=3).contains(&b.len())
        && a.bytes().all(|x| x.is_ascii_digit())
        && b.bytes().all(|x| x.is_ascii_digit())
}

/// The first RFC 3463 status code anywhere in a text (`#5.1.1` and
/// `(5.1.1)` included).
fn find_status_code(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || "()[]<>#,;:\"'".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .find(|w| is_status_code(w))
        .map(str::to_string)
}

/// The first SMTP reply code (RFC 5321 §4.2: three digits, then space or
/// `-`) starting a word of a text, for 4xx and 5xx only.
fn smtp_code(text: &str) -> Option<String> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(2)).find_map(|i| {
        let starts_word = i == 0 || !b[i - 1].is_ascii_alphanumeric() && b[i - 1] != b'.';
        let code = &b[i..i + 3];
        let ends = b
            .get(i + 3)
            .is_none_or(|c| matches!(c, b' ' | b'-' | b'\t'));
        (starts_word
            && ends
            && matches!(code[0], b'4' | b'5')
            && code[1].is_ascii_digit()
            && code[2].is_ascii_digit())
        .then(|| String::from_utf8_lossy(code).into_owned())
    })
}

// ---------------------------------------------------------------------------
// Non-standard formats. Each returns true when it recognised its format.

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
fn read_heuristic(text: &str, report: &mut Report) -> bool {
    let from = report.header("From").unwrap_or("").to_ascii_lowercase();
    let subject = report.header("Subject").unwrap_or("").to_ascii_lowercase();
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
    report.original_headers = split_headers(start).0;
}

// ---------------------------------------------------------------------------
// RFC 5322 header blocks and RFC 2045/2046 MIME, as much as bounces need.

/// Split a header block (unfolded, RFC 5322 §2.2.3) from the body. A first
/// line that is no header field means there is no header block.
fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    let mut first_line = true;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
        let line = text[pos..end].trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            return (headers, &text[end..]);
        }
        if first_line && line.starts_with("From ") {
            // An mbox separator, as some pipe transports prepend (flags=F).
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':')
            && is_field_name(name.trim_end())
        {
            headers.push((name.trim_end().to_string(), value.trim().to_string()));
        } else if first_line {
            return (Vec::new(), text);
        } else {
            // Not a field and not a continuation: the header block ended
            // without its blank line.
            return (headers, &text[pos..]);
        }
        first_line = false;
        pos = end;
    }
    (headers, "")
}

fn is_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// The fields of a delivery-status body, as blocks separated by blank lines.
fn field_blocks(body: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':')
            && is_field_name(name.trim_end())
        {
            cur.push((name.trim_end().to_string(), value.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    blocks
}

/// The media type (lowercase) and parameters of a Content-Type value
/// (RFC 2045 §5.1); no header means `text/plain`.
pub(crate) fn content_type(value: Option<&str>) -> (String, Vec<(String, String)>) {
    let Some(value) = value else {
        return ("text/plain".into(), Vec::new());
    };
    let mut pieces = split_params(value).into_iter();
    let mime = pieces
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let params = pieces
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), unquote(v.trim())))
        })
        .collect();
    (mime, params)
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Split on `;` outside quoted strings.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if quoted && c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c == ';' && !quoted {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut esc = false;
            for c in inner.chars() {
                if esc {
                    out.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// The parts of a multipart body (RFC 2046 §5.1.1): between `--boundary`
/// lines, up to `--boundary--` (or the end, for a truncated bounce).
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..].find('\n').map_or(body.len(), |i| pos + i + 1);
        let line = body[pos..end].trim_end();
        if let Some(rest) = line.strip_prefix(delim.as_str()) {
            let closing = rest.starts_with("--");
            if rest.is_empty() || closing {
                if let Some(s) = start {
                    parts.push(&body[s..pos]);
                }
                if closing {
                    return parts;
                }
                start = Some(end);
            }
        }
        pos = end;
    }
    if let Some(s) = start
        && s < body.len()
    {
        parts.push(&body[s..]);
    }
    parts
}

/// The body decoded from its Content-Transfer-Encoding (RFC 2045 §6).
fn decode_body(headers: &[(String, String)], body: &str) -> String {
    let cte = first(headers, "Content-Transfer-Encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match cte.as_str() {
        "base64" => {
            String::from_utf8_lossy(&base64_decode(body, false).unwrap_or_default()).into_owned()
        }
        "quoted-printable" => String::from_utf8_lossy(&qp_decode(body)).into_owned(),
        _ => body.to_string(),
    }
}

/// Decode base64 (RFC 2045 §6.8). A MIME body part carries line breaks and
/// may carry junk, which is skipped; an encoded word (RFC 2047) must be
/// clean, so `strict` refuses any other character.
pub(crate) fn base64_decode(s: &str, strict: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ if strict => return None,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn qp_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            // Soft line break: `=` at the end of a line.
            let rest = &b[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Finding scriptmail's own queue id in what came back.

/// The queue id a VERP address carries: `<local_part>+<QID>@<domain>`
/// (compared without regard to case: MTAs may fold addresses). Returned
/// uppercased, as scriptmail writes queue ids.
pub fn verp_qid(addr: &str, local_part: &str, domain: &str) -> Option<String> {
    let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, dom) = a.rsplit_once('@')?;
    if !dom.eq_ignore_ascii_case(domain) {
        return None;
    }
    // `get` and `strip_prefix`, never `[..n]`: `local` is outside input and
    // `n` may fall inside one of its multi-byte characters.
    let head = local.get(..local_part.len())?;
    if !head.eq_ignore_ascii_case(local_part) {
        return None;
    }
    qid_token(local.get(local_part.len()..)?.strip_prefix('+')?)
}

/// The queue id in scriptmail's trace header among `headers` (the original
/// message's), written by host `hostname`: `Received: by HOST (scriptmail,
/// from userid UID account NAME) id QID; DATE` (RFC 5321 §4.4). The first
/// such field is ours: scriptmail prepends it, so a forged one written by
/// the script sits below it.
pub fn trace_qid(headers: &[(String, String)], hostname: &str) -> Option<String> {
    let prefix = format!("by {hostname} (scriptmail, ");
    let value = all(headers, "Received").find(|v| {
        v.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&prefix))
    })?;
    let after = value.split_once(") id ")?.1;
    qid_token(after.split(';').next()?.trim())
}

/// The queue id in a Message-ID scriptmail generated: `<MS.QID@HOST>`.
pub fn message_id_qid(value: &str, hostname: &str) -> Option<String> {
    let v = value.trim().trim_start_matches('<').trim_end_matches('>');
    let (left, host) = v.rsplit_once('@')?;
    if !host.eq_ignore_ascii_case(hostname) {
        return None;
    }
    let (ms, qid) = left.split_once('.')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    qid_token(qid)
}

/// A queue id as scriptmail writes them: 1-64 ASCII letters and digits.
fn qid_token(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| s.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Bounces a real Postfix 3.7 produced (captured from a private instance
    // receiving mail with a VERP sender; see tests/it/bounce.rs).
    const PF_LOCAL: &[u8] = include_bytes!("../tests/fixtures/dsn/postfix-local-unknown.eml");
    const PF_SMTP: &[u8] = include_bytes!("../tests/fixtures/dsn/postfix-smtp-reject.eml");
    const PF_DELAY: &[u8] = include_bytes!("../tests/fixtures/dsn/postfix-delayed.eml");

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

    #[test]
    fn verp_addresses() {
        let q = |a| verp_qid(a, "bounces", "node1.example.net");
        assert_eq!(
            q("bounces+6740A1B2C3D4E5F7@node1.example.net").as_deref(),
            Some("6740A1B2C3D4E5F7")
        );
        // Folded by an MTA, in angle brackets.
        assert_eq!(
            q("<BOUNCES+6740a1b2c3d4e5f7@NODE1.example.net>").as_deref(),
            Some("6740A1B2C3D4E5F7")
        );
        assert_eq!(q("bounces@node1.example.net"), None);
        assert_eq!(q("bounces+@node1.example.net"), None);
        assert_eq!(q("bouncesX6740@node1.example.net"), None);
        assert_eq!(q("bounces+6740@other.example"), None);
        assert_eq!(q("bounces+67;40@node1.example.net"), None);
        assert_eq!(q("b+6740@node1.example.net"), None);
    }

    #[test]
    fn verp_addresses_with_non_ascii_local_parts() {
        // Anyone can send these: a multi-byte character where the prefix or
        // its `+` would be must not abort (it did: byte 7 inside "é").
        let q = |a| verp_qid(a, "bounces", "node1.example.net");
        for a in [
            "bounce\u{e9}@node1.example.net",
            "bounce\u{e9}6740@node1.example.net",
            "bounces\u{e9}6740@node1.example.net",
            "bounc\u{e9}+6740@node1.example.net",
            "\u{e9}@node1.example.net",
            "bounces+\u{e9}@node1.example.net",
            "bounces+67\u{e9}40@node1.example.net",
            "\u{1f600}\u{1f600}@node1.example.net",
        ] {
            assert_eq!(q(a), None, "{a:?}");
        }
        // A non-ASCII configured prefix works like an ASCII one.
        assert_eq!(
            verp_qid("r\u{e9}+AB12@n.test", "r\u{e9}", "n.test").as_deref(),
            Some("AB12")
        );
        assert_eq!(verp_qid("r\u{e8}+AB12@n.test", "r\u{e9}", "n.test"), None);
    }

    #[test]
    fn trace_header_forgery_below_ours_is_ignored() {
        let h = vec![
            ("Received".to_string(), "from mx (Postfix) id X".to_string()),
            (
                "Received".to_string(),
                "by node1.example.net (scriptmail, from userid 5 account a) id REAL1; date"
                    .to_string(),
            ),
            (
                "Received".to_string(),
                "by node1.example.net (scriptmail, from userid 6 account b) id FORGED; date"
                    .to_string(),
            ),
        ];
        assert_eq!(trace_qid(&h, "node1.example.net").as_deref(), Some("REAL1"));
        assert_eq!(trace_qid(&h, "other.example"), None);
        assert_eq!(
            message_id_qid("<17.ABC@node1.example.net>", "node1.example.net").as_deref(),
            Some("ABC")
        );
        assert_eq!(
            message_id_qid("<x.ABC@node1.example.net>", "node1.example.net"),
            None
        );
        assert_eq!(
            message_id_qid("<17.ABC@elsewhere>", "node1.example.net"),
            None
        );
    }
}
