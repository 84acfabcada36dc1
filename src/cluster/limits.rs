//! The limits' allowances in the cluster store (the rules and the bound:
//! `allowance.rs`; docs/cluster.md, "Limits across nodes"). At each sync a
//! node with gated mail asks for more under the account's row lock, and
//! the node that finds nothing left with the cluster total at the limit
//! blocks the account for every node; a node holding an allowance it does
//! not use gives it back when another is starved; and every node pushes
//! what it let through.

use postgres::Client;

use super::allowance;
use super::log::{self, Change, Kind};
use super::{Result, big, count};
use crate::account::{BlockReason, RateLimit, Reason, SYSTEM_ACTOR, State};
use crate::clock;
use crate::log::{self as syslog, Level};
use crate::sanitize;
use crate::store::{EnqueuePolicy, Period, QuotaNeed, Store};

/// SQL: whether node `n` counts as active (its last sync within twice its lease).
const ACTIVE: &str =
    "(NOT n.retired AND n.last_sync > now() - make_interval(secs => n.lease_ms * 2 / 1000.0))";

/// How many nodes are active (at least one: this one).
pub fn active_nodes(client: &mut Client) -> Result<u64> {
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM nodes n WHERE {ACTIVE}"), &[])?
        .get(0);
    Ok(count(n).max(1))
}

/// One sync's work on the limits; whether gated mail was released.
pub fn sync(
    client: &mut Client,
    store: &mut Store,
    node: &str,
    policy: EnqueuePolicy,
    now: i64,
) -> Result<bool> {
    let mut woke = false;
    let needs = store.quota_needs(policy, now)?;
    if !needs.is_empty() {
        let active = active_nodes(client)?;
        for need in &needs {
            woke |= ask(client, store, node, policy, need, active, now)? > 0;
        }
    }
    give_back(client, store, node, now)?;
    push_used(client, store, node, now)?;
    Ok(woke)
}

/// Ask for more for one account with gated mail; how many were released.
fn ask(
    client: &mut Client,
    store: &mut Store,
    node: &str,
    policy: EnqueuePolicy,
    need: &QuotaNeed,
    active: u64,
    now: i64,
) -> Result<u64> {
    let mut tx = client.transaction()?;
    tx.execute(
        "INSERT INTO accounts (name, since, first_seen) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING",
        &[&need.account, &now],
    )?;
    let state: String = tx
        .query_one(
            "SELECT state FROM accounts WHERE name = $1 FOR UPDATE",
            &[&need.account],
        )?
        .get(0);
    let mut grants: [Option<(i64, u64, u64)>; 2] = [None, None];
    let mut tripped = None;
    let periods = [
        (
            "d",
            need.day,
            need.limits.per_day.max,
            need.day_share,
            RateLimit::PerDay,
        ),
        (
            "h",
            need.hour,
            need.limits.per_hour.max,
            need.hour_share,
            RateLimit::PerHour,
        ),
    ];
    for (i, (kind, period, limit, share, which)) in periods.into_iter().enumerate() {
        if limit == 0 {
            continue;
        }
        let (reserved, used) = others(&mut tx, &need.account, kind, period, node)?;
        let g = allowance::grant(limit, active, share.passed, share.cap, reserved, used);
        tx.execute(
            "INSERT INTO quota (account, kind, period, node, used, reserved)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account, kind, period, node)
             DO UPDATE SET used = greatest(quota.used, $5), reserved = greatest(quota.reserved, $6)",
            &[&need.account, &kind, &period, &node, &big(share.passed), &big(g.cap)],
        )?;
        if g.squeeze {
            tx.execute(
                "INSERT INTO quota_squeeze VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&need.account, &kind, &period],
            )?;
        } else if g.cap > share.cap.max(share.passed) {
            tx.execute(
                "DELETE FROM quota_squeeze WHERE account = $1 AND kind = $2 AND period = $3",
                &[&need.account, &kind, &period],
            )?;
        }
        if g.trip {
            tripped.get_or_insert(which);
        }
        grants[i] = Some((period, g.cap, used));
    }
    let sending = State::parse(&state).is_some_and(State::is_sending);
    if let (Some(which), true) = (tripped, sending) {
        block(&mut tx, &need.account, &state, which, node, now)?;
    }
    tx.commit()?;
    if let (Some(which), true) = (tripped, sending) {
        syslog::log(
            Level::Warning,
            &format!(
                "account={} state=ko reason=limit stat=\"{which} exceeded on the cluster, new mail is held on every node\"",
                sanitize::line(&need.account)
            ),
        );
    }
    let [day, hour] = grants;
    Ok(store.quota_raise(need.account_id, day, hour, policy, now)?)
}

/// The other nodes' reservations (an inactive node's used count only) and
/// used counts in one period.
fn others(
    tx: &mut postgres::Transaction<'_>,
    account: &str,
    kind: &str,
    period: i64,
    node: &str,
) -> Result<(u64, u64)> {
    let row = tx.query_one(
        &format!(
            "SELECT coalesce(sum(CASE WHEN {ACTIVE} THEN greatest(q.reserved, q.used) ELSE q.used END), 0)::bigint,
                    coalesce(sum(q.used), 0)::bigint
             FROM quota q LEFT JOIN nodes n ON n.name = q.node
             WHERE q.account = $1 AND q.kind = $2 AND q.period = $3 AND q.node <> $4"
        ),
        &[&account, &kind, &period, &node],
    )?;
    Ok((count(row.get(0)), count(row.get(1))))
}

/// Block the account for the whole cluster: the limit is reached.
fn block(
    tx: &mut postgres::Transaction<'_>,
    account: &str,
    old: &str,
    which: RateLimit,
    node: &str,
    now: i64,
) -> Result<()> {
    let note = format!("{which} exceeded");
    let reason = Reason::Block(BlockReason::Limit);
    let new = BlockReason::Limit.target();
    tx.execute(
        "UPDATE accounts SET state = $2, reason = $3, since = $4 WHERE name = $1",
        &[&account, &new.as_str(), &reason.as_str(), &now],
    )?;
    tx.execute(
        "INSERT INTO events (account, at, old_state, new_state, reason, actor, note, node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &account,
            &now,
            &old,
            &new.as_str(),
            &reason.as_str(),
            &SYSTEM_ACTOR,
            &note,
            &node,
        ],
    )?;
    let mut c = Change::new(account, Kind::State);
    c.state = Some(new);
    c.reason = reason.as_str().into();
    c.since = now;
    c.actor = SYSTEM_ACTOR.into();
    c.note = note;
    c.origin = node.into();
    log::append(tx, &c)?;
    Ok(())
}

/// Another node is starved: give back what this node holds and does not
/// use in that period — on the node first, then in the store.
fn give_back(client: &mut Client, store: &mut Store, node: &str, now: i64) -> Result<()> {
    let (day, hour) = (clock::day_of(now), clock::hour_of(now));
    let rows = client.query(
        "SELECT s.account, s.kind, s.period FROM quota_squeeze s
         JOIN quota q ON q.account = s.account AND q.kind = s.kind AND q.period = s.period
         WHERE q.node = $1 AND q.reserved > q.used
           AND ((s.kind = 'd' AND s.period = $2) OR (s.kind = 'h' AND s.period = $3))",
        &[&node, &day, &hour],
    )?;
    for r in rows {
        let (account, kind, period): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let p = if kind == "d" {
            Period::Day(period)
        } else {
            Period::Hour(period)
        };
        // The node's cap comes down first; the reservation follows it
        // exactly (never below what the node may still let through).
        let cap = store.quota_give_back(&account, p, now)?;
        client.execute(
            "UPDATE quota SET reserved = $5
             WHERE account = $1 AND kind = $2 AND period = $3 AND node = $4",
            &[&account, &kind, &period, &node, &big(cap)],
        )?;
    }
    Ok(())
}

/// Push what this node let through, for the trip test of the others.
fn push_used(client: &mut Client, store: &mut Store, node: &str, now: i64) -> Result<()> {
    let counts = store.quota_unpushed(now)?;
    if counts.is_empty() {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    for (account, c) in &counts {
        for (kind, period, passed) in [("d", c.day, c.day_passed), ("h", c.hour, c.hour_passed)] {
            tx.execute(
                "INSERT INTO quota (account, kind, period, node, used, reserved)
                 VALUES ($1, $2, $3, $4, $5, 0)
                 ON CONFLICT (account, kind, period, node)
                 DO UPDATE SET used = greatest(quota.used, $5)",
                &[account, &kind, &period, &node, &big(passed)],
            )?;
        }
    }
    tx.commit()?;
    let counts: Vec<_> = counts.into_iter().map(|(_, c)| c).collect();
    store.quota_pushed(&counts)?;
    Ok(())
}

/// Drop the allowances of periods that are over.
pub fn prune(client: &mut Client, now: i64) -> Result<()> {
    let (day, hour) = (clock::day_of(now), clock::hour_of(now));
    for table in ["quota", "quota_squeeze"] {
        client.execute(
            &format!(
                "DELETE FROM {table} WHERE (kind = 'd' AND period < $1) OR (kind = 'h' AND period < $2)"
            ),
            &[&(day - 1), &(hour - 1)],
        )?;
    }
    Ok(())
}
