//! Cluster mode's limits on this node (docs/cluster.md, "Limits across
//! nodes"; the rules are `cluster/allowance.rs`): the share of each
//! account's day and hour this node holds, applied by the enqueue
//! transaction, and what relayd's sync thread reads and writes to keep it.
//!
//! A message past the node's allowance is committed `queued` but *gated*:
//! `gated = 1` and due at [`GATED_UNTIL`], so no relay claims it, until a
//! sync grants more and releases the oldest ones. A block holds gated mail
//! like any queued mail (a trigger clears the mark when a message leaves
//! `queued`).

use rusqlite::{OptionalExtension, Transaction, params};

use super::accounts::{Transition, set_state};
use super::{EnqueuePolicy, Result, Store};
use crate::account::{self, BlockReason, Limits, RateLimit, Reason};
use crate::clock;
use crate::cluster::allowance::{self, Admit, Share};

/// The due time of gated mail: 9999-12-31T23:59:59.999Z, after anything a
/// relay would wait for.
pub const GATED_UNTIL: i64 = 253_402_300_799_999;

/// One limit period, as the sync thread handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A UTC day number (`max_per_day`).
    Day(i64),
    /// A UTC hour number (`max_per_hour`).
    Hour(i64),
}

/// An account with gated mail: it needs a bigger share.
#[derive(Debug, Clone)]
pub struct QuotaNeed {
    pub account_id: i64,
    pub account: String,
    pub limits: Limits,
    pub day: i64,
    pub day_share: Share,
    pub hour: i64,
    pub hour_share: Share,
    pub gated: u64,
}

/// This node's count in one period of an account, not yet in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaCount {
    pub account_id: i64,
    pub day: i64,
    pub day_passed: u64,
    pub hour: i64,
    pub hour_passed: u64,
}

/// The row of `cluster_quota`, made current: counts of an older day or
/// hour start again from zero.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    day: i64,
    day_share: Share,
    hour: i64,
    hour_share: Share,
}

fn load(tx: &rusqlite::Connection, account_id: i64, now: i64) -> Result<Row> {
    let (day, hour) = (clock::day_of(now), clock::hour_of(now));
    let found = tx
        .prepare_cached(
            "SELECT day, day_passed, day_cap, day_others, hour, hour_passed, hour_cap, hour_others
             FROM cluster_quota WHERE account_id = ?1",
        )?
        .query_row([account_id], |r| {
            let share = |i: usize| -> rusqlite::Result<Share> {
                Ok(Share {
                    passed: r.get::<_, i64>(i)?.max(0) as u64,
                    cap: r.get::<_, i64>(i + 1)?.max(0) as u64,
                    others: r.get::<_, i64>(i + 2)?.max(0) as u64,
                })
            };
            Ok(Row {
                day: r.get(0)?,
                day_share: share(1)?,
                hour: r.get(4)?,
                hour_share: share(5)?,
            })
        })
        .optional()?;
    let mut row = found.unwrap_or_default();
    if row.day != day {
        row.day = day;
        row.day_share = Share::default();
    }
    if row.hour != hour {
        row.hour = hour;
        row.hour_share = Share::default();
    }
    Ok(row)
}

fn save(tx: &rusqlite::Connection, account_id: i64, r: &Row) -> Result<()> {
    let n = |v: u64| v.min(i64::MAX as u64) as i64;
    tx.prepare_cached(
        "INSERT INTO cluster_quota (account_id, day, day_passed, day_cap, day_others,
                                    hour, hour_passed, hour_cap, hour_others, pushed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)
         ON CONFLICT (account_id) DO UPDATE SET day = ?2, day_passed = ?3, day_cap = ?4,
             day_others = ?5, hour = ?6, hour_passed = ?7, hour_cap = ?8, hour_others = ?9,
             pushed = 0",
    )?
    .execute(params![
        account_id,
        r.day,
        n(r.day_share.passed),
        n(r.day_share.cap),
        n(r.day_share.others),
        r.hour,
        n(r.hour_share.passed),
        n(r.hour_share.cap),
        n(r.hour_share.others),
    ])?;
    Ok(())
}

/// Whether this node's allowances are fresh: its sync thread reached the
/// cluster store within its lease.
fn online(tx: &rusqlite::Connection, now: i64) -> Result<bool> {
    let until: Option<i64> = tx
        .prepare_cached("SELECT online_until FROM cluster_node WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(until.is_some_and(|t| t > now))
}

/// Apply cluster mode's limits to one submission of a sending account, in
/// the enqueue transaction; a submission that passes is counted.
pub(super) fn admit(
    tx: &Transaction<'_>,
    account_id: i64,
    limits: &Limits,
    now: i64,
) -> Result<Admit> {
    if limits.per_day.max == 0 && limits.per_hour.max == 0 {
        return Ok(Admit::Pass);
    }
    let mut row = load(tx, account_id, now)?;
    let verdict = allowance::admit(limits, &row.day_share, &row.hour_share, online(tx, now)?);
    if verdict == Admit::Pass {
        row.day_share.passed += 1;
        row.hour_share.passed += 1;
        save(tx, account_id, &row)?;
    }
    Ok(verdict)
}

/// Gate a message just inserted (see the module doc).
pub(super) fn gate(tx: &Transaction<'_>, message_id: i64) -> Result<()> {
    tx.prepare_cached("UPDATE messages SET gated = 1, next_attempt = ?2 WHERE id = ?1")?
        .execute(params![message_id, GATED_UNTIL])?;
    Ok(())
}

/// Release up to `n` of an account's gated messages, oldest first, due now.
fn release_gated(tx: &Transaction<'_>, account_id: i64, n: u64, now: i64) -> Result<u64> {
    if n == 0 {
        return Ok(0);
    }
    let released = tx
        .prepare_cached(
            "UPDATE messages SET gated = 0, next_attempt = ?3
             WHERE id IN (SELECT id FROM messages WHERE account_id = ?1 AND gated = 1
                          AND state = 'queued' ORDER BY created, id LIMIT ?2)",
        )?
        .execute(params![account_id, n.min(i64::MAX as u64) as i64, now])?;
    Ok(released as u64)
}

/// How many more a share allows (`u64::MAX` when the period has no limit).
fn room(max: u64, s: &Share) -> u64 {
    if max == 0 {
        u64::MAX
    } else {
        s.cap.saturating_sub(s.passed)
    }
}

impl Store {
    /// Take part in a cluster as `node`: the triggers that record what to
    /// push start firing (see migration 5).
    pub fn join_cluster(&mut self, node: &str) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO cluster_node (id, name) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET name = ?1",
            [node],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// This node alone again (no `[cluster]`): nothing is recorded for a
    /// push any more, and the limits count this node only.
    pub fn leave_cluster(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute("DELETE FROM cluster_node", [])?;
        if n > 0 {
            tx.execute_batch(
                "DELETE FROM cluster_dirty; DELETE FROM cluster_held; DELETE FROM cluster_quota;
                 UPDATE messages SET gated = 0, next_attempt = created WHERE gated = 1;",
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The allowances hold until `until` (ms): the sync reached the store.
    pub fn set_online_until(&mut self, until: i64) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "UPDATE cluster_node SET online_until = ?1 WHERE id = 1",
            [until],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The accounts with gated mail, with their shares and limits (`node`:
    /// this node's `[limits]`, for accounts without their own).
    pub fn quota_needs(&self, node: EnqueuePolicy, now: i64) -> Result<Vec<QuotaNeed>> {
        let gated: Vec<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT account_id, count(*) FROM messages
                 WHERE gated = 1 AND state = 'queued' GROUP BY account_id",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(gated.len());
        for (account_id, n) in gated {
            let (name, per_day, per_hour): (String, Option<i64>, Option<i64>) = self
                .conn
                .prepare_cached(
                    "SELECT name, max_per_day, max_per_hour FROM accounts WHERE id = ?1",
                )?
                .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let row = load(&self.conn, account_id, now)?;
            out.push(QuotaNeed {
                account_id,
                account: name,
                limits: super::accounts::limits(per_day, per_hour, node),
                day: row.day,
                day_share: row.day_share,
                hour: row.hour,
                hour_share: row.hour_share,
                gated: n.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// Raise this node's caps to what the store granted (never lower them
    /// here) and note the others' counts, then release the gated mail the
    /// new room allows, oldest first; how many were released. A grant for
    /// a period that is over is ignored.
    pub fn quota_raise(
        &mut self,
        account_id: i64,
        day: Option<(i64, u64, u64)>,
        hour: Option<(i64, u64, u64)>,
        node: EnqueuePolicy,
        now: i64,
    ) -> Result<u64> {
        let tx = self.write_tx()?;
        let mut row = load(&tx, account_id, now)?;
        if let Some((d, cap, others)) = day
            && d == row.day
        {
            row.day_share.cap = row.day_share.cap.max(cap);
            row.day_share.others = others;
        }
        if let Some((h, cap, others)) = hour
            && h == row.hour
        {
            row.hour_share.cap = row.hour_share.cap.max(cap);
            row.hour_share.others = others;
        }
        let (per_day, per_hour): (Option<i64>, Option<i64>) = tx
            .prepare_cached("SELECT max_per_day, max_per_hour FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let limits = super::accounts::limits(per_day, per_hour, node);
        let n = room(limits.per_day.max, &row.day_share)
            .min(room(limits.per_hour.max, &row.hour_share));
        let released = release_gated(&tx, account_id, n, now)?;
        row.day_share.passed += released;
        row.hour_share.passed += released;
        save(&tx, account_id, &row)?;
        tx.commit()?;
        Ok(released)
    }

    /// Give back what this node holds and does not use in `period`: its cap
    /// comes down to what it let through (on this node first, then in the
    /// store: see `cluster/allowance.rs`). Returns the cap now in force (0
    /// when the node let nothing through in that period).
    pub fn quota_give_back(&mut self, account: &str, period: Period, now: i64) -> Result<u64> {
        let tx = self.write_tx()?;
        let Some(account_id) = tx
            .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
            .query_row([account], |r| r.get::<_, i64>(0))
            .optional()?
        else {
            return Ok(0);
        };
        let mut row = load(&tx, account_id, now)?;
        let share = match period {
            Period::Day(d) if d == row.day => &mut row.day_share,
            Period::Hour(h) if h == row.hour => &mut row.hour_share,
            _ => return Ok(0),
        };
        if share.cap > share.passed {
            share.cap = share.passed;
            let cap = share.cap;
            save(&tx, account_id, &row)?;
            tx.commit()?;
            return Ok(cap);
        }
        Ok(share.cap)
    }

    /// The counts not yet pushed (names with them), for the current periods.
    pub fn quota_unpushed(&self, now: i64) -> Result<Vec<(String, QuotaCount)>> {
        let (day, hour) = (clock::day_of(now), clock::hour_of(now));
        Ok(self
            .conn
            .prepare_cached(
                "SELECT a.name, q.account_id, q.day, q.day_passed, q.hour, q.hour_passed
                 FROM cluster_quota q JOIN accounts a ON a.id = q.account_id
                 WHERE q.pushed = 0 AND (q.day = ?1 OR q.hour = ?2)",
            )?
            .query_map(params![day, hour], |r| {
                Ok((
                    r.get(0)?,
                    QuotaCount {
                        account_id: r.get(1)?,
                        day: r.get(2)?,
                        day_passed: r.get::<_, i64>(3)?.max(0) as u64,
                        hour: r.get(4)?,
                        hour_passed: r.get::<_, i64>(5)?.max(0) as u64,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The store has these counts: mark them pushed, unless they moved on.
    pub fn quota_pushed(&mut self, counts: &[QuotaCount]) -> Result<()> {
        let tx = self.write_tx()?;
        for c in counts {
            tx.prepare_cached(
                "UPDATE cluster_quota SET pushed = 1 WHERE account_id = ?1 AND day = ?2
                 AND day_passed = ?3 AND hour = ?4 AND hour_passed = ?5",
            )?
            .execute(params![
                c.account_id,
                c.day,
                c.day_passed.min(i64::MAX as u64) as i64,
                c.hour,
                c.hour_passed.min(i64::MAX as u64) as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The store is out of reach past the lease: let gated mail through by
    /// the local rule (`allowance::admit` offline) and block, as on a node
    /// alone, the accounts whose gated mail goes past it (`ko`, reason
    /// `limit`, held). Returns (released, accounts blocked).
    pub fn quota_offline(&mut self, node: EnqueuePolicy, now: i64) -> Result<(u64, Vec<String>)> {
        let needs = self.quota_needs(node, now)?;
        let mut released = 0;
        let mut blocked = Vec::new();
        for need in needs {
            let tx = self.write_tx()?;
            let mut row = load(&tx, need.account_id, now)?;
            let left = |max: u64, s: &Share| {
                if max == 0 {
                    u64::MAX
                } else {
                    max.saturating_sub(s.others.saturating_add(s.passed))
                }
            };
            let n = left(need.limits.per_day.max, &row.day_share)
                .min(left(need.limits.per_hour.max, &row.hour_share));
            let out = release_gated(&tx, need.account_id, n, now)?;
            row.day_share.passed += out;
            row.hour_share.passed += out;
            save(&tx, need.account_id, &row)?;
            released += out;
            if out < need.gated {
                let which = if left(need.limits.per_day.max, &row.day_share) == 0 {
                    RateLimit::PerDay
                } else {
                    RateLimit::PerHour
                };
                let state: crate::account::State = tx
                    .prepare_cached("SELECT state FROM accounts WHERE id = ?1")?
                    .query_row([need.account_id], |r| r.get(0))?;
                if state.is_sending() {
                    let change = Transition {
                        old: state,
                        new: BlockReason::Limit.target(),
                        reason: Reason::Block(BlockReason::Limit),
                        actor: account::SYSTEM_ACTOR,
                        note: &format!("{which} exceeded"),
                    };
                    set_state(&tx, need.account_id, &change, now)?;
                    blocked.push(need.account);
                }
            }
            tx.commit()?;
        }
        Ok((released, blocked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::State;
    use crate::queue::MessageState;
    use crate::store::testing::{T0, message, state_of, store};

    fn policy(max_per_day: u64) -> EnqueuePolicy {
        EnqueuePolicy {
            max_per_day,
            max_per_hour: 0,
            cluster: true,
        }
    }

    fn send(s: &mut Store, qid: &str, p: EnqueuePolicy, now: i64) -> bool {
        let rcpts = ["a@example.com".to_string()];
        s.enqueue(&message("alice", qid, &rcpts), p, now)
            .unwrap()
            .held
    }

    fn gated(s: &Store) -> i64 {
        s.conn
            .query_row(
                "SELECT count(*) FROM messages WHERE gated = 1 AND next_attempt = ?1",
                [GATED_UNTIL],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn online_mail_past_the_cap_is_gated_then_released_by_a_grant() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        s.set_online_until(T0 + 10_000).unwrap();
        // No grant yet: accepted (not held), gated, not claimable.
        assert!(!send(&mut s, "Q1", policy(10), T0));
        assert!(!send(&mut s, "Q2", policy(10), T0 + 1));
        assert_eq!(gated(&s), 2);
        assert!(s.claim_next(T0 + 5).unwrap().is_none());
        let needs = s.quota_needs(policy(10), T0 + 5).unwrap();
        assert_eq!(needs.len(), 1);
        assert_eq!((needs[0].account.as_str(), needs[0].gated), ("alice", 2));
        let day = clock::day_of(T0);
        // A grant of one: the oldest goes.
        let n = s
            .quota_raise(
                needs[0].account_id,
                Some((day, 1, 4)),
                None,
                policy(10),
                T0 + 6,
            )
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(s.claim_next(T0 + 7).unwrap().unwrap().qid, "Q1");
        assert_eq!(gated(&s), 1);
        // Counted once, and waiting to be pushed.
        let unpushed = s.quota_unpushed(T0 + 7).unwrap();
        assert_eq!(unpushed[0].1.day_passed, 1);
        s.quota_pushed(&[unpushed[0].1]).unwrap();
        assert!(s.quota_unpushed(T0 + 7).unwrap().is_empty());
        // A block holds gated mail too, and clears the mark.
        s.block("alice", BlockReason::Manual, "root", "", T0 + 8)
            .unwrap();
        assert_eq!(state_of(&s, "Q2"), MessageState::Held);
        assert_eq!(gated(&s), 0);
    }

    #[test]
    fn within_the_cap_passes_and_a_lowered_cap_gates_again() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        s.set_online_until(T0 + 10_000).unwrap();
        assert!(!send(&mut s, "Q0", policy(10), T0));
        let id = s.quota_needs(policy(10), T0).unwrap()[0].account_id;
        s.quota_raise(id, Some((clock::day_of(T0), 3, 0)), None, policy(10), T0)
            .unwrap();
        assert!(!send(&mut s, "Q1", policy(10), T0 + 1));
        assert_eq!(gated(&s), 0);
        let day = Period::Day(clock::day_of(T0));
        assert_eq!(s.quota_give_back("alice", day, T0 + 2).unwrap(), 2);
        assert_eq!(s.quota_give_back("alice", day, T0 + 2).unwrap(), 2);
        assert_eq!(
            s.quota_give_back("alice", Period::Day(0), T0 + 2).unwrap(),
            0
        );
        assert!(!send(&mut s, "Q2", policy(10), T0 + 3));
        assert_eq!(gated(&s), 1);
        // No limit: never gated.
        assert!(!send(&mut s, "Q3", policy(0), T0 + 4));
        assert_eq!(gated(&s), 1);
        // A new day starts from nothing.
        s.set_online_until(T0 + clock::DAY_MS + 10_000).unwrap();
        assert!(!send(&mut s, "Q4", policy(10), T0 + clock::DAY_MS));
        assert_eq!(gated(&s), 2);
    }

    #[test]
    fn offline_the_local_rule_lets_through_and_trips() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        // Never synced: offline, so a node alone's rule (others unknown: 0).
        assert!(!send(&mut s, "Q1", policy(2), T0));
        assert!(!send(&mut s, "Q2", policy(2), T0 + 1));
        assert_eq!(gated(&s), 0);
        // The third trips the block: held, never rejected.
        assert!(send(&mut s, "Q3", policy(2), T0 + 2));
        let a = s.account("alice").unwrap();
        assert_eq!((a.state, a.reason.as_str()), (State::Ko, "limit"));
    }

    #[test]
    fn gated_mail_goes_by_the_local_rule_once_the_lease_is_over() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        s.set_online_until(T0 + 100).unwrap();
        for i in 0..3 {
            assert!(!send(&mut s, &format!("Q{i}"), policy(2), T0 + i));
        }
        assert_eq!(gated(&s), 3);
        let (released, blocked) = s.quota_offline(policy(2), T0 + 200).unwrap();
        assert_eq!((released, blocked), (2, vec!["alice".to_string()]));
        assert_eq!(state_of(&s, "Q2"), MessageState::Held);
        assert_eq!(s.account("alice").unwrap().state, State::Ko);
    }

    #[test]
    fn leaving_the_cluster_releases_gated_mail() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        s.set_online_until(T0 + 100).unwrap();
        assert!(!send(&mut s, "Q1", policy(2), T0));
        assert_eq!(gated(&s), 1);
        s.leave_cluster().unwrap();
        assert_eq!(gated(&s), 0);
        assert_eq!(s.claim_next(T0 + 1).unwrap().unwrap().qid, "Q1");
    }
}
