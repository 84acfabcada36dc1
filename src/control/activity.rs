//! What an account did: `stats` (its per-day counters), `errors` (its
//! mails in error) and `history` (its state changes).

use serde::Serialize;

use super::accounts::DayDoc;
use super::values::Time;
use super::{Control, Result};
use crate::account::State;
use crate::queue::FailureKind;

/// `stats ACCOUNT`: one entry per UTC day, oldest first, today last.
#[derive(Debug, Clone, Serialize)]
pub struct StatsDoc {
    pub account: String,
    pub days: Vec<DayDoc>,
    pub total: DayTotals,
}

/// The days of `stats` added up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DayTotals {
    pub submitted: i64,
    pub sent: i64,
    pub errors: i64,
    pub held: i64,
    pub expired: i64,
}

/// One mail in error.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorDoc {
    pub at: Time,
    pub qid: String,
    pub recipient: String,
    pub kind: FailureKind,
    /// The server's answer (or what the DSN said).
    pub answer: String,
    pub subject: String,
    pub script: String,
}

/// `errors ACCOUNT`: the mails in error, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorsDoc {
    pub account: String,
    pub errors: Vec<ErrorDoc>,
}

/// One state change.
#[derive(Debug, Clone, Serialize)]
pub struct EventDoc {
    pub at: Time,
    pub old_state: State,
    pub new_state: State,
    pub reason: String,
    pub actor: String,
    pub note: String,
}

/// `history ACCOUNT`: state changes, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryDoc {
    pub account: String,
    pub events: Vec<EventDoc>,
}

impl Control {
    /// `stats ACCOUNT`: the last `days` UTC days.
    pub fn stats(&self, name: &str, days: u32, now: i64) -> Result<StatsDoc> {
        let rows = self.authority.daily_stats(name, i64::from(days), now)?;
        let mut total = DayTotals::default();
        for d in &rows {
            total.submitted += d.submitted;
            total.sent += d.sent;
            total.errors += d.errors;
            total.held += d.held;
            total.expired += d.expired;
        }
        Ok(StatsDoc {
            account: name.to_string(),
            days: rows.iter().map(DayDoc::from).collect(),
            total,
        })
    }

    /// `errors ACCOUNT`: at most `limit`, newest first.
    pub fn errors(&self, name: &str, limit: u32) -> Result<ErrorsDoc> {
        let rows = self.authority.errors_of(name, i64::from(limit))?;
        Ok(ErrorsDoc {
            account: name.to_string(),
            errors: rows
                .into_iter()
                .map(|e| ErrorDoc {
                    at: Time(e.at),
                    qid: e.qid,
                    recipient: e.rcpt,
                    kind: e.kind,
                    answer: e.message,
                    subject: e.subject,
                    script: e.script,
                })
                .collect(),
        })
    }

    /// `history ACCOUNT`: the newest `limit` state changes, oldest first.
    pub fn history(&self, name: &str, limit: u32) -> Result<HistoryDoc> {
        let events = self.authority.history(name, i64::from(limit))?;
        Ok(HistoryDoc {
            account: name.to_string(),
            events: events
                .into_iter()
                .map(|e| EventDoc {
                    at: Time(e.at),
                    old_state: e.old,
                    new_state: e.new,
                    reason: e.reason,
                    actor: e.actor,
                    note: e.note,
                })
                .collect(),
        })
    }
}
