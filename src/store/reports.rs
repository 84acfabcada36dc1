//! What the daily report and the immediate block notices read and write
//! (docs/bounces.md): the accounts with a report recipient, one day of
//! their mails in error, expired mail and events, the once-a-day mark, and
//! the automatic blocks not yet announced.

use rusqlite::{OptionalExtension, params};

use super::history::event_from_row;
use super::messages::insert_message;
use super::{ErrorRow, Event, NewMessage, Result, Store};
use crate::account::{self, State};
use crate::clock::DAY_MS;
use crate::queue::MessageState;

/// Sent-report bookkeeping older than this is dropped when a report is sent.
const REPORTS_KEEP_MS: i64 = 60 * DAY_MS;

/// What [`Store::enqueue_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportQueued {
    /// Queued now, under the message's own qid.
    Queued,
    /// This day's report of the account was queued before, under this qid.
    Already(String),
}

/// An account that has a report recipient.
#[derive(Debug, Clone)]
pub struct ReportAccount {
    pub id: i64,
    pub name: String,
    pub report_to: String,
}

/// A held message dropped by the expiry sweep.
#[derive(Debug, Clone)]
pub struct ExpiredMail {
    /// When the sweep dropped it.
    pub at: i64,
    pub created: i64,
    pub qid: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub script: String,
}

/// An automatic block the report recipient should hear about at once.
#[derive(Debug, Clone)]
pub struct BlockNotice {
    pub account: String,
    pub report_to: String,
    pub event: Event,
}

impl Store {
    /// Accounts with a report recipient (or only `only`, if it has one).
    pub fn report_accounts(&self, only: Option<&str>) -> Result<Vec<ReportAccount>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, name, report_to FROM accounts
                 WHERE report_to IS NOT NULL AND report_to <> '' AND (?1 IS NULL OR name = ?1)
                 ORDER BY name",
            )?
            .query_map([only], |r| {
                Ok(ReportAccount {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    report_to: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// An account's mails in error recorded in `[from, to)`, oldest first,
    /// without scriptmail's own mail; at most `limit`, and the total.
    pub fn report_errors(
        &self,
        account_id: i64,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<(Vec<ErrorRow>, i64)> {
        const WHERE: &str = "FROM errors e WHERE e.account_id = ?1 AND e.at >= ?2 AND e.at < ?3
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.system)";
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) {WHERE}"))?
            .query_row(params![account_id, from, to], |r| r.get(0))?;
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT e.at, e.qid, e.rcpt, e.kind, e.message, e.subject, e.script {WHERE}
                 ORDER BY e.at, e.id LIMIT ?4"
            ))?
            .query_map(
                params![account_id, from, to, limit.max(0)],
                ErrorRow::from_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok((rows, total))
    }

    /// An account's held mail the sweep expired in `[from, to)`, oldest
    /// first; at most `limit`, and the total.
    pub fn report_expired(
        &self,
        account_id: i64,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<(Vec<ExpiredMail>, i64)> {
        // `messages_account (account_id, created)`: an expired message was
        // created before it expired, so `created < to` bounds the search.
        const WHERE: &str = "FROM messages m WHERE m.account_id = ?1 AND m.created < ?3
             AND m.state = 'expired' AND m.done_at >= ?2 AND m.done_at < ?3 AND m.system = 0";
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) {WHERE}"))?
            .query_row(params![account_id, from, to], |r| r.get(0))?;
        let mut rows: Vec<(i64, ExpiredMail)> = self
            .conn
            .prepare_cached(&format!(
                "SELECT m.id, m.done_at, m.created, m.qid, m.sender, m.subject, m.script {WHERE}
                 ORDER BY m.done_at, m.id LIMIT ?4"
            ))?
            .query_map(params![account_id, from, to, limit.max(0)], |r| {
                Ok((
                    r.get(0)?,
                    ExpiredMail {
                        at: r.get(1)?,
                        created: r.get(2)?,
                        qid: r.get(3)?,
                        sender: r.get(4)?,
                        recipients: Vec::new(),
                        subject: r.get(5)?,
                        script: r.get(6)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (id, m) in &mut rows {
            m.recipients = self.recipients_of(*id)?;
        }
        Ok((rows.into_iter().map(|(_, m)| m).collect(), total))
    }

    /// An account's state changes in `[from, to)`, oldest first.
    pub fn report_events(&self, account_id: i64, from: i64, to: i64) -> Result<Vec<Event>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT at, old_state, new_state, reason, actor, note FROM events
                 WHERE account_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at, id LIMIT 1000",
            )?
            .query_map(params![account_id, from, to], event_from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Queue an account's daily report for `day` as system mail, unless one
    /// was queued already — the check, the message and the mark in one
    /// transaction, so runs of `report --send` at the same time (a timer and
    /// an admin) queue one report per account and day between them.
    pub fn enqueue_report(
        &mut self,
        m: &NewMessage<'_>,
        account_id: i64,
        day: i64,
        now: i64,
    ) -> Result<ReportQueued> {
        let tx = self.write_tx()?;
        let earlier: Option<String> = tx
            .prepare_cached("SELECT qid FROM reports WHERE account_id = ?1 AND day = ?2")?
            .query_row(params![account_id, day], |r| r.get(0))
            .optional()?;
        if let Some(qid) = earlier {
            return Ok(ReportQueued::Already(qid));
        }
        insert_message(&tx, m, account_id, MessageState::Queued, now)?;
        tx.prepare_cached("DELETE FROM reports WHERE at < ?1")?
            .execute([now - REPORTS_KEEP_MS])?;
        tx.prepare_cached(
            "INSERT INTO reports (account_id, day, at, qid) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![account_id, day, now, m.qid])?;
        tx.commit()?;
        Ok(ReportQueued::Queued)
    }

    /// Claim the automatic blocks (limit or error ratio) not yet announced,
    /// for accounts with a report recipient. Every pending event is marked
    /// announced in the same transaction, so two processes never announce
    /// the same block; one lost to a crash is still in the daily report.
    pub fn take_block_notices(&mut self) -> Result<Vec<BlockNotice>> {
        // Usually nothing is pending: a read through the partial index
        // spares the write lock.
        let pending: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM events WHERE notified = 0)")?
            .query_row([], |r| r.get(0))?;
        if !pending {
            return Ok(Vec::new());
        }
        let tx = self.write_tx()?;
        let rows: Vec<BlockNotice> = tx
            .prepare_cached(
                "UPDATE events SET notified = 1 WHERE notified = 0
                 RETURNING account_id, at, old_state, new_state, reason, actor, note",
            )?
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Event {
                        at: r.get(1)?,
                        old: r.get(2)?,
                        new: r.get(3)?,
                        reason: r.get(4)?,
                        actor: r.get(5)?,
                        note: r.get(6)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|(_, e)| {
                e.actor == account::SYSTEM_ACTOR && matches!(e.new, State::Ko | State::Bounce)
            })
            .filter_map(|(account_id, event)| {
                let (account, report_to): (String, Option<String>) = tx
                    .prepare_cached("SELECT name, report_to FROM accounts WHERE id = ?1")
                    .and_then(|mut s| s.query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?))))
                    .ok()?;
                let report_to = report_to.filter(|r| !r.is_empty())?;
                Some(BlockNotice {
                    account,
                    report_to,
                    event,
                })
            })
            .collect();
        tx.commit()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::State;
    use crate::clock::{self, DAY_MS};
    use crate::store::testing::*;
    use crate::store::{Attempt, StoreError};

    #[test]
    fn block_notices_are_claimed_once_for_automatic_blocks_with_a_recipient() {
        let (_d, mut s) = store_with_ratio(0.5, 1);
        relay(&mut s, "acme", "Q1", fail(), T0);
        relay(&mut s, "quiet", "Q2", fail(), T0);
        assert_eq!(account_state(&s, "acme"), State::Bounce);
        assert_eq!(account_state(&s, "quiet"), State::Bounce);
        {
            let tx = s.write_tx().unwrap();
            tx.execute(
                "UPDATE accounts SET report_to = 'admin@example.com' WHERE name = 'acme'",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        // A manual change is not announced.
        set_account_state(&mut s, "acme", State::Ok, T0 + 1);
        let n = s.take_block_notices().unwrap();
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].account, "acme");
        assert_eq!(n[0].report_to, "admin@example.com");
        assert_eq!(n[0].event.new, State::Bounce);
        assert!(s.take_block_notices().unwrap().is_empty());
    }

    #[test]
    fn report_queries_cover_one_day() {
        let (_d, mut s) = store_with_ratio(0.0, 1);
        let day0 = clock::day_of(T0) * DAY_MS;
        relay(&mut s, "acme", "Q1", fail(), day0 - 1);
        relay(&mut s, "acme", "Q2", fail(), day0 + 5);
        submit_to(&mut s, "acme", "S1", &["x@example.com"], true, day0 + 6);
        let claim = s.claim_next(day0 + 6).unwrap().unwrap();
        let attempt = Attempt {
            results: vec![("x@example.com".into(), fail())],
            retry_at: day0,
            expire: false,
        };
        assert!(s.record_attempt(&claim, &attempt, day0 + 6).unwrap());
        let id = s.account("acme").unwrap().id;
        let (errs, total) = s.report_errors(id, day0, day0 + DAY_MS, 10).unwrap();
        assert_eq!(total, 1, "yesterday's and the system mail's are not in");
        assert_eq!(errs[0].qid, "Q2");
        let (_, total) = s.report_errors(id, day0, day0 + DAY_MS, 0).unwrap();
        assert_eq!(total, 1);
        set_account_state(&mut s, "acme", State::Ko, day0 + 7);
        assert_eq!(s.report_events(id, day0, day0 + DAY_MS).unwrap().len(), 1);
        submit_to(&mut s, "acme", "H1", &["y@example.com"], false, day0 + 8);
        s.expire_held(day0 + 9, day0 + 10, 100).unwrap();
        let (exp, total) = s.report_expired(id, day0, day0 + DAY_MS, 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(exp[0].qid, "H1");
        assert_eq!(exp[0].recipients, ["y@example.com"]);
        assert!(s.report_accounts(None).unwrap().is_empty());
        // One report per account and day: the second is not queued.
        let data = b"Subject: report\r\n\r\nbody\r\n";
        let report = |qid| NewMessage {
            subject: "report",
            system: true,
            ..NewMessage::new(qid, "acme", 0, "reports@node.example.net", &[], data)
        };
        assert_eq!(
            s.enqueue_report(&report("R1"), id, 5, day0).unwrap(),
            ReportQueued::Queued
        );
        assert_eq!(
            s.enqueue_report(&report("R2"), id, 5, day0).unwrap(),
            ReportQueued::Already("R1".into())
        );
        assert_eq!(
            s.enqueue_report(&report("R3"), id, 6, day0).unwrap(),
            ReportQueued::Queued
        );
        assert!(matches!(
            s.message("R2", false),
            Err(StoreError::NoMessage(_))
        ));
        assert_eq!(
            s.message("R1", false).unwrap().row.state,
            MessageState::Queued
        );
    }
}
