//! The fields of a `message/delivery-status` body (RFC 3464 §2) and what they
//! mean, including the deviations real MTAs make: per-recipient fields without
//! the blank line that should separate them from the per-message fields,
//! several recipients in one block, no `Final-Recipient` (only
//! `Original-Recipient`/`X-Actual-Recipient`, or no address at all), no
//! `Action` (inferred from `Status`), and Exim's `Status: 5.0.0` next to a
//! precise code in the diagnostic.
//!
//! mail-parser reads the fields of each block (folding, names); no library
//! knows what they mean, so that is here.

use super::{Action, RecipientStatus, Report, header_block};
use crate::dsn_params::xtext_decode;

/// Read the fields of one delivery-status body into `report`.
pub(super) fn read(body: &str, report: &mut Report) {
    let mut cur: Option<RecipientFields> = None;
    for block in field_blocks(body) {
        for (name, value) in block {
            let lname = name.to_ascii_lowercase();
            match lname.as_str() {
                // Per-message fields (§2.2).
                "original-envelope-id" => {
                    let v = value.trim();
                    if !v.is_empty() && report.envid.is_none() {
                        report.envid = Some(envid(v));
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

/// The fields of a delivery-status body, as blocks separated by blank lines
/// (RFC 3464 §2.1).
fn field_blocks(body: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    for line in body.split_inclusive('\n') {
        if line.trim().is_empty() {
            if let Some(s) = start.take() {
                blocks.push(body.get(s..pos).unwrap_or_default());
            }
        } else if start.is_none() {
            start = Some(pos);
        }
        pos += line.len();
    }
    if let Some(s) = start {
        blocks.push(body.get(s..).unwrap_or_default());
    }
    blocks
        .into_iter()
        .map(|b| header_block(b.as_bytes()))
        .filter(|fields| !fields.is_empty())
        .collect()
}

/// The ENVID as we sent it: RFC 3464 §2.2.1 wants it as the xtext it
/// travelled in, and some MTAs copy it decoded instead; decoded only when it
/// is valid xtext (RFC 3461 §4).
fn envid(v: &str) -> String {
    match xtext_decode(v) {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => v.to_owned(),
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
    let diagnostic = f
        .diagnostic
        .as_deref()
        .map(typed_value)
        .filter(|d| !d.is_empty());
    let from_diagnostic = diagnostic.as_deref().and_then(find_status_code);
    let status = match (f.status.as_deref().and_then(status_code), from_diagnostic) {
        // RFC 3463 §3.1: X.0.0 is "other or undefined status". Exim writes
        // it for every failure and puts the server's own, precise code of
        // the same class in the Diagnostic-Code.
        (Some(s), Some(d))
            if s.ends_with(".0.0") && d.get(..1) == s.get(..1) && !d.ends_with(".0.0") =>
        {
            Some(d)
        }
        (Some(s), _) => Some(s),
        (None, d) => d,
    };
    // RFC 3464 requires Action; when it is missing, the status class says
    // what happened (RFC 3463 §3.1: 2 success, 4 persistent transient, 5
    // permanent), and failing that, the SMTP reply code in the diagnostic.
    let action = f
        .action
        .as_deref()
        .and_then(parse_action)
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
    r.status = status;
    r.diagnostic = diagnostic;
    r.remote_mta = f.remote_mta.as_deref().map(typed_value);
    report.recipients.push(r);
}

/// The `Action` field (RFC 3464 §2.3.3). Some MTAs append a comment:
/// "failed (bad destination mailbox)".
fn parse_action(s: &str) -> Option<Action> {
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

/// A whole-field RFC 3463 status: `5.1.1`, possibly followed by a comment.
fn status_code(value: &str) -> Option<String> {
    let v = value.split_whitespace().next()?;
    is_status_code(v).then(|| v.to_string())
}

/// `class.subject.detail` (RFC 3463 §2): class 2, 4 or 5, then one to three
/// digits twice.
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
pub(super) fn find_status_code(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || "()[]<>#,;:\"'".contains(c))
        .map(|w| w.trim_end_matches('.'))
        .find(|w| is_status_code(w))
        .map(str::to_string)
}

/// The first SMTP reply code (RFC 5321 §4.2: three digits, then space or
/// `-`) starting a word of a text, for 4xx and 5xx only.
pub(super) fn smtp_code(text: &str) -> Option<String> {
    let b = text.as_bytes();
    b.windows(3).enumerate().find_map(|(i, code)| {
        let before = i.checked_sub(1).and_then(|j| b.get(j));
        let starts_word = before.is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'.');
        let ends = b
            .get(i + 3)
            .is_none_or(|c| matches!(c, b' ' | b'-' | b'\t'));
        let is_code =
            matches!(code, [b'4' | b'5', x, y] if x.is_ascii_digit() && y.is_ascii_digit());
        (starts_word && ends && is_code).then(|| String::from_utf8_lossy(code).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_in_text() {
        assert_eq!(find_status_code("(#5.1.1)").as_deref(), Some("5.1.1"));
        assert_eq!(
            find_status_code("status 4.7.10.").as_deref(),
            Some("4.7.10")
        );
        assert_eq!(find_status_code("5.1.1.1 3.1.1 5.1 5.1234.1"), None);
        assert_eq!(smtp_code("550-5.1.1 x").as_deref(), Some("550"));
        assert_eq!(smtp_code("said: 452 full").as_deref(), Some("452"));
        assert_eq!(smtp_code("5501 x 250 ok 1.550 x550 x"), None);
        assert_eq!(smtp_code("421").as_deref(), Some("421"));
        assert_eq!(smtp_code(""), None);
    }

    #[test]
    fn typed_values() {
        assert_eq!(address_of("rfc822; <a@b>").as_deref(), Some("a@b"));
        assert_eq!(address_of("rfc822;a@b").as_deref(), Some("a@b"));
        assert_eq!(address_of("rfc822; nobody"), None);
        assert_eq!(typed_value("smtp; 550  folded\n  text"), "550 folded text");
        assert_eq!(typed_value("no type here: a;b"), "no type here: a;b");
        assert_eq!(envid("ABC+2B1"), "ABC+1");
        assert_eq!(envid("a b+2B"), "a b+2B");
    }

    #[test]
    fn exim_status_refined_from_the_diagnostic() {
        let mut r = Report::default();
        read(
            "Reporting-MTA: dns; mx\n\nAction: failed\nFinal-Recipient: rfc822;a@x\n\
             Status: 5.0.0\nDiagnostic-Code: smtp; 550 5.1.1 <a@x>: unknown\n\n\
             Action: failed\nFinal-Recipient: rfc822;b@x\nStatus: 5.0.0\n\
             Diagnostic-Code: smtp; 550 4.2.2 odd\n\n\
             Action: failed\nFinal-Recipient: rfc822;c@x\nStatus: 5.2.0\n\
             Diagnostic-Code: smtp; 552 5.2.2 full\n",
            &mut r,
        );
        let s: Vec<_> = r.recipients.iter().map(|x| x.status.as_deref()).collect();
        // Only an undefined X.0.0 gives way, and only to its own class.
        assert_eq!(s, [Some("5.1.1"), Some("5.0.0"), Some("5.2.0")]);
        assert_eq!(r.recipients[0].reason(), "550 5.1.1 <a@x>: unknown");
    }
}
