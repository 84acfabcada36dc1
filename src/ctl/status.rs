//! How `status` reads for people: one account as `name  value` pairs, or
//! one line per account. (`metrics` prints `MetricsDoc::prometheus`.)

use super::settings::limit_text;
use super::view::{self, Align, Cell, Table};
use crate::control::{OverviewDoc, StatusDoc};
use crate::sanitize;

/// `status ACCOUNT`.
pub fn one(d: &StatusDoc, now: i64, color: bool) -> String {
    let limits = d.limits.limits();
    let mut t = Table::pairs();
    t.row(vec!["account".into(), Cell::untrusted(&d.account)]);
    let mut why = format!(
        "({}since {}, {} ago",
        if d.reason.is_empty() {
            String::new()
        } else {
            format!("{}, ", sanitize::terminal(&d.reason))
        },
        d.since,
        view::age(now - d.since.ms())
    );
    if let Some(actor) = &d.changed_by {
        why.push_str(&format!(", by {}", sanitize::terminal(actor)));
        if let Some(note) = &d.note {
            why.push_str(&format!(": {}", sanitize::terminal(note)));
        }
    }
    why.push(')');
    // The value column is the last one, so pre-painted text is safe here.
    t.row(vec![
        "state".into(),
        format!("{} {why}", view::paint(d.state, color)).into(),
    ]);
    t.row(vec![
        "report to".into(),
        Cell::untrusted(d.report_to.as_deref().unwrap_or("-")),
    ]);
    t.row(vec![
        "limits".into(),
        format!(
            "{}, {}",
            limit_text(limits.per_day, "day"),
            limit_text(limits.per_hour, "hour")
        )
        .into(),
    ]);
    t.row(vec!["sent total".into(), d.sent_total.into()]);
    let today = if limits.per_day.max > 0 {
        format!("{} / {}", d.sent_today, limits.per_day.max)
    } else {
        d.sent_today.to_string()
    };
    t.row(vec!["sent today".into(), today.into()]);
    t.row(vec!["submitted today".into(), d.today.submitted.into()]);
    t.row(vec!["in error".into(), d.error_total.into()]);
    let held = match (d.oldest_held_age_s, d.expires_in_s) {
        (Some(age), Some(left)) => format!(
            "{} (oldest {} old, expires in {})",
            d.queue.held,
            view::age(age * 1000),
            view::age(left * 1000)
        ),
        _ => d.queue.held.to_string(),
    };
    t.row(vec!["held".into(), held.into()]);
    t.row(vec!["queued".into(), d.queue.queued.into()]);
    t.row(vec!["deferred".into(), d.queue.deferred.into()]);
    t.row(vec!["sending".into(), d.queue.sending.into()]);
    t.row(vec!["first seen".into(), d.first_seen.to_string().into()]);
    if !d.pending_nodes.is_empty() {
        t.row(vec![
            "not yet on".into(),
            Cell::untrusted(&d.pending_nodes.join(", ")),
        ]);
    }
    t.render(color)
}

/// `status` without an account.
pub fn all(d: &OverviewDoc, color: bool) -> String {
    let mut t = Table::new(&[
        ("ACCOUNT", Align::Left),
        ("STATE", Align::Left),
        ("REASON", Align::Left),
        ("SINCE", Align::Left),
        ("SENT", Align::Right),
        ("TODAY", Align::Right),
        ("ERRORS", Align::Right),
        ("HELD", Align::Right),
        ("QUEUED", Align::Right),
        ("DEFERRED", Align::Right),
    ]);
    for o in &d.accounts {
        t.row(vec![
            Cell::untrusted(&o.account),
            view::state_cell(o.state),
            Cell::untrusted(if o.reason.is_empty() { "-" } else { &o.reason }),
            o.since.to_string().into(),
            o.sent_total.into(),
            o.sent_today.into(),
            o.error_total.into(),
            o.queue.held.into(),
            o.queue.queued.into(),
            o.queue.deferred.into(),
        ]);
    }
    if t.is_empty() {
        "no accounts yet\n".to_string()
    } else {
        t.render(color)
    }
}
