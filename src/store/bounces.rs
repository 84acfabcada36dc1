//! Bounces: the message a DSN is about (by queue id or ENVID), the
//! failures it reports recorded as mails in error, and the bounces nobody
//! could match, kept for admins (docs/bounces.md).

use rusqlite::params;

use super::errors::{MailInError, count_errors, insert_error};
use super::{Result, Store, Trip};
use crate::clock::DAY_MS;
use crate::queue::{FailureKind, MessageState, RecipientState};

/// Largest part of an unmatched bounce kept in the database.
pub const UNMATCHED_MAX_BYTES: usize = 256 * 1024;

/// Unmatched bounces older than this are dropped when a new one arrives.
const UNMATCHED_KEEP_MS: i64 = 30 * DAY_MS;

/// A message a bounce was matched to.
#[derive(Debug, Clone)]
pub struct BouncedMessage {
    pub id: i64,
    pub qid: String,
    pub account_id: i64,
    pub account: String,
    pub state: MessageState,
    /// Mail from scriptmail itself (a report): its bounces are not counted.
    pub system: bool,
    pub created: i64,
    pub subject: String,
    pub script: String,
    /// Envelope recipients and their outcome so far.
    pub recipients: Vec<(String, RecipientState)>,
}

/// What recording a DSN did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecorded {
    /// Recipients newly marked in error.
    pub recorded: Vec<String>,
    /// Recipients already in error for this message (a repeated DSN).
    pub duplicates: Vec<String>,
    /// Set when this DSN pushed the account over its error ratio.
    pub tripped: Option<Trip>,
}

/// A bounce nobody could match, as kept for admins.
#[derive(Debug, Clone)]
pub struct UnmatchedBounce {
    pub id: i64,
    pub at: i64,
    pub envelope_rcpt: String,
    pub reason: String,
    pub size: i64,
    pub data: Vec<u8>,
}

fn message_from(
    conn: &rusqlite::Connection,
    where_: &str,
    key: &str,
) -> Result<Option<BouncedMessage>> {
    let sql = format!(
        "SELECT m.id, m.qid, m.account_id, a.name, m.state, m.system, m.created, m.subject, m.script
         FROM messages m JOIN accounts a ON a.id = m.account_id WHERE {where_}"
    );
    let found = conn
        .prepare_cached(&sql)?
        .query_map([key], |r| {
            Ok(BouncedMessage {
                id: r.get(0)?,
                qid: r.get(1)?,
                account_id: r.get(2)?,
                account: r.get(3)?,
                state: r.get(4)?,
                system: r.get(5)?,
                created: r.get(6)?,
                subject: r.get(7)?,
                script: r.get(8)?,
                recipients: Vec::new(),
            })
        })?
        .take(2)
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Ambiguous (an ENVID two scripts chose alike): no match rather than a
    // wrong one.
    if found.len() != 1 {
        return Ok(None);
    }
    let Some(mut msg) = found.into_iter().next() else {
        return Ok(None);
    };
    msg.recipients = conn
        .prepare_cached("SELECT rcpt, state FROM recipients WHERE message_id = ?1 ORDER BY rcpt")?
        .query_map([msg.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(msg))
}

impl Store {
    /// The message with this queue id.
    pub fn bounced_by_qid(&self, qid: &str) -> Result<Option<BouncedMessage>> {
        message_from(&self.conn, "m.qid = ?1", qid)
    }

    /// The one message whose ENVID (RFC 3461 §4.4, given by the script
    /// with `-V`) is this, if exactly one has it.
    pub fn bounced_by_envid(&self, envid: &str) -> Result<Option<BouncedMessage>> {
        message_from(&self.conn, "m.envid = ?1", envid)
    }

    /// Record the permanent failures a DSN reports for a message: one
    /// `errors` row (kind `dsn`) per recipient not already in error, the
    /// recipient marked failed, the account's counters bumped, and the
    /// error-ratio rule applied — one transaction. Scriptmail's own mail
    /// (reports) is never counted.
    pub fn record_dsn(
        &mut self,
        message_id: i64,
        failures: &[(String, String)],
        now: i64,
    ) -> Result<DsnRecorded> {
        let protection = self.protection;
        let tx = self.write_tx()?;
        let (account_id, qid, system, subject, script): (i64, String, bool, String, String) = tx
            .prepare_cached(
                "SELECT account_id, qid, system, subject, script FROM messages WHERE id = ?1",
            )?
            .query_row([message_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        let mut out = DsnRecorded::default();
        for (rcpt, text) in failures {
            let already: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM errors WHERE message_id = ?1
                                    AND rcpt = ?2 COLLATE NOCASE)
                         OR EXISTS (SELECT 1 FROM recipients WHERE message_id = ?1
                                    AND rcpt = ?2 COLLATE NOCASE AND state = 'failed')",
                )?
                .query_row(params![message_id, rcpt], |r| r.get(0))?;
            if already || out.recorded.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                out.duplicates.push(rcpt.clone());
                continue;
            }
            insert_error(
                &tx,
                &MailInError {
                    account_id,
                    message_id,
                    qid: &qid,
                    rcpt,
                    kind: FailureKind::Dsn,
                    text,
                    subject: &subject,
                    script: &script,
                },
                now,
            )?;
            tx.prepare_cached(
                "UPDATE recipients SET state = 'failed' WHERE message_id = ?1 AND rcpt = ?2 COLLATE NOCASE",
            )?
            .execute(params![message_id, rcpt])?;
            out.recorded.push(rcpt.clone());
        }
        let n = out.recorded.len() as i64;
        if n > 0 && !system {
            out.tripped = count_errors(&tx, &protection, account_id, n, now)?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Keep a bounce nobody could match (its first [`UNMATCHED_MAX_BYTES`]),
    /// dropping those older than 30 days. Returns its id.
    pub fn save_unmatched(
        &mut self,
        envelope_rcpt: &str,
        reason: &str,
        data: &[u8],
        now: i64,
    ) -> Result<i64> {
        let tx = self.write_tx()?;
        tx.prepare_cached("DELETE FROM bounces_unmatched WHERE at < ?1")?
            .execute([now - UNMATCHED_KEEP_MS])?;
        tx.prepare_cached(
            "INSERT INTO bounces_unmatched (at, envelope_rcpt, reason, size, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            now,
            envelope_rcpt,
            reason,
            data.len() as i64,
            &data[..data.len().min(UNMATCHED_MAX_BYTES)]
        ])?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    /// The newest unmatched bounces, newest first.
    pub fn unmatched_bounces(&self, limit: i64) -> Result<Vec<UnmatchedBounce>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, at, envelope_rcpt, reason, size, data FROM bounces_unmatched
                 ORDER BY at DESC, id DESC LIMIT ?1",
            )?
            .query_map([limit.max(1)], |r| {
                Ok(UnmatchedBounce {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    envelope_rcpt: r.get(2)?,
                    reason: r.get(3)?,
                    size: r.get(4)?,
                    data: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::State;
    use crate::store::testing::*;
    use crate::store::{Attempt, RcptOutcome};

    #[test]
    fn dsn_marks_the_recipient_counts_once_and_can_trip() {
        let (_d, mut s) = store_with_ratio(0.5, 2);
        submit_to(
            &mut s,
            "acme",
            "Q1",
            &["a@example.com", "B@example.com"],
            false,
            T0,
        );
        let claim = s.claim_next(T0).unwrap().unwrap();
        let attempt = Attempt {
            results: vec![
                ("a@example.com".into(), RcptOutcome::Sent),
                ("B@example.com".into(), RcptOutcome::Sent),
            ],
            retry_at: T0,
            expire: false,
        };
        assert!(s.record_attempt(&claim, &attempt, T0).unwrap());
        let m = s.bounced_by_qid("Q1").unwrap().unwrap();
        assert_eq!(m.account, "acme");
        assert_eq!(m.recipients.len(), 2);
        assert!(s.bounced_by_qid("NOPE").unwrap().is_none());
        assert_eq!(s.bounced_by_envid("ENV-1").unwrap().unwrap().qid, "Q1");

        let r = s
            .record_dsn(
                m.id,
                &[("b@example.com".into(), "5.1.1 unknown user".into())],
                T0 + 5,
            )
            .unwrap();
        assert_eq!(r.recorded, ["b@example.com"]);
        // 1 error of 2 recipients: 50 % is not above 50 %.
        assert_eq!(r.tripped, None);
        let again = s
            .record_dsn(
                m.id,
                &[("B@EXAMPLE.COM".into(), "5.1.1 unknown user".into())],
                T0 + 6,
            )
            .unwrap();
        assert!(again.recorded.is_empty());
        assert_eq!(again.duplicates, ["B@EXAMPLE.COM"]);
        let a = s.account("acme").unwrap();
        assert_eq!(a.error_total, 1);
        let errs = s.errors_of("acme", 10).unwrap();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (errs[0].kind.as_str(), errs[0].rcpt.as_str()),
            ("dsn", "b@example.com")
        );
        assert_eq!(errs[0].message, "5.1.1 unknown user");
        assert_eq!(errs[0].script, "/var/www/x.php");
        let states: Vec<_> = s.bounced_by_qid("Q1").unwrap().unwrap().recipients;
        assert!(
            states.contains(&("B@example.com".into(), RecipientState::Failed)),
            "{states:?}"
        );
        // The second recipient bounces too: 2/2 → bounce.
        let r = s
            .record_dsn(
                m.id,
                &[("a@example.com".into(), "5.2.2 full".into())],
                T0 + 7,
            )
            .unwrap();
        assert_eq!(r.tripped.map(|t| (t.errors, t.sample)), Some((2, 2)));
        assert_eq!(account_state(&s, "acme"), State::Bounce);
        let today = s.daily_stats("acme", 1, T0).unwrap();
        assert_eq!(today.last().unwrap().errors, 2);
    }

    #[test]
    fn ambiguous_envid_matches_nothing() {
        let (_d, mut s) = store_with_ratio(0.0, 1);
        submit_to(&mut s, "a", "Q1", &["x@example.com"], false, T0);
        submit_to(&mut s, "b", "Q2", &["x@example.com"], false, T0);
        assert!(s.bounced_by_envid("ENV-1").unwrap().is_none());
    }

    #[test]
    fn unmatched_bounces_are_kept_capped_and_aged_out() {
        let (_d, mut s) = store_with_ratio(0.0, 1);
        let big = vec![b'x'; UNMATCHED_MAX_BYTES + 10];
        s.save_unmatched("bounces+X@n", "no message matches", b"old", T0)
            .unwrap();
        let id = s
            .save_unmatched("", "not a delivery report", &big, T0 + 31 * DAY_MS)
            .unwrap();
        let u = s.unmatched_bounces(10).unwrap();
        assert_eq!(u.len(), 1, "the 31-day-old one is gone");
        assert_eq!(u[0].id, id);
        assert_eq!(u[0].size as usize, big.len());
        assert_eq!(u[0].data.len(), UNMATCHED_MAX_BYTES);
        assert_eq!(u[0].reason, "not a delivery report");
    }
}
