//! The account verbs of `mailq-ctl`: status, accounts, block, unblock,
//! purge, stats, errors, set, history (SPEC §3, §6.1).
//!
//! ## Accounts before their first mail (issue 11 item 17)
//! A panel must be able to block or configure a site before it sends
//! anything (a compromised site is pre-blocked). So `block`, `set` and
//! `status` take any name the node resolves — a Unix user (`getpwnam`), or
//! a name the configuration's `[accounts.map]` gives to uids — not only one
//! with a row in the queue: `block` and `set` create the row, `status`
//! shows a fresh `ok` account without writing anything. A name that
//! resolves to nothing is still `no such account` (67), so a typo in a
//! panel never creates an account nobody can send as. The other verbs need
//! an account that exists.

use std::io::BufRead;

use serde::Serialize;

use super::view::{self, Align, Cell, Table};
use super::{CtlError, Ctx, Result, SortKey, check_note};
use crate::account::{AppliedLimit, BlockReason, Limits, Reason, State};
use crate::address;
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::StoreError;
use crate::store::{Account, AccountStatus, DayCounts, Limit, QueueCounts, Settings};

/// Rows per purge transaction: short enough that `sendmail` never waits
/// long for the lock, long enough that 100,000 messages go in seconds.
const PURGE_CHUNK: usize = 5000;

/// The limits that apply to an account: its own, else the node's.
fn limits(ctx: &Ctx, a: &Account) -> Limits {
    a.limits(ctx.cfg.enqueue_policy())
}

fn limit_text(l: AppliedLimit, unit: &str) -> String {
    let v = if l.max == 0 {
        format!("unlimited/{unit}")
    } else {
        format!("{}/{unit}", l.max)
    };
    if l.node_default {
        format!("{v} (node default)")
    } else {
        v
    }
}

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
struct DayJson {
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

#[derive(Serialize)]
struct AccountJson<'a> {
    account: &'a str,
    state: &'static str,
    sends: bool,
    reason: &'a str,
    since: String,
    report_to: Option<&'a str>,
    max_per_day: u64,
    max_per_day_default: bool,
    max_per_hour: u64,
    max_per_hour_default: bool,
    first_seen: String,
}

fn account_json<'a>(ctx: &Ctx, a: &'a Account) -> AccountJson<'a> {
    let limits = limits(ctx, a);
    AccountJson {
        account: &a.name,
        state: a.state.as_str(),
        sends: a.state.is_sending(),
        reason: &a.reason,
        since: view::time(a.since),
        report_to: a.report_to.as_deref(),
        max_per_day: limits.per_day.max,
        max_per_day_default: limits.per_day.node_default,
        max_per_hour: limits.per_hour.max,
        max_per_hour_default: limits.per_hour.node_default,
        first_seen: view::time(a.first_seen),
    }
}

#[derive(Serialize)]
struct AccountsJson<'a> {
    accounts: Vec<AccountJson<'a>>,
}

/// `accounts`: every account with its settings.
pub fn list(ctx: &Ctx) -> Result<()> {
    let all = ctx.store.accounts()?;
    let json = AccountsJson {
        accounts: all.iter().map(|a| account_json(ctx, a)).collect(),
    };
    ctx.output(&json, || {
        let mut t = Table::new(&[
            ("ACCOUNT", Align::Left),
            ("STATE", Align::Left),
            ("REPORT TO", Align::Left),
            ("MAX/DAY", Align::Right),
            ("MAX/HOUR", Align::Right),
            ("FIRST SEEN", Align::Left),
        ]);
        for a in &all {
            let limits = limits(ctx, a);
            let lim = |l: AppliedLimit| {
                let v = if l.max == 0 {
                    "-".to_string()
                } else {
                    l.max.to_string()
                };
                if l.node_default { format!("{v}*") } else { v }
            };
            t.row(vec![
                Cell::untrusted(&a.name),
                Cell::colored(a.state.as_str(), Some(view::state_color(a.state))),
                Cell::untrusted(a.report_to.as_deref().unwrap_or("-")),
                lim(limits.per_day).into(),
                lim(limits.per_hour).into(),
                view::time(a.first_seen).into(),
            ]);
        }
        if t.is_empty() {
            "no accounts yet\n".to_string()
        } else {
            t.render(ctx.color) + "(* node default; - unlimited)\n"
        }
    })
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    account: &'a str,
    old_state: &'static str,
    new_state: &'static str,
    changed: bool,
    reason: &'a str,
    actor: &'a str,
    note: &'a str,
    released: u64,
    held: u64,
}

/// `block ACCOUNT`.
pub fn block(
    ctx: &mut Ctx,
    name: &str,
    reason: BlockReason,
    note: Option<&str>,
    now: i64,
) -> Result<()> {
    let note = check_note(note)?;
    if matches!(ctx.store.account(name), Err(StoreError::NoAccount(_))) && resolvable(ctx, name) {
        // Before its first mail: the account starts `ok`, and is blocked
        // at once (a mail submitted in between is held by the block).
        ctx.store.ensure_account(name, now)?;
    }
    let c = ctx.store.block(name, reason, &ctx.actor, &note, now)?;
    ctx.log_change(
        &c.account,
        c.old,
        c.new,
        Reason::Block(reason),
        &format!(" held={}{}", c.held, note_field(&note)),
    );
    let json = ChangeJson {
        account: &c.account,
        old_state: c.old.as_str(),
        new_state: c.new.as_str(),
        changed: c.changed(),
        reason: reason.as_str(),
        actor: &ctx.actor,
        note: &note,
        released: 0,
        held: c.held,
    };
    ctx.output(&json, || {
        let mut s = format!(
            "{}: {} → {} ({}); new mail is held for at most {}\n",
            sanitize::terminal(&c.account),
            paint(ctx, c.old),
            paint(ctx, c.new),
            reason.as_str(),
            crate::clock::format_age(crate::store::ms(ctx.cfg.hold_max_age))
        );
        if c.held > 0 {
            s.push_str(&format!(
                "{} queued or deferred message(s) not yet sent are held too\n",
                c.held
            ));
        }
        s
    })
}

/// `unblock ACCOUNT [--force]`.
pub fn unblock(ctx: &mut Ctx, name: &str, force: bool, note: Option<&str>, now: i64) -> Result<()> {
    let note = check_note(note)?;
    let c = ctx.store.unblock(name, force, &ctx.actor, &note, now)?;
    let reason = if force {
        Reason::Force
    } else {
        Reason::Unblock
    };
    if c.changed() {
        ctx.log_change(
            &c.account,
            c.old,
            c.new,
            reason,
            &format!(" released={}{}", c.released, note_field(&note)),
        );
    }
    if c.released > 0 {
        ctx.wake_relay();
    }
    let json = ChangeJson {
        account: &c.account,
        old_state: c.old.as_str(),
        new_state: c.new.as_str(),
        changed: c.changed(),
        reason: reason.as_str(),
        actor: &ctx.actor,
        note: &note,
        released: c.released,
        held: 0,
    };
    ctx.output(&json, || {
        if c.changed() {
            format!(
                "{}: {} → {}; {} held message(s) released for delivery\n",
                sanitize::terminal(&c.account),
                paint(ctx, c.old),
                paint(ctx, c.new),
                c.released
            )
        } else {
            format!(
                "{}: already {} (sending); {} held message(s) released\n",
                sanitize::terminal(&c.account),
                paint(ctx, c.new),
                c.released
            )
        }
    })
}

#[derive(Serialize)]
struct PurgeJson<'a> {
    account: &'a str,
    old_state: &'static str,
    new_state: &'static str,
    dropped: u64,
    dropped_held: u64,
    dropped_queued: u64,
    released: u64,
    actor: &'a str,
}

/// `purge ACCOUNT [--yes]`: `purging`, drop in chunks, then `ok` with the
/// mail that arrived meanwhile released in the same final transaction.
pub fn purge(ctx: &mut Ctx, name: &str, yes: bool, note: Option<&str>, now: i64) -> Result<()> {
    let note = check_note(note)?;
    let account = ctx.store.account(name)?;
    if !yes {
        if !crate::os::is_tty(0) {
            return Err(CtlError::Usage(
                "purge drops mail: confirm with --yes (stdin is not a terminal)".into(),
            ));
        }
        let q = ctx.store.queue_counts(account.id)?;
        eprint!(
            "Drop {} held and {} queued/deferred message(s) of {} and unblock it? [y/N] ",
            q.held,
            q.queued + q.deferred,
            sanitize::terminal(&account.name)
        );
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(CtlError::Refused("purge cancelled".into()));
        }
    }
    let p = ctx.store.purge_begin(name, &ctx.actor, &note, now)?;
    if p.old != State::Purging {
        ctx.log_change(
            &p.account,
            p.old,
            State::Purging,
            Reason::Purge,
            &note_field(&note),
        );
    }
    let (mut held, mut queued) = (0u64, 0u64);
    loop {
        let d = ctx.store.purge_chunk(&p, PURGE_CHUNK)?;
        held += d.held;
        queued += d.queued;
        if ((d.held + d.queued) as usize) < PURGE_CHUNK {
            break;
        }
    }
    let (late, released) = ctx
        .store
        .purge_finish(&p, &ctx.actor, crate::clock::now_ms())?;
    // What the purge itself held, and what came back from a connection
    // meanwhile, was queued when the purge began.
    let moved = p.held_at_begin.min(held);
    let (held, queued) = (held - moved, queued + moved + late.held + late.queued);
    ctx.log_change(
        &p.account,
        State::Purging,
        State::Ok,
        Reason::Purge,
        &format!(" dropped={} released={released}", held + queued),
    );
    if released > 0 {
        ctx.wake_relay();
    }
    let json = PurgeJson {
        account: &p.account,
        old_state: p.old.as_str(),
        new_state: State::Ok.as_str(),
        dropped: held + queued,
        dropped_held: held,
        dropped_queued: queued,
        released,
        actor: &ctx.actor,
    };
    ctx.output(&json, || {
        let mut s = format!(
            "{}: dropped {} message(s) ({} held, {} queued/deferred); {} → {}\n",
            sanitize::terminal(&p.account),
            held + queued,
            held,
            queued,
            paint(ctx, p.old),
            paint(ctx, State::Ok)
        );
        if released > 0 {
            s.push_str(&format!(
                "{released} message(s) submitted during the purge released for delivery\n"
            ));
        }
        s
    })
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
struct SetJson<'a> {
    created: bool,
    #[serde(flatten)]
    account: AccountJson<'a>,
}

/// `set ACCOUNT ...`: report recipient and limits; creates the account.
#[allow(clippy::too_many_arguments)]
pub fn set(
    ctx: &mut Ctx,
    name: &str,
    report_to: Option<&str>,
    no_report: bool,
    max_per_day: Option<Limit>,
    max_per_hour: Option<Limit>,
    now: i64,
) -> Result<()> {
    if report_to.is_none() && !no_report && max_per_day.is_none() && max_per_hour.is_none() {
        return Err(CtlError::Usage(
            "set: say what to set: --report-to ADDR, --no-report, --max-per-day N, --max-per-hour N"
                .into(),
        ));
    }
    check_account_name(name)?;
    if !resolvable(ctx, name) {
        // Only an account that exists already (one that sent mail, or was
        // configured while it resolved) may be changed by its name alone.
        ctx.store.account(name)?;
    }
    let report_to = match (report_to, no_report) {
        (Some(addr), _) => Some(Some(check_address(addr)?)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let settings = Settings {
        report_to,
        max_per_day,
        max_per_hour,
    };
    let (a, created) = ctx.store.configure(name, &settings, now)?;
    let limits = limits(ctx, &a);
    log::log(
        Level::Info,
        &format!(
            "account={} settings changed actor={} report_to=<{}> max_per_day={} max_per_hour={}{}",
            sanitize::line(&a.name),
            log::quote(&ctx.actor),
            sanitize::line(a.report_to.as_deref().unwrap_or("")),
            limits.per_day.max,
            limits.per_hour.max,
            if created { " created=yes" } else { "" }
        ),
    );
    let json = SetJson {
        created,
        account: account_json(ctx, &a),
    };
    ctx.output(&json, || {
        format!(
            "{}{}: report to {}; {}, {}\n",
            sanitize::terminal(&a.name),
            if created { " (new account)" } else { "" },
            sanitize::terminal(a.report_to.as_deref().unwrap_or("nobody")),
            limit_text(limits.per_day, "day"),
            limit_text(limits.per_hour, "hour")
        )
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

/// A state name, coloured when the output is.
fn paint(ctx: &Ctx, s: crate::account::State) -> String {
    view::paint(s, ctx.color)
}

fn note_field(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(" note={}", log::quote(note))
    }
}

/// Whether this node can resolve `name` to an account without a mail from
/// it: a Unix user, or a name of `[accounts.map]` (see the module doc).
fn resolvable(ctx: &Ctx, name: &str) -> bool {
    ctx.cfg.accounts.map.iter().any(|(_, _, n)| n == name)
        || crate::os::user_by_name(name).is_some()
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

/// An account name the panel may create: a login-name-like word.
pub(crate) fn check_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CtlError::Usage(format!(
            "{:?} is not a valid account name",
            sanitize::line(name)
        )))
    }
}

/// A report recipient from `--report-to`: one address (a display name and
/// angle brackets are allowed and dropped) that the report sender accepts —
/// the same rule, `report::valid_recipient`, so what `set` accepts always
/// gets its reports.
pub(crate) fn check_address(addr: &str) -> Result<String> {
    let bad = || {
        CtlError::Usage(format!(
            "not a valid report recipient: {} (one plain local@domain address)",
            log::quote(addr)
        ))
    };
    // Control characters are refused outright: the RFC 5322 parser would
    // read "a@b\r\nBcc: c@d" as a folded group and keep only c@d.
    if addr.chars().any(char::is_control) {
        return Err(bad());
    }
    let list = address::parse_list(addr).map_err(|_| bad())?;
    match list.as_slice() {
        [one] if crate::report::valid_recipient(one) => Ok(one.clone()),
        _ => Err(bad()),
    }
}

/// `metrics`: every account's counters in the Prometheus text exposition
/// format (version 0.0.4), for node_exporter's textfile collector or a
/// scrape wrapper; the platform's cluster view comes from there (SPEC §11).
/// Account names are label values: escaped per the format (`\`, `"`, LF).
pub fn metrics(ctx: &Ctx, now: i64) -> Result<()> {
    let rows = ctx.store.overview(now)?;
    let label = |name: &str| {
        sanitize::line(name)
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    let mut out = String::new();
    type Value = fn(&crate::store::Overview, i64) -> i64;
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
