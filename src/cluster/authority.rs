//! The control layer's authority in cluster mode (docs/cluster.md,
//! "mailq-ctl and the panel in cluster mode"): a state change is one
//! transaction in the cluster store — the account, a history row and the
//! change every node applies, then `NOTIFY` — after which the operation
//! waits (at most a lease) for the active nodes' acknowledgements and
//! reports their total; the reads are the cluster's sums (`reads.rs`).
//! This node's own queue stays behind [`Authority::store`].
//!
//! The store is reached on first use, so node-local work (`queue`, `show`,
//! `sweep`, `flush`) never needs it; when it cannot be reached the
//! operation fails with "cluster store unreachable" (69), and
//! `mailq-ctl --local` acts on this node alone.

use std::sync::Mutex;
use std::time::Duration;

use postgres::{Client, Transaction};

use super::commands::{self, Ack, ack_error, row_from_json};
use super::log::{self, Change as LogChange, Kind};
use super::{ClusterError, Result, client, lease, reads, schema};
use crate::account::{self, BlockReason, Reason, State};
use crate::config::ClusterConfig;
use crate::control::{self, Authority, Purged};
use crate::report::Ledger;
use crate::store::{
    Account, AccountStatus, Change, DayCounts, ErrorRow, Event, HeldFilter, HeldMoved, HeldSummary,
    Limit, MessageRow, Overview, Settings, Store, StoreError,
};

/// The cluster store in front of this node's queue.
pub struct ClusterAuthority {
    cc: ClusterConfig,
    pub(super) store: Store,
    /// Made on first use; the reads take `&self`, hence the lock.
    client: Mutex<Option<Client>>,
}

impl ClusterAuthority {
    pub fn new(cc: ClusterConfig, store: Store) -> ClusterAuthority {
        ClusterAuthority {
            cc,
            store,
            client: Mutex::new(None),
        }
    }

    pub(super) fn node(&self) -> &str {
        &self.cc.node
    }

    /// Run `f` with a connection and this node's queue.
    pub(super) fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut Store, Duration) -> Result<T>,
    ) -> Result<T> {
        let wait = lease(&self.cc);
        let ClusterAuthority { cc, store, client } = self;
        connected(client, cc, |c| f(c, store, wait))
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Client, &mut Store, Duration) -> Result<T>,
    ) -> control::Result<T> {
        Ok(self.with(f)?)
    }

    /// A read: a connection only.
    fn read<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> control::Result<T> {
        Ok(connected(&self.client, &self.cc, f)?)
    }
}

/// Run `f` with the connection in `slot`, made first if there is none; a
/// lost connection is dropped, so the next call connects again.
fn connected<T>(
    slot: &Mutex<Option<Client>>,
    cc: &ClusterConfig,
    f: impl FnOnce(&mut Client) -> Result<T>,
) -> Result<T> {
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = match guard.take() {
        Some(c) if !c.is_closed() => c,
        _ => {
            let mut c = client::connect(cc, "mailq-ctl")?;
            schema::ensure(&mut c)?;
            c
        }
    };
    let r = f(&mut c);
    if !matches!(r, Err(ClusterError::Unreachable(_))) {
        *guard = Some(c);
    }
    r
}

impl From<ClusterError> for control::ControlError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Store(s) => control::ControlError::Store(s),
            other => control::ControlError::Cluster(other),
        }
    }
}

fn refused(name: &str, refusal: account::Refusal) -> ClusterError {
    StoreError::Refused {
        account: name.to_string(),
        refusal,
    }
    .into()
}

/// The account's state, its row locked for the transaction.
fn lock(tx: &mut Transaction<'_>, name: &str) -> Result<State> {
    let row = tx
        .query_opt(
            "SELECT state FROM accounts WHERE name = $1 FOR UPDATE",
            &[&name],
        )?
        .ok_or_else(|| ClusterError::from(StoreError::NoAccount(name.to_string())))?;
    Ok(State::parse(row.get(0)).unwrap_or(State::Ok))
}

/// A state change in `tx`: the account, its history and the change every
/// node applies; the change's revision.
#[allow(clippy::too_many_arguments)]
fn set_state(
    tx: &mut Transaction<'_>,
    name: &str,
    old: State,
    new: State,
    reason: Reason,
    actor: &str,
    note: &str,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "UPDATE accounts SET state = $2, reason = $3, since = $4 WHERE name = $1",
        &[&name, &new.as_str(), &reason.as_str(), &now],
    )?;
    tx.execute(
        "INSERT INTO events (account, at, old_state, new_state, reason, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &name,
            &now,
            &old.as_str(),
            &new.as_str(),
            &reason.as_str(),
            &actor,
            &note,
        ],
    )?;
    let mut c = LogChange::new(name, Kind::State);
    c.state = Some(new);
    c.reason = reason.as_str().into();
    c.since = now;
    c.actor = actor.into();
    c.note = note.into();
    log::append(tx, &c)
}

fn total(acks: &[Ack]) -> u64 {
    acks.iter().map(|a| a.count).sum()
}

/// A command every node carries out; the acknowledgements within `wait`.
fn command(c: &mut Client, change: &LogChange, wait: Duration) -> Result<Vec<Ack>> {
    let mut tx = c.transaction()?;
    let rev = log::append(&mut tx, change)?;
    tx.commit()?;
    Ok(commands::wait_acks(c, rev, wait)?.0)
}

/// The first error a node reported, as the conflict it was.
fn conflict(acks: &[Ack]) -> Result<()> {
    match acks.iter().find_map(|a| ack_error(&a.detail)) {
        Some(why) => Err(StoreError::Conflict(why).into()),
        None => Ok(()),
    }
}

/// One message, wherever it is: this node's queue first, else a command
/// for the node that has it.
fn one_message(
    c: &mut Client,
    store: &mut Store,
    qid: &str,
    kind: Kind,
    wait: Duration,
    now: i64,
) -> Result<MessageRow> {
    if store.message(qid, false).is_ok() {
        return Ok(match kind {
            Kind::Release => store.release(qid, now)?,
            _ => store.delete_message(qid)?,
        });
    }
    let mut change = LogChange::new("", kind);
    change.qid = qid.to_string();
    let acks = command(c, &change, wait)?;
    if let Some(row) = acks
        .iter()
        .filter(|a| a.count > 0)
        .find_map(|a| row_from_json(&a.detail))
    {
        return Ok(row);
    }
    conflict(&acks)?;
    Err(StoreError::NoMessage(qid.to_string()).into())
}

/// A release or purge of the held mail a filter matches.
fn held_command(
    c: &mut Client,
    name: &str,
    kind: Kind,
    filter: &HeldFilter,
    wait: Duration,
) -> Result<HeldMoved> {
    let a = reads::account(c, name)?;
    if a.state == State::Purging {
        return Err(StoreError::Conflict(format!(
            "{name}: a purge is running (finish it with mailq-ctl purge {name})"
        ))
        .into());
    }
    let mut change = LogChange::new(name, kind);
    change.filter = Some(filter.clone());
    let acks = command(c, &change, wait)?;
    conflict(&acks)?;
    Ok(HeldMoved {
        account: reads::account(c, name)?,
        moved: total(&acks),
        left: acks.iter().map(|a| a.extra).sum(),
    })
}

impl Authority for ClusterAuthority {
    fn store(&self) -> &Store {
        &self.store
    }

    fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    fn account(&self, name: &str) -> control::Result<Account> {
        self.read(|c| reads::account(c, name))
    }

    fn accounts(&self) -> control::Result<Vec<Account>> {
        self.read(reads::accounts)
    }

    fn account_status(&self, name: &str, now: i64) -> control::Result<AccountStatus> {
        self.read(|c| reads::account_status(c, name, now))
    }

    fn overview(&self, now: i64) -> control::Result<Vec<Overview>> {
        self.read(|c| reads::overview(c, now))
    }

    fn daily_stats(&self, name: &str, days: i64, now: i64) -> control::Result<Vec<DayCounts>> {
        self.read(|c| reads::daily_stats(c, name, days, now))
    }

    fn errors_of(&self, name: &str, limit: i64) -> control::Result<Vec<ErrorRow>> {
        self.read(|c| reads::errors_of(c, name, limit))
    }

    fn history(&self, name: &str, limit: i64) -> control::Result<Vec<Event>> {
        self.read(|c| reads::history(c, name, limit))
    }

    fn held(&self, name: &str, filter: &HeldFilter, now: i64) -> control::Result<HeldSummary> {
        self.read(|c| reads::held(c, name, filter, now))
    }

    fn ensure_account(&mut self, name: &str, now: i64) -> control::Result<bool> {
        self.run(|c, _, _| {
            let n = c.execute(
                "INSERT INTO accounts (name, since, first_seen) VALUES ($1, $2, $2)
                 ON CONFLICT DO NOTHING",
                &[&name, &now],
            )?;
            Ok(n == 1)
        })
    }

    fn block(
        &mut self,
        name: &str,
        reason: BlockReason,
        actor: &str,
        note: &str,
        now: i64,
    ) -> control::Result<Change> {
        self.run(|c, _, wait| {
            let mut tx = c.transaction()?;
            let old = lock(&mut tx, name)?;
            let new = account::block_target(old, reason).map_err(|r| refused(name, r))?;
            let rev = set_state(
                &mut tx,
                name,
                old,
                new,
                Reason::Block(reason),
                actor,
                note,
                now,
            )?;
            tx.commit()?;
            let (acks, _) = commands::wait_acks(c, rev, wait)?;
            Ok(Change {
                account: name.to_string(),
                old,
                new,
                released: 0,
                held: total(&acks),
            })
        })
    }

    fn unblock(
        &mut self,
        name: &str,
        force: bool,
        actor: &str,
        note: &str,
        now: i64,
    ) -> control::Result<Change> {
        self.run(|c, _, wait| {
            let mut tx = c.transaction()?;
            let old = lock(&mut tx, name)?;
            let held: i64 = tx
                .query_one(
                    "SELECT coalesce(sum(held), 0)::bigint FROM node_accounts WHERE account = $1",
                    &[&name],
                )?
                .get(0);
            let new = account::unblock_target(old, force, super::count(held))
                .map_err(|r| refused(name, r))?;
            if new != old {
                let reason = if force {
                    Reason::Force
                } else {
                    Reason::Unblock
                };
                set_state(&mut tx, name, old, new, reason, actor, note, now)?;
            }
            // Always: a node may hold mail it has not pushed yet, and held
            // mail in a sending account must not stay.
            let rev = log::append(&mut tx, &LogChange::new(name, Kind::ReleaseHeld))?;
            tx.commit()?;
            let (acks, _) = commands::wait_acks(c, rev, wait)?;
            Ok(Change {
                account: name.to_string(),
                old,
                new,
                released: total(&acks),
                held: 0,
            })
        })
    }

    fn configure(
        &mut self,
        name: &str,
        settings: &Settings,
        now: i64,
    ) -> control::Result<(Account, bool)> {
        self.run(|c, _, _| {
            let mut tx = c.transaction()?;
            let created = tx.execute(
                "INSERT INTO accounts (name, since, first_seen) VALUES ($1, $2, $2)
                 ON CONFLICT DO NOTHING",
                &[&name, &now],
            )? == 1;
            lock(&mut tx, name)?;
            let value = |l: Limit| match l {
                Limit::Default => None,
                Limit::Value(n) => Some(super::big(n)),
            };
            if let Some(r) = &settings.report_to {
                tx.execute(
                    "UPDATE accounts SET report_to = $2 WHERE name = $1",
                    &[&name, r],
                )?;
            }
            if let Some(l) = settings.max_per_day {
                tx.execute(
                    "UPDATE accounts SET max_per_day = $2 WHERE name = $1",
                    &[&name, &value(l)],
                )?;
            }
            if let Some(l) = settings.max_per_hour {
                tx.execute(
                    "UPDATE accounts SET max_per_hour = $2 WHERE name = $1",
                    &[&name, &value(l)],
                )?;
            }
            let row = tx.query_one(
                "SELECT report_to, max_per_day, max_per_hour FROM accounts WHERE name = $1",
                &[&name],
            )?;
            let mut change = LogChange::new(name, Kind::Settings);
            change.report_to = row.get(0);
            change.max_per_day = row.get(1);
            change.max_per_hour = row.get(2);
            log::append(&mut tx, &change)?;
            tx.commit()?;
            Ok((reads::account(c, name)?, created))
        })
    }

    fn purge(&mut self, name: &str, actor: &str, note: &str, now: i64) -> control::Result<Purged> {
        self.run(|c, _, wait| {
            let mut tx = c.transaction()?;
            let old = lock(&mut tx, name)?;
            if old != State::Purging {
                set_state(
                    &mut tx,
                    name,
                    old,
                    State::Purging,
                    Reason::Purge,
                    actor,
                    note,
                    now,
                )?;
            }
            let mut change = LogChange::new(name, Kind::Purge);
            change.actor = actor.into();
            let rev = log::append(&mut tx, &change)?;
            tx.execute(
                "UPDATE accounts SET purge = $2 WHERE name = $1",
                &[&name, &rev],
            )?;
            tx.commit()?;
            let (acks, _) = commands::wait_acks(c, rev, wait)?;
            let dropped = total(&acks);
            let queued: u64 = acks.iter().map(|a| a.extra).sum::<u64>().min(dropped);
            // Ended here, or by the node that acknowledged last.
            let release = match commands::finish_purge(c, name, rev)? {
                Some(r) => Some(r),
                None => c
                    .query_opt(
                        "SELECT revision FROM changes WHERE account = $1 AND kind = 'release_held'
                           AND filter = '' AND revision > $2 ORDER BY revision LIMIT 1",
                        &[&name, &rev],
                    )?
                    .map(|r| r.get(0)),
            };
            let released = match release {
                Some(r) => total(&commands::wait_acks(c, r, wait)?.0),
                None => 0,
            };
            let new = reads::account(c, name)?.state;
            Ok(Purged {
                account: name.to_string(),
                old,
                dropped_held: dropped - queued,
                dropped_queued: queued,
                released,
                new,
            })
        })
    }

    fn release_message(&mut self, qid: &str, now: i64) -> control::Result<MessageRow> {
        self.run(|c, store, wait| one_message(c, store, qid, Kind::Release, wait, now))
    }

    fn delete_message(&mut self, qid: &str) -> control::Result<MessageRow> {
        let now = crate::clock::now_ms();
        self.run(|c, store, wait| one_message(c, store, qid, Kind::Delete, wait, now))
    }

    fn release_held(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        _now: i64,
    ) -> control::Result<HeldMoved> {
        self.run(|c, _, wait| held_command(c, name, Kind::ReleaseHeld, filter, wait))
    }

    fn purge_held(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        _now: i64,
    ) -> control::Result<HeldMoved> {
        self.run(|c, _, wait| held_command(c, name, Kind::Purge, filter, wait))
    }

    fn ledger(&mut self) -> &mut dyn Ledger {
        self
    }
}
