//! Classifying the smarthost's answers (RFC 5321 §4.2.1): 5xx fails, 4xx
//! defers, and a broken connection is neither and defers too.

use super::Whole;
use crate::store::RcptOutcome;

/// Neither a 4xx nor a 5xx: the connection broke (I/O error, timeout,
/// EOF, garbage, TLS) and cannot be used any more.
pub(super) fn is_connection_failure(e: &lettre::transport::smtp::Error) -> bool {
    !e.is_permanent() && !e.is_transient()
}

/// 421: the server is closing the channel (RFC 5321 §3.8).
pub(super) fn is_closing(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|c| c.to_string() == "421")
}

pub(super) fn outcome_of(e: &lettre::transport::smtp::Error) -> RcptOutcome {
    if e.is_permanent() {
        RcptOutcome::Failed(server_text(e))
    } else {
        RcptOutcome::Deferred(server_text(e))
    }
}

pub(super) fn whole(recipients: &[String], w: &Whole) -> Vec<(String, RcptOutcome)> {
    recipients
        .iter()
        .map(|r| {
            let o = match w {
                Whole::Permanent(t) => RcptOutcome::Failed(t.clone()),
                Whole::Temporary(t) => RcptOutcome::Deferred(t.clone()),
            };
            (r.clone(), o)
        })
        .collect()
}

/// The server's answer as "550 5.1.1 text", or the error for non-SMTP failures.
pub(super) fn server_text(e: &lettre::transport::smtp::Error) -> String {
    let source = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let text = match e.status() {
        Some(code) => format!("{code} {source}"),
        None => format!("{e}"),
    };
    crate::sanitize::line(text.trim()).into_owned()
}
