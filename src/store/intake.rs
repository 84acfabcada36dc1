//! Group commit of submissions (docs/submission.md): relayd's committer and
//! the maildrop import hand the store a batch of messages, and the store
//! runs the usual enqueue policy for each ([`super::enqueue_in`]: account
//! state, limits, insert) inside ONE `BEGIN IMMEDIATE` transaction — one
//! fsync for the whole batch.
//!
//! Idempotent by queue id: a message already in the queue under the same
//! account is "already there" (a `sendmail` that lost relayd's answer and
//! then wrote the maildrop, or an import that ran twice), never a second
//! copy; under another account it is refused.
//!
//! A batch whose COMMIT failed is voided at once, so that SQLite's WAL
//! recovery cannot bring back what its callers were told was not queued
//! ([`Store::enqueue_batch`], docs/faults.md).

use rusqlite::OptionalExtension;

use super::{EnqueuePolicy, Enqueued, NewMessage, Result, Store, StoreError};
use crate::handoff::Parcel;
use crate::queue::MessageState;

/// A message to commit: the parcel as it arrived, attributed to its
/// account and time. It owns its bytes (it crossed a thread or a file).
#[derive(Debug, Clone)]
pub struct Intake {
    /// What `sendmail` handed over; `data` in wire form with relayd's
    /// `Received:` trace first, `body_8bit` as the bytes say.
    pub parcel: Parcel,
    pub account: String,
    pub uid: u32,
    /// When it was submitted (ms): its `created` time and the day and hour
    /// its limits count in.
    pub time: i64,
}

impl Intake {
    /// The message as the enqueue transaction takes it.
    pub fn as_new(&self) -> NewMessage<'_> {
        let p = &self.parcel;
        NewMessage {
            qid: &p.qid,
            account: &self.account,
            uid: self.uid,
            sender: &p.sender,
            recipients: &p.recipients,
            data: &p.data,
            subject: &p.subject,
            script: &p.script,
            cwd: &p.cwd,
            dsn_notify: p.dsn_notify,
            dsn_ret: p.dsn_ret,
            envid: p.envid.as_ref(),
            body_8bit: p.body_8bit,
            system: false,
        }
    }
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intaken {
    /// Inserted now.
    New(Enqueued),
    /// Already in the queue under this account (an earlier try committed
    /// it); `held` as it is now.
    Known { held: bool },
}

impl Intaken {
    pub fn held(&self) -> bool {
        match self {
            Intaken::New(e) => e.held,
            Intaken::Known { held } => *held,
        }
    }
}

impl Store {
    /// Commit `items` in one transaction; one result per item, in order.
    /// When the transaction as a whole fails (an I/O error, a full disk),
    /// each item is tried again in a transaction of its own, so one that
    /// cannot be stored fails alone.
    pub fn enqueue_batch(
        &mut self,
        items: &[Intake],
        policy: EnqueuePolicy,
    ) -> Vec<Result<Intaken>> {
        let results = match self.commit_batch(items, policy) {
            Ok(results) => results,
            Err(e) if items.len() <= 1 => vec![Err(e)],
            Err(_) => items
                .iter()
                .map(|it| {
                    self.commit_batch(std::slice::from_ref(it), policy)
                        .and_then(|mut r| {
                            r.pop()
                                .unwrap_or_else(|| Err(StoreError::Conflict("empty batch".into())))
                        })
                })
                .collect(),
        };
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if may_have_written(e)))
        {
            self.void_failed_commit();
        }
        results
    }

    /// Make sure a transaction whose COMMIT failed never comes back.
    ///
    /// In WAL mode a COMMIT writes the transaction's pages to the WAL, then
    /// fsyncs it. When the fsync fails (EIO), the COMMIT fails and the
    /// transaction is rolled back in memory, but its frames stay in the WAL
    /// file, whole, past the end the WAL index knows. The next write
    /// transaction overwrites them; if the process died before one, the WAL
    /// recovery of the next open would find them valid and bring the
    /// transaction back — messages whose `sendmail` was told "not queued"
    /// (exit 74) would be delivered (docs/faults.md). So write one now: page
    /// 1 rewritten with the same `user_version`, the smallest write SQLite
    /// makes. Its frames take the failed ones' place, and recovery stops at
    /// its commit. Best effort: should it fail as well, its own frames
    /// change nothing.
    fn void_failed_commit(&mut self) {
        let _ = self.write_tx().and_then(|tx| {
            let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            tx.pragma_update(None, "user_version", version)?;
            Ok(tx.commit()?)
        });
    }

    fn commit_batch(
        &mut self,
        items: &[Intake],
        policy: EnqueuePolicy,
    ) -> Result<Vec<Result<Intaken>>> {
        let tx = self.write_tx()?;
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            let known: Option<(String, MessageState)> = tx
                .prepare_cached(
                    "SELECT a.name, m.state FROM messages m JOIN accounts a ON a.id = m.account_id
                     WHERE m.qid = ?1",
                )?
                .query_row([&it.parcel.qid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            out.push(match known {
                Some((account, state)) if account == it.account => Ok(Intaken::Known {
                    held: state == MessageState::Held,
                }),
                Some(_) => Err(StoreError::Conflict(format!(
                    "queue id {} belongs to another account",
                    it.parcel.qid
                ))),
                None => Ok(Intaken::New(super::messages::enqueue_in(
                    &tx,
                    &it.as_new(),
                    policy,
                    it.time,
                )?)),
            });
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Whether a failed batch may have left frames in the WAL: an SQLite error
/// other than not getting the write lock (which fails before a page is
/// written). A refusal of one message (another account's queue id) comes
/// from a batch that committed.
fn may_have_written(e: &StoreError) -> bool {
    match e {
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _)) => !matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        ),
        StoreError::Sql(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn intake(qid: &str, account: &str) -> Intake {
        Intake {
            parcel: Parcel {
                qid: qid.into(),
                sender: "a@x.org".into(),
                recipients: vec!["b@x.org".into()],
                data: b"Subject: s\r\n\r\nb\r\n".to_vec(),
                subject: "s".into(),
                cwd: "/".into(),
                ..Parcel::default()
            },
            account: account.into(),
            uid: 1001,
            time: 1_700_000_000_000,
        }
    }

    #[test]
    fn a_batch_commits_each_once_and_a_retry_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.db"), Durability::Full).unwrap();
        let policy = EnqueuePolicy::default();
        let batch = vec![intake("A1", "web1"), intake("A2", "web2")];
        let r = store.enqueue_batch(&batch, policy);
        assert!(
            r.iter()
                .all(|r| matches!(r, Ok(Intaken::New(e)) if !e.held)),
            "{r:?}"
        );
        // The same queue ids again (a sendmail that lost the answer, a second
        // import): known, not inserted twice; under another account: refused.
        let again = vec![
            intake("A1", "web1"),
            intake("A2", "web1"),
            intake("A3", "web1"),
        ];
        let r = store.enqueue_batch(&again, policy);
        assert!(matches!(r[0], Ok(Intaken::Known { held: false })), "{r:?}");
        assert!(matches!(r[1], Err(StoreError::Conflict(_))), "{r:?}");
        assert!(matches!(r[2], Ok(Intaken::New(_))), "{r:?}");
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn the_enqueue_policy_holds_and_trips_limits_inside_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("q.db"), Durability::Full).unwrap();
        let policy = EnqueuePolicy {
            max_per_day: 2,
            max_per_hour: 0,
            cluster: false,
        };
        let batch: Vec<Intake> = (0..4).map(|i| intake(&format!("B{i}"), "web1")).collect();
        let r: Vec<bool> = store
            .enqueue_batch(&batch, policy)
            .into_iter()
            .map(|r| r.unwrap().held())
            .collect();
        // The third trips max_per_day: it and what follows are held.
        assert_eq!(r, [false, false, true, true]);
    }
}
