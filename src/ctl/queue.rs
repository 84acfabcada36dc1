//! The queue verbs of `mailq-ctl`: queue, show, release, delete, sweep, and
//! the hidden `populate` that builds the benchmark's fixture.

use serde::Serialize;

use super::view::{self, Align, Cell, Table};
use super::{CtlError, Ctx, Result};
use crate::clock;
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::admin::{Housekeeping, MessageRow, PopulateSpec, QueueFilter};

/// Rows per sweep transaction (see `PURGE_CHUNK`).
const SWEEP_CHUNK: usize = 5000;

#[derive(Serialize)]
struct MessageJson<'a> {
    qid: &'a str,
    account: &'a str,
    state: &'a str,
    created: String,
    next_attempt: Option<String>,
    attempts: i64,
    sender: &'a str,
    nrcpt: i64,
    size: i64,
    subject: &'a str,
    script: &'a str,
    last_error: &'a str,
    done_at: Option<String>,
}

fn message_json(m: &MessageRow) -> MessageJson<'_> {
    MessageJson {
        qid: &m.qid,
        account: &m.account,
        state: &m.state,
        created: view::time(m.created),
        next_attempt: matches!(m.state.as_str(), "queued" | "deferred")
            .then(|| view::time(m.next_attempt)),
        attempts: m.attempts,
        sender: &m.sender,
        nrcpt: m.nrcpt,
        size: m.size,
        subject: &m.subject,
        script: &m.script,
        last_error: &m.last_error,
        done_at: m.done_at.map(view::time),
    }
}

#[derive(Serialize)]
struct QueueJson<'a> {
    messages: Vec<MessageJson<'a>>,
}

/// `queue [--account A] [--state S] [--limit N]`.
pub fn list(
    ctx: &Ctx,
    account: Option<String>,
    state: Option<&str>,
    limit: u32,
    now: i64,
) -> Result<()> {
    let rows = ctx.store.messages(&QueueFilter {
        account,
        state: state.map(str::to_string),
        limit: i64::from(limit),
    })?;
    let json = QueueJson {
        messages: rows.iter().map(message_json).collect(),
    };
    ctx.output(&json, || {
        if rows.is_empty() {
            return "queue is empty\n".to_string();
        }
        let mut t = Table::new(&[
            ("QID", Align::Left),
            ("ACCOUNT", Align::Left),
            ("STATE", Align::Left),
            ("AGE", Align::Right),
            ("SIZE", Align::Right),
            ("RCPT", Align::Right),
            ("FROM", Align::Left),
            ("SCRIPT", Align::Left),
            ("SUBJECT", Align::Left),
            ("LAST ERROR", Align::Left),
        ]);
        for m in &rows {
            t.row(vec![
                m.qid.as_str().into(),
                Cell::untrusted(&m.account),
                m.state.as_str().into(),
                view::age(now - m.created).into(),
                m.size.into(),
                m.nrcpt.into(),
                Cell::untrusted(if m.sender.is_empty() { "<>" } else { &m.sender }),
                // "Which script?" is the admin's first question.
                Cell::untrusted(&sanitize::truncate(
                    if m.script.is_empty() { "-" } else { &m.script },
                    30,
                )),
                Cell::untrusted(&sanitize::truncate(&m.subject, 40)),
                Cell::untrusted(&sanitize::truncate(&m.last_error, 60)),
            ]);
        }
        t.render(ctx.color)
    })
}

#[derive(Serialize)]
struct RecipientJson<'a> {
    address: &'a str,
    state: &'a str,
}

#[derive(Serialize)]
struct ShowJson<'a> {
    #[serde(flatten)]
    message: MessageJson<'a>,
    cwd: &'a str,
    uid: i64,
    recipients: Vec<RecipientJson<'a>>,
    headers: Option<String>,
    body: Option<String>,
}

/// `show QID [--body]`: envelope, recipients, headers; the body on request.
pub fn show(ctx: &Ctx, qid: &str, with_body: bool) -> Result<()> {
    let d = ctx.store.message(qid, true)?;
    let (headers, body) = match &d.data {
        Some(data) => {
            let split = find(data, b"\r\n\r\n").map_or(data.len(), |i| i + 2);
            let (h, b) = data.split_at(split);
            let b = b.strip_prefix(b"\r\n").unwrap_or(b);
            (
                Some(String::from_utf8_lossy(h).into_owned()),
                with_body.then(|| String::from_utf8_lossy(b).into_owned()),
            )
        }
        None => (None, None),
    };
    let m = &d.row;
    let json = ShowJson {
        message: message_json(m),
        cwd: &m.cwd,
        uid: m.uid,
        recipients: d
            .recipients
            .iter()
            .map(|(a, s)| RecipientJson {
                address: a,
                state: s,
            })
            .collect(),
        headers: headers.clone(),
        body: body.clone(),
    };
    ctx.output(&json, || {
        let mut t = Table::pairs();
        t.row(vec!["qid".into(), m.qid.as_str().into()]);
        t.row(vec!["account".into(), Cell::untrusted(&m.account)]);
        t.row(vec!["state".into(), m.state.as_str().into()]);
        t.row(vec!["created".into(), view::time(m.created).into()]);
        if matches!(m.state.as_str(), "queued" | "deferred") {
            t.row(vec![
                "next attempt".into(),
                view::time(m.next_attempt).into(),
            ]);
        }
        if let Some(done) = m.done_at {
            t.row(vec!["done".into(), view::time(done).into()]);
        }
        t.row(vec!["attempts".into(), m.attempts.into()]);
        t.row(vec![
            "from".into(),
            Cell::untrusted(&format!("<{}>", m.sender)),
        ]);
        for (addr, state) in &d.recipients {
            t.row(vec![
                "to".into(),
                Cell::untrusted(&format!("<{addr}> {state}")),
            ]);
        }
        t.row(vec!["size".into(), m.size.into()]);
        t.row(vec!["script".into(), Cell::untrusted(&m.script)]);
        t.row(vec!["cwd".into(), Cell::untrusted(&m.cwd)]);
        if !m.last_error.is_empty() {
            t.row(vec!["last error".into(), Cell::untrusted(&m.last_error)]);
        }
        let mut out = t.render(ctx.color);
        out.push('\n');
        match (&headers, &body) {
            (None, _) => out.push_str("(content deleted: the message is done)\n"),
            (Some(h), b) => {
                for line in h.lines() {
                    out.push_str(&sanitize::terminal(line));
                    out.push('\n');
                }
                if let Some(b) = b {
                    out.push('\n');
                    for line in b.lines() {
                        out.push_str(&sanitize::terminal(line));
                        out.push('\n');
                    }
                }
            }
        }
        out
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Serialize)]
struct MoveJson<'a> {
    qid: &'a str,
    account: &'a str,
    old_state: &'a str,
    new_state: Option<&'a str>,
}

/// `release QID`: one held message to `queued`, then wake the relay.
pub fn release(ctx: &mut Ctx, qid: &str, now: i64) -> Result<()> {
    let m = ctx.store.release(qid, now)?;
    log::log(
        Level::Info,
        &format!(
            "qid={} account={} released actor={}",
            sanitize::line(&m.qid),
            sanitize::line(&m.account),
            log::quote(&ctx.actor)
        ),
    );
    ctx.wake_relay();
    let json = MoveJson {
        qid: &m.qid,
        account: &m.account,
        old_state: "held",
        new_state: Some("queued"),
    };
    ctx.output(&json, || {
        format!(
            "{} ({}): held → queued, relayed now\n",
            m.qid,
            sanitize::terminal(&m.account)
        )
    })
}

/// `delete QID`: drop one held, queued or deferred message.
pub fn delete(ctx: &mut Ctx, qid: &str) -> Result<()> {
    let m = ctx.store.delete_message(qid)?;
    log::log(
        Level::Info,
        &format!(
            "qid={} account={} deleted state={} actor={}",
            sanitize::line(&m.qid),
            sanitize::line(&m.account),
            m.state,
            log::quote(&ctx.actor)
        ),
    );
    let json = MoveJson {
        qid: &m.qid,
        account: &m.account,
        old_state: &m.state,
        new_state: None,
    };
    ctx.output(&json, || {
        format!(
            "{} ({}): {} message deleted\n",
            m.qid,
            sanitize::terminal(&m.account),
            m.state
        )
    })
}

#[derive(Serialize)]
struct ExpiredJson {
    account: String,
    expired: u64,
}

#[derive(Serialize)]
struct DeletedJson {
    messages: u64,
    bodies: u64,
    errors: u64,
    events: u64,
    daily: u64,
    hourly: u64,
}

#[derive(Serialize)]
struct SweepJson {
    recovered: u64,
    imported: u64,
    expired: u64,
    expired_by_account: Vec<ExpiredJson>,
    deleted: DeletedJson,
    hold_max_age_s: u64,
    history_days: u32,
}

/// `sweep`: expire held mail past `hold_max_age` (counted per account and
/// day), then delete history older than `history_days`.
pub fn sweep(ctx: &mut Ctx, now: i64) -> Result<()> {
    // A relayer killed mid-delivery while no daemon runs leaves its claim in
    // `sending`; when no relayer holds the lock, it comes back here at the
    // latest (`relay::recover_orphans`; relayd and the next one-shot do the
    // same when they start).
    let recovered = crate::relay::recover_orphans(&ctx.cfg)?.unwrap_or(0) as u64;
    // Mail a sendmail left in the maildrop while no relayer ran, or whose
    // caller could not start one (docs/submission.md, "Maildrop").
    let imported = crate::submission::import::drain_if_idle(&ctx.cfg)?.unwrap_or(0) as u64;
    let cutoff = now - crate::store::ms(ctx.cfg.hold_max_age);
    let mut per_account: std::collections::BTreeMap<String, u64> = Default::default();
    loop {
        let chunk = ctx.store.expire_held(cutoff, now, SWEEP_CHUNK)?;
        let n: u64 = chunk.iter().map(|(_, n)| n).sum();
        for (name, k) in chunk {
            *per_account.entry(name).or_default() += k;
        }
        if (n as usize) < SWEEP_CHUNK {
            break;
        }
    }
    for (name, n) in &per_account {
        log::log(
            Level::Info,
            &format!(
                "account={} expired={n} status=expired stat=\"held longer than {}\"",
                sanitize::line(name),
                clock::format_age(crate::store::ms(ctx.cfg.hold_max_age))
            ),
        );
    }
    // Blocks tripped by a limit (in sendmail) or by rejections (in the
    // relay) are announced to the report recipient here at the latest.
    // Without a daemon, deferred mail is retried only when something wakes
    // a relayer: the hourly sweep is that something.
    let due = recovered > 0
        || imported > 0
        || ctx.store.next_due()?.is_some_and(|t| t <= clock::now_ms());
    if crate::report::notify(&ctx.cfg, &mut ctx.store, now)? > 0 || due {
        ctx.wake_relay();
    }
    let history_cutoff = crate::store::day_start(now, i64::from(ctx.cfg.history_days));
    let h: Housekeeping =
        ctx.store
            .housekeep(history_cutoff, clock::hour_of(now) - 1, SWEEP_CHUNK)?;
    let expired: u64 = per_account.values().sum();
    log::log(
        Level::Info,
        &format!(
            "sweep recovered={recovered} imported={imported} expired={expired} deleted_messages={} deleted_errors={} deleted_events={} deleted_daily={} deleted_hourly={} deleted_bodies={}",
            h.messages, h.errors, h.events, h.daily, h.hourly, h.bodies
        ),
    );
    let json = SweepJson {
        recovered,
        imported,
        expired,
        expired_by_account: per_account
            .iter()
            .map(|(a, n)| ExpiredJson {
                account: a.clone(),
                expired: *n,
            })
            .collect(),
        deleted: DeletedJson {
            messages: h.messages,
            bodies: h.bodies,
            errors: h.errors,
            events: h.events,
            daily: h.daily,
            hourly: h.hourly,
        },
        hold_max_age_s: ctx.cfg.hold_max_age.as_secs(),
        history_days: ctx.cfg.history_days,
    };
    ctx.output(&json, || {
        let mut s = String::new();
        if recovered > 0 {
            s.push_str(&format!(
                "requeued {recovered} message(s) a dead relayer left in delivery\n"
            ));
        }
        if imported > 0 {
            s.push_str(&format!("imported {imported} message(s) from the maildrop\n"));
        }
        s.push_str(&format!("expired {expired} held message(s)"));
        if !per_account.is_empty() {
            let list: Vec<String> = per_account
                .iter()
                .map(|(a, n)| format!("{} {n}", sanitize::terminal(a)))
                .collect();
            s.push_str(&format!(" ({})", list.join(", ")));
        }
        s.push_str(&format!(
            "\ndeleted history older than {} day(s): {} message(s), {} mail(s) in error, {} event(s), {} daily row(s), {} hourly row(s), {} leftover body(ies)\n",
            ctx.cfg.history_days, h.messages, h.errors, h.events, h.daily, h.hourly, h.bodies
        ));
        s
    })
}

/// Hidden `populate`: the benchmark's synthetic queue, in one transaction.
pub fn populate(
    ctx: &mut Ctx,
    accounts: u64,
    messages: u64,
    held: u64,
    days: u32,
    now: i64,
) -> Result<()> {
    if accounts == 0 || accounts > 100_000 {
        return Err(CtlError::Usage("--accounts must be 1..100000".into()));
    }
    let spec = PopulateSpec {
        accounts,
        messages,
        held,
        days: i64::from(days),
    };
    let started = std::time::Instant::now();
    ctx.store.populate(&spec, now)?;
    let secs = started.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "accounts": accounts,
        "messages": messages,
        "held": held,
        "days": days,
        "seconds": secs,
    });
    ctx.output(&json, || {
        format!(
            "populated {accounts} account(s), {messages} message(s) of history over {days} day(s), {held} held (acct00000) in {secs:.1}s\n"
        )
    })
}
