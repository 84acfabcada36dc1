//! The messages `flush` and `test` wait for: making mail due now, and
//! where each tracked message has got to.

use rusqlite::{OptionalExtension, params};

use super::accounts::account_in;
use super::{Result, Store, StoreError};
use crate::queue::MessageState;

/// A message `flush` or `test` waits for.
#[derive(Debug, Clone, Copy)]
pub struct Tracked {
    pub id: i64,
    /// Delivery attempts before the wait began.
    pub attempts: i64,
}

/// How far a tracked message has got.
#[derive(Debug, Clone)]
pub struct Progress {
    pub qid: String,
    pub account: String,
    /// `None`: the message no longer exists (deleted or purged meanwhile).
    pub state: Option<MessageState>,
    pub attempts: i64,
    pub last_error: String,
    pub next_attempt: i64,
}

impl Progress {
    /// Whether this wait is over for the message: it is done, gone, held
    /// again, or had a new attempt since the wait began.
    pub fn settled(&self, before: &Tracked) -> bool {
        match self.state {
            None
            | Some(
                MessageState::Sent
                | MessageState::Failed
                | MessageState::Expired
                | MessageState::Held,
            ) => true,
            Some(MessageState::Deferred) => self.attempts > before.attempts,
            Some(MessageState::Queued | MessageState::Sending) => false,
        }
    }
}

impl Store {
    /// Make every queued and deferred message (of one account, or all) due
    /// now, and return them so the caller can wait for them.
    pub fn make_due(&mut self, account: Option<&str>, now: i64) -> Result<Vec<Tracked>> {
        let tx = self.write_tx()?;
        let account_id = match account {
            Some(name) => Some(account_in(&tx, name)?.id),
            None => None,
        };
        let tracked = {
            let mut stmt = tx.prepare_cached(concat!(
                "UPDATE messages SET next_attempt = min(next_attempt, ?1)
                 WHERE (?2 IS NULL OR account_id = ?2) AND ",
                pending!(),
                " AND state IN ('queued', 'deferred')
                 RETURNING id, attempts"
            ))?;
            stmt.query_map(params![now, account_id], |r| {
                Ok(Tracked {
                    id: r.get(0)?,
                    attempts: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        Ok(tracked)
    }

    /// Start tracking one message by queue id (for `test`).
    pub fn track(&self, qid: &str) -> Result<Tracked> {
        self.conn
            .prepare_cached("SELECT id, attempts FROM messages WHERE qid = ?1")?
            .query_row([qid], |r| {
                Ok(Tracked {
                    id: r.get(0)?,
                    attempts: r.get(1)?,
                })
            })
            .optional()?
            .ok_or_else(|| StoreError::NoMessage(qid.to_string()))
    }

    /// How far each tracked message has got.
    pub fn progress(&self, tracked: &[Tracked]) -> Result<Vec<Progress>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.qid, a.name, m.state, m.attempts, m.last_error, m.next_attempt
             FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?1",
        )?;
        let mut out = Vec::with_capacity(tracked.len());
        for t in tracked {
            let o = stmt
                .query_row([t.id], |r| {
                    Ok(Progress {
                        qid: r.get(0)?,
                        account: r.get(1)?,
                        state: Some(r.get(2)?),
                        attempts: r.get(3)?,
                        last_error: r.get(4)?,
                        next_attempt: r.get(5)?,
                    })
                })
                .optional()?;
            out.push(o.unwrap_or(Progress {
                qid: String::new(),
                account: String::new(),
                state: None,
                attempts: t.attempts,
                last_error: String::new(),
                next_attempt: 0,
            }));
        }
        Ok(out)
    }
}
