//! How an account's activity reads for people: `stats` (per day, with a
//! bar chart of sent mail), `errors` (its mails in error) and `history`
//! (its state changes).

use super::view::{self, Align, Cell, Table};
use crate::control::{ErrorsDoc, HistoryDoc, StatsDoc};
use crate::sanitize;

/// `stats ACCOUNT`.
pub fn stats(d: &StatsDoc, color: bool) -> String {
    let max = d.days.iter().map(|d| d.sent).max().unwrap_or(0);
    let mut t = Table::new(&[
        ("DAY", Align::Left),
        ("SENT", Align::Right),
        ("ERRORS", Align::Right),
        ("HELD", Align::Right),
        ("EXPIRED", Align::Right),
        ("", Align::Left),
    ]);
    for day in &d.days {
        t.row(vec![
            day.day.to_string().into(),
            day.sent.into(),
            day.errors.into(),
            day.held.into(),
            day.expired.into(),
            view::bar(day.sent, max, 40).into(),
        ]);
    }
    format!(
        "{}: sent mail per day (UTC), last {} day(s)\n{}",
        sanitize::terminal(&d.account),
        d.days.len(),
        t.render(color)
    )
}

/// `errors ACCOUNT`.
pub fn errors(d: &ErrorsDoc, color: bool) -> String {
    let mut t = Table::new(&[
        ("DATE", Align::Left),
        ("RECIPIENT", Align::Left),
        ("KIND", Align::Left),
        ("SERVER ANSWER", Align::Left),
        ("SCRIPT", Align::Left),
    ]);
    for e in &d.errors {
        t.row(vec![
            e.at.into(),
            Cell::untrusted(&e.recipient),
            e.kind.as_str().into(),
            Cell::untrusted(&e.answer),
            Cell::untrusted(if e.script.is_empty() { "-" } else { &e.script }),
        ]);
    }
    t.render_or(color, || {
        format!("{}: no mails in error\n", sanitize::terminal(&d.account))
    })
}

/// `history ACCOUNT`.
pub fn history(d: &HistoryDoc, color: bool) -> String {
    let mut t = Table::new(&[
        ("TIME", Align::Left),
        ("OLD", Align::Left),
        ("NEW", Align::Left),
        ("REASON", Align::Left),
        ("ACTOR", Align::Left),
        ("NOTE", Align::Left),
    ]);
    for e in &d.events {
        t.row(vec![
            e.at.into(),
            view::state_cell(e.old_state),
            view::state_cell(e.new_state),
            Cell::untrusted(&e.reason),
            Cell::untrusted(&e.actor),
            Cell::untrusted(&e.note),
        ]);
    }
    t.render_or(color, || {
        format!(
            "{}: no state changes yet (ok since first seen)\n",
            sanitize::terminal(&d.account)
        )
    })
}
