//! What `mailq-ctl` shows of the accounts as they are now: `status` of
//! one account or all of them, and `metrics` (the same counters in the
//! Prometheus text format).

use serde::Serialize;

use super::settings::{limit_text, limits};
use super::stats::DayJson;
use super::view::{self, Align, Cell, Table};
use super::{CtlError, Ctx, Result, SortKey, resolvable};
use crate::account::State;
use crate::sanitize;
use crate::store::{Account, AccountStatus, DayCounts, Overview, QueueCounts, StoreError};

/// The queue counts as the panel reads them.
#[derive(Serialize)]
struct QueueJson {
    held: i64,
    queued: i64,
    deferred: i64,
    sending: i64,
}

impl From<&QueueCounts> for QueueJson {
    fn from(q: &QueueCounts) -> QueueJson {
        QueueJson {
            held: q.held,
            queued: q.queued,
            deferred: q.deferred,
            sending: q.sending,
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    account: &'a str,
    state: &'static str,
    sends: bool,
    reason: &'a str,
    since: String,
    changed_by: Option<&'a str>,
    note: Option<&'a str>,
    report_to: Option<&'a str>,
    max_per_day: u64,
    max_per_day_default: bool,
    max_per_hour: u64,
    max_per_hour_default: bool,
    sent_total: i64,
    sent_today: i64,
    error_total: i64,
    today: DayJson,
    queue: QueueJson,
    oldest_held: Option<String>,
    oldest_held_age_s: Option<i64>,
    expires_in_s: Option<i64>,
    first_seen: String,
}

/// `status ACCOUNT`.
pub fn status(ctx: &Ctx, name: &str, now: i64) -> Result<()> {
    let s = match ctx.store.account_status(name, now) {
        Err(StoreError::NoAccount(_)) if resolvable(ctx, name) => unseen(name, now),
        other => other?,
    };
    let a = &s.account;
    let limits = limits(ctx, a);
    let hold_ms = crate::store::ms(ctx.cfg.hold_max_age);
    let oldest_age = s.queue.oldest_held.map(|t| (now - t).max(0));
    let expires_in = oldest_age.map(|age| (hold_ms - age).max(0));
    let json = StatusJson {
        account: &a.name,
        state: a.state.as_str(),
        sends: a.state.is_sending(),
        reason: &a.reason,
        since: view::time(a.since),
        changed_by: s.last_event.as_ref().map(|e| e.actor.as_str()),
        note: s
            .last_event
            .as_ref()
            .map(|e| e.note.as_str())
            .filter(|n| !n.is_empty()),
        report_to: a.report_to.as_deref(),
        max_per_day: limits.per_day.max,
        max_per_day_default: limits.per_day.node_default,
        max_per_hour: limits.per_hour.max,
        max_per_hour_default: limits.per_hour.node_default,
        sent_total: a.sent_total,
        sent_today: s.today.sent,
        error_total: a.error_total,
        today: (&s.today).into(),
        queue: (&s.queue).into(),
        oldest_held: s.queue.oldest_held.map(view::time),
        oldest_held_age_s: oldest_age.map(|ms| ms / 1000),
        expires_in_s: expires_in.map(|ms| ms / 1000),
        first_seen: view::time(a.first_seen),
    };
    ctx.output(&json, || {
        let mut t = Table::pairs();
        t.row(vec!["account".into(), Cell::untrusted(&a.name)]);
        let mut why = format!(
            "({}since {}, {} ago",
            if a.reason.is_empty() {
                String::new()
            } else {
                format!("{}, ", sanitize::terminal(&a.reason))
            },
            view::time(a.since),
            view::age(now - a.since)
        );
        if let Some(e) = &s.last_event {
            why.push_str(&format!(", by {}", sanitize::terminal(&e.actor)));
            if !e.note.is_empty() {
                why.push_str(&format!(": {}", sanitize::terminal(&e.note)));
            }
        }
        why.push(')');
        // The value column is the last one, so pre-painted text is safe here.
        t.row(vec![
            "state".into(),
            format!("{} {why}", view::paint(a.state, ctx.color)).into(),
        ]);
        t.row(vec![
            "report to".into(),
            Cell::untrusted(a.report_to.as_deref().unwrap_or("-")),
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
        t.row(vec!["sent total".into(), a.sent_total.into()]);
        let today = if limits.per_day.max > 0 {
            format!("{} / {}", s.today.sent, limits.per_day.max)
        } else {
            s.today.sent.to_string()
        };
        t.row(vec!["sent today".into(), today.into()]);
        t.row(vec!["submitted today".into(), s.today.submitted.into()]);
        t.row(vec!["in error".into(), a.error_total.into()]);
        let held = match (oldest_age, expires_in) {
            (Some(age), Some(left)) => format!(
                "{} (oldest {} old, expires in {})",
                s.queue.held,
                view::age(age),
                view::age(left)
            ),
            _ => s.queue.held.to_string(),
        };
        t.row(vec!["held".into(), held.into()]);
        t.row(vec!["queued".into(), s.queue.queued.into()]);
        t.row(vec!["deferred".into(), s.queue.deferred.into()]);
        t.row(vec!["sending".into(), s.queue.sending.into()]);
        t.row(vec!["first seen".into(), view::time(a.first_seen).into()]);
        t.render(ctx.color)
    })
}

#[derive(Serialize)]
struct OverviewRow<'a> {
    account: &'a str,
    state: &'static str,
    sends: bool,
    reason: &'a str,
    since: String,
    sent_total: i64,
    sent_today: i64,
    error_total: i64,
    queue: QueueJson,
    oldest_held: Option<String>,
}

#[derive(Serialize)]
struct OverviewJson<'a> {
    accounts: Vec<OverviewRow<'a>>,
}

/// `status` without an account: one line per account.
pub fn overview(ctx: &Ctx, sort: SortKey, now: i64) -> Result<()> {
    let mut rows = ctx.store.overview(now)?;
    match sort {
        SortKey::Name => {}
        SortKey::State => rows.sort_by_key(|o| o.account.state.is_sending()),
        SortKey::Sent => rows.sort_by_key(|o| std::cmp::Reverse(o.account.sent_total)),
        SortKey::Held => rows.sort_by_key(|o| std::cmp::Reverse(o.queue.held)),
        SortKey::Errors => rows.sort_by_key(|o| std::cmp::Reverse(o.account.error_total)),
    }
    let json = OverviewJson {
        accounts: rows
            .iter()
            .map(|o| OverviewRow {
                account: &o.account.name,
                state: o.account.state.as_str(),
                sends: o.account.state.is_sending(),
                reason: &o.account.reason,
                since: view::time(o.account.since),
                sent_total: o.account.sent_total,
                sent_today: o.sent_today,
                error_total: o.account.error_total,
                queue: (&o.queue).into(),
                oldest_held: o.queue.oldest_held.map(view::time),
            })
            .collect(),
    };
    ctx.output(&json, || {
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
        for o in &rows {
            let a = &o.account;
            t.row(vec![
                Cell::untrusted(&a.name),
                Cell::colored(a.state.as_str(), Some(view::state_color(a.state))),
                Cell::untrusted(if a.reason.is_empty() { "-" } else { &a.reason }),
                view::time(a.since).into(),
                a.sent_total.into(),
                o.sent_today.into(),
                a.error_total.into(),
                o.queue.held.into(),
                o.queue.queued.into(),
                o.queue.deferred.into(),
            ]);
        }
        if t.is_empty() {
            "no accounts yet\n".to_string()
        } else {
            t.render(ctx.color)
        }
    })
}

/// `metrics`: every account's counters in the Prometheus text exposition
/// format (version 0.0.4), for node_exporter's textfile collector or a
/// scrape wrapper; the platform's cluster view comes from there
/// (docs/mailq-ctl.md, "metrics").
/// Account names are label values: escaped per the format (`\`, `"`, LF).
pub fn metrics(ctx: &Ctx, now: i64) -> Result<()> {
    let rows = ctx.store.overview(now)?;
    let label = |name: &str| {
        sanitize::line(name)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    let mut out = String::new();
    type Value = fn(&Overview, i64) -> i64;
    let families: [(&str, &str, &str, Value); 8] = [
        (
            "scriptmail_sent_total",
            "counter",
            "Mails relayed since the account was first seen.",
            |o, _| o.account.sent_total,
        ),
        (
            "scriptmail_errors_total",
            "counter",
            "Mails in error since the account was first seen.",
            |o, _| o.account.error_total,
        ),
        (
            "scriptmail_sent_today",
            "gauge",
            "Mails relayed during the current UTC day.",
            |o, _| o.sent_today,
        ),
        (
            "scriptmail_held",
            "gauge",
            "Messages held because the account is blocked.",
            |o, _| o.queue.held,
        ),
        (
            "scriptmail_queued",
            "gauge",
            "Messages waiting for their first delivery attempt.",
            |o, _| o.queue.queued,
        ),
        (
            "scriptmail_deferred",
            "gauge",
            "Messages waiting for a retry.",
            |o, _| o.queue.deferred,
        ),
        (
            "scriptmail_sending",
            "gauge",
            "1 if the account's mail is relayed (ok, force), 0 if it is held.",
            |o, _| i64::from(o.account.state.is_sending()),
        ),
        (
            "scriptmail_oldest_held_age_seconds",
            "gauge",
            "Age of the oldest held message, 0 if none.",
            |o, now| o.queue.oldest_held.map_or(0, |t| (now - t).max(0) / 1000),
        ),
    ];
    for (name, kind, help, value) in families {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for o in &rows {
            out.push_str(&format!(
                "{name}{{account=\"{}\"}} {}\n",
                label(&o.account.name),
                value(o, now)
            ));
        }
    }
    // The state as an info-style series, so a state change does not start
    // new series for the counters above.
    out.push_str("# HELP scriptmail_state The account's state (value 1), as the control panel names it.\n# TYPE scriptmail_state gauge\n");
    for o in &rows {
        out.push_str(&format!(
            "scriptmail_state{{account=\"{}\",state=\"{}\"}} 1\n",
            label(&o.account.name),
            o.account.state
        ));
    }
    if ctx.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|o| {
                serde_json::json!({
                    "account": o.account.name,
                    "state": o.account.state.as_str(),
                    "sent_total": o.account.sent_total,
                    "errors_total": o.account.error_total,
                    "sent_today": o.sent_today,
                    "held": o.queue.held,
                    "queued": o.queue.queued,
                    "deferred": o.queue.deferred,
                })
            })
            .collect();
        return ctx.output(&serde_json::json!({ "accounts": v }), String::new);
    }
    view::print(&out).map_err(CtlError::from)
}

/// What `status` shows of a resolvable account with no row yet: `ok`,
/// nothing sent, nothing queued; "since" and "first seen" are now.
fn unseen(name: &str, now: i64) -> AccountStatus {
    AccountStatus {
        account: Account {
            id: 0,
            name: name.to_string(),
            state: State::Ok,
            reason: String::new(),
            since: now,
            report_to: None,
            max_per_day: None,
            max_per_hour: None,
            sent_total: 0,
            error_total: 0,
            first_seen: now,
        },
        today: DayCounts {
            day: crate::clock::day_of(now),
            ..DayCounts::default()
        },
        queue: QueueCounts::default(),
        last_event: None,
    }
}
