//! Mails in error that come back later, and what is reported about them:
//! DSN records and unmatched bounces (SPEC §6.3), the error-ratio rule
//! (§6.4), the queries behind the daily report (§6.2) and the immediate
//! notices of automatic blocks.
//!
//! ## The error-ratio rule
//! Whenever mails in error are recorded for an account (a permanent
//! rejection, a queue expiry or a DSN), in the same transaction:
//! `errors / (sent + errors)` over the window `[max(now - window,
//! state_since), now]`, where `errors` counts the account's mails in error
//! recorded in the window and `sent` the recipients of its messages delivered
//! in the window (written at most one window before it), both per recipient
//! and without scriptmail's own mail. When
//! the sample `sent + errors` reaches `min_sample` and the ratio is *above*
//! `bounce_ratio` (doubled in `force`), the account goes to `bounce`. The
//! window never reaches back past the account's last state change: an admin
//! who unblocks an account starts it with a clean slate instead of seeing it
//! re-blocked by the very errors that blocked it.

use rusqlite::{OptionalExtension, Transaction, params};

use super::admin::{ErrorRow, Event};
use super::{NewMessage, Protection, Result, Store, bump_daily, insert_message, set_state};
use crate::account::State;
use crate::clock::{self, DAY_MS};
use crate::log::{self, Level};
use crate::sanitize;

/// Largest part of an unmatched bounce kept in the database.
pub const UNMATCHED_MAX_BYTES: usize = 256 * 1024;
/// Unmatched bounces older than this are dropped when a new one arrives.
const UNMATCHED_KEEP_MS: i64 = 30 * DAY_MS;
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

/// A message a bounce was matched to.
#[derive(Debug, Clone)]
pub struct BouncedMessage {
    pub id: i64,
    pub qid: String,
    pub account_id: i64,
    pub account: String,
    pub state: String,
    /// Mail from scriptmail itself (a report): its bounces are not counted.
    pub system: bool,
    pub created: i64,
    pub subject: String,
    pub script: String,
    /// Envelope recipients and their state (`pending`, `sent`, `failed`).
    pub recipients: Vec<(String, String)>,
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

/// The error-ratio rule tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub errors: i64,
    pub sample: i64,
    /// The threshold applied, in per mille (doubled in `force`).
    pub threshold_permille: i64,
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

/// Called inside the transaction that recorded new mails in error for an
/// account: applies the error-ratio rule (module doc).
pub(crate) fn after_errors(
    tx: &Transaction<'_>,
    protection: &Protection,
    account_id: i64,
    now: i64,
) -> Result<()> {
    apply_ratio(tx, protection, account_id, now).map(|_| ())
}

fn apply_ratio(
    tx: &Transaction<'_>,
    p: &Protection,
    account_id: i64,
    now: i64,
) -> Result<Option<Trip>> {
    if p.bounce_ratio <= 0.0 {
        return Ok(None);
    }
    let (name, state, since): (String, String, i64) = tx
        .prepare_cached("SELECT name, state, state_since FROM accounts WHERE id = ?1")?
        .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let state = State::parse(&state);
    let ratio = match state {
        Some(State::Ok) => p.bounce_ratio,
        Some(State::Force) => p.bounce_ratio * 2.0,
        // Already blocked (or purging): nothing to trip.
        _ => return Ok(None),
    };
    let from = (now - p.window_ms.max(0)).max(since);
    let errors: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM errors e WHERE e.account_id = ?1 AND e.at >= ?2
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.system)",
        )?
        .query_row(params![account_id, from], |r| r.get(0))?;
    let sent: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id
             WHERE m.account_id = ?1 AND m.created >= ?3 AND m.done_at >= ?2
               AND m.system = 0 AND r.state = 'sent'",
        )?
        // Deliveries in the window of mail written up to one window earlier:
        // a range of the `messages_account (account_id, created)` index, so
        // the count costs at most two windows of the account's mail. (Mail
        // that waited longer than a whole window before delivery is left out.)
        .query_row(params![account_id, from, from - p.window_ms.max(0)], |r| {
            r.get(0)
        })?;
    let sample = errors + sent;
    if sample <= 0 || (sample as u64) < p.min_sample || (errors as f64) <= ratio * sample as f64 {
        return Ok(None);
    }
    let trip = Trip {
        errors,
        sample,
        threshold_permille: (ratio * 1000.0).round() as i64,
    };
    let note = format!(
        "error ratio {errors}/{sample} ({}%) since {} is above {}%{}",
        errors * 100 / sample,
        clock::format_rfc3339(from),
        fmt_permille(trip.threshold_permille),
        if state == Some(State::Force) {
            " (the doubled threshold of force)"
        } else {
            ""
        }
    );
    let old = state.unwrap_or(State::Ok);
    set_state(
        tx,
        account_id,
        old,
        State::Bounce,
        "bounce",
        "scriptmail",
        &note,
        now,
    )?;
    log::log(
        Level::Warning,
        &format!(
            "account={} state=bounce reason=bounce old={} stat={}",
            sanitize::line(&name),
            old,
            log::quote(&format!("{note}; new mail is held"))
        ),
    );
    Ok(Some(trip))
}

/// `500` → `50`, `125` → `12.5`.
fn fmt_permille(p: i64) -> String {
    if p % 10 == 0 {
        (p / 10).to_string()
    } else {
        format!("{}.{}", p / 10, p % 10)
    }
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
            tx.prepare_cached(
                "INSERT INTO errors (account_id, message_id, qid, at, rcpt, kind, message, subject, script)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'dsn', ?6, ?7, ?8)",
            )?
            .execute(params![account_id, message_id, qid, now, rcpt, text, subject, script])?;
            tx.prepare_cached(
                "UPDATE recipients SET state = 'failed' WHERE message_id = ?1 AND rcpt = ?2 COLLATE NOCASE",
            )?
            .execute(params![message_id, rcpt])?;
            out.recorded.push(rcpt.clone());
        }
        let n = out.recorded.len() as i64;
        if n > 0 && !system {
            tx.prepare_cached("UPDATE accounts SET error_total = error_total + ?2 WHERE id = ?1")?
                .execute(params![account_id, n])?;
            bump_daily(&tx, account_id, now, "errors", n)?;
            out.tripped = apply_ratio(&tx, &protection, account_id, now)?;
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
            .query_map(params![account_id, from, to], super::admin::event_from_row)?
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
        insert_message(&tx, m, account_id, "queued", now)?;
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
            .filter(|(_, e)| e.actor == "scriptmail" && (e.new == "ko" || e.new == "bounce"))
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
    use crate::store::{Attempt, Durability, EnqueuePolicy, NewMessage, RcptOutcome, StoreError};

    const T0: i64 = 1_795_353_858_000; // 2026-11-22T13:24:18Z

    fn store(ratio: f64, min_sample: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("queue.db"), Durability::Normal).unwrap();
        s.set_protection(Protection {
            bounce_ratio: ratio,
            window_ms: DAY_MS,
            min_sample,
        });
        (dir, s)
    }

    fn enqueue(s: &mut Store, account: &str, qid: &str, rcpts: &[&str], system: bool, now: i64) {
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        let envid = crate::dsn_params::Envid::new(b"ENV-1").unwrap();
        s.enqueue(
            &NewMessage {
                qid,
                account,
                uid: 1000,
                sender: "www@node.example.net",
                recipients: &rcpts,
                data: b"Subject: t\r\n\r\nbody\r\n",
                subject: "t",
                script: "/var/www/x.php",
                cwd: "/var/www",
                dsn_notify: None,
                dsn_ret: None,
                envid: Some(&envid),
                body_8bit: false,
                system,
            },
            EnqueuePolicy::default(),
            now,
        )
        .unwrap();
    }

    /// Submit one message to `rcpt` and relay it with this outcome.
    fn relay(s: &mut Store, account: &str, qid: &str, outcome: RcptOutcome, now: i64) {
        enqueue(s, account, qid, &["rcpt@example.com"], false, now);
        // Other mail due (an account's first message, left queued) is
        // claimed and left on its connection.
        let claim = loop {
            let c = s.claim_next(now).unwrap().expect("a due message");
            if c.qid == qid {
                break c;
            }
        };
        let attempt = Attempt {
            results: vec![("rcpt@example.com".into(), outcome)],
            retry_at: now + 60_000,
            expire: false,
        };
        assert!(s.record_attempt(&claim, &attempt, now).unwrap());
    }

    fn state(s: &Store, account: &str) -> String {
        s.account(account).unwrap().state.to_string()
    }

    fn set(s: &mut Store, account: &str, new: State, now: i64) {
        let a = s.account(account).unwrap();
        let tx = s.begin().unwrap();
        set_state(&tx, a.id, a.state, new, "unblock", "admin", "", now).unwrap();
        tx.commit().unwrap();
    }

    fn fail() -> RcptOutcome {
        RcptOutcome::Failed("550 5.1.1 no such user".into())
    }

    #[test]
    fn ratio_trips_into_bounce_once_the_sample_is_big_enough() {
        let (_d, mut s) = store(0.5, 4);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q2", fail(), T0 + 1);
        relay(&mut s, "acme", "Q3", fail(), T0 + 2);
        // 2 errors of 3: above 50 %, but the sample is below 4.
        assert_eq!(state(&s, "acme"), "ok");
        relay(&mut s, "acme", "Q4", fail(), T0 + 3);
        assert_eq!(state(&s, "acme"), "bounce");
        let a = s.account("acme").unwrap();
        assert_eq!(a.reason, "bounce");
        let h = s.history("acme", 10).unwrap();
        let last = h.last().unwrap();
        assert_eq!((last.old.as_str(), last.new.as_str()), ("ok", "bounce"));
        assert_eq!(last.actor, "scriptmail");
        assert!(last.note.contains("3/4 (75%)"), "{}", last.note);
        assert!(last.note.contains("above 50%"), "{}", last.note);
        // New mail is now held.
        enqueue(&mut s, "acme", "Q5", &["x@example.com"], false, T0 + 4);
        assert_eq!(s.message("Q5", false).unwrap().row.state, "held");
    }

    #[test]
    fn ratio_at_the_threshold_does_not_trip_and_zero_disables() {
        let (_d, mut s) = store(0.5, 4);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q2", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q3", fail(), T0);
        relay(&mut s, "acme", "Q4", fail(), T0);
        assert_eq!(state(&s, "acme"), "ok", "2/4 is not above 50%");

        let (_d, mut s) = store(0.0, 1);
        for i in 0..5 {
            relay(&mut s, "acme", &format!("Q{i}"), fail(), T0);
        }
        assert_eq!(state(&s, "acme"), "ok");
    }

    #[test]
    fn force_doubles_the_threshold() {
        let (_d, mut s) = store(0.3, 4);
        enqueue(&mut s, "acme", "Q0", &["a@example.com"], false, T0);
        set(&mut s, "acme", State::Force, T0);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0 + 1);
        relay(&mut s, "acme", "Q2", RcptOutcome::Sent, T0 + 1);
        relay(&mut s, "acme", "Q3", fail(), T0 + 1);
        relay(&mut s, "acme", "Q4", fail(), T0 + 1);
        // 2/4 = 50 %: above 30 % but not above the doubled 60 %.
        assert_eq!(state(&s, "acme"), "force");
        relay(&mut s, "acme", "Q5", fail(), T0 + 1);
        assert_eq!(state(&s, "acme"), "force", "3/5 = 60% is not above 60%");
        relay(&mut s, "acme", "Q6", fail(), T0 + 1);
        assert_eq!(state(&s, "acme"), "bounce", "4/6 is");
        let last = s.history("acme", 1).unwrap().pop().unwrap();
        assert_eq!(last.old, "force");
        assert!(last.note.contains("doubled"), "{}", last.note);
    }

    #[test]
    fn the_window_starts_at_the_last_state_change_and_slides() {
        let (_d, mut s) = store(0.5, 2);
        relay(&mut s, "acme", "Q1", fail(), T0);
        relay(&mut s, "acme", "Q2", fail(), T0);
        assert_eq!(state(&s, "acme"), "bounce");
        set(&mut s, "acme", State::Ok, T0 + 10);
        // The errors that blocked it are behind the unblock: one new error
        // alone is below the sample.
        relay(&mut s, "acme", "Q3", fail(), T0 + 20);
        assert_eq!(state(&s, "acme"), "ok");
        // A day later the window has slid past everything.
        relay(&mut s, "acme", "Q4", RcptOutcome::Sent, T0 + DAY_MS + 30);
        relay(&mut s, "acme", "Q5", fail(), T0 + DAY_MS + 30);
        assert_eq!(state(&s, "acme"), "ok", "1/2 is not above 50%");
    }

    #[test]
    fn blocked_accounts_and_system_mail_are_left_alone() {
        let (_d, mut s) = store(0.1, 1);
        enqueue(&mut s, "acme", "Q0", &["a@example.com"], false, T0);
        set(&mut s, "acme", State::Spam, T0);
        let m = s.bounced_by_qid("Q0").unwrap().unwrap();
        s.record_dsn(m.id, &[("a@example.com".into(), "5.1.1 x".into())], T0)
            .unwrap();
        assert_eq!(state(&s, "acme"), "spam");

        enqueue(&mut s, "other", "S1", &["a@example.com"], true, T0);
        let m = s.bounced_by_qid("S1").unwrap().unwrap();
        assert!(m.system);
        let r = s
            .record_dsn(m.id, &[("a@example.com".into(), "5.1.1 x".into())], T0)
            .unwrap();
        assert_eq!(r.tripped, None);
        let a = s.account("other").unwrap();
        assert_eq!((a.error_total, a.state), (0, State::Ok));
    }

    #[test]
    fn dsn_marks_the_recipient_counts_once_and_can_trip() {
        let (_d, mut s) = store(0.5, 2);
        enqueue(
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
            states.contains(&("B@example.com".into(), "failed".into())),
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
        assert_eq!(state(&s, "acme"), "bounce");
        let today = s.daily_stats("acme", 1, T0).unwrap();
        assert_eq!(today.last().unwrap().errors, 2);
    }

    #[test]
    fn ambiguous_envid_matches_nothing() {
        let (_d, mut s) = store(0.0, 1);
        enqueue(&mut s, "a", "Q1", &["x@example.com"], false, T0);
        enqueue(&mut s, "b", "Q2", &["x@example.com"], false, T0);
        assert!(s.bounced_by_envid("ENV-1").unwrap().is_none());
    }

    #[test]
    fn unmatched_bounces_are_kept_capped_and_aged_out() {
        let (_d, mut s) = store(0.0, 1);
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

    #[test]
    fn block_notices_are_claimed_once_for_automatic_blocks_with_a_recipient() {
        let (_d, mut s) = store(0.5, 1);
        relay(&mut s, "acme", "Q1", fail(), T0);
        relay(&mut s, "quiet", "Q2", fail(), T0);
        assert_eq!(state(&s, "acme"), "bounce");
        assert_eq!(state(&s, "quiet"), "bounce");
        {
            let tx = s.begin().unwrap();
            tx.execute(
                "UPDATE accounts SET report_to = 'admin@example.com' WHERE name = 'acme'",
                [],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        // A manual change is not announced.
        set(&mut s, "acme", State::Ok, T0 + 1);
        let n = s.take_block_notices().unwrap();
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].account, "acme");
        assert_eq!(n[0].report_to, "admin@example.com");
        assert_eq!(n[0].event.new, "bounce");
        assert!(s.take_block_notices().unwrap().is_empty());
    }

    #[test]
    fn report_queries_cover_one_day() {
        let (_d, mut s) = store(0.0, 1);
        let day0 = clock::day_of(T0) * DAY_MS;
        relay(&mut s, "acme", "Q1", fail(), day0 - 1);
        relay(&mut s, "acme", "Q2", fail(), day0 + 5);
        enqueue(&mut s, "acme", "S1", &["x@example.com"], true, day0 + 6);
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
        set(&mut s, "acme", State::Ko, day0 + 7);
        assert_eq!(s.report_events(id, day0, day0 + DAY_MS).unwrap().len(), 1);
        enqueue(&mut s, "acme", "H1", &["y@example.com"], false, day0 + 8);
        s.expire_held(day0 + 9, day0 + 10, 100).unwrap();
        let (exp, total) = s.report_expired(id, day0, day0 + DAY_MS, 10).unwrap();
        assert_eq!(total, 1);
        assert_eq!(exp[0].qid, "H1");
        assert_eq!(exp[0].recipients, ["y@example.com"]);
        assert!(s.report_accounts(None).unwrap().is_empty());
        // One report per account and day: the second is not queued.
        let report = |qid| NewMessage {
            qid,
            account: "acme",
            uid: 0,
            sender: "reports@node.example.net",
            recipients: &[],
            data: b"Subject: report\r\n\r\nbody\r\n",
            subject: "report",
            script: "",
            cwd: "",
            dsn_notify: None,
            dsn_ret: None,
            envid: None,
            body_8bit: false,
            system: true,
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
        assert_eq!(s.message("R1", false).unwrap().row.state, "queued");
    }
}
