//! What this node pushes to the cluster store (docs/cluster.md, "What
//! each node pushes"): the figures of the accounts whose counters or queue
//! changed (the triggers of migration 5 note them), its mails in error,
//! its held mail as it comes and goes, and the automatic blocks it made.
//!
//! Each list is taken (cleared) before it is read, so a change made while
//! a push runs is noted again and pushed next time; a failed push puts
//! what it took back.

use rusqlite::{OptionalExtension, params};

use super::counters::{QueueCounts, day_from_row};
use super::errors::ratio_sample;
use super::history::event_from_row;
use super::{DayCounts, ErrorRow, Event, Result, Store, domain_of};
use crate::account::SYSTEM_ACTOR;
use crate::clock;
use crate::queue::MessageState;

/// An account's figures on this node, as pushed.
#[derive(Debug, Clone)]
pub struct Figures {
    pub account: String,
    /// When it entered its state here, and when this node first saw it.
    pub since: i64,
    pub first_seen: i64,
    pub sent_total: i64,
    pub error_total: i64,
    pub queue: QueueCounts,
    /// Yesterday and today (a change just before midnight is pushed after).
    pub days: Vec<DayCounts>,
    /// The previous and the current hour's submissions.
    pub hours: Vec<(i64, i64)>,
    /// The error-ratio rule's sample on this node: (from, errors, sent).
    pub ratio: Option<(i64, i64, i64)>,
}

/// A message that entered or left `held` on this node.
#[derive(Debug, Clone)]
pub enum HeldChange {
    /// Held now: what `held` and its filters look at.
    Held {
        message_id: i64,
        qid: String,
        account: String,
        created: i64,
        script: String,
        domains: Vec<String>,
    },
    /// No longer held (released, dropped, sent); expired by the sweep when
    /// `expired` says so, for the daily report.
    Gone {
        message_id: i64,
        qid: String,
        expired: Option<Expired>,
    },
}

/// Held mail the sweep expired, as the daily report lists it.
#[derive(Debug, Clone)]
pub struct Expired {
    pub account: String,
    pub at: i64,
    pub created: i64,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub script: String,
}

impl Store {
    /// Note every account for the next push (a node joining the cluster).
    pub fn mark_all_dirty(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT OR IGNORE INTO cluster_dirty SELECT id FROM accounts",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether `table` (an outbox table) has a row: a read, so an idle
    /// sync takes no write lock.
    fn has_rows(&self, table: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))?
            .query_row([], |r| r.get(0))?)
    }

    /// Take up to `limit` accounts noted for a push.
    pub fn take_dirty(&mut self, limit: usize) -> Result<Vec<i64>> {
        if !self.has_rows("cluster_dirty")? {
            return Ok(Vec::new());
        }
        let tx = self.write_tx()?;
        let ids: Vec<i64> = tx
            .prepare_cached("DELETE FROM cluster_dirty WHERE account_id IN (SELECT account_id FROM cluster_dirty LIMIT ?1) RETURNING account_id")?
            .query_map([limit.min(i64::MAX as usize) as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        Ok(ids)
    }

    /// Note accounts again (their push failed).
    pub fn mark_dirty(&mut self, ids: &[i64]) -> Result<()> {
        let tx = self.write_tx()?;
        for id in ids {
            tx.prepare_cached("INSERT OR IGNORE INTO cluster_dirty VALUES (?1)")?
                .execute([id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// An account's figures on this node; `window_ms` > 0 adds the
    /// error-ratio sample since `max(now - window, state_since)`.
    pub fn figures(&self, account_id: i64, window_ms: i64, now: i64) -> Result<Option<Figures>> {
        let Some((account, sent_total, error_total, since, first_seen)) = self
            .conn
            .prepare_cached(
                "SELECT name, sent_total, error_total, state_since, first_seen FROM accounts
                 WHERE id = ?1",
            )?
            .query_row([account_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?
        else {
            return Ok(None);
        };
        let today = clock::day_of(now);
        let mut days = Vec::with_capacity(2);
        for day in [today - 1, today] {
            let d = self
                .conn
                .prepare_cached(super::counters::DAY_COUNTS)?
                .query_row(params![account_id, day], day_from_row)
                .optional()?;
            days.extend(d);
        }
        let hour = clock::hour_of(now);
        let hours = self
            .conn
            .prepare_cached(
                "SELECT hour, submitted FROM hourly WHERE account_id = ?1 AND hour >= ?2 AND hour <= ?3",
            )?
            .query_map(params![account_id, hour - 1, hour], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let ratio = if window_ms > 0 {
            let from = (now - window_ms).max(since);
            let (errors, sent) = ratio_sample(&self.conn, account_id, from, window_ms)?;
            Some((from, errors, sent))
        } else {
            None
        };
        Ok(Some(Figures {
            account,
            since,
            first_seen,
            sent_total,
            error_total,
            queue: self.queue_counts(account_id)?,
            days,
            hours,
            ratio,
        }))
    }

    /// Every per-day counter row, for a node's first push (its history).
    pub fn all_days(&self) -> Result<Vec<(String, DayCounts)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT d.day, d.submitted, d.sent, d.errors, d.held, d.expired, a.name
                 FROM daily d JOIN accounts a ON a.id = d.account_id",
            )?
            .query_map([], |r| Ok((r.get(6)?, day_from_row(r)?)))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The mails in error recorded after the one with id `after` (at most
    /// `limit`, oldest first): (id, account, row).
    pub fn errors_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, String, ErrorRow)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT e.at, e.qid, e.rcpt, e.kind, e.message, e.subject, e.script, e.id, a.name
                 FROM errors e JOIN accounts a ON a.id = e.account_id
                 WHERE e.id > ?1
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.system)
                 ORDER BY e.id LIMIT ?2",
            )?
            .query_map(params![after, limit.min(i64::MAX as usize) as i64], |r| {
                Ok((r.get(7)?, r.get(8)?, ErrorRow::from_row(r)?))
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The automatic state changes this node made (limit, error ratio)
    /// after the event `after`, oldest first: (id, account, event). Changes
    /// that came from the cluster are not among them.
    pub fn automatic_events_after(&self, after: i64) -> Result<Vec<(i64, String, Event)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT e.at, e.old_state, e.new_state, e.reason, e.actor, e.note, e.id, a.name
                 FROM events e JOIN accounts a ON a.id = e.account_id
                 WHERE e.id > ?1 AND e.cluster = 0 AND e.actor = ?2 ORDER BY e.id LIMIT 1000",
            )?
            .query_map(params![after, SYSTEM_ACTOR], |r| {
                Ok((r.get(6)?, r.get(7)?, event_from_row(r)?))
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The watermarks of the pushed errors and events.
    pub fn pushed_marks(&self) -> Result<(i64, i64)> {
        Ok(self
            .conn
            .prepare_cached("SELECT errors_pushed, events_pushed FROM cluster_node WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, 0)))
    }

    /// Move the watermarks forward (never back).
    pub fn set_pushed_marks(&mut self, errors: i64, events: i64) -> Result<()> {
        let tx = self.write_tx()?;
        tx.prepare_cached(
            "UPDATE cluster_node SET errors_pushed = max(errors_pushed, ?1),
                 events_pushed = max(events_pushed, ?2) WHERE id = 1",
        )?
        .execute(params![errors, events])?;
        tx.commit()?;
        Ok(())
    }

    /// Take up to `limit` messages that entered or left `held`, each with
    /// what the push needs.
    pub fn take_held_changes(&mut self, limit: usize) -> Result<Vec<HeldChange>> {
        if !self.has_rows("cluster_held")? {
            return Ok(Vec::new());
        }
        let tx = self.write_tx()?;
        let taken: Vec<(i64, String)> = tx
            .prepare_cached(
                "DELETE FROM cluster_held WHERE message_id IN
                     (SELECT message_id FROM cluster_held LIMIT ?1)
                 RETURNING message_id, qid",
            )?
            .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        let mut out = Vec::with_capacity(taken.len());
        for (id, qid) in taken {
            out.push(self.held_change(id, qid)?);
        }
        Ok(out)
    }

    fn held_change(&self, id: i64, qid: String) -> Result<HeldChange> {
        type Row = (
            String,
            MessageState,
            i64,
            String,
            String,
            String,
            Option<i64>,
        );
        let row: Option<Row> = self
            .conn
            .prepare_cached(
                "SELECT a.name, m.state, m.created, m.script, m.sender, m.subject, m.done_at
                 FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?1",
            )?
            .query_row([id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()?;
        let Some((account, state, created, script, sender, subject, done_at)) = row else {
            return Ok(HeldChange::Gone {
                message_id: id,
                qid,
                expired: None,
            });
        };
        let recipients = self.recipients_of(id)?;
        Ok(match state {
            MessageState::Held => {
                let mut domains: Vec<String> = recipients.iter().map(|r| domain_of(r)).collect();
                domains.sort();
                domains.dedup();
                HeldChange::Held {
                    message_id: id,
                    qid,
                    account,
                    created,
                    script,
                    domains,
                }
            }
            MessageState::Expired => HeldChange::Gone {
                message_id: id,
                qid,
                expired: Some(Expired {
                    account,
                    at: done_at.unwrap_or(created),
                    created,
                    sender,
                    recipients,
                    subject,
                    script,
                }),
            },
            _ => HeldChange::Gone {
                message_id: id,
                qid,
                expired: None,
            },
        })
    }

    /// Note held changes again (their push failed).
    pub fn mark_held_changes(&mut self, changes: &[HeldChange]) -> Result<()> {
        let tx = self.write_tx()?;
        for c in changes {
            let (HeldChange::Held {
                message_id, qid, ..
            }
            | HeldChange::Gone {
                message_id, qid, ..
            }) = c;
            tx.prepare_cached("INSERT OR IGNORE INTO cluster_held VALUES (?1, ?2, 0)")?
                .execute(params![message_id, qid])?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{BlockReason, State};
    use crate::store::testing::{T0, store, submit};

    #[test]
    fn changes_are_noted_only_in_cluster_mode_and_taken_once() {
        let (_d, mut s) = store();
        assert!(!submit(&mut s, "alice", "Q0", T0));
        assert!(s.take_dirty(10).unwrap().is_empty(), "alone: nothing noted");
        s.join_cluster("a").unwrap();
        assert!(!submit(&mut s, "alice", "Q1", T0 + 1));
        let ids = s.take_dirty(10).unwrap();
        assert_eq!(ids.len(), 1);
        assert!(s.take_dirty(10).unwrap().is_empty());
        let f = s.figures(ids[0], 0, T0 + 2).unwrap().unwrap();
        assert_eq!(f.account, "alice");
        assert_eq!(f.queue.queued, 2);
        assert_eq!(f.days.last().map(|d| d.submitted), Some(2));
        assert_eq!(f.hours.last().map(|h| h.1), Some(2));
        assert!(f.ratio.is_none());
        s.mark_dirty(&ids).unwrap();
        assert_eq!(s.take_dirty(10).unwrap(), ids);
    }

    #[test]
    fn held_mail_coming_and_going_and_automatic_events() {
        let (_d, mut s) = store();
        s.join_cluster("a").unwrap();
        assert!(!submit(&mut s, "alice", "Q1", T0));
        s.block("alice", BlockReason::Manual, "root", "", T0 + 1)
            .unwrap();
        let c = s.take_held_changes(10).unwrap();
        assert!(
            matches!(&c[..], [HeldChange::Held { qid, domains, .. }] if qid == "Q1" && domains == &["example.com".to_string()]),
            "{c:?}"
        );
        s.unblock("alice", false, "root", "", T0 + 2).unwrap();
        let c = s.take_held_changes(10).unwrap();
        assert!(
            matches!(&c[..], [HeldChange::Gone { qid, expired: None, .. }] if qid == "Q1"),
            "{c:?}"
        );
        // Only automatic changes made here are pushed back.
        assert!(s.automatic_events_after(0).unwrap().is_empty());
        s.replicate_state(
            &crate::store::ReplicatedState {
                account: "alice",
                state: State::Ko,
                reason: "limit",
                since: T0 + 3,
                actor: SYSTEM_ACTOR,
                note: "",
                announce: false,
            },
            T0 + 3,
        )
        .unwrap();
        assert!(s.automatic_events_after(0).unwrap().is_empty());
    }
}
