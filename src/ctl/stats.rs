//! What an account did: `stats` (its per-day counters), `errors` (its
//! mails in error) and `history` (its state changes).

use serde::Serialize;

use super::view::{self, Align, Cell, Table};
use super::{Ctx, Result};
use crate::sanitize;
use crate::store::DayCounts;

#[derive(Serialize)]
pub(super) struct DayJson {
    day: String,
    submitted: i64,
    sent: i64,
    errors: i64,
    held: i64,
    expired: i64,
}

impl From<&DayCounts> for DayJson {
    fn from(d: &DayCounts) -> DayJson {
        DayJson {
            day: crate::clock::format_day(d.day),
            submitted: d.submitted,
            sent: d.sent,
            errors: d.errors,
            held: d.held,
            expired: d.expired,
        }
    }
}

#[derive(Serialize)]
struct StatsJson<'a> {
    account: &'a str,
    days: Vec<DayJson>,
    total: DayTotals,
}

#[derive(Serialize, Default)]
struct DayTotals {
    submitted: i64,
    sent: i64,
    errors: i64,
    held: i64,
    expired: i64,
}

/// `stats ACCOUNT [--days N]`: per day, with a bar chart of sent mail.
pub fn stats(ctx: &Ctx, name: &str, days: u32, now: i64) -> Result<()> {
    let rows = ctx.store.daily_stats(name, i64::from(days), now)?;
    let mut total = DayTotals::default();
    for d in &rows {
        total.submitted += d.submitted;
        total.sent += d.sent;
        total.errors += d.errors;
        total.held += d.held;
        total.expired += d.expired;
    }
    let json = StatsJson {
        account: name,
        days: rows.iter().map(DayJson::from).collect(),
        total,
    };
    ctx.output(&json, || {
        let max = rows.iter().map(|d| d.sent).max().unwrap_or(0);
        let mut t = Table::new(&[
            ("DAY", Align::Left),
            ("SENT", Align::Right),
            ("ERRORS", Align::Right),
            ("HELD", Align::Right),
            ("EXPIRED", Align::Right),
            ("", Align::Left),
        ]);
        for d in &rows {
            t.row(vec![
                crate::clock::format_day(d.day).into(),
                d.sent.into(),
                d.errors.into(),
                d.held.into(),
                d.expired.into(),
                view::bar(d.sent, max, 40).into(),
            ]);
        }
        format!(
            "{}: sent mail per day (UTC), last {} day(s)\n{}",
            sanitize::terminal(name),
            rows.len(),
            t.render(ctx.color)
        )
    })
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    at: String,
    qid: &'a str,
    recipient: &'a str,
    kind: &'a str,
    answer: &'a str,
    subject: &'a str,
    script: &'a str,
}

#[derive(Serialize)]
struct ErrorsJson<'a> {
    account: &'a str,
    errors: Vec<ErrorJson<'a>>,
}

/// `errors ACCOUNT`: the mails in error, newest first.
pub fn errors(ctx: &Ctx, name: &str, limit: u32) -> Result<()> {
    let rows = ctx.store.errors_of(name, i64::from(limit))?;
    let json = ErrorsJson {
        account: name,
        errors: rows
            .iter()
            .map(|e| ErrorJson {
                at: view::time(e.at),
                qid: &e.qid,
                recipient: &e.rcpt,
                kind: e.kind.as_str(),
                answer: &e.message,
                subject: &e.subject,
                script: &e.script,
            })
            .collect(),
    };
    ctx.output(&json, || {
        if rows.is_empty() {
            return format!("{}: no mails in error\n", sanitize::terminal(name));
        }
        let mut t = Table::new(&[
            ("DATE", Align::Left),
            ("RECIPIENT", Align::Left),
            ("KIND", Align::Left),
            ("SERVER ANSWER", Align::Left),
            ("SCRIPT", Align::Left),
        ]);
        for e in &rows {
            t.row(vec![
                view::time(e.at).into(),
                Cell::untrusted(&e.rcpt),
                e.kind.as_str().into(),
                Cell::untrusted(&e.message),
                Cell::untrusted(if e.script.is_empty() { "-" } else { &e.script }),
            ]);
        }
        t.render(ctx.color)
    })
}

#[derive(Serialize)]
struct EventJson<'a> {
    at: String,
    old_state: &'a str,
    new_state: &'a str,
    reason: &'a str,
    actor: &'a str,
    note: &'a str,
}

#[derive(Serialize)]
struct HistoryJson<'a> {
    account: &'a str,
    events: Vec<EventJson<'a>>,
}

/// `history ACCOUNT`: state changes, oldest first.
pub fn history(ctx: &Ctx, name: &str, limit: u32) -> Result<()> {
    let events = ctx.store.history(name, i64::from(limit))?;
    let json = HistoryJson {
        account: name,
        events: events
            .iter()
            .map(|e| EventJson {
                at: view::time(e.at),
                old_state: e.old.as_str(),
                new_state: e.new.as_str(),
                reason: &e.reason,
                actor: &e.actor,
                note: &e.note,
            })
            .collect(),
    };
    ctx.output(&json, || {
        if events.is_empty() {
            return format!(
                "{}: no state changes yet (ok since first seen)\n",
                sanitize::terminal(name)
            );
        }
        let mut t = Table::new(&[
            ("TIME", Align::Left),
            ("OLD", Align::Left),
            ("NEW", Align::Left),
            ("REASON", Align::Left),
            ("ACTOR", Align::Left),
            ("NOTE", Align::Left),
        ]);
        for e in &events {
            t.row(vec![
                view::time(e.at).into(),
                Cell::colored(e.old.as_str(), Some(view::state_color(e.old))),
                Cell::colored(e.new.as_str(), Some(view::state_color(e.new))),
                Cell::untrusted(&e.reason),
                Cell::untrusted(&e.actor),
                Cell::untrusted(&e.note),
            ]);
        }
        t.render(ctx.color)
    })
}
