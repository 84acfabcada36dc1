//! The queue: one SQLite database, and the only place in the crate with SQL.
//!
//! One type, [`Store`], owns the connection and every statement; its methods
//! are named for what they do, and live next to the tables they touch:
//! - `messages.rs`: enqueue (the state check, limits and insert in one
//!   transaction), listing, showing, releasing and deleting messages;
//! - `claims.rs`: how the relay takes a message, confirms it, records the
//!   attempt, and gets back the claims of a dead relayer;
//! - `accounts.rs`: account rows, settings, `block` and `unblock`;
//! - `purge.rs`: dropping an account's mail in chunks;
//! - `held.rs`: an account's held mail by script and recipient domain,
//!   and releasing or dropping the part a filter matches;
//! - `sweep.rs`: expiring held mail and deleting old history;
//! - `counters.rs`: per-day and per-hour counters, the queue by state, and
//!   the status and overview built from them;
//! - `errors.rs`: the mails in error and the error-ratio rule;
//! - `bounces.rs`: DSNs matched to messages, and unmatched bounces;
//! - `reports.rs`: what the daily report and the block notices read;
//! - `history.rs`: the events (state changes);
//! - `tracking.rs`: the messages `flush` and `test` wait for;
//! - `node.rs`: the node's queue as a whole, for the metrics;
//! - `populate.rs`: the benchmark's synthetic queue;
//! - `migrations.rs`: the schema, append-only on `user_version`.
//!
//! ## Tables
//! See `migrations.rs`: `accounts` (state, limits, counters),
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
//! mail: a concurrent submission is either before the change (and moved by
//! it) or after it (and sees the new state), so nothing is ever stranded
//! held in a sending account. Bulk deletions (purge, sweep) work in chunks
//! so a submission never waits long for the lock.
//!
//! ## Indexes
//! Every per-account query is a B-tree search, never a scan of the history,
//! so `status` and `stats` stay fast with a million messages (a test checks
//! the query plans):
//! - `accounts.name` (UNIQUE) finds the account;
//! - `daily` is keyed `(account_id, day)`: today's counters and a range of
//!   days are one search;
//! - `messages_pending (account_id, state, created)` is a *partial* index over
//!   not-done mail only. SQLite uses a partial index only when the query's
//!   WHERE clause contains the index's own condition, so every query over
//!   pending mail repeats it verbatim (the `pending!` macro) next to its
//!   narrower `state` test;
//! - `events_account (account_id, at)` and `errors_account (account_id, at)`
//!   serve `history`, `errors` and the newest event in `status`.
//!
//! ## Compatibility
//! The schema is versioned with `PRAGMA user_version` and migrated forward
//! by `migrations.rs`; a database from a newer build is refused, never
//! modified.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, FileControl, OpenFlags, TransactionBehavior};

use crate::account::Refusal;
use crate::clock::{self, DAY_MS};
use crate::exit::{Exit, Failure};

/// SQL: the account states whose mail is relayed, the same set as
/// [`State::is_sending`](crate::account::State::is_sending) (a test checks they agree).
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

/// The condition of the `messages_pending` partial index; see "Indexes" above.
macro_rules! pending {
    () => {
        "state IN ('held', 'queued', 'deferred', 'sending')"
    };
}

mod accounts;
mod bounces;
mod claims;
mod columns;
mod counters;
mod errors;
mod held;
mod history;
mod intake;
mod messages;
mod migrations;
mod node;
mod outbox;
mod populate;
mod purge;
mod quota;
mod replica;
mod reports;
mod sweep;
mod tracking;

pub use accounts::{Account, Change, Limit, Settings};
pub use bounces::{BouncedMessage, DsnRecorded, UNMATCHED_MAX_BYTES, UnmatchedBounce};
pub use claims::{Attempt, Claim, RcptOutcome};
pub use counters::{AccountStatus, DayCounts, Overview, QueueCounts};
pub use errors::{ErrorRow, Protection, Trip};
pub use held::{HeldFilter, HeldMessage, HeldMoved, HeldSummary, domain_of, summarise};
pub use history::Event;
pub use intake::{Intake, Intaken};
pub use messages::{
    EnqueuePolicy, Enqueued, MessageDetail, MessageRow, NewMessage, Pending, QueueFilter,
    log_enqueued,
};
pub use node::NodeGauges;
pub use outbox::{Expired, Figures, HeldChange};
pub use populate::PopulateSpec;
pub use purge::{Dropped, Purge};
pub use quota::{GATED_UNTIL, Period, QuotaCount, QuotaNeed};
pub use replica::{ClusterAck, ReplicatedState};
pub use reports::{BlockNotice, ExpiredMail, ReportAccount, ReportQueued};
pub use sweep::Housekeeping;
pub use tracking::{Progress, Tracked};

/// The schema version this build writes (`migrations.rs`): what a maildrop
/// writer compares with the queue file's header.
pub fn schema_version() -> i64 {
    migrations::latest()
}

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

impl Failure for StoreError {
    fn exit_code(&self) -> Exit {
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
        // Keep the -wal and -shm files when the last connection closes
        // (SQLITE_FCNTL_PERSIST_WAL). Otherwise whoever opens the queue next
        // creates them: root running sqlite3 on it creates them as root, and
        // for a moment the queue owner cannot open the queue ("unable to open
        // database file" in a one-shot delivery, seen in the root tests).
        let mut persist = 1;
        conn.file_control(
            rusqlite::DEFAULT_NAME,
            FileControl::PersistWal(&mut persist),
        )
        .map_err(open_err)?;
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
        migrations::migrate(&mut conn)?;
        Ok(Store {
            conn,
            protection: Protection::default(),
        })
    }

    /// Set the error-ratio rule applied when errors are recorded.
    pub fn set_protection(&mut self, p: Protection) {
        self.protection = p;
    }

    /// A write transaction: `BEGIN IMMEDIATE` (see "Locking and durability").
    pub(super) fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Milliseconds in `d`, for SQL comparisons.
pub fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The start (ms) of the UTC day `days_ago` days before `now`'s day.
pub fn day_start(now: i64, days_ago: i64) -> i64 {
    (clock::day_of(now) - days_ago) * DAY_MS
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::testing::{query_plan, store};
    use crate::account::State;
    use crate::queue::MessageState;

    /// Closing the last connection keeps the -wal and -shm files, so that
    /// nobody but their first creator (the queue owner) ever creates them.
    #[test]
    fn the_wal_and_shm_files_outlive_the_last_connection() {
        let (d, s) = store();
        drop(s);
        for f in ["queue.db-wal", "queue.db-shm"] {
            assert!(d.path().join(f).exists(), "{f} was deleted");
        }
        // And the queue opens again with them.
        drop(super::Store::open(&d.path().join("queue.db"), super::Durability::Normal).unwrap());
    }

    #[test]
    fn sql_sending_states_are_the_sending_states() {
        let (_d, s) = store();
        for st in State::ALL {
            let sql: bool = s
                .conn
                .query_row(
                    concat!("SELECT ?1 IN ", sending_states!()),
                    [st.as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, st.is_sending(), "{st}");
        }
    }

    #[test]
    fn sql_pending_states_are_the_pending_states() {
        let (_d, s) = store();
        for st in MessageState::ALL {
            let sql: bool = s
                .conn
                .query_row(
                    concat!("SELECT ", pending!(), " FROM (SELECT ?1 AS state)"),
                    [st],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, st.is_pending(), "{st}");
        }
    }

    /// The queries `status ACCOUNT`, `stats`, `errors` and `history` run
    /// must be B-tree searches: with a million messages a scan is seconds.
    #[test]
    fn hot_queries_are_index_searches() {
        let (_d, s) = store();
        for (query, index) in [
            (
                super::accounts::ACCOUNT_BY_NAME,
                "sqlite_autoindex_accounts_1 (name=?)",
            ),
            // The partial index, not messages_account (the whole history).
            (
                super::counters::QUEUE_COUNTS,
                "COVERING INDEX messages_pending (account_id=? AND state=?)",
            ),
            (
                super::counters::DAY_COUNTS,
                "PRIMARY KEY (account_id=? AND day=?)",
            ),
            (super::history::LAST_EVENT, "events_account (account_id=?)"),
            (
                super::counters::DAY_RANGE,
                "PRIMARY KEY (account_id=? AND day>? AND day<?)",
            ),
            (super::errors::ERRORS_OF, "errors_account (account_id=?)"),
            (super::history::HISTORY, "events_account (account_id=?)"),
        ] {
            let text = query_plan(&s, query);
            assert!(text.contains(index), "{query}: {text}");
            assert!(!text.contains("SCAN"), "{query}: {text}");
            assert!(!text.contains("TEMP B-TREE"), "{query}: {text}");
        }
    }
}
