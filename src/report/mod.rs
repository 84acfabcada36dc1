//! The daily error report and the immediate notice of an automatic block
//! (docs/bounces.md, "The daily error report"): what goes to an account's
//! report recipient.
//!
//! `render.rs` builds the text and the message, purely (`render`,
//! `render_notice`, `compose`, `report_json`); `send.rs` gathers the
//! reports of one UTC day from the store (`collect`) and prints or queues
//! them (`execute`), and queues the block notices (`notify`). Mail goes
//! through the queue as *system* mail (`NewMessage { system: true }`):
//! relayed even for a blocked account, never counted against it.
//!
//! Everything a script controls — subjects, recipient addresses, script
//! paths, server answers quoting them — is untrusted: it only ever appears
//! in the body, one value per line, through the one sanitiser of every
//! output (`sanitize.rs`: control, bidi, line-separator and zero-width
//! characters replaced) and with its length capped. The header fields are
//! built from trusted values only (configuration, the validated report
//! recipient, an account name reduced to safe characters), so nothing a
//! script wrote can add a header or a recipient.

use crate::exit::{Exit, Failure};
use crate::store::{ErrorRow, Event, ExpiredMail, StoreError};

mod render;
mod send;

pub use render::{compose, decode_encoded_words, render, render_notice, report_json, subject};
pub use send::{Ledger, Options, ReportRun, collect, execute, notify};

/// The most mails in error (and expired mails) listed in one report; the
/// rest are counted.
pub const MAX_ITEMS: i64 = 200;

/// Longest untrusted value shown, in characters.
const MAX_VALUE: usize = 300;

/// Why reports could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("account {0} has no report recipient (mailq-ctl set {0} --report-to ADDR)")]
    NoRecipient(String),
    #[error("report.from = {0:?} is not a usable sender address")]
    BadFrom(String),
    /// The cluster store could not be used (69; docs/cluster.md).
    #[error("{0}")]
    Unavailable(String),
}

impl Failure for ReportError {
    fn exit_code(&self) -> Exit {
        match self {
            ReportError::Store(e) => e.exit_code(),
            ReportError::NoRecipient(_) => Exit::Usage,
            ReportError::BadFrom(_) => Exit::Config,
            ReportError::Unavailable(_) => Exit::Unavailable,
        }
    }
}

/// One account's report for one UTC day.
#[derive(Debug, Clone)]
pub struct Report {
    pub account: String,
    /// `None` when previewing an account that has no report recipient.
    pub report_to: Option<String>,
    /// UTC day number.
    pub day: i64,
    pub errors: Vec<ErrorRow>,
    pub errors_total: i64,
    pub expired: Vec<ExpiredMail>,
    pub expired_total: i64,
    pub events: Vec<Event>,
}

impl Report {
    /// Nothing to say: no report is sent.
    pub fn is_empty(&self) -> bool {
        self.errors_total == 0 && self.expired_total == 0 && self.events.is_empty()
    }
}

/// The one rule for a report recipient (and `report.from`): `mailq-ctl set
/// --report-to` accepts exactly what this accepts, so an accepted recipient
/// always gets its reports (issue 11 item 12). One plain `local@domain` we
/// can write into a `To:` field and an envelope without quoting: a
/// dot-atom local part (RFC 5322 §3.2.3: atext, single dots inside; no
/// quoted string, no space) of at most 64 octets and a host name (letters,
/// digits and hyphens per label, RFC 1123 §2.1) — and lettre, which the
/// relay hands it to, must take it too.
pub fn valid_recipient(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    addr.len() <= 254
        && local.len() <= 64
        && is_dot_atom(local)
        && is_host_name(domain)
        && addr.parse::<lettre::Address>().is_ok()
}

/// RFC 5322 §3.2.3 dot-atom-text: atext runs joined by single dots.
fn is_dot_atom(s: &str) -> bool {
    const SPECIAL: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    !s.is_empty()
        && s.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || SPECIAL.contains(&b))
        })
}

/// A host name: labels of letters, digits and inner hyphens (RFC 1123 §2.1).
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_recipients_are_validated() {
        for ok in [
            "admin@example.com",
            "a.b+c@sub.example.org",
            "x@localhost",
            "o'brien+reports@x-y.example.org",
        ] {
            assert!(valid_recipient(ok), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "@example.com",
            "admin@",
            "a@b@c",
            "a b@example.com",
            "a@example.com\r\nBcc: x@y",
            "a@example.com, b@example.com",
            "\"quoted\"@example.com",
            "<a@example.com>",
            "a@[127.0.0.1]",
            "a@example.com;b",
            "\"a b\"@x.org",
            "a..b@x.org",
            ".a@x.org",
            "a.@x.org",
            "a@x..org",
            "a@x.org.",
            "a@-x.org",
            "a@x_y.org",
            "é@example.com",
        ] {
            assert!(!valid_recipient(bad), "{bad:?}");
        }
    }
}
