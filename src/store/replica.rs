//! This node's copy of the cluster's account state (docs/cluster.md, "How
//! a change reaches every node"): relayd's sync thread applies each change
//! of the cluster's log here, in revision order, and records what it did
//! until the cluster store has the acknowledgement.
//!
//! Every change is idempotent — a state already in place, a purge with the
//! same cutoff, a release of mail already released do nothing more — so a
//! crash between applying a change and recording its revision only applies
//! it again.

use rusqlite::{OptionalExtension, Transaction, params};

use super::accounts::{account_in, create_account, release_held};
use super::claims::hold_pending;
use super::purge::{Cutoff, Dropped, drop_pending};
use super::{Result, Store, StoreError};
use crate::account::State;

/// An account's state as the cluster says it is.
#[derive(Debug, Clone, Copy)]
pub struct ReplicatedState<'a> {
    pub account: &'a str,
    pub state: State,
    pub reason: &'a str,
    /// When it entered the state (ms).
    pub since: i64,
    pub actor: &'a str,
    pub note: &'a str,
    /// Announce it to the report recipient from this node (an automatic
    /// block this node made: `report::notify` sends the notice).
    pub announce: bool,
}

/// What a node did for one cluster command, waiting to be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAck {
    pub revision: i64,
    /// Messages it moved or dropped.
    pub count: i64,
    /// A second figure (a purge: those that were queued, not held).
    pub extra: i64,
    /// The message it acted on (`release`, `delete` of one qid), as JSON.
    pub detail: String,
}

/// The account's id, created (`ok`) when this node has never seen it.
fn account_id(tx: &Transaction<'_>, name: &str, now: i64) -> Result<i64> {
    match account_in(tx, name) {
        Ok(a) => Ok(a.id),
        Err(StoreError::NoAccount(_)) => create_account(tx, name, now),
        Err(e) => Err(e),
    }
}

impl Store {
    /// The newest cluster revision applied here (0: none yet).
    pub fn cluster_revision(&self) -> Result<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT revision FROM cluster_node WHERE id = 1")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Record that the change `revision` is applied, with what this node
    /// did for it when it is a command (kept until pushed).
    pub fn cluster_applied(&mut self, revision: i64, ack: Option<&ClusterAck>) -> Result<()> {
        let tx = self.write_tx()?;
        tx.prepare_cached("UPDATE cluster_node SET revision = max(revision, ?1) WHERE id = 1")?
            .execute([revision])?;
        if let Some(a) = ack {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO cluster_acks (revision, count, extra, detail)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![a.revision, a.count, a.extra, a.detail])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The acknowledgements not yet in the cluster store, oldest first.
    pub fn cluster_acks(&self) -> Result<Vec<ClusterAck>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT revision, count, extra, detail FROM cluster_acks ORDER BY revision",
            )?
            .query_map([], |r| {
                Ok(ClusterAck {
                    revision: r.get(0)?,
                    count: r.get(1)?,
                    extra: r.get(2)?,
                    detail: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The cluster store has the acknowledgements up to `revision`.
    pub fn cluster_acks_sent(&mut self, revision: i64) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute("DELETE FROM cluster_acks WHERE revision <= ?1", [revision])?;
        tx.commit()?;
        Ok(())
    }

    /// Put an account in the state the cluster says; when it stops
    /// sending (or starts a purge), hold its queued and deferred mail in the
    /// same transaction, as a local block does (`mod.rs`, "Claims and
    /// blocks"). Returns how many messages that held. The event is kept
    /// with the `cluster` mark, so it is never pushed back.
    pub fn replicate_state(&mut self, r: &ReplicatedState<'_>, now: i64) -> Result<u64> {
        let tx = self.write_tx()?;
        let id = account_id(&tx, r.account, now)?;
        let (old, reason, since): (State, String, i64) = tx
            .prepare_cached("SELECT state, state_reason, state_since FROM accounts WHERE id = ?1")?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        if old == r.state {
            if reason != r.reason || since != r.since {
                tx.prepare_cached(
                    "UPDATE accounts SET state_reason = ?2, state_since = ?3 WHERE id = ?1",
                )?
                .execute(params![id, r.reason, r.since])?;
                tx.commit()?;
            }
            return Ok(0);
        }
        tx.prepare_cached(
            "UPDATE accounts SET state = ?2, state_reason = ?3, state_since = ?4 WHERE id = ?1",
        )?
        .execute(params![id, r.state, r.reason, r.since])?;
        tx.prepare_cached(
            "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note,
                                 notified, cluster)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
        )?
        .execute(params![
            id,
            r.since,
            old,
            r.state,
            r.reason,
            r.actor,
            r.note,
            !r.announce
        ])?;
        let held = if !r.state.is_sending() && (old.is_sending() || r.state == State::Purging) {
            hold_pending(&tx, id, now)?
        } else {
            0
        };
        tx.commit()?;
        Ok(held)
    }

    /// Set an account's report recipient and limits as the cluster has them.
    pub fn replicate_settings(
        &mut self,
        account: &str,
        report_to: Option<&str>,
        max_per_day: Option<i64>,
        max_per_hour: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let id = account_id(&tx, account, now)?;
        tx.prepare_cached(
            "UPDATE accounts SET report_to = ?2, max_per_day = ?3, max_per_hour = ?4 WHERE id = ?1",
        )?
        .execute(params![id, report_to, max_per_day, max_per_hour])?;
        tx.commit()?;
        Ok(())
    }

    /// Release every held message of an account (the cluster's `unblock`,
    /// and the end of its `purge`); how many. An account this node has
    /// never seen holds nothing.
    pub fn release_all_held(&mut self, account: &str, now: i64) -> Result<u64> {
        let tx = self.write_tx()?;
        let n = match account_in(&tx, account) {
            Ok(a) => release_held(&tx, a.id, now)?,
            Err(StoreError::NoAccount(_)) => 0,
            Err(e) => return Err(e),
        };
        tx.commit()?;
        Ok(n)
    }

    /// One chunk of the cluster's `purge`: drop up to `limit` of the
    /// account's held, queued and deferred messages submitted before
    /// `cutoff` (this node's clock), so mail accepted after the purge was
    /// asked for survives. Held and not-held are counted apart.
    pub fn purge_before(&mut self, account: &str, cutoff: i64, limit: usize) -> Result<Dropped> {
        let tx = self.write_tx()?;
        let id = match account_in(&tx, account) {
            Ok(a) => a.id,
            Err(StoreError::NoAccount(_)) => return Ok(Dropped::default()),
            Err(e) => return Err(e),
        };
        let d = drop_pending(&tx, (id, account), Cutoff::CreatedBefore(cutoff), limit)?;
        tx.commit()?;
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::MessageState;
    use crate::store::testing::{T0, state_of, store, submit};

    fn state<'a>(account: &'a str, s: State, announce: bool) -> ReplicatedState<'a> {
        ReplicatedState {
            account,
            state: s,
            reason: "manual",
            since: T0,
            actor: "root",
            note: "",
            announce,
        }
    }

    #[test]
    fn a_replicated_block_holds_and_is_idempotent_and_never_announced_twice() {
        let (_d, mut s) = store();
        s.join_cluster("b").unwrap();
        assert!(!submit(&mut s, "alice", "Q1", T0));
        assert_eq!(
            s.replicate_state(&state("alice", State::Ko, false), T0 + 1)
                .unwrap(),
            1
        );
        assert_eq!(state_of(&s, "Q1"), MessageState::Held);
        assert_eq!(
            s.replicate_state(&state("alice", State::Ko, false), T0 + 2)
                .unwrap(),
            0
        );
        assert_eq!(s.history("alice", 10).unwrap().len(), 1);
        assert!(s.take_block_notices().unwrap().is_empty());
        // An account never seen here is created in the cluster's state.
        s.replicate_state(&state("newsite", State::Spam, false), T0)
            .unwrap();
        assert_eq!(s.account("newsite").unwrap().state, State::Spam);
        assert!(submit(&mut s, "newsite", "Q2", T0 + 3));
        // Unblock: the state, then the command that releases.
        s.replicate_state(&state("alice", State::Ok, false), T0 + 4)
            .unwrap();
        assert_eq!(s.release_all_held("alice", T0 + 5).unwrap(), 1);
        assert_eq!(s.release_all_held("alice", T0 + 5).unwrap(), 0);
        assert_eq!(s.release_all_held("unknown", T0 + 5).unwrap(), 0);
        assert_eq!(state_of(&s, "Q1"), MessageState::Queued);
    }

    #[test]
    fn purge_before_spares_later_mail_and_acks_wait_for_the_push() {
        let (_d, mut s) = store();
        s.join_cluster("b").unwrap();
        s.replicate_state(&state("alice", State::Ko, false), T0)
            .unwrap();
        assert!(submit(&mut s, "alice", "OLD", T0 + 1));
        assert!(submit(&mut s, "alice", "NEW", T0 + 10));
        let d = s.purge_before("alice", T0 + 5, 100).unwrap();
        assert_eq!((d.held, d.queued), (1, 0));
        assert!(s.message("OLD", false).is_err());
        assert_eq!(state_of(&s, "NEW"), MessageState::Held);
        assert_eq!(s.purge_before("alice", T0 + 5, 100).unwrap().held, 0);
        let ack = ClusterAck {
            revision: 7,
            count: 1,
            extra: 0,
            detail: String::new(),
        };
        s.cluster_applied(7, Some(&ack)).unwrap();
        s.cluster_applied(6, None).unwrap();
        assert_eq!(s.cluster_revision().unwrap(), 7);
        assert_eq!(s.cluster_acks().unwrap(), vec![ack]);
        s.cluster_acks_sent(7).unwrap();
        assert!(s.cluster_acks().unwrap().is_empty());
    }
}
