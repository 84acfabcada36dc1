//! Counters: an account's per-day counters (`daily`) and per-hour
//! submissions (`hourly`), its mail in the queue by state, and the
//! `status` and overview built from them — each an index search (see
//! `mod.rs`, "Indexes").

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::history::{LAST_EVENT, event_from_row};
use super::{Account, Event, Result, Store};
use crate::clock;
use crate::queue::MessageState;

/// An account's not-yet-done mail, by state (the partial index).
pub(super) const QUEUE_COUNTS: &str = concat!(
    "SELECT state, count(*), min(created) FROM messages WHERE account_id = ?1 AND ",
    pending!(),
    " GROUP BY state"
);
/// One day of an account's counters.
pub(super) const DAY_COUNTS: &str = "SELECT day, submitted, sent, errors, held, expired FROM daily
     WHERE account_id = ?1 AND day = ?2";
/// A range of days of an account's counters.
pub(super) const DAY_RANGE: &str = "SELECT day, submitted, sent, errors, held, expired FROM daily
     WHERE account_id = ?1 AND day >= ?2 AND day <= ?3";

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

/// Everything `status ACCOUNT` shows.
#[derive(Debug, Clone)]
pub struct AccountStatus {
    pub account: Account,
    pub today: DayCounts,
    pub queue: QueueCounts,
    /// The newest state change (who blocked it, with which note).
    pub last_event: Option<Event>,
    /// Cluster mode: the nodes that have not yet carried out the account's
    /// latest change (always empty on a node alone).
    pub pending_nodes: Vec<String>,
}

/// One line of `status` without an account.
#[derive(Debug, Clone)]
pub struct Overview {
    pub account: Account,
    pub sent_today: i64,
    pub queue: QueueCounts,
}

/// One per-day counter of an account (a column of `daily`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counter {
    Sent,
    Errors,
    Held,
    Expired,
}

impl Counter {
    fn column(self) -> &'static str {
        match self {
            Counter::Sent => "sent",
            Counter::Errors => "errors",
            Counter::Held => "held",
            Counter::Expired => "expired",
        }
    }
}

/// Add `n` to one per-day counter of an account.
pub(super) fn bump_daily(
    tx: &Transaction<'_>,
    account_id: i64,
    now: i64,
    counter: Counter,
    n: i64,
) -> Result<()> {
    let column = counter.column();
    let sql = format!(
        "INSERT INTO daily (account_id, day, {column}) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, day) DO UPDATE SET {column} = {column} + ?3"
    );
    tx.prepare_cached(&sql)?
        .execute(params![account_id, clock::day_of(now), n])?;
    Ok(())
}

/// Count one submission of an account in today's and this hour's
/// counters; the new counts (this one included), for its limits.
pub(super) fn count_submission(
    tx: &Transaction<'_>,
    account_id: i64,
    now: i64,
) -> Result<(u64, u64)> {
    let count = |sql: &str, period: i64| -> Result<u64> {
        let n: i64 = tx
            .prepare_cached(sql)?
            .query_row(params![account_id, period], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    };
    let today = count(
        "INSERT INTO daily (account_id, day, submitted) VALUES (?1, ?2, 1)
         ON CONFLICT (account_id, day) DO UPDATE SET submitted = submitted + 1
         RETURNING submitted",
        clock::day_of(now),
    )?;
    let this_hour = count(
        "INSERT INTO hourly (account_id, hour, submitted) VALUES (?1, ?2, 1)
         ON CONFLICT (account_id, hour) DO UPDATE SET submitted = submitted + 1
         RETURNING submitted",
        clock::hour_of(now),
    )?;
    Ok((today, this_hour))
}

impl Store {
    /// An account's not-yet-done mail, counted by state (one index search).
    pub fn queue_counts(&self, account_id: i64) -> Result<QueueCounts> {
        let mut q = QueueCounts::default();
        let mut stmt = self.conn.prepare_cached(QUEUE_COUNTS)?;
        let rows = stmt.query_map([account_id], |r| {
            Ok((
                r.get::<_, MessageState>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, n, oldest) = row?;
            add_count(&mut q, state, n, oldest);
        }
        Ok(q)
    }

    /// One day's counters of an account (zeros when nothing happened).
    fn day_counts(&self, account_id: i64, day: i64) -> Result<DayCounts> {
        Ok(self
            .conn
            .prepare_cached(DAY_COUNTS)?
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
            .conn
            .prepare_cached(LAST_EVENT)?
            .query_row([account.id], event_from_row)
            .optional()?;
        Ok(AccountStatus {
            account,
            today,
            queue,
            last_event,
            pending_nodes: Vec::new(),
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
        let index: HashMap<i64, usize> = out
            .iter()
            .enumerate()
            .map(|(i, o)| (o.account.id, i))
            .collect();
        {
            let mut stmt = self
                .conn
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
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT account_id, state, count(*), min(created) FROM messages WHERE ",
            pending!(),
            " GROUP BY account_id, state"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, MessageState>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (id, state, n, oldest) = row?;
            if let Some(&i) = index.get(&id) {
                add_count(&mut out[i].queue, state, n, oldest);
            }
        }
        Ok(out)
    }

    /// The last `days` UTC days of an account's counters, oldest first,
    /// today included; days without activity are zeros (one range search).
    pub fn daily_stats(&self, name: &str, days: i64, now: i64) -> Result<Vec<DayCounts>> {
        let account = self.account(name)?;
        let today = clock::day_of(now);
        let first = today - days.max(1) + 1;
        let mut found: HashMap<i64, DayCounts> = self
            .conn
            .prepare_cached(DAY_RANGE)?
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
}

/// From a row selecting `day, submitted, sent, errors, held, expired`.
pub(super) fn day_from_row(r: &Row<'_>) -> rusqlite::Result<DayCounts> {
    Ok(DayCounts {
        day: r.get(0)?,
        submitted: r.get(1)?,
        sent: r.get(2)?,
        errors: r.get(3)?,
        held: r.get(4)?,
        expired: r.get(5)?,
    })
}

fn add_count(q: &mut QueueCounts, state: MessageState, n: i64, oldest: i64) {
    match state {
        MessageState::Held => {
            q.held += n;
            q.oldest_held = Some(q.oldest_held.map_or(oldest, |o| o.min(oldest)));
        }
        MessageState::Queued => q.queued += n,
        MessageState::Deferred => q.deferred += n,
        MessageState::Sending => q.sending += n,
        MessageState::Sent | MessageState::Failed | MessageState::Expired => {}
    }
}
