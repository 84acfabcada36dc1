//! This node's queue as a whole, for the metrics: its not-yet-done mail by
//! state, the oldest waiting message, the retries behind the deferred mail,
//! the relay's outcomes so far and how long recent mail took from
//! acceptance to the smarthost (docs/api.md, "Metrics"). Each is a search
//! of the `messages_pending` or `messages_done` partial index or a pass
//! over the accounts table, never a scan of the history.

use rusqlite::params;

use super::{Result, Store};
use crate::queue::MessageState;

/// The node's queue at one instant.
#[derive(Debug, Clone, Default)]
pub struct NodeGauges {
    pub held: i64,
    pub queued: i64,
    pub deferred: i64,
    pub sending: i64,
    /// Creation time of the oldest queued or deferred message.
    pub oldest_waiting: Option<i64>,
    /// Creation time of the oldest held message.
    pub oldest_held: Option<i64>,
    /// Delivery attempts the deferred mail has had (each one a deferral).
    pub deferred_attempts: i64,
    /// Sums of every account's counters (they only grow).
    pub sent_total: i64,
    pub errors_total: i64,
    pub accounts: i64,
    pub accounts_blocked: i64,
    /// Milliseconds from acceptance to the smarthost's `250` of each
    /// message relayed since the instant asked for.
    pub delays_ms: Vec<i64>,
}

impl Store {
    /// The node's gauges; `delays_ms` covers the mail sent since `since`.
    pub fn node_gauges(&self, since: i64) -> Result<NodeGauges> {
        let mut g = NodeGauges::default();
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT state, count(*), min(created), sum(attempts) FROM messages WHERE ",
            pending!(),
            " GROUP BY state"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, MessageState>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (state, n, oldest, attempts) = row?;
            let older = |o: Option<i64>| Some(o.map_or(oldest, |t| t.min(oldest)));
            match state {
                MessageState::Held => {
                    g.held = n;
                    g.oldest_held = older(g.oldest_held);
                }
                MessageState::Queued => {
                    g.queued = n;
                    g.oldest_waiting = older(g.oldest_waiting);
                }
                MessageState::Deferred => {
                    g.deferred = n;
                    g.deferred_attempts = attempts;
                    g.oldest_waiting = older(g.oldest_waiting);
                }
                MessageState::Sending => g.sending = n,
                MessageState::Sent | MessageState::Failed | MessageState::Expired => {}
            }
        }
        (g.sent_total, g.errors_total, g.accounts, g.accounts_blocked) = self
            .conn
            .prepare_cached(concat!(
                "SELECT coalesce(sum(sent_total), 0), coalesce(sum(error_total), 0), count(*),
                        coalesce(sum(state NOT IN ",
                sending_states!(),
                "), 0) FROM accounts"
            ))?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        g.delays_ms = self
            .conn
            .prepare_cached(
                "SELECT done_at - created FROM messages
                 WHERE done_at IS NOT NULL AND done_at >= ?1 AND state = 'sent' AND NOT system",
            )?
            .query_map(params![since], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, store};
    use crate::account::BlockReason;

    #[test]
    fn gauges_count_the_pending_mail_and_recent_delays() {
        let (_d, mut s) = store();
        let t0 = testing::T0;
        assert!(!testing::submit(&mut s, "a", "Q1", t0), "queued");
        assert!(!testing::submit(&mut s, "a", "Q2", t0 + 1000), "queued");
        s.ensure_account("b", t0).unwrap();
        s.block("b", BlockReason::Manual, "t", "", t0).unwrap();
        assert!(testing::submit(&mut s, "b", "Q3", t0 + 2000), "held");
        let g = s.node_gauges(t0).unwrap();
        assert_eq!((g.held, g.queued, g.deferred, g.sending), (1, 2, 0, 0));
        assert_eq!(
            (g.oldest_waiting, g.oldest_held),
            (Some(t0), Some(t0 + 2000))
        );
        assert_eq!((g.accounts, g.accounts_blocked), (2, 1));
        assert_eq!(testing::deliver_next(&mut s, t0 + 5000), "Q1");
        let g = s.node_gauges(t0).unwrap();
        assert_eq!((g.queued, g.sent_total), (1, 1));
        assert_eq!(g.delays_ms, [5000]);
        assert!(s.node_gauges(t0 + 6000).unwrap().delays_ms.is_empty());
        let plan = testing::query_plan(
            &s,
            "SELECT done_at - created FROM messages
             WHERE done_at IS NOT NULL AND done_at >= 1 AND state = 'sent' AND NOT system",
        );
        assert!(plan.contains("messages_done"), "{plan}");
    }
}
