//! Admin and control-panel queries and state changes over the queue (SPEC §3, §6):
//! everything `mailq-ctl` reads or changes, as methods on [`Store`].
//!
//! ## Indexes
//! Every per-account query is a B-tree search, never a scan of the history,
//! so `status` and `stats` stay fast with a million messages:
//! - `accounts.name` (UNIQUE) finds the account;
//! - `daily` is keyed `(account_id, day)`: today's counters and a range of
//!   days are one search;
//! - `messages_pending (account_id, state, created)` is a *partial* index over
//!   not-done mail only. SQLite uses a partial index only when the query's
//!   WHERE clause contains the index's own condition, so every query over
//!   pending mail repeats it verbatim (the [`pending!`] macro) next to its
//!   narrower `state` test;
//! - `events_account (account_id, at)` and `errors_account (account_id, at)`
//!   serve `history`, `errors` and the newest event in `status`.
//!
//! ## Transactions
//! A state change and the moves of the account's mail it implies happen in
//! one `BEGIN IMMEDIATE` transaction, the same lock `sendmail`'s enqueue
//! takes, so a concurrent submission is either before the change (and moved
//! by it) or after it (and sees the new state): nothing is stranded held in
//! a sending account (SPEC §3). Bulk deletions (purge, sweep) work in chunks
//! so a submission never waits long for the lock.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::{Result, Store, StoreError, bump_daily, create_account, hold_pending, set_state};
use crate::account::{self, BlockReason, Refusal, State};
use crate::clock;

/// The condition of the `messages_pending` partial index; see the module doc.
macro_rules! pending {
    () => {
        "state IN ('held', 'queued', 'deferred', 'sending')"
    };
}

/// The columns [`account_from_row`] reads, in order.
macro_rules! account_cols {
    () => {
        "id, name, state, state_reason, state_since, report_to, max_per_day, max_per_hour,
         sent_total, error_total, first_seen"
    };
}

/// The columns [`message_from_row`] reads, in order (`m` is `messages`, `a` `accounts`).
macro_rules! message_cols {
    () => {
        "m.id, m.qid, a.name, m.state, m.created, m.next_attempt, m.attempts, m.sender,
         m.size, m.subject, m.script, m.cwd, m.uid, m.last_error, m.done_at,
         (SELECT count(*) FROM recipients r WHERE r.message_id = m.id)"
    };
}

/// The statements behind `status ACCOUNT`, `stats` and friends, named so
/// the test below can check with EXPLAIN QUERY PLAN that each is an index
/// search, never a scan.
mod sql {
    pub const ACCOUNT_BY_NAME: &str =
        concat!("SELECT ", account_cols!(), " FROM accounts WHERE name = ?1");
    pub const QUEUE_COUNTS: &str = concat!(
        "SELECT state, count(*), min(created) FROM messages WHERE account_id = ?1 AND ",
        pending!(),
        " GROUP BY state"
    );
    pub const DAY_COUNTS: &str = "SELECT day, submitted, sent, errors, held, expired FROM daily
         WHERE account_id = ?1 AND day = ?2";
    pub const LAST_EVENT: &str = "SELECT at, old_state, new_state, reason, actor, note FROM events
         WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT 1";
    pub const DAY_RANGE: &str = "SELECT day, submitted, sent, errors, held, expired FROM daily
         WHERE account_id = ?1 AND day >= ?2 AND day <= ?3";
    pub const ERRORS_OF: &str = "SELECT at, qid, rcpt, kind, message, subject, script FROM errors
         WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2";
    pub const HISTORY: &str = "SELECT at, old_state, new_state, reason, actor, note FROM events
         WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2";
}

/// One account's row.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub state: State,
    /// Why it is in this state (`manual`, `spam`, `limit`, `unblock`, `purge`, ...).
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

/// An account's not-yet-done mail, by state.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounts {
    pub held: i64,
    pub queued: i64,
    pub deferred: i64,
    pub sending: i64,
    /// Creation time of the oldest held message.
    pub oldest_held: Option<i64>,
}

/// One day of an account's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    /// UTC day number.
    pub day: i64,
    pub submitted: i64,
    pub sent: i64,
    pub errors: i64,
    pub held: i64,
    pub expired: i64,
}

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

/// Everything `status ACCOUNT` shows.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub account: Account,
    pub today: DayCounts,
    pub queue: QueueCounts,
    /// The newest state change (who blocked it, with which note).
    pub last_event: Option<Event>,
}

/// One line of `status` without an account.
#[derive(Debug, Clone)]
pub struct Overview {
    pub account: Account,
    pub sent_today: i64,
    pub queue: QueueCounts,
}

/// The result of `block` or `unblock`.
#[derive(Debug, Clone)]
pub struct Change {
    pub account: String,
    pub old: State,
    pub new: State,
    /// Held messages moved back to `queued` (unblock).
    pub released: u64,
    /// Queued and deferred messages the block held (see `store.rs`,
    /// "Claims and blocks").
    pub held: u64,
}

impl Change {
    /// Whether the state actually changed (unblocking a sending account does not).
    pub fn changed(&self) -> bool {
        self.old != self.new
    }
}

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

/// What the housekeeping part of a sweep deleted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Housekeeping {
    pub messages: u64,
    pub bodies: u64,
    pub errors: u64,
    pub events: u64,
    pub daily: u64,
    pub hourly: u64,
}

/// One message, without its body.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub qid: String,
    pub account: String,
    pub state: String,
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: i64,
    pub sender: String,
    pub size: i64,
    pub subject: String,
    pub script: String,
    pub cwd: String,
    pub uid: i64,
    pub last_error: String,
    pub done_at: Option<i64>,
    pub nrcpt: i64,
}

/// One message with its recipients (and its bytes while it has them).
#[derive(Debug, Clone)]
pub struct MessageDetail {
    pub row: MessageRow,
    /// (address, pending | sent | failed)
    pub recipients: Vec<(String, String)>,
    /// `None` once delivered (bodies are deleted when a message is done).
    pub data: Option<Vec<u8>>,
}

/// Which messages `queue` lists.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub account: Option<String>,
    /// A message state; `None` lists the not-yet-done mail.
    pub state: Option<String>,
    pub limit: i64,
}

/// One mail in error.
#[derive(Debug, Clone)]
pub struct ErrorRow {
    pub at: i64,
    pub qid: String,
    pub rcpt: String,
    pub kind: String,
    pub message: String,
    pub subject: String,
    pub script: String,
}

impl ErrorRow {
    /// From a row selecting `at, qid, rcpt, kind, message, subject, script`.
    pub(crate) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ErrorRow> {
        Ok(ErrorRow {
            at: r.get(0)?,
            qid: r.get(1)?,
            rcpt: r.get(2)?,
            kind: r.get(3)?,
            message: r.get(4)?,
            subject: r.get(5)?,
            script: r.get(6)?,
        })
    }
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

/// A message `flush` or `test` waits for.
#[derive(Debug, Clone, Copy)]
pub struct Tracked {
    pub id: i64,
    /// Delivery attempts before the wait began.
    pub attempts: i64,
}

/// Where a tracked message is now.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub qid: String,
    pub account: String,
    /// `None`: the message no longer exists (deleted or purged meanwhile).
    pub state: Option<String>,
    pub attempts: i64,
    pub last_error: String,
    pub next_attempt: i64,
}

impl Outcome {
    /// Whether this wait is over for the message: it is done, gone, held
    /// again, or had a new attempt since the wait began.
    pub fn settled(&self, before: &Tracked) -> bool {
        match self.state.as_deref() {
            None | Some("sent" | "failed" | "expired" | "held") => true,
            Some("deferred") => self.attempts > before.attempts,
            _ => false,
        }
    }
}

/// The synthetic queue `populate` writes (for the benchmark).
#[derive(Debug, Clone, Copy)]
pub struct PopulateSpec {
    pub accounts: u64,
    /// Messages of history (sent, some failed), spread over `days`.
    pub messages: u64,
    /// Held messages, all of the first account (which is blocked).
    pub held: u64,
    pub days: i64,
}

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        state: State::parse(&r.get::<_, String>(2)?).unwrap_or(State::Ko),
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

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        qid: r.get(1)?,
        account: r.get(2)?,
        state: r.get(3)?,
        created: r.get(4)?,
        next_attempt: r.get(5)?,
        attempts: r.get(6)?,
        sender: r.get(7)?,
        size: r.get(8)?,
        subject: r.get(9)?,
        script: r.get(10)?,
        cwd: r.get(11)?,
        uid: r.get(12)?,
        last_error: r.get(13)?,
        done_at: r.get(14)?,
        nrcpt: r.get(15)?,
    })
}

pub(crate) fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        at: r.get(0)?,
        old: r.get(1)?,
        new: r.get(2)?,
        reason: r.get(3)?,
        actor: r.get(4)?,
        note: r.get(5)?,
    })
}

/// The account named `name`, inside a transaction.
fn account_in(tx: &Transaction<'_>, name: &str) -> Result<Account> {
    tx.prepare_cached(sql::ACCOUNT_BY_NAME)?
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
fn release_held(tx: &Transaction<'_>, account_id: i64, now: i64) -> Result<u64> {
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

/// Delete one message and everything hanging off it.
fn delete_message_rows(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM recipients WHERE message_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM bodies WHERE message_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Drop up to `limit` of a purged account's held, queued and deferred
/// messages up to the purge's cutoff id, inside `tx`; what was dropped.
fn drop_purged(tx: &Transaction<'_>, p: &Purge, limit: usize) -> Result<Dropped> {
    /// The chunk: the same rows each time it is evaluated inside the
    /// transaction (nothing else writes meanwhile), in index order.
    macro_rules! victims {
        () => {
            concat!(
                "SELECT id FROM messages WHERE account_id = ?1 AND ",
                pending!(),
                " AND state IN ('held', 'queued', 'deferred') AND id <= ?2 LIMIT ?3"
            )
        };
    }
    let args = params![p.account_id, p.cutoff, limit.min(i64::MAX as usize) as i64];
    let mut d = Dropped::default();
    {
        let mut stmt = tx.prepare_cached(concat!(
            "SELECT state, count(*) FROM messages WHERE id IN (",
            victims!(),
            ") GROUP BY state"
        ))?;
        let rows = stmt.query_map(args, |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            if state == "held" {
                d.held += n as u64;
            } else {
                d.queued += n as u64;
            }
        }
    }
    // Set-based: one statement per table instead of three per message.
    tx.prepare_cached(concat!(
        "DELETE FROM recipients WHERE message_id IN (",
        victims!(),
        ")"
    ))?
    .execute(args)?;
    tx.prepare_cached(concat!(
        "DELETE FROM bodies WHERE message_id IN (",
        victims!(),
        ")"
    ))?
    .execute(args)?;
    let n = tx
        .prepare_cached(concat!(
            "DELETE FROM messages WHERE id IN (",
            victims!(),
            ")"
        ))?
        .execute(args)?;
    if n as u64 != d.held + d.queued {
        // Cannot happen inside one write transaction; if it ever did,
        // dropping `tx` rolls the chunk back rather than miscount.
        return Err(StoreError::Conflict(format!(
            "{}: purge chunk changed under it ({n} deleted, {} counted)",
            p.account,
            d.held + d.queued
        )));
    }
    Ok(d)
}

impl Store {
    /// The account named `name`.
    pub fn account(&self, name: &str) -> Result<Account> {
        self.conn
            .prepare_cached(sql::ACCOUNT_BY_NAME)?
            .query_row([name], account_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NoAccount(name.to_string()))
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                account_cols!(),
                " FROM accounts ORDER BY name"
            ))?
            .query_map([], account_from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// An account's not-yet-done mail, counted by state (one index search).
    pub fn queue_counts(&self, account_id: i64) -> Result<QueueCounts> {
        let mut q = QueueCounts::default();
        let mut stmt = self.conn().prepare_cached(sql::QUEUE_COUNTS)?;
        let rows = stmt.query_map([account_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, n, oldest) = row?;
            add_count(&mut q, &state, n, oldest);
        }
        Ok(q)
    }

    /// One day's counters of an account (zeros when nothing happened).
    fn day_counts(&self, account_id: i64, day: i64) -> Result<DayCounts> {
        Ok(self
            .conn()
            .prepare_cached(sql::DAY_COUNTS)?
            .query_row(params![account_id, day], day_from_row)
            .optional()?
            .unwrap_or(DayCounts {
                day,
                ..DayCounts::default()
            }))
    }

    /// What `status ACCOUNT` shows: four index searches.
    pub fn account_status(&self, name: &str, now: i64) -> Result<AccountStatus> {
        let account = self.account(name)?;
        let today = self.day_counts(account.id, clock::day_of(now))?;
        let queue = self.queue_counts(account.id)?;
        let last_event = self
            .conn()
            .prepare_cached(sql::LAST_EVENT)?
            .query_row([account.id], event_from_row)
            .optional()?;
        Ok(AccountStatus {
            account,
            today,
            queue,
            last_event,
        })
    }

    /// One line per account: state, counters and queue (three passes over
    /// small tables or the partial index, never over the history).
    pub fn overview(&self, now: i64) -> Result<Vec<Overview>> {
        let mut out: Vec<Overview> = self
            .accounts()?
            .into_iter()
            .map(|account| Overview {
                account,
                sent_today: 0,
                queue: QueueCounts::default(),
            })
            .collect();
        let index: std::collections::HashMap<i64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, o)| (o.account.id, i))
            .collect();
        {
            let mut stmt = self
                .conn()
                // CROSS JOIN keeps accounts as the outer loop: one key
                // search per account instead of a scan of every daily row.
                .prepare_cached(
                    "SELECT a.id, d.sent FROM accounts a CROSS JOIN daily d
                     ON d.account_id = a.id AND d.day = ?1",
                )?;
            let rows = stmt.query_map([clock::day_of(now)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, sent) = row?;
                if let Some(&i) = index.get(&id) {
                    out[i].sent_today = sent;
                }
            }
        }
        let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT account_id, state, count(*), min(created) FROM messages WHERE ",
            pending!(),
            " GROUP BY account_id, state"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (id, state, n, oldest) = row?;
            if let Some(&i) = index.get(&id) {
                add_count(&mut out[i].queue, &state, n, oldest);
            }
        }
        Ok(out)
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
        let tx = self.begin()?;
        let a = account_in(&tx, name)?;
        let new =
            account::block_target(a.state, reason).map_err(|refusal| refused(name, refusal))?;
        // Leaving a sending state holds what the relay has not started.
        let held = set_state(&tx, a.id, a.state, new, reason.as_str(), actor, note, now)?;
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
    /// back to `queued` (due now), so no message is stranded (SPEC §3).
    pub fn unblock(
        &mut self,
        name: &str,
        force: bool,
        actor: &str,
        note: &str,
        now: i64,
    ) -> Result<Change> {
        let tx = self.begin()?;
        let a = account_in(&tx, name)?;
        let held = count_held(&tx, a.id)?;
        let new = account::unblock_target(a.state, force, held)
            .map_err(|refusal| refused(name, refusal))?;
        if new != a.state {
            let reason = if force { "force" } else { "unblock" };
            set_state(&tx, a.id, a.state, new, reason, actor, note, now)?;
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

    /// Start (or resume) a purge: the account goes to `purging`, so its new
    /// mail is held while its old mail is dropped chunk by chunk.
    pub fn purge_begin(&mut self, name: &str, actor: &str, note: &str, now: i64) -> Result<Purge> {
        let tx = self.begin()?;
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
            held_at_begin = set_state(
                &tx,
                a.id,
                a.state,
                State::Purging,
                "purge",
                actor,
                note,
                now,
            )?;
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
    /// per connection, which may finish (see `store.rs`, "Claims and
    /// blocks"); if it comes back undelivered, `purge_finish` drops it.
    pub fn purge_chunk(&mut self, p: &Purge, limit: usize) -> Result<Dropped> {
        let tx = self.begin()?;
        let d = drop_purged(&tx, p, limit)?;
        tx.commit()?;
        Ok(d)
    }

    /// End a purge: in one transaction, what is left up to the cutoff (a
    /// message that was on a connection when the purge began and came back
    /// undelivered) is dropped, the account goes to `ok`, and the mail that
    /// arrived (held) during the purge is released. Returns what was
    /// dropped here and how many were released.
    pub fn purge_finish(&mut self, p: &Purge, actor: &str, now: i64) -> Result<(Dropped, u64)> {
        let tx = self.begin()?;
        let a = account_in(&tx, &p.account)?;
        if a.state != State::Purging {
            return Err(StoreError::Conflict(format!(
                "{}: the purge was interrupted: the account is now {}",
                p.account, a.state
            )));
        }
        let late = drop_purged(&tx, p, i64::MAX as usize)?;
        set_state(
            &tx,
            a.id,
            State::Purging,
            State::Ok,
            "purge",
            actor,
            "",
            now,
        )?;
        let released = release_held(&tx, a.id, now)?;
        tx.commit()?;
        Ok((late, released))
    }

    /// Expire up to `limit` held messages created before `cutoff`: they
    /// become `expired` (metadata kept for the report, body deleted) and are
    /// counted in `daily.expired`. Returns (account, count) per account.
    pub fn expire_held(
        &mut self,
        cutoff: i64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>> {
        macro_rules! victims {
            () => {
                concat!(
                    "SELECT id FROM messages WHERE ",
                    pending!(),
                    " AND state = 'held' AND created < ?1 LIMIT ?2"
                )
            };
        }
        let args = params![cutoff, limit as i64];
        let tx = self.begin()?;
        let per_account: Vec<(i64, u64)> = tx
            .prepare_cached(concat!(
                "SELECT account_id, count(*) FROM messages WHERE id IN (",
                victims!(),
                ") GROUP BY account_id"
            ))?
            .query_map(args, |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<_>>()?;
        // Bodies first, while the chunk is still `held`.
        tx.prepare_cached(concat!(
            "DELETE FROM bodies WHERE message_id IN (",
            victims!(),
            ")"
        ))?
        .execute(args)?;
        tx.prepare_cached(concat!(
            "UPDATE messages SET state = 'expired', done_at = ?3, next_attempt = ?3
             WHERE id IN (",
            victims!(),
            ")"
        ))?
        .execute(params![cutoff, limit as i64, now])?;
        let mut out = Vec::with_capacity(per_account.len());
        for (account_id, n) in per_account {
            bump_daily(&tx, account_id, now, "expired", n as i64)?;
            let name: String = tx
                .prepare_cached("SELECT name FROM accounts WHERE id = ?1")?
                .query_row([account_id], |r| r.get(0))?;
            out.push((name, n));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Delete what is older than `history_cutoff` (ms): done messages,
    /// mails in error, events (always keeping each account's newest, which
    /// explains its current state), daily rows; hourly rows before
    /// `hour_cutoff`; and any body left over by a done message. Works in
    /// chunks of `chunk` rows or accounts per transaction.
    pub fn housekeep(
        &mut self,
        history_cutoff: i64,
        hour_cutoff: i64,
        chunk: usize,
    ) -> Result<Housekeeping> {
        let mut h = Housekeeping::default();
        let day_cutoff = clock::day_of(history_cutoff);
        // Done messages, through the `messages_done` index.
        loop {
            let tx = self.begin()?;
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM messages WHERE done_at IS NOT NULL AND done_at < ?1 LIMIT ?2",
                )?
                .query_map(params![history_cutoff, chunk as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in &ids {
                delete_message_rows(&tx, *id)?;
            }
            tx.commit()?;
            h.messages += ids.len() as u64;
            if ids.len() < chunk {
                break;
            }
        }
        // Per-account tables, through their (account_id, ...) keys: a search
        // per account instead of a scan of millions of daily rows.
        let ids: Vec<i64> = self
            .conn()
            .prepare_cached("SELECT id FROM accounts ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for group in ids.chunks(chunk.max(1)) {
            let tx = self.begin()?;
            for &id in group {
                h.errors += tx
                    .prepare_cached("DELETE FROM errors WHERE account_id = ?1 AND at < ?2")?
                    .execute(params![id, history_cutoff])? as u64;
                h.events += tx
                    .prepare_cached(
                        "DELETE FROM events WHERE account_id = ?1 AND at < ?2
                         AND id <> (SELECT id FROM events WHERE account_id = ?1
                                    ORDER BY at DESC, id DESC LIMIT 1)",
                    )?
                    .execute(params![id, history_cutoff])? as u64;
                h.daily += tx
                    .prepare_cached("DELETE FROM daily WHERE account_id = ?1 AND day < ?2")?
                    .execute(params![id, day_cutoff])? as u64;
                h.hourly += tx
                    .prepare_cached("DELETE FROM hourly WHERE account_id = ?1 AND hour < ?2")?
                    .execute(params![id, hour_cutoff])? as u64;
            }
            tx.commit()?;
        }
        // Bodies of done (or vanished) messages: the relay deletes them as
        // it goes, so this only repairs what a crash left behind. `bodies`
        // holds only not-yet-done mail, so the scan is short.
        let tx = self.begin()?;
        h.bodies = tx.execute(
            "DELETE FROM bodies WHERE message_id IN (
                 SELECT b.message_id FROM bodies b LEFT JOIN messages m ON m.id = b.message_id
                 WHERE m.id IS NULL OR m.done_at IS NOT NULL)",
            [],
        )? as u64;
        tx.commit()?;
        Ok(h)
    }

    /// Messages for `queue`: not-yet-done mail oldest first, or the newest
    /// messages in one state.
    pub fn messages(&self, f: &QueueFilter) -> Result<Vec<MessageRow>> {
        let account_id = match &f.account {
            Some(name) => Some(self.account(name)?.id),
            None => None,
        };
        let limit = f.limit.max(1);
        let mut stmt;
        let rows = match (account_id, f.state.as_deref()) {
            (Some(id), None) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.account_id = ?1 AND m.",
                    pending!(),
                    " ORDER BY m.created, m.id LIMIT ?2"
                ))?;
                stmt.query_map(params![id, limit], message_from_row)?
            }
            (None, None) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.",
                    pending!(),
                    " ORDER BY m.created, m.id LIMIT ?1"
                ))?;
                stmt.query_map(params![limit], message_from_row)?
            }
            (Some(id), Some(state)) if is_pending_state(state) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.account_id = ?1 AND m.",
                    pending!(),
                    " AND m.state = ?2 ORDER BY m.created, m.id LIMIT ?3"
                ))?;
                stmt.query_map(params![id, state, limit], message_from_row)?
            }
            (None, Some(state)) if is_pending_state(state) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.",
                    pending!(),
                    " AND m.state = ?1 ORDER BY m.created, m.id LIMIT ?2"
                ))?;
                stmt.query_map(params![state, limit], message_from_row)?
            }
            (Some(id), Some(state)) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.account_id = ?1 AND m.state = ?2
                     ORDER BY m.created DESC, m.id DESC LIMIT ?3"
                ))?;
                stmt.query_map(params![id, state, limit], message_from_row)?
            }
            (None, Some(state)) => {
                stmt = self.conn().prepare_cached(concat!(
                    "SELECT ",
                    message_cols!(),
                    " FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.state = ?1 ORDER BY m.id DESC LIMIT ?2"
                ))?;
                stmt.query_map(params![state, limit], message_from_row)?
            }
        };
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One message by queue id, with its recipients and (if `with_data` and
    /// it still has them) its bytes.
    pub fn message(&self, qid: &str, with_data: bool) -> Result<MessageDetail> {
        let row = self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.qid = ?1"
            ))?
            .query_row([qid], message_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NoMessage(qid.to_string()))?;
        let recipients = self
            .conn()
            .prepare_cached(
                "SELECT rcpt, state FROM recipients WHERE message_id = ?1 ORDER BY rcpt",
            )?
            .query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let data = if with_data {
            self.conn
                .prepare_cached("SELECT data FROM bodies WHERE message_id = ?1")?
                .query_row([row.id], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        Ok(MessageDetail {
            row,
            recipients,
            data,
        })
    }

    /// Release one held message to `queued`, due now (even for a blocked
    /// account: the admin vouches for this one message, so it stays exempt
    /// from the block through its retries, until the account is blocked
    /// again; see `store.rs`, "Claims and blocks").
    pub fn release(&mut self, qid: &str, now: i64) -> Result<MessageRow> {
        let tx = self.begin()?;
        let n = tx
            .prepare_cached(
                "UPDATE messages SET state = 'queued', next_attempt = ?2, released = 1
                 WHERE qid = ?1 AND state = 'held'",
            )?
            .execute(params![qid, now])?;
        if n == 0 {
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM messages WHERE qid = ?1")?
                .query_row([qid], |r| r.get(0))
                .optional()?;
            return Err(match state {
                None => StoreError::NoMessage(qid.to_string()),
                Some(s) => StoreError::Conflict(format!(
                    "message {qid} is {s}, not held: only held mail can be released"
                )),
            });
        }
        tx.commit()?;
        self.message(qid, false).map(|d| d.row)
    }

    /// Delete one not-yet-sent message (held, queued or deferred). A
    /// message on a connection (`sending`: its transaction has begun) and
    /// the history of done mail cannot be deleted.
    pub fn delete_message(&mut self, qid: &str) -> Result<MessageRow> {
        let before = self.message(qid, false)?.row;
        let tx = self.begin()?;
        let state: Option<String> = tx
            .prepare_cached("SELECT state FROM messages WHERE id = ?1")?
            .query_row([before.id], |r| r.get(0))
            .optional()?;
        match state.as_deref() {
            None => return Err(StoreError::NoMessage(qid.to_string())),
            Some("held" | "queued" | "deferred") => delete_message_rows(&tx, before.id)?,
            Some("sending") => {
                return Err(StoreError::Conflict(format!(
                    "message {qid} is being sent now (on a connection to the smarthost): it cannot be recalled"
                )));
            }
            Some(s) => {
                return Err(StoreError::Conflict(format!(
                    "message {qid} is {s}: only held, queued or deferred mail can be deleted"
                )));
            }
        }
        tx.commit()?;
        Ok(before)
    }

    /// Make every queued and deferred message (of one account, or all) due
    /// now, and return them so the caller can wait for them.
    pub fn make_due(&mut self, account: Option<&str>, now: i64) -> Result<Vec<Tracked>> {
        let tx = self.begin()?;
        let account_id = match account {
            Some(name) => Some(account_in(&tx, name)?.id),
            None => None,
        };
        let tracked = {
            let mut stmt = tx.prepare_cached(concat!(
                "UPDATE messages SET next_attempt = min(next_attempt, ?1)
                 WHERE (?2 IS NULL OR account_id = ?2) AND ",
                pending!(),
                " AND state IN ('queued', 'deferred')
                 RETURNING id, attempts"
            ))?;
            stmt.query_map(params![now, account_id], |r| {
                Ok(Tracked {
                    id: r.get(0)?,
                    attempts: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(tracked)
    }

    /// Start tracking one message by queue id (for `test`).
    pub fn track(&self, qid: &str) -> Result<Tracked> {
        self.conn
            .prepare_cached("SELECT id, attempts FROM messages WHERE qid = ?1")?
            .query_row([qid], |r| {
                Ok(Tracked {
                    id: r.get(0)?,
                    attempts: r.get(1)?,
                })
            })
            .optional()?
            .ok_or_else(|| StoreError::NoMessage(qid.to_string()))
    }

    /// Where each tracked message is now.
    pub fn outcomes(&self, tracked: &[Tracked]) -> Result<Vec<Outcome>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT m.qid, a.name, m.state, m.attempts, m.last_error, m.next_attempt
             FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?1",
        )?;
        let mut out = Vec::with_capacity(tracked.len());
        for t in tracked {
            let o = stmt
                .query_row([t.id], |r| {
                    Ok(Outcome {
                        qid: r.get(0)?,
                        account: r.get(1)?,
                        state: Some(r.get(2)?),
                        attempts: r.get(3)?,
                        last_error: r.get(4)?,
                        next_attempt: r.get(5)?,
                    })
                })
                .optional()?;
            out.push(o.unwrap_or(Outcome {
                qid: String::new(),
                account: String::new(),
                state: None,
                attempts: t.attempts,
                last_error: String::new(),
                next_attempt: 0,
            }));
        }
        Ok(out)
    }

    /// The permanent-failure texts recorded for a message (for `test`).
    pub fn error_texts(&self, qid: &str) -> Result<Vec<String>> {
        Ok(self
            .conn()
            // Through `errors_account`: errors has no index on qid.
            .prepare_cached(
                "SELECT rcpt || ': ' || message FROM errors
                 WHERE account_id = (SELECT account_id FROM messages WHERE qid = ?1)
                   AND qid = ?1 ORDER BY at, id",
            )?
            .query_map([qid], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The last `days` UTC days of an account's counters, oldest first,
    /// today included; days without activity are zeros (one range search).
    pub fn daily_stats(&self, name: &str, days: i64, now: i64) -> Result<Vec<DayCounts>> {
        let account = self.account(name)?;
        let today = clock::day_of(now);
        let first = today - days.max(1) + 1;
        let mut found: std::collections::HashMap<i64, DayCounts> = self
            .conn()
            .prepare_cached(sql::DAY_RANGE)?
            .query_map(params![account.id, first, today], day_from_row)?
            .map(|r| r.map(|d| (d.day, d)))
            .collect::<rusqlite::Result<_>>()?;
        Ok((first..=today)
            .map(|day| {
                found.remove(&day).unwrap_or(DayCounts {
                    day,
                    ..DayCounts::default()
                })
            })
            .collect())
    }

    /// An account's newest mails in error, newest first.
    pub fn errors_of(&self, name: &str, limit: i64) -> Result<Vec<ErrorRow>> {
        let account = self.account(name)?;
        Ok(self
            .conn()
            .prepare_cached(sql::ERRORS_OF)?
            .query_map(params![account.id, limit.max(1)], ErrorRow::from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// An account's newest `limit` state changes, oldest first.
    pub fn history(&self, name: &str, limit: i64) -> Result<Vec<Event>> {
        let account = self.account(name)?;
        let mut events: Vec<Event> = self
            .conn()
            .prepare_cached(sql::HISTORY)?
            .query_map(params![account.id, limit.max(1)], event_from_row)?
            .collect::<rusqlite::Result<_>>()?;
        events.reverse();
        Ok(events)
    }

    /// Create the account (state `ok`) if it has no row yet; true if it was
    /// created. The caller has checked that the name resolves (`mailq-ctl`
    /// creates an account before its first mail only for such a name).
    pub fn ensure_account(&mut self, name: &str, now: i64) -> Result<bool> {
        let tx = self.begin()?;
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
        let tx = self.begin()?;
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

    /// Fill the queue with synthetic accounts and history in one transaction
    /// (the benchmark's fixture; hidden `mailq-ctl populate`). Accounts are
    /// `acct00000`...; the first one is blocked and holds `held` messages.
    pub fn populate(&mut self, spec: &PopulateSpec, now: i64) -> Result<()> {
        let tx = self.begin()?;
        let days = spec.days.max(1);
        let first_day = clock::day_of(now) - days + 1;
        let n_accounts = spec.accounts.max(1);
        let mut ids = Vec::with_capacity(n_accounts as usize);
        for i in 0..n_accounts {
            let name = format!("acct{i:05}");
            let id = match account_in(&tx, &name) {
                Ok(a) => a.id,
                Err(StoreError::NoAccount(_)) => {
                    create_account(&tx, &name, first_day * clock::DAY_MS)?
                }
                Err(e) => return Err(e),
            };
            ids.push(id);
        }
        // History: sent mail, one recipient each, every 50th failed.
        let mut per_day: std::collections::HashMap<(i64, i64), (i64, i64)> = Default::default();
        let stamp = now / 1000;
        {
            let mut msg = tx.prepare_cached(
                "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender,
                     size, subject, script, attempts, done_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1500, 'Order confirmation', '/var/www/shop/mail.php',
                         1, ?4, ?6)",
            )?;
            let mut rcpt = tx.prepare_cached(
                "INSERT INTO recipients (message_id, rcpt, state) VALUES (?1, ?2, ?3)",
            )?;
            let mut err = tx.prepare_cached(
                "INSERT INTO errors (account_id, message_id, qid, at, rcpt, kind, message, subject, script)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'rejected', '550 5.1.1 user unknown',
                         'Order confirmation', '/var/www/shop/mail.php')",
            )?;
            for i in 0..spec.messages {
                let account_id = ids[(i % n_accounts) as usize];
                let created = now - ((i * 7919) % (days as u64 * 86_400)) as i64 * 1000 - 1000;
                let failed = i % 50 == 49;
                let qid = format!("P{stamp:08X}{i:08X}");
                let to = format!("customer{i}@example.com");
                msg.execute(params![
                    qid,
                    account_id,
                    if failed { "failed" } else { "sent" },
                    created,
                    "www@node.example.net",
                    if failed { "550 5.1.1 user unknown" } else { "" },
                ])?;
                let id = tx.last_insert_rowid();
                rcpt.execute(params![id, to, if failed { "failed" } else { "sent" }])?;
                let e = per_day
                    .entry((account_id, clock::day_of(created)))
                    .or_default();
                if failed {
                    err.execute(params![account_id, id, qid, created, to])?;
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
            let mut daily = tx.prepare_cached(
                "INSERT INTO daily (account_id, day, submitted, sent, errors) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, day) DO UPDATE SET submitted = submitted + ?3,
                     sent = sent + ?4, errors = errors + ?5",
            )?;
            let mut totals = tx.prepare_cached(
                "UPDATE accounts SET sent_total = sent_total + ?2, error_total = error_total + ?3
                 WHERE id = ?1",
            )?;
            for ((account_id, day), (sent, errors)) in &per_day {
                daily.execute(params![account_id, day, sent + errors, sent, errors])?;
                totals.execute(params![account_id, sent, errors])?;
            }
        }
        if spec.held > 0 {
            let a = account_in(&tx, "acct00000")?;
            if a.state.is_sending() {
                set_state(
                    &tx,
                    a.id,
                    a.state,
                    State::Ko,
                    "manual",
                    "populate",
                    "benchmark",
                    now,
                )?;
            }
            let body = b"From: www@node.example.net\r\nTo: someone@example.com\r\nSubject: held\r\n\r\nHeld by the benchmark.\r\n";
            let mut msg = tx.prepare_cached(
                "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender, size)
                 VALUES (?1, ?2, 'held', ?3, ?3, 'www@node.example.net', ?4)",
            )?;
            let mut data =
                tx.prepare_cached("INSERT INTO bodies (message_id, data) VALUES (?1, ?2)")?;
            let mut rcpt =
                tx.prepare_cached("INSERT INTO recipients (message_id, rcpt) VALUES (?1, ?2)")?;
            for i in 0..spec.held {
                let created = now - (spec.held - i) as i64;
                msg.execute(params![
                    format!("H{stamp:08X}{i:08X}"),
                    a.id,
                    created,
                    body.len() as i64
                ])?;
                let id = tx.last_insert_rowid();
                data.execute(params![id, &body[..]])?;
                rcpt.execute(params![id, format!("someone{i}@example.com")])?;
            }
            bump_daily(&tx, a.id, now, "held", spec.held as i64)?;
        }
        tx.commit()?;
        Ok(())
    }
}

fn day_from_row(r: &Row<'_>) -> rusqlite::Result<DayCounts> {
    Ok(DayCounts {
        day: r.get(0)?,
        submitted: r.get(1)?,
        sent: r.get(2)?,
        errors: r.get(3)?,
        held: r.get(4)?,
        expired: r.get(5)?,
    })
}

fn add_count(q: &mut QueueCounts, state: &str, n: i64, oldest: i64) {
    match state {
        "held" => {
            q.held += n;
            q.oldest_held = Some(q.oldest_held.map_or(oldest, |o| o.min(oldest)));
        }
        "queued" => q.queued += n,
        "deferred" => q.deferred += n,
        "sending" => q.sending += n,
        _ => {}
    }
}

fn is_pending_state(s: &str) -> bool {
    matches!(s, "held" | "queued" | "deferred" | "sending")
}

fn refused(name: &str, refusal: Refusal) -> StoreError {
    StoreError::Refused {
        account: name.to_string(),
        refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, EnqueuePolicy, NewMessage};

    const T0: i64 = 1_795_353_858_000; // 2026-11-22T13:24:18Z

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("queue.db"), Durability::Normal).unwrap();
        (dir, s)
    }

    fn submit(s: &mut Store, account: &str, qid: &str, now: i64) -> bool {
        let rcpt = vec!["someone@example.com".to_string()];
        s.enqueue(
            &NewMessage {
                qid,
                account,
                uid: 1000,
                sender: "www@node.example.net",
                recipients: &rcpt,
                data: b"Subject: t\r\n\r\nbody\r\n",
                subject: "t",
                script: "/var/www/x.php",
                cwd: "/var/www",
                dsn_notify: None,
                dsn_ret: None,
                envid: None,
                body_8bit: false,
                system: false,
            },
            EnqueuePolicy::default(),
            now,
        )
        .unwrap()
        .held
    }

    fn state_of(s: &Store, qid: &str) -> String {
        s.message(qid, false).unwrap().row.state
    }

    /// The queries `status ACCOUNT`, `stats`, `errors` and `history` run
    /// must be B-tree searches: with a million messages a scan is seconds.
    #[test]
    fn hot_queries_are_index_searches() {
        let (_d, s) = store();
        for (query, index) in [
            (sql::ACCOUNT_BY_NAME, "sqlite_autoindex_accounts_1 (name=?)"),
            // The partial index, not messages_account (the whole history).
            (
                sql::QUEUE_COUNTS,
                "COVERING INDEX messages_pending (account_id=? AND state=?)",
            ),
            (sql::DAY_COUNTS, "PRIMARY KEY (account_id=? AND day=?)"),
            (sql::LAST_EVENT, "events_account (account_id=?)"),
            (
                sql::DAY_RANGE,
                "PRIMARY KEY (account_id=? AND day>? AND day<?)",
            ),
            (sql::ERRORS_OF, "errors_account (account_id=?)"),
            (sql::HISTORY, "events_account (account_id=?)"),
        ] {
            let mut stmt = s
                .conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Value::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let text = plan.join(" | ");
            assert!(text.contains(index), "{query}: {text}");
            assert!(!text.contains("SCAN"), "{query}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{query}: {text}");
        }
    }

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
        assert_eq!(state_of(&s, "Q1"), "held");
        assert!(submit(&mut s, "alice", "Q2", T0 + 2));
        assert!(submit(&mut s, "alice", "Q3", T0 + 3));
        let c = s.unblock("alice", false, "root", "", T0 + 4).unwrap();
        assert_eq!((c.old, c.new, c.released), (State::Ko, State::Ok, 3));
        assert_eq!(state_of(&s, "Q2"), "queued");
        let h = s.history("alice", 10).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(
            (h[0].old.as_str(), h[0].new.as_str(), h[0].actor.as_str()),
            ("ok", "ko", "panel:bob")
        );
        assert_eq!(h[0].note, "ticket 7");
        assert_eq!((h[1].new.as_str(), h[1].reason.as_str()), ("ok", "unblock"));
        let st = s.account_status("alice", T0 + 5).unwrap();
        assert_eq!((st.queue.held, st.queue.queued), (0, 3));
        assert_eq!(st.today.held, 3);
        assert!(matches!(
            s.block("nobody", BlockReason::Manual, "root", "", T0),
            Err(StoreError::NoAccount(_))
        ));
    }

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
        assert_eq!(state_of(&s, "LATE"), "queued");
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

    #[test]
    fn expiry_counts_per_day_and_housekeeping_keeps_the_newest_event() {
        let (_d, mut s) = store();
        let old = T0 - 500 * clock::DAY_MS;
        submit(&mut s, "alice", "OLD", old);
        s.block("alice", BlockReason::Manual, "root", "long ago", old + 1)
            .unwrap();
        // Held by the block, then released on its own: not held mail any more.
        s.release("OLD", old + 2).unwrap();
        assert!(submit(&mut s, "alice", "H1", T0 - 10_000));
        assert!(submit(&mut s, "alice", "H2", T0 - 9_000));
        assert!(submit(&mut s, "alice", "H3", T0));
        let expired = s.expire_held(T0 - 5_000, T0, 1).unwrap();
        assert_eq!(expired, vec![("alice".to_string(), 1)]);
        let expired = s.expire_held(T0 - 5_000, T0, 100).unwrap();
        assert_eq!(expired, vec![("alice".to_string(), 1)]);
        assert_eq!(state_of(&s, "H1"), "expired");
        assert_eq!(state_of(&s, "H3"), "held");
        assert!(s.message("H1", true).unwrap().data.is_none());
        let today = s.daily_stats("alice", 1, T0).unwrap();
        assert_eq!((today[0].expired, today[0].held), (2, 3));
        // History older than 400 days goes; the block event that explains
        // the current state stays even though it is older.
        let h = s
            .housekeep(crate::store::day_start(T0, 400), clock::hour_of(T0) - 1, 2)
            .unwrap();
        assert_eq!(h.daily, 1);
        assert_eq!(h.events, 0);
        assert_eq!(s.history("alice", 10).unwrap().len(), 1);
        assert_eq!(s.daily_stats("alice", 400, T0).unwrap().len(), 400);
        // The OLD message was never done (no relay ran): it stays.
        assert_eq!(state_of(&s, "OLD"), "queued");
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
