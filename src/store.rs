//! The queue: one SQLite database, and the only place in the crate with SQL.
//!
//! ## Layout
//! Tables (see `migrations.rs`): `accounts` (state, limits, counters),
//! `messages` (envelope metadata and state), `bodies` (message bytes until
//! delivery), `recipients` (per-recipient outcome), `errors` (the mails in
//! error), `daily`/`hourly` (counters), `events` (state-change history).
//!
//! ## Message states
//! `held` (account blocked) → `queued` (unblock) or deleted (purge) or
//! `expired` (sweep); `queued`/`deferred` → `sending` (claimed by a
//! connection) → `sent` | `deferred` (retry at `next_attempt`) | `failed`,
//! or back to `held` when the account was blocked meanwhile. Bodies are
//! deleted when a message reaches `sent`, `failed` or `expired`; the metadata
//! stays `history_days` for the counters and the error list.
//!
//! ## Claims and blocks (issue 11)
//! - **`sending` is on the wire.** A relay connection claims one message at
//!   a time ([`Store::claim_next`]) and starts its SMTP transaction at once:
//!   there is never a claimed message waiting behind another, so there is
//!   nothing in `sending` that `purge` or `delete` could still take. A claim
//!   made while the connection was closed is confirmed once it is open
//!   ([`Store::confirm_claim`]), so a block that came during the connect
//!   still holds the message.
//! - **A blocked account starts no delivery.** When an account stops
//!   sending (`block`, a tripped limit, the error ratio, `purge`), the same
//!   transaction moves its `queued` and `deferred` mail to `held`; a message
//!   that comes back from the wire undelivered, or from a dead relayer, goes
//!   to `held` rather than `deferred` while its account does not send. So
//!   once `block` or `purge` has returned, only the messages already on a
//!   connection (at most one per connection) can still go out. Exempt:
//!   scriptmail's own mail (`system`, reports) and a message an admin
//!   released one by one (`released`, until the next block).
//! - **Orphans are found by the relay lock, not by time.** Every relayer
//!   holds `relayd.lock` while it has claims, so whoever takes the free lock
//!   knows every `sending` row is a dead relayer's and puts it back
//!   ([`Store::requeue_orphans`]): a relayd or one-shot when it starts, and
//!   the sweep. `lease_until` (its name from schema 1) records when the
//!   claim was taken; nothing expires by it.
//!
//! ## Locking and durability
//! WAL mode; every write is one `BEGIN IMMEDIATE` transaction (a deferred
//! transaction that upgrades to a writer can fail with SQLITE_BUSY despite
//! the busy timeout). Submissions use `synchronous=FULL`: a commit is on disk
//! before `sendmail` exits 0. Relay bookkeeping may use `NORMAL`: losing it
//! to a power cut only re-sends, which the at-least-once contract allows.
//! The account-state check and the insert of a message happen in the same
//! transaction, and so do a state change and the moves of that account's
//! mail, so a concurrent submit and unblock can never strand a message.
//!
//! ## Compatibility
//! The schema is versioned with `PRAGMA user_version` and migrated forward
//! by `migrations.rs`; a database from a newer build is refused, never
//! modified.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::account::{BlockReason, Refusal, State};
use crate::clock::{self, DAY_MS};
use crate::exit::Exit;

/// SQL: the account states whose mail is relayed, the same set as
/// [`State::is_sending`] (a test checks they agree).
macro_rules! sending_states {
    () => {
        "('ok', 'force')"
    };
}

/// SQL over the `messages` row named `$t`: whether it may be delivered under
/// its account's current state — scriptmail's own mail, a message released
/// one by one, or an account that sends (see "Claims and blocks").
macro_rules! exempt_or_sending {
    ($t:literal) => {
        concat!(
            "(",
            $t,
            ".system OR ",
            $t,
            ".released OR (SELECT a.state FROM accounts a WHERE a.id = ",
            $t,
            ".account_id) IN ",
            sending_states!(),
            ")"
        )
    };
}

/// SQL: the state a message goes back to when it leaves `sending` without
/// being done — `deferred`, or `held` while its account does not send.
macro_rules! requeue_state {
    () => {
        concat!(
            "CASE WHEN ",
            exempt_or_sending!("messages"),
            " THEN 'deferred' ELSE 'held' END"
        )
    };
}

pub mod admin;
pub mod bounces;
mod claims;
mod intake;

pub use intake::{Intake, Intaken};

pub(crate) use claims::hold_pending;

/// Why the queue could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open queue {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("queue database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(
        "queue database has schema version {found}, newer than this scriptmail supports ({supported}); upgrade scriptmail"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("no such account: {0}")]
    NoAccount(String),
    #[error("no such message: {0}")]
    NoMessage(String),
    #[error("{account}: {refusal}")]
    Refused { account: String, refusal: Refusal },
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    pub fn exit_code(&self) -> Exit {
        match self {
            StoreError::Open { .. } => Exit::CantCreat,
            StoreError::Sql(_) => Exit::IoErr,
            StoreError::TooNew { .. } => Exit::Config,
            StoreError::NoAccount(_) | StoreError::NoMessage(_) => Exit::NoUser,
            StoreError::Refused { .. } | StoreError::Conflict(_) => Exit::NoPerm,
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// How durable commits must be on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync at every commit (submissions: exit 0 is a promise).
    Full,
    /// fsync at checkpoints only (relay bookkeeping; a loss only re-sends).
    Normal,
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub qid: &'a str,
    pub account: &'a str,
    pub uid: u32,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub data: &'a [u8],
    pub subject: &'a str,
    pub script: &'a str,
    pub cwd: &'a str,
    pub dsn_notify: Option<&'a str>,
    pub dsn_ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    pub body_8bit: bool,
    /// Mail from scriptmail itself (reports): relayed even for a blocked
    /// account and not counted against it.
    pub system: bool,
}

/// Node-wide defaults the enqueue transaction applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnqueuePolicy {
    pub max_per_day: u64,
    pub max_per_hour: u64,
}

/// What happened to a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Held because the account is blocked (or was just blocked by a limit).
    pub held: bool,
    /// Set when this very submission tripped a limit and blocked the account.
    pub tripped: Option<&'static str>,
}

/// A message claimed for delivery.
#[derive(Debug, Clone)]
pub struct Claim {
    pub id: i64,
    pub qid: String,
    pub account: String,
    pub sender: String,
    pub created: i64,
    pub attempts: i64,
    pub dsn_notify: Option<String>,
    pub dsn_ret: Option<String>,
    pub envid: Option<String>,
    pub body_8bit: bool,
    pub recipients: Vec<String>,
}

/// The outcome of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    Sent,
    /// Permanent failure, with the server's answer.
    Failed(String),
    /// Temporary failure: try again later.
    Deferred(String),
}

/// The outcome of one delivery attempt for a whole message.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub results: Vec<(String, RcptOutcome)>,
    /// When to retry the recipients left pending.
    pub retry_at: i64,
    /// Whether the pending recipients must fail now (queue lifetime over).
    pub expire: bool,
}

/// A message not yet done, as listed to its sender.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub qid: String,
    pub size: i64,
    pub created: i64,
    pub state: String,
    pub sender: String,
    pub recipients: Vec<String>,
}

/// The error-ratio rule's settings (SPEC §6.4), from the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Protection {
    /// Error ratio above which an account goes to `bounce`; 0 disables.
    pub bounce_ratio: f64,
    /// The sliding window the ratio is computed over, in ms.
    pub window_ms: i64,
    /// Fewer mails than this in the window never trip the rule.
    pub min_sample: u64,
}

/// The busy handler: poll every 100 µs for the first 10 ms, then every
/// millisecond; give up after about 30 s (the caller then fails with 74,
/// never 75).
fn wait_for_lock(tries: i32) -> bool {
    let pause = if tries < 100 {
        Duration::from_micros(100)
    } else {
        Duration::from_millis(1)
    };
    std::thread::sleep(pause);
    tries < 100 + 30_000
}

/// The single owner of the queue database connection.
pub struct Store {
    conn: Connection,
    protection: Protection,
}

impl Store {
    /// Open (creating if needed) the queue database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        // A writer holds the lock for about one commit (~1 ms); a long purge
        // works in chunks. Wait rather than fail a submission — but poll:
        // SQLite's own handler sleeps 1, 2, 5 … 100 ms between tries.
        conn.busy_handler(Some(wait_for_lock)).map_err(open_err)?;
        // journal_mode must be set outside a transaction; it is persistent,
        // so this only writes the first time. Two processes opening a new
        // queue at once (a one-shot importing the maildrop and `mailq-ctl`)
        // can meet here: SQLite answers BUSY at once instead of calling the
        // busy handler (the switch would have to upgrade a read lock), so
        // wait here as the busy handler would.
        let mut tries = 0;
        let mode: String = loop {
            match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && wait_for_lock(tries) =>
                {
                    tries += 1;
                }
                other => break other.map_err(open_err)?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Conflict(format!(
                "queue database cannot use WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        if durability == Durability::Full {
            // Submitters never checkpoint: a checkpoint copies up to 1000
            // pages into the database and fsyncs it, a 10-50 ms stall in
            // some PHP request. The relayer's connections checkpoint.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        crate::migrations::migrate(&mut conn)?;
        Ok(Store {
            conn,
            protection: Protection::default(),
        })
    }

    /// Set the error-ratio rule applied when errors are recorded.
    pub fn set_protection(&mut self, p: Protection) {
        self.protection = p;
    }

    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// Durably enqueue a message: in one transaction, find or create the
    /// account, apply its limits, and insert the message as `queued` (the
    /// account sends) or `held` (it does not).
    pub fn enqueue(
        &mut self,
        m: &NewMessage<'_>,
        policy: EnqueuePolicy,
        now: i64,
    ) -> Result<Enqueued> {
        let tx = self.write_tx()?;
        let done = enqueue_in(&tx, m, policy, now)?;
        tx.commit()?;
        Ok(done)
    }

    /// The message bytes of a claimed message; `None` if it was removed
    /// meanwhile (an admin's `delete` or `purge`).
    pub fn body(&self, id: i64) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .prepare_cached("SELECT data FROM bodies WHERE message_id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    /// When the next queued or deferred message is due, if any.
    pub fn next_due(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT min(next_attempt) FROM messages WHERE state IN ('queued', 'deferred')",
            )?
            .query_row([], |r| r.get(0))?)
    }

    /// Record the outcome of one delivery attempt, in its own transaction:
    /// committing per message keeps the at-least-once window (sent, not yet
    /// recorded) to the one message in flight per connection. Returns false
    /// when the message was no longer ours to record (removed or moved by an
    /// admin while it was being sent).
    pub fn record_attempt(&mut self, claim: &Claim, attempt: &Attempt, now: i64) -> Result<bool> {
        let protection = self.protection;
        let tx = self.write_tx()?;
        let recorded = record_attempt(&tx, &protection, claim, attempt, now)?;
        tx.commit()?;
        Ok(recorded)
    }

    /// Make every deferred message due now (the smarthost came back after
    /// an outage); returns how many.
    pub fn retry_deferred_now(&mut self, now: i64) -> Result<usize> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE messages SET next_attempt = ?1 WHERE state = 'deferred' AND next_attempt > ?1",
            [now],
        )?;
        tx.commit()?;
        Ok(n)
    }

    /// An account's mail that is not done yet (held, queued, deferred,
    /// sending), oldest first: what `sendmail -bp` shows a tenant.
    pub fn pending_of(&self, account: &str) -> Result<Vec<Pending>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.qid, m.size, m.created, m.state, m.sender FROM messages m
             JOIN accounts a ON a.id = m.account_id
             WHERE a.name = ?1 AND m.state IN ('held', 'queued', 'deferred', 'sending')
             ORDER BY m.created",
        )?;
        let rows = stmt
            .query_map([account], |r| {
                Ok(Pending {
                    id: r.get(0)?,
                    qid: r.get(1)?,
                    size: r.get(2)?,
                    created: r.get(3)?,
                    state: r.get(4)?,
                    sender: r.get(5)?,
                    recipients: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for mut p in rows {
            p.recipients = self.recipients_of(p.id)?;
            out.push(p);
        }
        Ok(out)
    }

    /// The envelope recipients of a message.
    pub fn recipients_of(&self, id: i64) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT rcpt FROM recipients WHERE message_id = ?1 ORDER BY rcpt")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Direct access for the modules that extend the store (ctl queries).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A write transaction for the modules that extend the store.
    pub(crate) fn begin(&mut self) -> Result<rusqlite::Transaction<'_>> {
        self.write_tx()
    }
}

/// [`Store::enqueue`]'s work inside a write transaction the caller owns
/// (one message of a group commit: `store/intake.rs`).
pub(crate) fn enqueue_in(
    tx: &rusqlite::Transaction<'_>,
    m: &NewMessage<'_>,
    policy: EnqueuePolicy,
    now: i64,
) -> Result<Enqueued> {
    let (account_id, mut state, per_day, per_hour) = account_for_submit(tx, m.account, now)?;
    let mut tripped = None;
    if !m.system {
        let day = clock::day_of(now);
        let submitted_today: i64 = tx
            .prepare_cached(
                "INSERT INTO daily (account_id, day, submitted) VALUES (?1, ?2, 1)
                 ON CONFLICT (account_id, day) DO UPDATE SET submitted = submitted + 1
                 RETURNING submitted",
            )?
            .query_row(params![account_id, day], |r| r.get(0))?;
        let submitted_hour: i64 = tx
            .prepare_cached(
                "INSERT INTO hourly (account_id, hour, submitted) VALUES (?1, ?2, 1)
                 ON CONFLICT (account_id, hour) DO UPDATE SET submitted = submitted + 1
                 RETURNING submitted",
            )?
            .query_row(params![account_id, clock::hour_of(now)], |r| r.get(0))?;
        let max_day = per_day.map_or(policy.max_per_day, |v| v.max(0) as u64);
        let max_hour = per_hour.map_or(policy.max_per_hour, |v| v.max(0) as u64);
        if state.is_sending() {
            let over = if max_day > 0 && submitted_today as u64 > max_day {
                Some("max_per_day")
            } else if max_hour > 0 && submitted_hour as u64 > max_hour {
                Some("max_per_hour")
            } else {
                None
            };
            if let Some(limit) = over {
                set_state(
                    tx,
                    account_id,
                    state,
                    State::Ko,
                    BlockReason::Limit.as_str(),
                    "scriptmail",
                    &format!("{limit} exceeded"),
                    now,
                )?;
                state = State::Ko;
                tripped = Some(limit);
            }
        }
    }
    let held = !m.system && !state.is_sending();
    insert_message(tx, m, account_id, if held { "held" } else { "queued" }, now)?;
    if held {
        bump_daily(tx, account_id, now, "held", 1)?;
    }
    Ok(Enqueued { held, tripped })
}

fn account_for_submit(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    now: i64,
) -> Result<(i64, State, Option<i64>, Option<i64>)> {
    let row = tx
        .prepare_cached(
            "SELECT id, state, max_per_day, max_per_hour FROM accounts WHERE name = ?1",
        )?
        .query_row([name], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    match row {
        Some((id, state, d, h)) => Ok((id, State::parse(&state).unwrap_or(State::Ko), d, h)),
        None => {
            let id = create_account(tx, name, now)?;
            Ok((id, State::Ok, None, None))
        }
    }
}

/// Insert a message with its body and recipients, in state `state`, due
/// now; its id.
pub(crate) fn insert_message(
    tx: &rusqlite::Transaction<'_>,
    m: &NewMessage<'_>,
    account_id: i64,
    state: &str,
    now: i64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender, size,
             subject, script, cwd, uid, dsn_notify, dsn_ret, envid, body_8bit, system)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        m.qid,
        account_id,
        state,
        now,
        m.sender,
        m.data.len() as i64,
        m.subject,
        m.script,
        m.cwd,
        m.uid,
        m.dsn_notify,
        m.dsn_ret,
        m.envid,
        m.body_8bit,
        m.system,
    ])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO bodies (message_id, data) VALUES (?1, ?2)")?
        .execute(params![id, m.data])?;
    let mut ins =
        tx.prepare_cached("INSERT OR IGNORE INTO recipients (message_id, rcpt) VALUES (?1, ?2)")?;
    for r in m.recipients {
        ins.execute(params![id, r])?;
    }
    Ok(id)
}

/// Insert an account row in state `ok`.
pub(crate) fn create_account(tx: &rusqlite::Transaction<'_>, name: &str, now: i64) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO accounts (name, state, state_since, first_seen) VALUES (?1, 'ok', ?2, ?2)",
    )?
    .execute(params![name, now])?;
    Ok(tx.last_insert_rowid())
}

/// Add `n` to one per-day counter column of an account.
pub(crate) fn bump_daily(
    tx: &rusqlite::Transaction<'_>,
    account_id: i64,
    now: i64,
    column: &'static str,
    n: i64,
) -> Result<()> {
    debug_assert!(["submitted", "sent", "errors", "held", "expired"].contains(&column));
    let sql = format!(
        "INSERT INTO daily (account_id, day, {column}) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, day) DO UPDATE SET {column} = {column} + ?3"
    );
    tx.prepare_cached(&sql)?
        .execute(params![account_id, clock::day_of(now), n])?;
    Ok(())
}

/// Change an account's state and record the event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn set_state(
    tx: &rusqlite::Transaction<'_>,
    account_id: i64,
    old: State,
    new: State,
    reason: &str,
    actor: &str,
    note: &str,
    now: i64,
) -> Result<u64> {
    tx.prepare_cached(
        "UPDATE accounts SET state = ?2, state_reason = ?3, state_since = ?4 WHERE id = ?1",
    )?
    .execute(params![account_id, new.as_str(), reason, now])?;
    tx.prepare_cached(
        "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        account_id,
        now,
        old.as_str(),
        new.as_str(),
        reason,
        actor,
        note
    ])?;
    if old.is_sending() && !new.is_sending() {
        hold_pending(tx, account_id, now)
    } else {
        Ok(0)
    }
}

fn record_attempt(
    tx: &rusqlite::Transaction<'_>,
    protection: &Protection,
    claim: &Claim,
    a: &Attempt,
    now: i64,
) -> Result<bool> {
    let row: Option<(i64, bool, String, String, String)> = tx
        .prepare_cached(
            "SELECT account_id, system, subject, script, state FROM messages WHERE id = ?1",
        )?
        .query_row([claim.id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((account_id, system, subject, script, state)) = row else {
        return Ok(false);
    };
    if state != "sending" {
        return Ok(false);
    }
    let mut failed = 0i64;
    let mut last_error = String::new();
    let mut fail = |rcpt: &str, kind: &str, text: &str| -> Result<()> {
        tx.prepare_cached(
            "UPDATE recipients SET state = 'failed' WHERE message_id = ?1 AND rcpt = ?2",
        )?
        .execute(params![claim.id, rcpt])?;
        tx.prepare_cached(
            "INSERT INTO errors (account_id, message_id, qid, at, rcpt, kind, message, subject, script)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![account_id, claim.id, claim.qid, now, rcpt, kind, text, subject, script])?;
        failed += 1;
        Ok(())
    };
    for (rcpt, outcome) in &a.results {
        match outcome {
            RcptOutcome::Sent => {
                tx.prepare_cached(
                    "UPDATE recipients SET state = 'sent' WHERE message_id = ?1 AND rcpt = ?2",
                )?
                .execute(params![claim.id, rcpt])?;
            }
            RcptOutcome::Failed(text) => {
                fail(rcpt, "rejected", text)?;
                last_error = text.clone();
            }
            RcptOutcome::Deferred(text) => {
                if a.expire {
                    fail(
                        rcpt,
                        "expired",
                        &format!("expired in queue; last error: {text}"),
                    )?;
                }
                last_error = text.clone();
            }
        }
    }
    let (pending, sent): (i64, i64) = tx
        .prepare_cached(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'sent')
             FROM recipients WHERE message_id = ?1",
        )?
        .query_row([claim.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if pending > 0 {
        // Back to the queue: `held` if the account stopped sending while
        // this try was on the wire (see "Claims and blocks").
        let back: String = tx
            .prepare_cached(concat!(
                "UPDATE messages SET state = ",
                requeue_state!(),
                ", next_attempt = ?2, lease_until = 0, last_error = ?3
                 WHERE id = ?1 RETURNING state"
            ))?
            .query_row(params![claim.id, a.retry_at, last_error], |r| r.get(0))?;
        if back == "held" {
            bump_daily(tx, account_id, now, "held", 1)?;
        }
    } else {
        let state = if sent > 0 { "sent" } else { "failed" };
        tx.prepare_cached(
            "UPDATE messages SET state = ?2, done_at = ?3, lease_until = 0, last_error = ?4 WHERE id = ?1",
        )?
        .execute(params![claim.id, state, now, last_error])?;
        tx.prepare_cached("DELETE FROM bodies WHERE message_id = ?1")?
            .execute([claim.id])?;
        if sent > 0 && !system {
            tx.prepare_cached("UPDATE accounts SET sent_total = sent_total + 1 WHERE id = ?1")?
                .execute([account_id])?;
            bump_daily(tx, account_id, now, "sent", 1)?;
        }
    }
    if failed > 0 && !system {
        tx.prepare_cached("UPDATE accounts SET error_total = error_total + ?2 WHERE id = ?1")?
            .execute(params![account_id, failed])?;
        bump_daily(tx, account_id, now, "errors", failed)?;
        bounces::after_errors(tx, protection, account_id, now)?;
    }
    Ok(true)
}

/// Milliseconds in `d`, for SQL comparisons.
pub fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The start (ms) of the UTC day `days_ago` days before `now`'s day.
pub fn day_start(now: i64, days_ago: i64) -> i64 {
    (clock::day_of(now) - days_ago) * DAY_MS
}
