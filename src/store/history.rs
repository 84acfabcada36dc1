//! The events: every change of an account's state, with who made it, when
//! and why (`history`, the newest in `status`, the daily report).

use rusqlite::{Row, params};

use super::{Result, Store};

/// An account's newest event.
pub(super) const LAST_EVENT: &str =
    "SELECT at, old_state, new_state, reason, actor, note FROM events
     WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT 1";
/// An account's newest events.
pub(super) const HISTORY: &str = "SELECT at, old_state, new_state, reason, actor, note FROM events
     WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2";

/// One recorded state change.
#[derive(Debug, Clone)]
pub struct Event {
    pub at: i64,
    pub old: String,
    pub new: String,
    pub reason: String,
    pub actor: String,
    pub note: String,
}

pub(super) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        at: r.get(0)?,
        old: r.get(1)?,
        new: r.get(2)?,
        reason: r.get(3)?,
        actor: r.get(4)?,
        note: r.get(5)?,
    })
}

impl Store {
    /// An account's newest `limit` state changes, oldest first.
    pub fn history(&self, name: &str, limit: i64) -> Result<Vec<Event>> {
        let account = self.account(name)?;
        let mut events: Vec<Event> = self
            .conn()
            .prepare_cached(HISTORY)?
            .query_map(params![account.id, limit.max(1)], event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        events.reverse();
        Ok(events)
    }
}
