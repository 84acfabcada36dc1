//! The mails in error (permanent rejections, queue expiry, DSNs; see
//! docs/bounces.md): recording and listing them, and the error-ratio rule
//! they feed.
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

use rusqlite::{Transaction, params};

use super::accounts::{Transition, set_state};
use super::counters::{Counter, bump_daily};
use super::{Result, Store};
use crate::account::{self, Reason, State};
use crate::clock;
use crate::log::{self, Level};
use crate::queue::FailureKind;
use crate::sanitize;

/// An account's newest mails in error.
pub(super) const ERRORS_OF: &str =
    "SELECT at, qid, rcpt, kind, message, subject, script FROM errors
     WHERE account_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2";

/// One mail in error.
#[derive(Debug, Clone)]
pub struct ErrorRow {
    pub at: i64,
    pub qid: String,
    pub rcpt: String,
    pub kind: FailureKind,
    /// The server's answer (or what the DSN said).
    pub message: String,
    pub subject: String,
    pub script: String,
}

impl ErrorRow {
    /// From a row selecting `at, qid, rcpt, kind, message, subject, script`.
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ErrorRow> {
        Ok(ErrorRow {
            at: r.get(0)?,
            qid: r.get(1)?,
            rcpt: r.get(2)?,
            kind: r.get(3)?,
            message: r.get(4)?,
            subject: r.get(5)?,
            script: r.get(6)?,
        })
    }
}

/// The error-ratio rule's settings (`[limits]` in the configuration).
#[derive(Debug, Clone, Copy, Default)]
pub struct Protection {
    /// Error ratio above which an account goes to `bounce`; 0 disables.
    pub bounce_ratio: f64,
    /// The sliding window the ratio is computed over, in ms.
    pub window_ms: i64,
    /// Fewer mails than this in the window never trip the rule.
    pub min_sample: u64,
}

impl From<&crate::config::Config> for Protection {
    fn from(cfg: &crate::config::Config) -> Self {
        Protection {
            bounce_ratio: cfg.limits.bounce_ratio,
            window_ms: super::ms(cfg.limits.bounce_window),
            min_sample: cfg.limits.bounce_min_sample,
        }
    }
}

/// The error-ratio rule tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub errors: i64,
    pub sample: i64,
    /// The threshold applied, in per mille (doubled in `force`).
    pub threshold_permille: i64,
}

/// A mail in error about to be recorded: one recipient of one message.
#[derive(Debug, Clone, Copy)]
pub(super) struct MailInError<'a> {
    pub account_id: i64,
    pub message_id: i64,
    pub qid: &'a str,
    pub rcpt: &'a str,
    pub kind: FailureKind,
    /// The server's answer, or what the DSN said.
    pub text: &'a str,
    pub subject: &'a str,
    pub script: &'a str,
}

/// Record one mail in error (the recipient's own state is the caller's).
pub(super) fn insert_error(tx: &Transaction<'_>, e: &MailInError<'_>, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO errors (account_id, message_id, qid, at, rcpt, kind, message, subject, script)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.account_id,
        e.message_id,
        e.qid,
        now,
        e.rcpt,
        e.kind,
        e.text,
        e.subject,
        e.script
    ])?;
    Ok(())
}

/// Count `n` new mails in error against an account (its total and today's
/// counter), in the transaction that recorded them, and apply the
/// error-ratio rule (module doc): whether it tripped. Scriptmail's own mail
/// is never counted; the caller leaves it out.
pub(super) fn count_errors(
    tx: &Transaction<'_>,
    protection: &Protection,
    account_id: i64,
    n: i64,
    now: i64,
) -> Result<Option<Trip>> {
    tx.prepare_cached("UPDATE accounts SET error_total = error_total + ?2 WHERE id = ?1")?
        .execute(params![account_id, n])?;
    bump_daily(tx, account_id, now, Counter::Errors, n)?;
    apply_ratio(tx, protection, account_id, now)
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
    let (name, state, since): (String, State, i64) = tx
        .prepare_cached("SELECT name, state, state_since FROM accounts WHERE id = ?1")?
        .query_row([account_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let ratio = match state {
        State::Ok => p.bounce_ratio,
        State::Force => p.bounce_ratio * 2.0,
        // Already blocked (or purging): nothing to trip.
        _ => return Ok(None),
    };
    let from = (now - p.window_ms.max(0)).max(since);
    let (errors, sent) = ratio_sample(tx, account_id, from, p.window_ms)?;
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
        if state == State::Force {
            " (the doubled threshold of force)"
        } else {
            ""
        }
    );
    let change = Transition {
        old: state,
        new: State::Bounce,
        reason: Reason::Bounce,
        actor: account::SYSTEM_ACTOR,
        note: &note,
    };
    set_state(tx, account_id, &change, now)?;
    log::log(
        Level::Warning,
        &format!(
            "account={} state=bounce reason=bounce old={} stat={}",
            sanitize::line(&name),
            state,
            log::quote(&format!("{note}; new mail is held"))
        ),
    );
    Ok(Some(trip))
}

/// The error-ratio rule's sample of an account since `from` (module doc):
/// its mails in error and its delivered recipients, without scriptmail's
/// own mail. Cluster mode pushes it so the rule sees every node's mail.
pub(super) fn ratio_sample(
    conn: &rusqlite::Connection,
    account_id: i64,
    from: i64,
    window_ms: i64,
) -> Result<(i64, i64)> {
    let errors: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM errors e WHERE e.account_id = ?1 AND e.at >= ?2
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id AND m.system)",
        )?
        .query_row(params![account_id, from], |r| r.get(0))?;
    let sent: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages m JOIN recipients r ON r.message_id = m.id
             WHERE m.account_id = ?1 AND m.created >= ?3 AND m.done_at >= ?2
               AND m.system = 0 AND r.state = 'sent'",
        )?
        // Deliveries in the window of mail written up to one window earlier:
        // a range of the `messages_account (account_id, created)` index, so
        // the count costs at most two windows of the account's mail. (Mail
        // that waited longer than a whole window before delivery is left out.)
        .query_row(params![account_id, from, from - window_ms.max(0)], |r| {
            r.get(0)
        })?;
    Ok((errors, sent))
}

/// `500` → `50`, `125` → `12.5`.
fn fmt_permille(p: i64) -> String {
    if p % 10 == 0 {
        (p / 10).to_string()
    } else {
        format!("{}.{}", p / 10, p % 10)
    }
}

impl Store {
    /// An account's newest mails in error, newest first.
    pub fn errors_of(&self, name: &str, limit: i64) -> Result<Vec<ErrorRow>> {
        let account = self.account(name)?;
        Ok(self
            .conn
            .prepare_cached(ERRORS_OF)?
            .query_map(params![account.id, limit.max(1)], ErrorRow::from_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// The permanent-failure texts recorded for a message (for `test`).
    pub fn error_texts(&self, qid: &str) -> Result<Vec<String>> {
        Ok(self
            .conn
            // Through `errors_account`: errors has no index on qid.
            .prepare_cached(
                "SELECT rcpt || ': ' || message FROM errors
                 WHERE account_id = (SELECT account_id FROM messages WHERE qid = ?1)
                   AND qid = ?1 ORDER BY at, id",
            )?
            .query_map([qid], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::DAY_MS;
    use crate::queue::MessageState;
    use crate::store::RcptOutcome;
    use crate::store::testing::*;

    #[test]
    fn ratio_trips_into_bounce_once_the_sample_is_big_enough() {
        let (_d, mut s) = store_with_ratio(0.5, 4);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q2", fail(), T0 + 1);
        relay(&mut s, "acme", "Q3", fail(), T0 + 2);
        // 2 errors of 3: above 50 %, but the sample is below 4.
        assert_eq!(account_state(&s, "acme"), State::Ok);
        relay(&mut s, "acme", "Q4", fail(), T0 + 3);
        assert_eq!(account_state(&s, "acme"), State::Bounce);
        let a = s.account("acme").unwrap();
        assert_eq!(a.reason, "bounce");
        let h = s.history("acme", 10).unwrap();
        let last = h.last().unwrap();
        assert_eq!((last.old, last.new), (State::Ok, State::Bounce));
        assert_eq!(last.actor, "scriptmail");
        assert!(last.note.contains("3/4 (75%)"), "{}", last.note);
        assert!(last.note.contains("above 50%"), "{}", last.note);
        // New mail is now held.
        submit_to(&mut s, "acme", "Q5", &["x@example.com"], false, T0 + 4);
        assert_eq!(
            s.message("Q5", false).unwrap().row.state,
            MessageState::Held
        );
    }

    #[test]
    fn ratio_at_the_threshold_does_not_trip_and_zero_disables() {
        let (_d, mut s) = store_with_ratio(0.5, 4);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q2", RcptOutcome::Sent, T0);
        relay(&mut s, "acme", "Q3", fail(), T0);
        relay(&mut s, "acme", "Q4", fail(), T0);
        assert_eq!(account_state(&s, "acme"), State::Ok, "2/4 is not above 50%");

        let (_d, mut s) = store_with_ratio(0.0, 1);
        for i in 0..5 {
            relay(&mut s, "acme", &format!("Q{i}"), fail(), T0);
        }
        assert_eq!(account_state(&s, "acme"), State::Ok);
    }

    #[test]
    fn force_doubles_the_threshold() {
        let (_d, mut s) = store_with_ratio(0.3, 4);
        submit_to(&mut s, "acme", "Q0", &["a@example.com"], false, T0);
        set_account_state(&mut s, "acme", State::Force, T0);
        relay(&mut s, "acme", "Q1", RcptOutcome::Sent, T0 + 1);
        relay(&mut s, "acme", "Q2", RcptOutcome::Sent, T0 + 1);
        relay(&mut s, "acme", "Q3", fail(), T0 + 1);
        relay(&mut s, "acme", "Q4", fail(), T0 + 1);
        // 2/4 = 50 %: above 30 % but not above the doubled 60 %.
        assert_eq!(account_state(&s, "acme"), State::Force);
        relay(&mut s, "acme", "Q5", fail(), T0 + 1);
        assert_eq!(
            account_state(&s, "acme"),
            State::Force,
            "3/5 = 60% is not above 60%"
        );
        relay(&mut s, "acme", "Q6", fail(), T0 + 1);
        assert_eq!(account_state(&s, "acme"), State::Bounce, "4/6 is");
        let last = s.history("acme", 1).unwrap().pop().unwrap();
        assert_eq!(last.old, State::Force);
        assert!(last.note.contains("doubled"), "{}", last.note);
    }

    #[test]
    fn the_window_starts_at_the_last_state_change_and_slides() {
        let (_d, mut s) = store_with_ratio(0.5, 2);
        relay(&mut s, "acme", "Q1", fail(), T0);
        relay(&mut s, "acme", "Q2", fail(), T0);
        assert_eq!(account_state(&s, "acme"), State::Bounce);
        set_account_state(&mut s, "acme", State::Ok, T0 + 10);
        // The errors that blocked it are behind the unblock: one new error
        // alone is below the sample.
        relay(&mut s, "acme", "Q3", fail(), T0 + 20);
        assert_eq!(account_state(&s, "acme"), State::Ok);
        // A day later the window has slid past everything.
        relay(&mut s, "acme", "Q4", RcptOutcome::Sent, T0 + DAY_MS + 30);
        relay(&mut s, "acme", "Q5", fail(), T0 + DAY_MS + 30);
        assert_eq!(account_state(&s, "acme"), State::Ok, "1/2 is not above 50%");
    }

    #[test]
    fn blocked_accounts_and_system_mail_are_left_alone() {
        let (_d, mut s) = store_with_ratio(0.1, 1);
        submit_to(&mut s, "acme", "Q0", &["a@example.com"], false, T0);
        set_account_state(&mut s, "acme", State::Spam, T0);
        let m = s.bounced_by_qid("Q0").unwrap().unwrap();
        s.record_dsn(m.id, &[("a@example.com".into(), "5.1.1 x".into())], T0)
            .unwrap();
        assert_eq!(account_state(&s, "acme"), State::Spam);

        submit_to(&mut s, "other", "S1", &["a@example.com"], true, T0);
        let m = s.bounced_by_qid("S1").unwrap().unwrap();
        assert!(m.system);
        let r = s
            .record_dsn(m.id, &[("a@example.com".into(), "5.1.1 x".into())], T0)
            .unwrap();
        assert_eq!(r.tripped, None);
        let a = s.account("other").unwrap();
        assert_eq!((a.error_total, a.state), (0, State::Ok));
    }
}
