//! Purging an account: it goes to `purging`, its mail up to a cutoff id is
//! dropped in short transactions (a submission never waits long for the
//! lock), and the last transaction unblocks it and releases the mail that
//! arrived meanwhile.

use rusqlite::{Transaction, params};

use super::accounts::{Transition, account_in, release_held, set_state};
use super::claims::hold_pending;
use super::{Result, Store, StoreError};
use crate::account::{Reason, State};
use crate::queue::MessageState;

/// A purge under way.
#[derive(Debug, Clone)]
pub struct Purge {
    pub account_id: i64,
    pub account: String,
    /// The state before the purge (`purging` when resuming an interrupted one).
    pub old: State,
    /// Messages with an id up to this one are dropped; later mail arrived
    /// held during the purge and is released at the end.
    pub cutoff: i64,
    /// Queued or deferred messages this purge's first transaction held (so
    /// the relay could not start them between chunks); they are counted as
    /// `queued` when dropped.
    pub held_at_begin: u64,
}

/// What one chunk of a purge dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dropped {
    pub held: u64,
    /// Queued or deferred (not yet sent).
    pub queued: u64,
}

/// Which of an account's pending (held, queued, deferred) messages a purge
/// chunk drops.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cutoff {
    /// Up to this message id: a node's own purge (later mail arrived held).
    UpToId(i64),
    /// Submitted before this time (ms, this node's clock): a cluster purge,
    /// whose ids mean nothing across nodes (docs/cluster.md).
    CreatedBefore(i64),
}

/// Drop up to `limit` of `account`'s pending messages within `cutoff`,
/// inside `tx`, set-based (one statement per table instead of three per
/// message); held and not-held are counted apart.
pub(super) fn drop_pending(
    tx: &Transaction<'_>,
    account: (i64, &str),
    cutoff: Cutoff,
    limit: usize,
) -> Result<Dropped> {
    let (bound, value) = match cutoff {
        Cutoff::UpToId(id) => ("id <= ?2", id),
        Cutoff::CreatedBefore(ms) => ("created < ?2", ms),
    };
    // The chunk: the same rows each time it is evaluated inside the
    // transaction (nothing else writes meanwhile), in index order.
    let victims = format!(
        "SELECT id FROM messages WHERE account_id = ?1 AND {} \
         AND state IN ('held', 'queued', 'deferred') AND {bound} LIMIT ?3",
        pending!()
    );
    let args = params![account.0, value, limit.min(i64::MAX as usize) as i64];
    let mut d = Dropped::default();
    {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT state, count(*) FROM messages WHERE id IN ({victims}) GROUP BY state"
        ))?;
        let rows = stmt.query_map(args, |r| {
            Ok((r.get::<_, MessageState>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (state, n) = row?;
            if state == MessageState::Held {
                d.held += n as u64;
            } else {
                d.queued += n as u64;
            }
        }
    }
    for table in ["recipients", "bodies"] {
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE message_id IN ({victims})"
        ))?
        .execute(args)?;
    }
    let n = tx
        .prepare_cached(&format!("DELETE FROM messages WHERE id IN ({victims})"))?
        .execute(args)?;
    if n as u64 != d.held + d.queued {
        // Cannot happen inside one write transaction; if it ever did,
        // dropping `tx` rolls the chunk back rather than miscount.
        return Err(StoreError::Conflict(format!(
            "{}: purge chunk changed under it ({n} deleted, {} counted)",
            account.1,
            d.held + d.queued
        )));
    }
    Ok(d)
}

impl Store {
    /// Start (or resume) a purge: the account goes to `purging`, so its new
    /// mail is held while its old mail is dropped chunk by chunk.
    pub fn purge_begin(&mut self, name: &str, actor: &str, note: &str, now: i64) -> Result<Purge> {
        let tx = self.write_tx()?;
        let a = account_in(&tx, name)?;
        let mut held_at_begin = 0;
        let cutoff = if a.state == State::Purging {
            // An interrupted purge: carry on with its own cutoff (a purge
            // begun by an older build has none: its start time then).
            tx.query_row(
                "SELECT coalesce(purge_cutoff,
                        (SELECT max(id) FROM messages WHERE created <= ?2), 0)
                 FROM accounts WHERE id = ?1",
                params![a.id, a.since],
                |r| r.get(0),
            )?
        } else {
            // From a sending state this holds the account's queued and
            // deferred mail in this transaction (`set_state`): the relay
            // cannot start any of it between the chunks.
            let change = Transition {
                old: a.state,
                new: State::Purging,
                reason: Reason::Purge,
                actor,
                note,
            };
            held_at_begin = set_state(&tx, a.id, &change, now)?;
            // Everything that exists now is purged, by id: mail committed
            // later is held (the account is purging) and released at the end.
            let cutoff: i64 =
                tx.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                    r.get(0)
                })?;
            tx.execute(
                "UPDATE accounts SET purge_cutoff = ?2 WHERE id = ?1",
                params![a.id, cutoff],
            )?;
            cutoff
        };
        // From a blocked state (or resuming): mail an admin released one by
        // one, and anything an older build left queued, is held too.
        held_at_begin += hold_pending(&tx, a.id, now)?;
        tx.commit()?;
        Ok(Purge {
            account_id: a.id,
            account: a.name,
            old: a.state,
            cutoff,
            held_at_begin,
        })
    }

    /// Drop up to `limit` of the purged account's held, queued and deferred
    /// messages up to the cutoff id, in one short transaction. Mail in
    /// `sending` is on a connection and is left alone: at most one message
    /// per connection, which may finish (see `mod.rs`, "Claims and
    /// blocks"); if it comes back undelivered, `purge_finish` drops it.
    pub fn purge_chunk(&mut self, p: &Purge, limit: usize) -> Result<Dropped> {
        let tx = self.write_tx()?;
        let d = drop_pending(
            &tx,
            (p.account_id, &p.account),
            Cutoff::UpToId(p.cutoff),
            limit,
        )?;
        tx.commit()?;
        Ok(d)
    }

    /// End a purge: in one transaction, what is left up to the cutoff (a
    /// message that was on a connection when the purge began and came back
    /// undelivered) is dropped, the account goes to `ok`, and the mail that
    /// arrived (held) during the purge is released. Returns what was
    /// dropped here and how many were released.
    pub fn purge_finish(&mut self, p: &Purge, actor: &str, now: i64) -> Result<(Dropped, u64)> {
        let tx = self.write_tx()?;
        let a = account_in(&tx, &p.account)?;
        if a.state != State::Purging {
            return Err(StoreError::Conflict(format!(
                "{}: the purge was interrupted: the account is now {}",
                p.account, a.state
            )));
        }
        let late = drop_pending(
            &tx,
            (p.account_id, &p.account),
            Cutoff::UpToId(p.cutoff),
            usize::MAX,
        )?;
        let change = Transition {
            old: State::Purging,
            new: State::Ok,
            reason: Reason::Purge,
            actor,
            note: "",
        };
        set_state(&tx, a.id, &change, now)?;
        let released = release_held(&tx, a.id, now)?;
        tx.commit()?;
        Ok((late, released))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::BlockReason;
    use crate::store::Settings;
    use crate::store::testing::{T0, state_of, store, submit};

    /// Mail that arrives while a purge runs is held (purging does not send)
    /// and must come out queued in the purge's final transaction.
    #[test]
    fn purge_drops_old_mail_and_releases_mail_submitted_meanwhile() {
        let (_d, mut s) = store();
        submit(&mut s, "alice", "Q0", T0);
        s.block("alice", BlockReason::Spam, "root", "", T0 + 1)
            .unwrap();
        for i in 1..=7 {
            assert!(submit(&mut s, "alice", &format!("Q{i}"), T0 + 1 + i));
        }
        let p = s.purge_begin("alice", "root", "", T0 + 100).unwrap();
        assert_eq!(p.old, State::Spam);
        assert!(submit(&mut s, "alice", "LATE", T0 + 101));
        let mut dropped = Dropped::default();
        loop {
            let d = s.purge_chunk(&p, 3).unwrap();
            dropped.held += d.held;
            dropped.queued += d.queued;
            if d.held + d.queued < 3 {
                break;
            }
        }
        // Q0, still queued when the block came, was held by it.
        assert_eq!((dropped.held, dropped.queued), (8, 0));
        assert_eq!(s.purge_finish(&p, "root", T0 + 102).unwrap().1, 1);
        assert_eq!(state_of(&s, "LATE"), MessageState::Queued);
        assert!(matches!(
            s.message("Q3", false),
            Err(StoreError::NoMessage(_))
        ));
        let a = s.account("alice").unwrap();
        assert_eq!((a.state, a.reason.as_str()), (State::Ok, "purge"));
        let q = s.queue_counts(a.id).unwrap();
        assert_eq!((q.held, q.queued), (0, 1));
    }

    /// A purge interrupted after `purge_begin` leaves the account purging;
    /// running purge again carries on with the original cutoff.
    #[test]
    fn interrupted_purge_resumes() {
        let (_d, mut s) = store();
        s.configure("alice", &Settings::default(), T0).unwrap();
        s.block("alice", BlockReason::Manual, "root", "", T0)
            .unwrap();
        submit(&mut s, "alice", "Q1", T0 + 1);
        let first = s.purge_begin("alice", "root", "", T0 + 10).unwrap();
        assert!(submit(&mut s, "alice", "LATE", T0 + 20));
        let again = s.purge_begin("alice", "root", "", T0 + 30).unwrap();
        assert_eq!((again.old, again.cutoff), (State::Purging, first.cutoff));
        assert!(matches!(
            s.unblock("alice", true, "root", "", T0 + 31),
            Err(StoreError::Refused { .. })
        ));
        let d = s.purge_chunk(&again, 100).unwrap();
        assert_eq!(d.held, 1);
        assert_eq!(s.purge_finish(&again, "root", T0 + 40).unwrap().1, 1);
    }
}
