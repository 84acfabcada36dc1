//! The cluster's view of an account (docs/cluster.md, "What the panel
//! sees"): state and settings from the store's `accounts`, counters and
//! queue as the sums of every node's pushed figures, history, mails in
//! error and held mail of every node. Each read is a few index searches;
//! the overview is one pass over the per-node tables.

use std::collections::HashMap;

use postgres::{GenericClient, Row};

use super::Result;
use crate::account::State;
use crate::clock;
use crate::queue::FailureKind;
use crate::store::{
    Account, AccountStatus, DayCounts, ErrorRow, Event, HeldFilter, HeldMessage, HeldSummary,
    Overview, QueueCounts, StoreError, summarise,
};

/// The columns [`account_from`] reads (`a` is `accounts`, `t` the node sums).
const ACCOUNT_COLS: &str = "a.name, a.state, a.reason, a.since, a.report_to, a.max_per_day,
     a.max_per_hour, a.first_seen, coalesce(t.sent_total, 0)::bigint,
     coalesce(t.error_total, 0)::bigint";

/// Every node's totals and queue per account.
const TOTALS: &str = "SELECT account, sum(sent_total)::bigint AS sent_total,
         sum(error_total)::bigint AS error_total, sum(held)::bigint AS held,
         sum(queued)::bigint AS queued, sum(deferred)::bigint AS deferred,
         sum(sending)::bigint AS sending, min(oldest_held) AS oldest_held
     FROM node_accounts";

fn account_from(r: &Row) -> Account {
    Account {
        id: 0,
        name: r.get(0),
        state: State::parse(r.get(1)).unwrap_or(State::Ok),
        reason: r.get(2),
        since: r.get(3),
        report_to: r.get(4),
        max_per_day: r.get(5),
        max_per_hour: r.get(6),
        first_seen: r.get(7),
        sent_total: r.get(8),
        error_total: r.get(9),
    }
}

fn queue_from(r: &Row, i: usize) -> QueueCounts {
    let n = |k: usize| r.get::<_, Option<i64>>(i + k).unwrap_or(0);
    QueueCounts {
        held: n(0),
        queued: n(1),
        deferred: n(2),
        sending: n(3),
        oldest_held: r.get(i + 4),
    }
}

fn no_account(name: &str) -> super::ClusterError {
    StoreError::NoAccount(name.to_string()).into()
}

/// One account as the cluster sees it.
pub fn account(c: &mut impl GenericClient, name: &str) -> Result<Account> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {ACCOUNT_COLS} FROM accounts a
                 LEFT JOIN ({TOTALS} WHERE account = $1 GROUP BY account) t ON t.account = a.name
                 WHERE a.name = $1"
            ),
            &[&name],
        )?
        .ok_or_else(|| no_account(name))?;
    Ok(account_from(&row))
}

/// Every account, by name.
pub fn accounts(c: &mut impl GenericClient) -> Result<Vec<Account>> {
    Ok(c.query(
        &format!(
            "SELECT {ACCOUNT_COLS} FROM accounts a
                 LEFT JOIN ({TOTALS} GROUP BY account) t ON t.account = a.name
                 ORDER BY a.name"
        ),
        &[],
    )?
    .iter()
    .map(account_from)
    .collect())
}

fn day_from(r: &Row) -> DayCounts {
    DayCounts {
        day: r.get(0),
        submitted: r.get(1),
        sent: r.get(2),
        errors: r.get(3),
        held: r.get(4),
        expired: r.get(5),
    }
}

const DAY_SUMS: &str = "SELECT day, sum(submitted)::bigint, sum(sent)::bigint,
         sum(errors)::bigint, sum(held)::bigint, sum(expired)::bigint
     FROM counters WHERE account = $1 AND day >= $2 AND day <= $3 GROUP BY day";

fn event_from(r: &Row) -> Event {
    Event {
        at: r.get(0),
        old: State::parse(r.get(1)).unwrap_or(State::Ok),
        new: State::parse(r.get(2)).unwrap_or(State::Ok),
        reason: r.get(3),
        actor: r.get(4),
        note: r.get(5),
    }
}

/// `status ACCOUNT`: the account, today's sums, the queue on every node,
/// the newest event.
pub fn account_status(c: &mut impl GenericClient, name: &str, now: i64) -> Result<AccountStatus> {
    let account = account(c, name)?;
    let day = clock::day_of(now);
    let today = c
        .query_opt(DAY_SUMS, &[&name, &day, &day])?
        .map(|r| day_from(&r))
        .unwrap_or(DayCounts {
            day,
            ..DayCounts::default()
        });
    let q = c.query_one(
        "SELECT sum(held)::bigint, sum(queued)::bigint, sum(deferred)::bigint,
                sum(sending)::bigint, min(oldest_held)
         FROM node_accounts WHERE account = $1",
        &[&name],
    )?;
    let last_event = c
        .query_opt(
            "SELECT at, old_state, new_state, reason, actor, note FROM events
             WHERE account = $1 ORDER BY at DESC, id DESC LIMIT 1",
            &[&name],
        )?
        .map(|r| event_from(&r));
    // Every node that has not applied the account's newest change of state
    // or command, active or not (a retired node owes nothing).
    let pending_nodes = c
        .query(
            "SELECT n.name FROM nodes n WHERE NOT n.retired AND n.revision <
                 (SELECT coalesce(max(revision), 0) FROM changes
                  WHERE account = $1 AND kind <> 'settings')
             ORDER BY n.name",
            &[&name],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(AccountStatus {
        account,
        today,
        queue: queue_from(&q, 0),
        last_event,
        pending_nodes,
    })
}

/// `status` of every account: one line each.
pub fn overview(c: &mut impl GenericClient, now: i64) -> Result<Vec<Overview>> {
    let day = clock::day_of(now);
    let rows = c.query(
        &format!(
            "SELECT {ACCOUNT_COLS}, t.held, t.queued, t.deferred, t.sending, t.oldest_held,
                    coalesce(d.sent, 0)::bigint
             FROM accounts a
             LEFT JOIN ({TOTALS} GROUP BY account) t ON t.account = a.name
             LEFT JOIN (SELECT account, sum(sent) AS sent FROM counters WHERE day = $1
                        GROUP BY account) d ON d.account = a.name
             ORDER BY a.name"
        ),
        &[&day],
    )?;
    Ok(rows
        .iter()
        .map(|r| Overview {
            account: account_from(r),
            queue: queue_from(r, 10),
            sent_today: r.get(15),
        })
        .collect())
}

/// The last `days` UTC days, oldest first, each the sum over the nodes.
pub fn daily_stats(
    c: &mut impl GenericClient,
    name: &str,
    days: i64,
    now: i64,
) -> Result<Vec<DayCounts>> {
    account(c, name)?;
    let today = clock::day_of(now);
    let first = today - days.max(1) + 1;
    let mut found: HashMap<i64, DayCounts> = c
        .query(DAY_SUMS, &[&name, &first, &today])?
        .iter()
        .map(|r| {
            let d = day_from(r);
            (d.day, d)
        })
        .collect();
    Ok((first..=today)
        .map(|day| {
            found.remove(&day).unwrap_or(DayCounts {
                day,
                ..DayCounts::default()
            })
        })
        .collect())
}

/// The newest mails in error of every node.
pub fn errors_of(c: &mut impl GenericClient, name: &str, limit: i64) -> Result<Vec<ErrorRow>> {
    account(c, name)?;
    Ok(c.query(
        "SELECT at, qid, rcpt, kind, message, subject, script FROM errors
             WHERE account = $1 ORDER BY at DESC, node, qid, rcpt LIMIT $2",
        &[&name, &limit.max(1)],
    )?
    .iter()
    .map(error_from)
    .collect())
}

pub fn error_from(r: &Row) -> ErrorRow {
    ErrorRow {
        at: r.get(0),
        qid: r.get(1),
        rcpt: r.get(2),
        kind: FailureKind::parse(r.get(3)).unwrap_or(FailureKind::Rejected),
        message: r.get(4),
        subject: r.get(5),
        script: r.get(6),
    }
}

/// The newest `limit` state changes, oldest first.
pub fn history(c: &mut impl GenericClient, name: &str, limit: i64) -> Result<Vec<Event>> {
    account(c, name)?;
    let mut events: Vec<Event> = c
        .query(
            "SELECT at, old_state, new_state, reason, actor, note FROM events
             WHERE account = $1 ORDER BY at DESC, id DESC LIMIT $2",
            &[&name, &limit.max(1)],
        )?
        .iter()
        .map(event_from)
        .collect();
    events.reverse();
    Ok(events)
}

/// State changes in `[from, to)`, oldest first (the daily report).
pub fn events_between(
    c: &mut impl GenericClient,
    name: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Event>> {
    Ok(c.query(
        "SELECT at, old_state, new_state, reason, actor, note FROM events
             WHERE account = $1 AND at >= $2 AND at < $3 ORDER BY at, id LIMIT 1000",
        &[&name, &from, &to],
    )?
    .iter()
    .map(event_from)
    .collect())
}

/// The held mail of every node, summarised as on one node.
pub fn held(
    c: &mut impl GenericClient,
    name: &str,
    filter: &HeldFilter,
    now: i64,
) -> Result<HeldSummary> {
    let a = account(c, name)?;
    let held: Vec<HeldMessage> = c
        .query(
            "SELECT created, script, domains FROM held WHERE account = $1 ORDER BY created",
            &[&name],
        )?
        .iter()
        .map(|r| HeldMessage {
            id: 0,
            created: r.get(0),
            script: r.get(1),
            domains: r.get(2),
        })
        .collect();
    Ok(summarise(a, &held, filter, now))
}
