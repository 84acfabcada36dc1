//! The relay's side of the queue: how a connection claims a message, how
//! the claim is confirmed and its attempt recorded, and how the claims of a
//! dead relayer come back (issue 11). The rules are in `mod.rs`, "Claims
//! and blocks"; the relay side is in `relay/worker.rs` (claims) and
//! `relay/lock.rs` (orphans).

use rusqlite::{OptionalExtension, Transaction, params};

use super::counters::{Counter, bump_daily};
use super::errors::{MailInError, Protection, count_errors, insert_error};
use super::{Result, Store};
use crate::queue::{FailureKind, MessageState, RecipientState};

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

impl Store {
    /// Put back every message in `sending`: the caller holds the relay
    /// lock, so no relayer is alive and each is an orphan of one that died.
    /// They are due now — `deferred`, or `held` when their account does not
    /// send (see `mod.rs`, "Claims and blocks").
    pub fn requeue_orphans(&mut self, now: i64) -> Result<usize> {
        let tx = self.write_tx()?;
        let back: Vec<(i64, MessageState)> = tx
            .prepare_cached(concat!(
                "UPDATE messages SET state = ",
                requeue_state!(),
                ", next_attempt = ?1, lease_until = 0
                 WHERE state = 'sending'
                 RETURNING account_id, state"
            ))?
            .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (account_id, state) in &back {
            if *state == MessageState::Held {
                bump_daily(&tx, *account_id, now, Counter::Held, 1)?;
            }
        }
        tx.commit()?;
        Ok(back.len())
    }

    /// Claim the message due first, if any, for one connection that sends
    /// it at once: it becomes `sending` (see `mod.rs`, "Claims and blocks").
    pub fn claim_next(&mut self, now: i64) -> Result<Option<Claim>> {
        let tx = self.write_tx()?;
        let claimed = tx
            .prepare_cached(
                "UPDATE messages SET state = 'sending', lease_until = ?1, attempts = attempts + 1
                 WHERE id = (SELECT id FROM messages
                             WHERE state IN ('queued', 'deferred') AND next_attempt <= ?1
                             ORDER BY next_attempt LIMIT 1)
                 RETURNING id, qid, account_id, sender, created, attempts, dsn_notify, dsn_ret,
                           envid, body_8bit",
            )?
            .query_row([now], |r| {
                Ok((
                    r.get::<_, i64>(2)?,
                    Claim {
                        id: r.get(0)?,
                        qid: r.get(1)?,
                        account: String::new(),
                        sender: r.get(3)?,
                        created: r.get(4)?,
                        attempts: r.get(5)?,
                        dsn_notify: r.get(6)?,
                        dsn_ret: r.get(7)?,
                        envid: r.get(8)?,
                        body_8bit: r.get(9)?,
                        recipients: Vec::new(),
                    },
                ))
            })
            .optional()?;
        let Some((account_id, mut c)) = claimed else {
            return Ok(None);
        };
        c.account = tx
            .prepare_cached("SELECT name FROM accounts WHERE id = ?1")?
            .query_row([account_id], |r| r.get(0))?;
        c.recipients = tx
            .prepare_cached(
                "SELECT rcpt FROM recipients WHERE message_id = ?1 AND state = 'pending'",
            )?
            .query_map([c.id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        Ok(Some(c))
    }

    /// Check a claim again just before its transaction starts, when opening
    /// the connection took time: true if it may go. If its account was
    /// blocked meanwhile, the message is held instead (the try not counted)
    /// and false is returned.
    pub fn confirm_claim(&mut self, claim: &Claim, now: i64) -> Result<bool> {
        let tx = self.write_tx()?;
        let row: Option<(MessageState, bool, i64)> = tx
            .prepare_cached(concat!(
                "SELECT m.state, ",
                exempt_or_sending!("m"),
                ", m.account_id FROM messages m WHERE m.id = ?1"
            ))?
            .query_row([claim.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let go = match row {
            Some((state, _, _)) if state != MessageState::Sending => false,
            None => false,
            Some((_, true, _)) => true,
            Some((_, false, account_id)) => {
                tx.prepare_cached(
                    "UPDATE messages SET state = 'held', lease_until = 0,
                         attempts = max(attempts - 1, 0)
                     WHERE id = ?1",
                )?
                .execute([claim.id])?;
                bump_daily(&tx, account_id, now, Counter::Held, 1)?;
                false
            }
        };
        tx.commit()?;
        Ok(go)
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
}

/// Hold an account's queued and deferred mail (not scriptmail's own), in
/// the transaction that stops it sending, and clear the `released` mark of
/// earlier one-by-one releases: a new block holds those too. Returns how
/// many messages were held. The state test is repeated so the query is a
/// search of the `messages_pending` partial index (see `mod.rs`, "Indexes").
pub(super) fn hold_pending(tx: &Transaction<'_>, account_id: i64, now: i64) -> Result<u64> {
    let n = tx
        .prepare_cached(concat!(
            "UPDATE messages SET state = 'held', released = 0
             WHERE account_id = ?1 AND ",
            pending!(),
            " AND state IN ('queued', 'deferred') AND NOT system"
        ))?
        .execute([account_id])?;
    if n > 0 {
        bump_daily(tx, account_id, now, Counter::Held, n as i64)?;
    }
    Ok(n as u64)
}

fn record_attempt(
    tx: &Transaction<'_>,
    protection: &Protection,
    claim: &Claim,
    a: &Attempt,
    now: i64,
) -> Result<bool> {
    let row: Option<(i64, bool, String, String, MessageState)> = tx
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
    if state != MessageState::Sending {
        return Ok(false);
    }
    let mut failed = 0i64;
    let mut last_error = String::new();
    let mark = |rcpt: &str, state: RecipientState| -> Result<()> {
        tx.prepare_cached("UPDATE recipients SET state = ?3 WHERE message_id = ?1 AND rcpt = ?2")?
            .execute(params![claim.id, rcpt, state])?;
        Ok(())
    };
    let mut fail = |rcpt: &str, kind: FailureKind, text: &str| -> Result<()> {
        mark(rcpt, RecipientState::Failed)?;
        insert_error(
            tx,
            &MailInError {
                account_id,
                message_id: claim.id,
                qid: &claim.qid,
                rcpt,
                kind,
                text,
                subject: &subject,
                script: &script,
            },
            now,
        )?;
        failed += 1;
        Ok(())
    };
    for (rcpt, outcome) in &a.results {
        match outcome {
            RcptOutcome::Sent => mark(rcpt, RecipientState::Sent)?,
            RcptOutcome::Failed(text) => {
                fail(rcpt, FailureKind::Rejected, text)?;
                last_error = text.clone();
            }
            RcptOutcome::Deferred(text) => {
                if a.expire {
                    fail(
                        rcpt,
                        FailureKind::Expired,
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
        let back: MessageState = tx
            .prepare_cached(concat!(
                "UPDATE messages SET state = ",
                requeue_state!(),
                ", next_attempt = ?2, lease_until = 0, last_error = ?3
                 WHERE id = ?1 RETURNING state"
            ))?
            .query_row(params![claim.id, a.retry_at, last_error], |r| r.get(0))?;
        if back == MessageState::Held {
            bump_daily(tx, account_id, now, Counter::Held, 1)?;
        }
    } else {
        let done = if sent > 0 {
            MessageState::Sent
        } else {
            MessageState::Failed
        };
        tx.prepare_cached(
            "UPDATE messages SET state = ?2, done_at = ?3, lease_until = 0, last_error = ?4 WHERE id = ?1",
        )?
        .execute(params![claim.id, done, now, last_error])?;
        tx.prepare_cached("DELETE FROM bodies WHERE message_id = ?1")?
            .execute([claim.id])?;
        if sent > 0 && !system {
            tx.prepare_cached("UPDATE accounts SET sent_total = sent_total + 1 WHERE id = ?1")?
                .execute([account_id])?;
            bump_daily(tx, account_id, now, Counter::Sent, 1)?;
        }
    }
    if failed > 0 && !system {
        count_errors(tx, protection, account_id, failed, now)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{BlockReason, State};
    use crate::store::testing::{T0, message, state_of, store, submit_to};
    use crate::store::{EnqueuePolicy, NewMessage};

    fn submit(s: &mut Store, qid: &str, system: bool, now: i64) {
        submit_to(s, "alice", qid, &["someone@example.com"], system, now);
    }

    fn deferral(c: &Claim, now: i64) -> Attempt {
        Attempt {
            results: c
                .recipients
                .iter()
                .map(|r| (r.clone(), RcptOutcome::Deferred("451 later".into())))
                .collect(),
            retry_at: now + 60_000,
            expire: false,
        }
    }

    /// When the message was claimed (`lease_until`), 0 when it is not.
    fn lease(s: &Store, qid: &str) -> i64 {
        s.conn
            .query_row(
                "SELECT lease_until FROM messages WHERE qid = ?1",
                [qid],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn attempt(results: &[(&str, RcptOutcome)], retry_at: i64, expire: bool) -> Attempt {
        Attempt {
            results: results
                .iter()
                .map(|(r, o)| (r.to_string(), o.clone()))
                .collect(),
            retry_at,
            expire,
        }
    }

    fn block(s: &mut Store, now: i64) {
        s.block("alice", BlockReason::Manual, "root", "", now)
            .unwrap();
    }

    /// One claim at a time, oldest due first; a block holds everything not
    /// on a connection, and the message on one comes back held.
    #[test]
    fn a_block_holds_all_but_the_message_on_the_wire() {
        let (_d, mut s) = store();
        for i in 0..3 {
            submit(&mut s, &format!("Q{i}"), false, T0 + i);
        }
        let c = s.claim_next(T0 + 10).unwrap().unwrap();
        assert_eq!((c.qid.as_str(), c.attempts), ("Q0", 1));
        assert_eq!(
            state_of(&s, "Q1"),
            MessageState::Queued,
            "one claim per call"
        );
        block(&mut s, T0 + 11);
        assert_eq!(
            ["Q0", "Q1", "Q2"].map(|q| state_of(&s, q)),
            [
                MessageState::Sending,
                MessageState::Held,
                MessageState::Held
            ]
        );
        assert!(s.claim_next(T0 + 12).unwrap().is_none(), "nothing due");
        assert!(
            s.record_attempt(&c, &deferral(&c, T0 + 13), T0 + 13)
                .unwrap()
        );
        assert_eq!(state_of(&s, "Q0"), MessageState::Held);
        let a = s.account("alice").unwrap();
        assert_eq!(s.queue_counts(a.id).unwrap().held, 3);
        assert_eq!(s.daily_stats("alice", 1, T0).unwrap()[0].held, 3);
        // Unblocked, all three go again.
        s.unblock("alice", false, "root", "", T0 + 14).unwrap();
        let mut again = Vec::new();
        while let Some(c) = s.claim_next(T0 + 15).unwrap() {
            again.push(c.qid);
        }
        again.sort();
        assert_eq!(again, ["Q0", "Q1", "Q2"]);
    }

    /// A claim taken on a closed connection is confirmed after the connect:
    /// a block that came meanwhile holds it, and the try does not count.
    #[test]
    fn a_claim_is_confirmed_unless_the_account_was_blocked_meanwhile() {
        let (_d, mut s) = store();
        submit(&mut s, "Q0", false, T0);
        submit(&mut s, "Q1", false, T0);
        let c0 = s.claim_next(T0 + 1).unwrap().unwrap();
        assert!(s.confirm_claim(&c0, T0 + 2).unwrap());
        let c1 = s.claim_next(T0 + 3).unwrap().unwrap();
        block(&mut s, T0 + 4);
        assert!(!s.confirm_claim(&c1, T0 + 5).unwrap());
        let m = s.message(&c1.qid, false).unwrap().row;
        assert_eq!((m.state, m.attempts), (MessageState::Held, 0));
        // Recording a claim that is no longer ours changes nothing.
        assert!(
            !s.record_attempt(&c1, &deferral(&c1, T0 + 6), T0 + 6)
                .unwrap()
        );
        assert_eq!(state_of(&s, &c1.qid), MessageState::Held);
    }

    /// System mail and a message released one by one go out of a blocked
    /// account, retries included; a new block holds the released one again.
    #[test]
    fn system_and_released_mail_are_exempt_until_the_next_block() {
        let (_d, mut s) = store();
        submit(&mut s, "SYS", true, T0);
        block(&mut s, T0 + 1);
        submit(&mut s, "H", false, T0 + 2);
        assert_eq!(state_of(&s, "SYS"), MessageState::Queued);
        s.release("H", T0 + 3).unwrap();
        for q in ["SYS", "H"] {
            let c = s.claim_next(T0 + 4).unwrap().unwrap();
            assert_eq!(c.qid, q);
            assert!(s.confirm_claim(&c, T0 + 4).unwrap());
            assert!(s.record_attempt(&c, &deferral(&c, T0 + 5), T0 + 5).unwrap());
            assert_eq!(state_of(&s, q), MessageState::Deferred);
        }
        s.unblock("alice", false, "root", "", T0 + 6).unwrap();
        block(&mut s, T0 + 7);
        assert_eq!(
            (state_of(&s, "SYS"), state_of(&s, "H")),
            (MessageState::Deferred, MessageState::Held)
        );
    }

    /// The relay lock's new owner puts back what a dead relayer left in
    /// `sending`: due now, held if the account was blocked meanwhile.
    #[test]
    fn orphans_come_back_due_or_held() {
        let (_d, mut s) = store();
        submit(&mut s, "Q0", false, T0);
        let c = s.claim_next(T0 + 1).unwrap().unwrap();
        assert_eq!(s.requeue_orphans(T0 + 2).unwrap(), 1);
        let m = s.message(&c.qid, false).unwrap().row;
        assert_eq!((m.state, m.next_attempt), (MessageState::Deferred, T0 + 2));
        let _again = s.claim_next(T0 + 3).unwrap().unwrap();
        block(&mut s, T0 + 4);
        assert_eq!(s.requeue_orphans(T0 + 5).unwrap(), 1);
        assert_eq!(state_of(&s, "Q0"), MessageState::Held);
        assert_eq!(s.requeue_orphans(T0 + 6).unwrap(), 0);
    }

    /// A purge of a sending account holds its queue in its first
    /// transaction; the message on the wire may finish, and if it comes
    /// back undelivered the purge's last transaction drops it.
    #[test]
    fn a_purge_drops_what_the_wire_gives_back() {
        let (_d, mut s) = store();
        for i in 0..4 {
            submit(&mut s, &format!("Q{i}"), false, T0 + i);
        }
        let c = s.claim_next(T0 + 10).unwrap().unwrap();
        let p = s.purge_begin("alice", "root", "", T0 + 11).unwrap();
        assert_eq!((p.old, p.held_at_begin), (State::Ok, 3));
        assert!(s.claim_next(T0 + 12).unwrap().is_none());
        let d = s.purge_chunk(&p, 100).unwrap();
        assert_eq!((d.held, d.queued), (3, 0));
        assert!(
            s.record_attempt(&c, &deferral(&c, T0 + 13), T0 + 13)
                .unwrap()
        );
        assert_eq!(state_of(&s, &c.qid), MessageState::Held);
        let (late, released) = s.purge_finish(&p, "root", T0 + 14).unwrap();
        assert_eq!((late.held, late.queued, released), (1, 0, 0));
        let a = s.account("alice").unwrap();
        let q = s.queue_counts(a.id).unwrap();
        assert_eq!(
            (a.state, q.held, q.queued, q.deferred),
            (State::Ok, 0, 0, 0)
        );
    }

    /// A claim takes the message due first and nothing not yet due; it is
    /// `sending`, leased at the claim's time, with its pending recipients,
    /// its DSN parameters and one more attempt counted.
    #[test]
    fn a_claim_takes_what_is_due_oldest_first() {
        let (_d, mut s) = store();
        assert!(s.claim_next(T0).unwrap().is_none(), "empty queue");
        let rcpts = ["a@example.com".to_string(), "b@example.com".to_string()];
        let m = NewMessage {
            dsn_notify: Some("FAILURE".parse().unwrap()),
            dsn_ret: Some("HDRS".parse().unwrap()),
            body_8bit: true,
            ..message("alice", "Q1", &rcpts)
        };
        s.enqueue(&m, EnqueuePolicy::default(), T0 + 5).unwrap();
        submit(&mut s, "Q0", false, T0);
        assert!(s.claim_next(T0 - 1).unwrap().is_none(), "not due yet");
        let c = s.claim_next(T0 + 10).unwrap().unwrap();
        assert_eq!((c.qid.as_str(), c.account.as_str()), ("Q0", "alice"));
        assert_eq!((c.created, c.attempts), (T0, 1));
        assert_eq!(state_of(&s, "Q0"), MessageState::Sending);
        assert_eq!(lease(&s, "Q0"), T0 + 10);
        assert_eq!(s.next_due().unwrap(), Some(T0 + 5), "Q1 is still due");
        let c = s.claim_next(T0 + 11).unwrap().unwrap();
        assert_eq!(c.qid, "Q1");
        assert_eq!(c.recipients, ["a@example.com", "b@example.com"]);
        assert_eq!(
            (
                c.dsn_notify.as_deref(),
                c.dsn_ret.as_deref(),
                c.envid.as_deref()
            ),
            (Some("FAILURE"), Some("HDRS"), Some("ENV-1"))
        );
        assert!(c.body_8bit);
        assert_eq!(s.body(c.id).unwrap().as_deref(), Some(m.data));
        assert!(s.claim_next(T0 + 12).unwrap().is_none(), "both on the wire");
        assert_eq!(s.next_due().unwrap(), None);
    }

    /// A deferral puts the message back due at `retry_at` with the server's
    /// answer, releases the lease, and only the pending recipients go again;
    /// `retry_deferred_now` brings the retry forward.
    #[test]
    fn a_deferred_message_is_retried_at_its_time_for_its_pending_recipients() {
        let (_d, mut s) = store();
        submit_to(
            &mut s,
            "alice",
            "Q1",
            &["a@example.com", "b@example.com"],
            false,
            T0,
        );
        let c = s.claim_next(T0).unwrap().unwrap();
        let a = attempt(
            &[
                ("a@example.com", RcptOutcome::Sent),
                (
                    "b@example.com",
                    RcptOutcome::Deferred("451 4.7.1 later".into()),
                ),
            ],
            T0 + 600_000,
            false,
        );
        assert!(s.record_attempt(&c, &a, T0 + 1).unwrap());
        let m = s.message("Q1", true).unwrap();
        assert_eq!(m.row.state, MessageState::Deferred);
        assert_eq!(
            (m.row.next_attempt, m.row.last_error.as_str()),
            (T0 + 600_000, "451 4.7.1 later")
        );
        assert_eq!(lease(&s, "Q1"), 0);
        assert!(m.data.is_some(), "the body stays until the message is done");
        assert!(s.claim_next(T0 + 599_999).unwrap().is_none());
        assert_eq!(s.retry_deferred_now(T0 + 2).unwrap(), 1);
        let again = s.claim_next(T0 + 2).unwrap().unwrap();
        assert_eq!(
            (again.attempts, again.recipients.as_slice()),
            (2, &["b@example.com".to_string()][..])
        );
        // Sent at last: done, body gone, counted once.
        let a = attempt(&[("b@example.com", RcptOutcome::Sent)], T0, false);
        assert!(s.record_attempt(&again, &a, T0 + 3).unwrap());
        let m = s.message("Q1", true).unwrap();
        assert_eq!(
            (m.row.state, m.row.done_at),
            (MessageState::Sent, Some(T0 + 3))
        );
        assert!(m.data.is_none());
        let acct = s.account("alice").unwrap();
        assert_eq!((acct.sent_total, acct.error_total), (1, 0));
        assert_eq!(s.daily_stats("alice", 1, T0).unwrap()[0].sent, 1);
        assert_eq!(s.retry_deferred_now(T0 + 4).unwrap(), 0);
    }

    /// Refusals and expiry make mails in error, one per recipient; a
    /// message with no recipient delivered is `failed`, one with some is
    /// `sent`.
    #[test]
    fn refusals_and_expiry_are_mails_in_error() {
        let (_d, mut s) = store();
        submit_to(
            &mut s,
            "alice",
            "Q1",
            &["a@example.com", "b@example.com"],
            false,
            T0,
        );
        submit_to(
            &mut s,
            "alice",
            "Q2",
            &["c@example.com", "d@example.com"],
            false,
            T0 + 1,
        );
        let c = s.claim_next(T0 + 2).unwrap().unwrap();
        let a = attempt(
            &[
                ("a@example.com", RcptOutcome::Sent),
                (
                    "b@example.com",
                    RcptOutcome::Failed("550 5.1.1 unknown".into()),
                ),
            ],
            T0,
            false,
        );
        assert!(s.record_attempt(&c, &a, T0 + 3).unwrap());
        assert_eq!(state_of(&s, "Q1"), MessageState::Sent);
        let c = s.claim_next(T0 + 4).unwrap().unwrap();
        let a = attempt(
            &[
                ("c@example.com", RcptOutcome::Failed("554 no".into())),
                ("d@example.com", RcptOutcome::Deferred("451 busy".into())),
            ],
            T0,
            true,
        );
        assert!(s.record_attempt(&c, &a, T0 + 5).unwrap());
        let m = s.message("Q2", true).unwrap();
        assert_eq!(
            (m.row.state, m.row.last_error.as_str()),
            (MessageState::Failed, "451 busy")
        );
        assert!(
            m.recipients
                .iter()
                .all(|(_, st)| *st == RecipientState::Failed)
        );
        assert!(m.data.is_none());
        let errors = s.errors_of("alice", 10).unwrap();
        let kinds: Vec<_> = errors.iter().map(|e| (e.rcpt.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("d@example.com", FailureKind::Expired),
                ("c@example.com", FailureKind::Rejected),
                ("b@example.com", FailureKind::Rejected)
            ]
        );
        assert_eq!(errors[0].message, "expired in queue; last error: 451 busy");
        let acct = s.account("alice").unwrap();
        assert_eq!((acct.sent_total, acct.error_total), (1, 3));
        let today = s.daily_stats("alice", 1, T0).unwrap()[0];
        assert_eq!((today.sent, today.errors), (1, 3));
    }

    /// A message deleted while on the wire is not resurrected by the
    /// attempt's record.
    #[test]
    fn an_attempt_on_a_removed_message_records_nothing() {
        let (_d, mut s) = store();
        submit(&mut s, "Q1", false, T0);
        let c = s.claim_next(T0).unwrap().unwrap();
        s.conn
            .execute("DELETE FROM messages WHERE qid = 'Q1'", [])
            .unwrap();
        let a = attempt(&[("someone@example.com", RcptOutcome::Sent)], T0, false);
        assert!(!s.record_attempt(&c, &a, T0 + 1).unwrap());
        assert_eq!(s.account("alice").unwrap().sent_total, 0);
    }

    /// Every orphan comes back in one go, due at the time of the recovery
    /// and without its lease; those of a blocked account are held and
    /// counted so.
    #[test]
    fn all_orphans_come_back_at_once() {
        let (_d, mut s) = store();
        for (account, qid) in [("alice", "A1"), ("alice", "A2"), ("bob", "B1")] {
            submit_to(&mut s, account, qid, &["x@example.com"], false, T0);
        }
        for _ in 0..3 {
            s.claim_next(T0 + 1).unwrap().unwrap();
        }
        s.block("bob", BlockReason::Manual, "root", "", T0 + 2)
            .unwrap();
        assert_eq!(s.requeue_orphans(T0 + 3).unwrap(), 3);
        for qid in ["A1", "A2"] {
            let m = s.message(qid, false).unwrap().row;
            assert_eq!(
                (m.state, m.next_attempt, m.attempts),
                (MessageState::Deferred, T0 + 3, 1)
            );
            assert_eq!(lease(&s, qid), 0);
        }
        assert_eq!(state_of(&s, "B1"), MessageState::Held);
        assert_eq!(s.daily_stats("bob", 1, T0).unwrap()[0].held, 1);
        assert_eq!(s.daily_stats("alice", 1, T0).unwrap()[0].held, 0);
        assert_eq!(s.next_due().unwrap(), Some(T0 + 3));
    }
}
