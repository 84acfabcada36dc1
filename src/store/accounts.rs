//! Account rows: finding and creating them, their settings (report
//! recipient, limits), and the state changes `block` and `unblock` make,
//! each in the transaction that moves the account's mail (see `mod.rs`,
//! "Claims and blocks").

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::claims::hold_pending;
use super::history::record_event;
use super::{EnqueuePolicy, Result, Store, StoreError};
use crate::account::{self, AppliedLimit, BlockReason, Limits, Reason, Refusal, State};

/// The columns [`account_from_row`] reads, in order.
macro_rules! account_cols {
    () => {
        "id, name, state, state_reason, state_since, report_to, max_per_day, max_per_hour,
         sent_total, error_total, first_seen"
    };
}

/// One account by name (an index search; see `mod.rs`, "Indexes").
pub(super) const ACCOUNT_BY_NAME: &str =
    concat!("SELECT ", account_cols!(), " FROM accounts WHERE name = ?1");

/// One account's row.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub state: State,
    /// Why it is in this state, as stored: a [`Reason`] this build wrote,
    /// `""` before the first change, or what another writer stored.
    pub reason: String,
    /// When it entered this state (ms).
    pub since: i64,
    pub report_to: Option<String>,
    /// Per-account override; `None` means the node default applies.
    pub max_per_day: Option<i64>,
    pub max_per_hour: Option<i64>,
    pub sent_total: i64,
    pub error_total: i64,
    pub first_seen: i64,
}

/// A per-account limit as `set` changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Back to the node default (`[limits]` in the configuration).
    Default,
    /// This many per day/hour; 0 = unlimited.
    Value(u64),
}

/// The settings `set` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `Some(None)` removes the report recipient.
    pub report_to: Option<Option<String>>,
    pub max_per_day: Option<Limit>,
    pub max_per_hour: Option<Limit>,
}

/// The result of `block` or `unblock`.
#[derive(Debug, Clone)]
pub struct Change {
    pub account: String,
    pub old: State,
    pub new: State,
    /// Held messages moved back to `queued` (unblock).
    pub released: u64,
    /// Queued and deferred messages the block held (see `mod.rs`,
    /// "Claims and blocks").
    pub held: u64,
}

impl Change {
    /// Whether the state actually changed (unblocking a sending account does not).
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

/// A change of an account's state: what `set_state` writes to the account
/// and records as an event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Transition<'a> {
    pub old: State,
    pub new: State,
    pub reason: Reason,
    /// Who made it: an admin, the panel, or [`account::SYSTEM_ACTOR`].
    pub actor: &'a str,
    pub note: &'a str,
}

impl Account {
    /// The submission limits that apply to it: its own, else the node's.
    pub fn limits(&self, node: EnqueuePolicy) -> Limits {
        limits(self.max_per_day, self.max_per_hour, node)
    }
}

pub(super) fn limits(per_day: Option<i64>, per_hour: Option<i64>, node: EnqueuePolicy) -> Limits {
    Limits {
        per_day: AppliedLimit::resolve(per_day, node.max_per_day),
        per_hour: AppliedLimit::resolve(per_hour, node.max_per_hour),
    }
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        state: r.get(2)?,
        reason: r.get(3)?,
        since: r.get(4)?,
        report_to: r.get(5)?,
        max_per_day: r.get(6)?,
        max_per_hour: r.get(7)?,
        sent_total: r.get(8)?,
        error_total: r.get(9)?,
        first_seen: r.get(10)?,
    })
}

/// The account named `name`, inside a transaction.
pub(super) fn account_in(tx: &Transaction<'_>, name: &str) -> Result<Account> {
    tx.prepare_cached(ACCOUNT_BY_NAME)?
        .query_row([name], account_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NoAccount(name.to_string()))
}

fn count_held(tx: &Transaction<'_>, account_id: i64) -> Result<u64> {
    let n: i64 = tx
        .prepare_cached(concat!(
            "SELECT count(*) FROM messages WHERE account_id = ?1 AND ",
            pending!(),
            " AND state = 'held'"
        ))?
        .query_row([account_id], |r| r.get(0))?;
    Ok(n as u64)
}

/// Move every held message of the account back to `queued`, due now.
pub(super) fn release_held(tx: &Transaction<'_>, account_id: i64, now: i64) -> Result<u64> {
    let n = tx
        .prepare_cached(concat!(
            "UPDATE messages SET state = 'queued', next_attempt = ?2
             WHERE account_id = ?1 AND ",
            pending!(),
            " AND state = 'held'"
        ))?
        .execute(params![account_id, now])?;
    Ok(n as u64)
}

/// The account a submission is for, created (`ok`) on its first mail: its
/// id, state and the limits that apply to it.
pub(super) fn account_for_submit(
    tx: &Transaction<'_>,
    name: &str,
    node: EnqueuePolicy,
    now: i64,
) -> Result<(i64, State, Limits)> {
    let row = tx
        .prepare_cached(
            "SELECT id, state, max_per_day, max_per_hour FROM accounts WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    match row {
        Some((id, state, per_day, per_hour)) => Ok((id, state, limits(per_day, per_hour, node))),
        None => {
            let id = create_account(tx, name, now)?;
            Ok((id, State::Ok, limits(None, None, node)))
        }
    }
}

/// Insert an account row in state `ok`.
pub(super) fn create_account(tx: &Transaction<'_>, name: &str, now: i64) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO accounts (name, state, state_since, first_seen) VALUES (?1, 'ok', ?2, ?2)",
    )?
    .execute(params![name, now])?;
    Ok(tx.last_insert_rowid())
}

/// Change an account's state and record the event; when it stops sending,
/// hold its queued and deferred mail in the same transaction. Returns how
/// many messages that held.
pub(super) fn set_state(
    tx: &Transaction<'_>,
    account_id: i64,
    t: &Transition<'_>,
    now: i64,
) -> Result<u64> {
    tx.prepare_cached(
        "UPDATE accounts SET state = ?2, state_reason = ?3, state_since = ?4 WHERE id = ?1",
    )?
    .execute(params![account_id, t.new, t.reason, now])?;
    record_event(tx, account_id, t, now)?;
    if t.old.is_sending() && !t.new.is_sending() {
        hold_pending(tx, account_id, now)
    } else {
        Ok(0)
    }
}

fn refused(name: &str, refusal: Refusal) -> StoreError {
    StoreError::Refused {
        account: name.to_string(),
        refusal,
    }
}

impl Store {
    /// The account named `name`.
    pub fn account(&self, name: &str) -> Result<Account> {
        self.conn
            .prepare_cached(ACCOUNT_BY_NAME)?
            .query_row([name], account_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NoAccount(name.to_string()))
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self
            .conn
            .prepare_cached(concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ORDER BY name"
            ))?
            .query_map([], account_from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Block an account: new mail is held from the next submission on, and
    /// in the same transaction its queued and deferred mail is held too, so
    /// once this returns only what is already on a connection can go out.
    pub fn block(
        &mut self,
        name: &str,
        reason: BlockReason,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change> {
        let tx = self.write_tx()?;
        let a = account_in(&tx, name)?;
        let new =
            account::block_target(a.state, reason).map_err(|refusal| refused(name, refusal))?;
        // Leaving a sending state holds what the relay has not started.
        let change = Transition {
            old: a.state,
            new,
            reason: Reason::Block(reason),
            actor,
            note,
        };
        let held = set_state(&tx, a.id, &change, now)?;
        tx.commit()?;
        Ok(Change {
            account: a.name,
            old: a.state,
            new,
            released: 0,
            held,
        })
    }

    /// Unblock an account and, in the same transaction, move its held mail
    /// back to `queued` (due now), so no message is stranded (see `mod.rs`,
    /// "Locking and durability").
    pub fn unblock(
        &mut self,
        name: &str,
        force: bool,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change> {
        let tx = self.write_tx()?;
        let a = account_in(&tx, name)?;
        let held = count_held(&tx, a.id)?;
        let new = account::unblock_target(a.state, force, held)
            .map_err(|refusal| refused(name, refusal))?;
        if new != a.state {
            let change = Transition {
                old: a.state,
                new,
                reason: if force {
                    Reason::Force
                } else {
                    Reason::Unblock
                },
                actor,
                note,
            };
            set_state(&tx, a.id, &change, now)?;
        }
        // Even when the account was already sending: held mail in a sending
        // account is exactly what must never exist, so release it.
        let released = if held > 0 {
            release_held(&tx, a.id, now)?
        } else {
            0
        };
        tx.commit()?;
        Ok(Change {
            account: a.name,
            old: a.state,
            new,
            released,
            held: 0,
        })
    }

    /// Create the account (state `ok`) if it has no row yet; true if it was
    /// created. The caller has checked that the name resolves (`mailq-ctl`
    /// creates an account before its first mail only for such a name).
    pub fn ensure_account(&mut self, name: &str, now: i64) -> Result<bool> {
        let tx = self.write_tx()?;
        let created = match account_in(&tx, name) {
            Ok(_) => false,
            Err(StoreError::NoAccount(_)) => {
                create_account(&tx, name, now)?;
                true
            }
            Err(e) => return Err(e),
        };
        tx.commit()?;
        Ok(created)
    }

    /// Change an account's settings, creating the account if it is unknown
    /// (the panel may configure it before its first mail). Returns the
    /// account as it is now and whether it was created.
    pub fn configure(&mut self, name: &str, s: &Settings, now: i64) -> Result<(Account, bool)> {
        let tx = self.write_tx()?;
        let (id, created) = match account_in(&tx, name) {
            Ok(a) => (a.id, false),
            Err(StoreError::NoAccount(_)) => (create_account(&tx, name, now)?, true),
            Err(e) => return Err(e),
        };
        if let Some(r) = &s.report_to {
            tx.prepare_cached("UPDATE accounts SET report_to = ?2 WHERE id = ?1")?
                .execute(params![id, r])?;
        }
        let value = |l: Limit| match l {
            Limit::Default => None,
            Limit::Value(n) => Some(n.min(i64::MAX as u64) as i64),
        };
        if let Some(l) = s.max_per_day {
            tx.prepare_cached("UPDATE accounts SET max_per_day = ?2 WHERE id = ?1")?
                .execute(params![id, value(l)])?;
        }
        if let Some(l) = s.max_per_hour {
            tx.prepare_cached("UPDATE accounts SET max_per_hour = ?2 WHERE id = ?1")?
                .execute(params![id, value(l)])?;
        }
        let account = account_in(&tx, name)?;
        tx.commit()?;
        Ok((account, created))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::MessageState;
    use crate::store::testing::{T0, state_of, store, submit};

    #[test]
    fn unblock_moves_held_mail_and_records_the_actor() {
        let (_d, mut s) = store();
        assert!(!submit(&mut s, "alice", "Q1", T0));
        s.block(
            "alice",
            BlockReason::Manual,
            "panel:bob",
            "ticket 7",
            T0 + 1,
        )
        .unwrap();
        // Q1 was not relayed yet: the block holds it too.
        assert_eq!(state_of(&s, "Q1"), MessageState::Held);
        assert!(submit(&mut s, "alice", "Q2", T0 + 2));
        assert!(submit(&mut s, "alice", "Q3", T0 + 3));
        let c = s.unblock("alice", false, "root", "", T0 + 4).unwrap();
        assert_eq!((c.old, c.new, c.released), (State::Ko, State::Ok, 3));
        assert_eq!(state_of(&s, "Q2"), MessageState::Queued);
        let h = s.history("alice", 10).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].old, h[0].new, h[0].actor.as_str()),
            (State::Ok, State::Ko, "panel:bob")
        );
        assert_eq!(h[0].note, "ticket 7");
        assert_eq!((h[1].new, h[1].reason.as_str()), (State::Ok, "unblock"));
        let st = s.account_status("alice", T0 + 5).unwrap();
        assert_eq!((st.queue.held, st.queue.queued), (0, 3));
        assert_eq!(st.today.held, 3);
        assert!(matches!(
            s.block("nobody", BlockReason::Manual, "root", "", T0),
            Err(StoreError::NoAccount(_))
        ));
    }

    #[test]
    fn settings_create_the_account_and_round_trip() {
        let (_d, mut s) = store();
        let (a, created) = s
            .configure(
                "newsite",
                &Settings {
                    report_to: Some(Some("admin@example.com".into())),
                    max_per_day: Some(Limit::Value(50)),
                    max_per_hour: Some(Limit::Value(0)),
                },
                T0,
            )
            .unwrap();
        assert!(created);
        assert_eq!(a.report_to.as_deref(), Some("admin@example.com"));
        assert_eq!((a.max_per_day, a.max_per_hour), (Some(50), Some(0)));
        let (a, created) = s
            .configure(
                "newsite",
                &Settings {
                    report_to: Some(None),
                    max_per_day: Some(Limit::Default),
                    max_per_hour: None,
                },
                T0,
            )
            .unwrap();
        assert!(!created);
        assert_eq!(
            (a.report_to, a.max_per_day, a.max_per_hour),
            (None, None, Some(0))
        );
    }
}
