//! The benchmark's fixture: a synthetic queue of accounts and history
//! (hidden `mailq-ctl populate`).

use rusqlite::params;

use super::accounts::{Transition, account_in, create_account, set_state};
use super::counters::{Counter, bump_daily};
use super::{Result, Store, StoreError};
use crate::account::{BlockReason, Reason, State};
use crate::clock;
use crate::queue::{MessageState, RecipientState};

/// The synthetic queue `populate` writes (for the benchmark).
#[derive(Debug, Clone, Copy)]
pub struct PopulateSpec {
    pub accounts: u64,
    /// Messages of history (sent, some failed), spread over `days`.
    pub messages: u64,
    /// Held messages, all of the first account (which is blocked).
    pub held: u64,
    pub days: i64,
}

impl Store {
    /// Fill the queue with synthetic accounts and history in one transaction
    /// (the benchmark's fixture; hidden `mailq-ctl populate`). Accounts are
    /// `acct00000`...; the first one is blocked and holds `held` messages.
    pub fn populate(&mut self, spec: &PopulateSpec, now: i64) -> Result<()> {
        let tx = self.write_tx()?;
        let days = spec.days.max(1);
        let first_day = clock::day_of(now) - days + 1;
        let n_accounts = spec.accounts.max(1);
        let mut ids = Vec::with_capacity(n_accounts as usize);
        for i in 0..n_accounts {
            let name = format!("acct{i:05}");
            let id = match account_in(&tx, &name) {
                Ok(a) => a.id,
                Err(StoreError::NoAccount(_)) => {
                    create_account(&tx, &name, first_day * clock::DAY_MS)?
                }
                Err(e) => return Err(e),
            };
            ids.push(id);
        }
        // History: sent mail, one recipient each, every 50th failed.
        let mut per_day: std::collections::HashMap<(i64, i64), (i64, i64)> = Default::default();
        let stamp = now / 1000;
        {
            let mut msg = tx.prepare_cached(
                "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender,
                     size, subject, script, attempts, done_at, last_error)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, 1500, 'Order confirmation', '/var/www/shop/mail.php',
                         1, ?4, ?6)",
            )?;
            let mut rcpt = tx.prepare_cached(
                "INSERT INTO recipients (message_id, rcpt, state) VALUES (?1, ?2, ?3)",
            )?;
            let mut err = tx.prepare_cached(
                "INSERT INTO errors (account_id, message_id, qid, at, rcpt, kind, message, subject, script)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'rejected', '550 5.1.1 user unknown',
                         'Order confirmation', '/var/www/shop/mail.php')",
            )?;
            for i in 0..spec.messages {
                let account_id = ids[(i % n_accounts) as usize];
                let created = now - ((i * 7919) % (days as u64 * 86_400)) as i64 * 1000 - 1000;
                let failed = i % 50 == 49;
                let qid = format!("P{stamp:08X}{i:08X}");
                let to = format!("customer{i}@example.com");
                msg.execute(params![
                    qid,
                    account_id,
                    if failed {
                        MessageState::Failed
                    } else {
                        MessageState::Sent
                    },
                    created,
                    "www@node.example.net",
                    if failed { "550 5.1.1 user unknown" } else { "" },
                ])?;
                let id = tx.last_insert_rowid();
                let outcome = if failed {
                    RecipientState::Failed
                } else {
                    RecipientState::Sent
                };
                rcpt.execute(params![id, to, outcome])?;
                let e = per_day
                    .entry((account_id, clock::day_of(created)))
                    .or_default();
                if failed {
                    err.execute(params![account_id, id, qid, created, to])?;
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
            let mut daily = tx.prepare_cached(
                "INSERT INTO daily (account_id, day, submitted, sent, errors) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, day) DO UPDATE SET submitted = submitted + ?3,
                     sent = sent + ?4, errors = errors + ?5",
            )?;
            let mut totals = tx.prepare_cached(
                "UPDATE accounts SET sent_total = sent_total + ?2, error_total = error_total + ?3
                 WHERE id = ?1",
            )?;
            for ((account_id, day), (sent, errors)) in &per_day {
                daily.execute(params![account_id, day, sent + errors, sent, errors])?;
                totals.execute(params![account_id, sent, errors])?;
            }
        }
        if spec.held > 0 {
            let a = account_in(&tx, "acct00000")?;
            if a.state.is_sending() {
                let change = Transition {
                    old: a.state,
                    new: State::Ko,
                    reason: Reason::Block(BlockReason::Manual),
                    actor: "populate",
                    note: "benchmark",
                };
                set_state(&tx, a.id, &change, now)?;
            }
            let body = b"From: www@node.example.net\r\nTo: someone@example.com\r\nSubject: held\r\n\r\nHeld by the benchmark.\r\n";
            let mut msg = tx.prepare_cached(
                "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender, size)
                 VALUES (?1, ?2, 'held', ?3, ?3, 'www@node.example.net', ?4)",
            )?;
            let mut data =
                tx.prepare_cached("INSERT INTO bodies (message_id, data) VALUES (?1, ?2)")?;
            let mut rcpt =
                tx.prepare_cached("INSERT INTO recipients (message_id, rcpt) VALUES (?1, ?2)")?;
            for i in 0..spec.held {
                let created = now - (spec.held - i) as i64;
                msg.execute(params![
                    format!("H{stamp:08X}{i:08X}"),
                    a.id,
                    created,
                    body.len() as i64
                ])?;
                let id = tx.last_insert_rowid();
                data.execute(params![id, &body[..]])?;
                rcpt.execute(params![id, format!("someone{i}@example.com")])?;
            }
            bump_daily(&tx, a.id, now, Counter::Held, spec.held as i64)?;
        }
        tx.commit()?;
        Ok(())
    }
}
