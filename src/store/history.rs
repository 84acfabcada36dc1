//! The events: every change of an account's state, with who made it, when
//! and why (`history`, the newest in `status`, the daily report).

use rusqlite::{Row, Transaction, params};

use super::accounts::Transition;
use super::{Result, Store};
use crate::account::State;

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
    pub old: State,
    pub new: State,
    /// Why, as stored: [`crate::account::Reason`] names what this build
    /// writes, but an older build or another writer may have stored others.
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

/// Record a state change in `events` (part of `set_state`).
pub(super) fn record_event(
    tx: &Transaction<'_>,
    account_id: i64,
    t: &Transition<'_>,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account_id, now, t.old, t.new, t.reason, t.actor, t.note
    ])?;
    Ok(())
}

impl Store {
    /// An account's newest `limit` state changes, oldest first.
    pub fn history(&self, name: &str, limit: i64) -> Result<Vec<Event>> {
        let account = self.account(name)?;
        let mut events: Vec<Event> = self
            .conn
            .prepare_cached(HISTORY)?
            .query_map(params![account.id, limit.max(1)], event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        events.reverse();
        Ok(events)
    }
}
