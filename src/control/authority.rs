//! The seam between the operations and where account state lives: the
//! [`Authority`] makes every state change and answers the reads that a
//! cluster answers for all its nodes; [`Local`] is this node's queue.
//!
//! Cluster mode (issue 14) implements the trait with the cluster store in
//! front of the local queue: a state change becomes one cluster
//! transaction (and the commands the nodes carry out), the reads become
//! cluster sums. The operations in this module's siblings stay as they
//! are. Node-local work — listing and showing this node's messages,
//! delivering them, the sweep — goes to [`Authority::store`].

use super::Result;
use crate::account::{BlockReason, State};
use crate::clock;
use crate::report::Ledger;
use crate::store::{
    Account, AccountStatus, Change, DayCounts, ErrorRow, Event, HeldFilter, HeldMoved, HeldSummary,
    MessageRow, Overview, Settings, Store,
};

/// What a whole purge did.
#[derive(Debug, Clone)]
pub struct Purged {
    pub account: String,
    /// The state before (`purging` when an interrupted purge was resumed).
    pub old: State,
    /// Held messages dropped.
    pub dropped_held: u64,
    /// Messages dropped that were queued or deferred when the purge began.
    pub dropped_queued: u64,
    /// Mail submitted during the purge, released at its end.
    pub released: u64,
    /// The state after: `ok`, or still `purging` in cluster mode while an
    /// active node has not done its part (it ends when the last one has).
    pub new: State,
}

/// Where account state lives: every state change goes through here, and
/// so do the reads that show an account as the whole platform sees it.
/// Errors are the operations' own ([`super::ControlError`]), so a cluster
/// authority can say its store is unreachable (69).
pub trait Authority {
    /// This node's queue: its messages, their delivery, its housekeeping.
    fn store(&self) -> &Store;
    fn store_mut(&mut self) -> &mut Store;

    // Reads.
    fn account(&self, name: &str) -> Result<Account>;
    fn accounts(&self) -> Result<Vec<Account>>;
    fn account_status(&self, name: &str, now: i64) -> Result<AccountStatus>;
    fn overview(&self, now: i64) -> Result<Vec<Overview>>;
    fn daily_stats(&self, name: &str, days: i64, now: i64) -> Result<Vec<DayCounts>>;
    fn errors_of(&self, name: &str, limit: i64) -> Result<Vec<ErrorRow>>;
    fn history(&self, name: &str, limit: i64) -> Result<Vec<Event>>;
    fn held(&self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldSummary>;

    // State changes, each recorded with `actor` where it has one.
    /// Create the account (`ok`) if it has no row; true if created.
    fn ensure_account(&mut self, name: &str, now: i64) -> Result<bool>;
    fn block(
        &mut self,
        name: &str,
        reason: BlockReason,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change>;
    fn unblock(
        &mut self,
        name: &str,
        force: bool,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change>;
    /// Change settings, creating the account; the account and whether it was created.
    fn configure(&mut self, name: &str, settings: &Settings, now: i64) -> Result<(Account, bool)>;
    /// Drop the account's held and not-yet-sent mail and end `ok`.
    fn purge(&mut self, name: &str, actor: &str, note: &str, now: i64) -> Result<Purged>;
    /// Release one held message by queue id (it goes out although the
    /// account may be blocked).
    fn release_message(&mut self, qid: &str, now: i64) -> Result<MessageRow>;
    /// Delete one held, queued or deferred message.
    fn delete_message(&mut self, qid: &str) -> Result<MessageRow>;
    /// Release the held messages `filter` matches; the state stays.
    fn release_held(&mut self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldMoved>;
    /// Drop the held messages `filter` matches; the state stays.
    fn purge_held(&mut self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldMoved>;

    /// Where the daily reports come from and are queued once.
    fn ledger(&mut self) -> &mut dyn Ledger;
}

/// This node's queue as the authority: a single node.
pub struct Local {
    store: Store,
}

impl Local {
    pub fn new(store: Store) -> Local {
        Local { store }
    }
}

/// Rows per purge transaction: short enough that `sendmail` never waits
/// long for the lock, long enough that 100,000 messages go in seconds.
const PURGE_CHUNK: usize = 5000;

impl Authority for Local {
    fn store(&self) -> &Store {
        &self.store
    }

    fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    fn account(&self, name: &str) -> Result<Account> {
        Ok(self.store.account(name)?)
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.store.accounts()?)
    }

    fn account_status(&self, name: &str, now: i64) -> Result<AccountStatus> {
        Ok(self.store.account_status(name, now)?)
    }

    fn overview(&self, now: i64) -> Result<Vec<Overview>> {
        Ok(self.store.overview(now)?)
    }

    fn daily_stats(&self, name: &str, days: i64, now: i64) -> Result<Vec<DayCounts>> {
        Ok(self.store.daily_stats(name, days, now)?)
    }

    fn errors_of(&self, name: &str, limit: i64) -> Result<Vec<ErrorRow>> {
        Ok(self.store.errors_of(name, limit)?)
    }

    fn history(&self, name: &str, limit: i64) -> Result<Vec<Event>> {
        Ok(self.store.history(name, limit)?)
    }

    fn held(&self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldSummary> {
        Ok(self.store.held_summary(name, filter, now)?)
    }

    fn ensure_account(&mut self, name: &str, now: i64) -> Result<bool> {
        Ok(self.store.ensure_account(name, now)?)
    }

    fn block(
        &mut self,
        name: &str,
        reason: BlockReason,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change> {
        Ok(self.store.block(name, reason, actor, note, now)?)
    }

    fn unblock(
        &mut self,
        name: &str,
        force: bool,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change> {
        Ok(self.store.unblock(name, force, actor, note, now)?)
    }

    fn configure(&mut self, name: &str, settings: &Settings, now: i64) -> Result<(Account, bool)> {
        Ok(self.store.configure(name, settings, now)?)
    }

    /// `purging`, drop in chunks, then `ok` with the mail that arrived
    /// meanwhile released in the same final transaction (`store/purge.rs`).
    fn purge(&mut self, name: &str, actor: &str, note: &str, now: i64) -> Result<Purged> {
        let p = self.store.purge_begin(name, actor, note, now)?;
        let (mut held, mut queued) = (0u64, 0u64);
        loop {
            let d = self.store.purge_chunk(&p, PURGE_CHUNK)?;
            held += d.held;
            queued += d.queued;
            if ((d.held + d.queued) as usize) < PURGE_CHUNK {
                break;
            }
        }
        let (late, released) = self.store.purge_finish(&p, actor, clock::now_ms())?;
        // What the purge itself held, and what came back from a connection
        // meanwhile, was queued when the purge began.
        let moved = p.held_at_begin.min(held);
        Ok(Purged {
            account: p.account,
            old: p.old,
            dropped_held: held - moved,
            dropped_queued: queued + moved + late.held + late.queued,
            released,
            new: State::Ok,
        })
    }

    fn release_message(&mut self, qid: &str, now: i64) -> Result<MessageRow> {
        Ok(self.store.release(qid, now)?)
    }

    fn delete_message(&mut self, qid: &str) -> Result<MessageRow> {
        Ok(self.store.delete_message(qid)?)
    }

    fn release_held(&mut self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldMoved> {
        Ok(self.store.release_held_matching(name, filter, now)?)
    }

    fn purge_held(&mut self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldMoved> {
        Ok(self.store.purge_held_matching(name, filter, now)?)
    }

    fn ledger(&mut self) -> &mut dyn Ledger {
        &mut self.store
    }
}
