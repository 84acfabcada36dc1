//! What a node pushes at each sync (docs/cluster.md, "What each node
//! pushes"): the absolute figures of the accounts whose counters or queue
//! changed (keyed by node, so a push repeated is harmless), its mails in
//! error, its held mail as it comes and goes (and held mail the sweep
//! expired), and the automatic blocks it made on its own — plus the
//! error-ratio rule over every node's sample.

use postgres::Client;

use super::Result;
use super::log::{self, Change, Kind};
use crate::account::{Reason, SYSTEM_ACTOR, State};
use crate::log::{self as syslog, Level};
use crate::sanitize;
use crate::store::{Figures, HeldChange, Protection, ReplicatedState, Store};

/// Rows per push statement.
const BATCH: usize = 500;

/// Push everything noted since the last sync; whether anything was.
pub fn push(
    client: &mut Client,
    store: &mut Store,
    node: &str,
    protection: &Protection,
    now: i64,
) -> Result<bool> {
    let figures = push_figures(client, store, node, protection, now)?;
    let errors = push_errors(client, store, node)?;
    let held = push_held(client, store, node)?;
    push_events(client, store, node, now)?;
    Ok(figures || errors || held)
}

fn push_figures(
    client: &mut Client,
    store: &mut Store,
    node: &str,
    protection: &Protection,
    now: i64,
) -> Result<bool> {
    let window = if protection.bounce_ratio > 0.0 {
        protection.window_ms
    } else {
        0
    };
    let mut any = false;
    loop {
        let ids = store.take_dirty(BATCH)?;
        if ids.is_empty() {
            return Ok(any);
        }
        any = true;
        let mut figures = Vec::with_capacity(ids.len());
        let pushed = (|| -> Result<()> {
            for id in &ids {
                figures.extend(store.figures(*id, window, now)?);
            }
            write_figures(client, node, &figures)
        })();
        if let Err(e) = pushed {
            // Noted again: the next sync pushes them.
            store.mark_dirty(&ids)?;
            return Err(e);
        }
        for f in figures.iter().filter(|f| f.ratio.is_some_and(|r| r.1 > 0)) {
            ratio_rule(client, &f.account, protection, node, now)?;
        }
        if ids.len() < BATCH {
            return Ok(any);
        }
    }
}

/// One batch of figures, in one transaction of a few set-based statements.
fn write_figures(client: &mut Client, node: &str, figures: &[Figures]) -> Result<()> {
    let names: Vec<&str> = figures.iter().map(|f| f.account.as_str()).collect();
    let mut tx = client.transaction()?;
    let col = |f: fn(&Figures) -> i64| -> Vec<i64> { figures.iter().map(f).collect() };
    // An account first seen on this node is an account of the cluster,
    // seen since the first node saw it; until its first state change
    // (reason still empty) that is also when it entered `ok`, so every
    // node's error-ratio sample counts (`ratio_rule`).
    tx.execute(
        "INSERT INTO accounts (name, since, first_seen)
         SELECT a, s, f FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(a, s, f)
         ON CONFLICT (name) DO UPDATE SET
             first_seen = least(accounts.first_seen, EXCLUDED.first_seen),
             since = CASE WHEN accounts.reason = '' THEN least(accounts.since, EXCLUDED.since)
                          ELSE accounts.since END",
        &[&names, &col(|f| f.since), &col(|f| f.first_seen)],
    )?;
    let oldest: Vec<Option<i64>> = figures.iter().map(|f| f.queue.oldest_held).collect();
    let ratio_from: Vec<Option<i64>> = figures.iter().map(|f| f.ratio.map(|r| r.0)).collect();
    tx.execute(
        "INSERT INTO node_accounts (account, node, sent_total, error_total, held, queued,
             deferred, sending, oldest_held, ratio_from, ratio_errors, ratio_sent, updated)
         SELECT a, $2, st, et, h, q, d, s, o, rf, re, rs, now()
         FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                     $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
                     $12::bigint[]) AS u(a, st, et, h, q, d, s, o, rf, re, rs)
         ON CONFLICT (account, node) DO UPDATE SET sent_total = EXCLUDED.sent_total,
             error_total = EXCLUDED.error_total, held = EXCLUDED.held, queued = EXCLUDED.queued,
             deferred = EXCLUDED.deferred, sending = EXCLUDED.sending,
             oldest_held = EXCLUDED.oldest_held, ratio_from = EXCLUDED.ratio_from,
             ratio_errors = EXCLUDED.ratio_errors, ratio_sent = EXCLUDED.ratio_sent,
             updated = now()",
        &[
            &names,
            &node,
            &col(|f| f.sent_total),
            &col(|f| f.error_total),
            &col(|f| f.queue.held),
            &col(|f| f.queue.queued),
            &col(|f| f.queue.deferred),
            &col(|f| f.queue.sending),
            &oldest,
            &ratio_from,
            &col(|f| f.ratio.map_or(0, |r| r.1)),
            &col(|f| f.ratio.map_or(0, |r| r.2)),
        ],
    )?;
    let days: Vec<(&str, &crate::store::DayCounts)> = figures
        .iter()
        .flat_map(|f| f.days.iter().map(move |d| (f.account.as_str(), d)))
        .collect();
    write_days(&mut tx, node, &days)?;
    let hours: Vec<(&str, i64, i64)> = figures
        .iter()
        .flat_map(|f| f.hours.iter().map(move |h| (f.account.as_str(), h.0, h.1)))
        .collect();
    tx.execute(
        "INSERT INTO hourly (account, hour, node, submitted)
         SELECT a, h, $2, s FROM unnest($1::text[], $3::bigint[], $4::bigint[]) AS u(a, h, s)
         ON CONFLICT (account, hour, node) DO UPDATE SET submitted = EXCLUDED.submitted",
        &[
            &hours.iter().map(|h| h.0).collect::<Vec<_>>(),
            &node,
            &hours.iter().map(|h| h.1).collect::<Vec<_>>(),
            &hours.iter().map(|h| h.2).collect::<Vec<_>>(),
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Per-day counters, absolute.
pub fn write_days(
    tx: &mut postgres::Transaction<'_>,
    node: &str,
    days: &[(&str, &crate::store::DayCounts)],
) -> Result<()> {
    let col = |f: fn(&crate::store::DayCounts) -> i64| -> Vec<i64> {
        days.iter().map(|(_, d)| f(d)).collect()
    };
    tx.execute(
        "INSERT INTO counters (account, day, node, submitted, sent, errors, held, expired)
         SELECT a, d, $2, su, se, er, he, ex
         FROM unnest($1::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
                     $7::bigint[], $8::bigint[]) AS u(a, d, su, se, er, he, ex)
         ON CONFLICT (account, day, node) DO UPDATE SET submitted = EXCLUDED.submitted,
             sent = EXCLUDED.sent, errors = EXCLUDED.errors, held = EXCLUDED.held,
             expired = EXCLUDED.expired",
        &[
            &days.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            &node,
            &col(|d| d.day),
            &col(|d| d.submitted),
            &col(|d| d.sent),
            &col(|d| d.errors),
            &col(|d| d.held),
            &col(|d| d.expired),
        ],
    )?;
    Ok(())
}

/// A node's whole history of per-day counters, when it first joins.
pub fn push_history(client: &mut Client, store: &Store, node: &str) -> Result<()> {
    let all = store.all_days()?;
    for chunk in all.chunks(BATCH * 10) {
        let days: Vec<(&str, &crate::store::DayCounts)> =
            chunk.iter().map(|(a, d)| (a.as_str(), d)).collect();
        let mut tx = client.transaction()?;
        tx.execute(
            "INSERT INTO accounts (name, since, first_seen)
             SELECT DISTINCT unnest($1::text[]), 0::bigint, 0::bigint ON CONFLICT DO NOTHING",
            &[&days.iter().map(|(a, _)| *a).collect::<Vec<_>>()],
        )?;
        write_days(&mut tx, node, &days)?;
        tx.commit()?;
    }
    Ok(())
}

fn push_errors(client: &mut Client, store: &mut Store, node: &str) -> Result<bool> {
    let (mut mark, events) = store.pushed_marks()?;
    let mut any = false;
    loop {
        let rows = store.errors_after(mark, BATCH)?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(any);
        };
        any = true;
        let text = |f: fn(&crate::store::ErrorRow) -> &str| -> Vec<&str> {
            rows.iter().map(|(_, _, e)| f(e)).collect()
        };
        client.execute(
            "INSERT INTO errors (node, qid, rcpt, kind, account, at, message, subject, script)
             SELECT $1, q, r, k, a, t, m, su, sc
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                         $7::text[], $8::text[], $9::text[]) AS u(q, r, k, a, t, m, su, sc)
             ON CONFLICT DO NOTHING",
            &[
                &node,
                &text(|e| e.qid.as_str()),
                &text(|e| e.rcpt.as_str()),
                &text(|e| e.kind.as_str()),
                &rows.iter().map(|(_, a, _)| a.as_str()).collect::<Vec<_>>(),
                &rows.iter().map(|(_, _, e)| e.at).collect::<Vec<_>>(),
                &text(|e| e.message.as_str()),
                &text(|e| e.subject.as_str()),
                &text(|e| e.script.as_str()),
            ],
        )?;
        store.set_pushed_marks(last, events)?;
        mark = last;
        if rows.len() < BATCH {
            return Ok(any);
        }
    }
}

fn push_held(client: &mut Client, store: &mut Store, node: &str) -> Result<bool> {
    let mut any = false;
    loop {
        let changes = store.take_held_changes(BATCH * 2)?;
        if changes.is_empty() {
            return Ok(any);
        }
        any = true;
        if let Err(e) = write_held(client, node, &changes) {
            store.mark_held_changes(&changes)?;
            return Err(e);
        }
        if changes.len() < BATCH * 2 {
            return Ok(any);
        }
    }
}

fn write_held(client: &mut Client, node: &str, changes: &[HeldChange]) -> Result<()> {
    let mut tx = client.transaction()?;
    for c in changes {
        match c {
            HeldChange::Held {
                qid,
                account,
                created,
                script,
                domains,
                ..
            } => {
                tx.execute(
                    "INSERT INTO held (node, qid, account, created, script, domains)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (node, qid) DO UPDATE SET account = $3, created = $4,
                         script = $5, domains = $6",
                    &[&node, qid, account, created, script, domains],
                )?;
            }
            HeldChange::Gone { qid, expired, .. } => {
                tx.execute(
                    "DELETE FROM held WHERE node = $1 AND qid = $2",
                    &[&node, qid],
                )?;
                if let Some(x) = expired {
                    tx.execute(
                        "INSERT INTO expired (node, qid, account, at, created, sender, recipients,
                             subject, script)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                        &[
                            &node,
                            qid,
                            &x.account,
                            &x.at,
                            &x.created,
                            &x.sender,
                            &x.recipients,
                            &x.subject,
                            &x.script,
                        ],
                    )?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The automatic blocks this node made on its own (a limit while the store
/// was out of reach, the error-ratio rule): each becomes the cluster's,
/// unless the account changed meanwhile — then this node takes the
/// cluster's state instead.
fn push_events(client: &mut Client, store: &mut Store, node: &str, now: i64) -> Result<()> {
    let (errors, mut mark) = store.pushed_marks()?;
    for (id, account, e) in store.automatic_events_after(mark)? {
        let local = store.account(&account)?;
        // Replaced here since (the cluster's own change came in): stale.
        if local.state == e.new {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO accounts (name, since, first_seen) VALUES ($1, $2, $2)
                 ON CONFLICT DO NOTHING",
                &[&account, &now],
            )?;
            let row = tx.query_one(
                "SELECT state, reason, since FROM accounts WHERE name = $1 FOR UPDATE",
                &[&account],
            )?;
            let current = State::parse(row.get(0)).unwrap_or(State::Ok);
            let takes = match e.new {
                State::Ko | State::Bounce => current.is_sending(),
                _ => false,
            };
            if takes {
                change_state(
                    &mut tx, &account, current, e.new, &e.reason, &e.note, node, e.at,
                )?;
                tx.commit()?;
            } else {
                let (reason, since): (String, i64) = (row.get(1), row.get(2));
                tx.commit()?;
                store.replicate_state(
                    &ReplicatedState {
                        account: &account,
                        state: current,
                        reason: &reason,
                        since,
                        actor: SYSTEM_ACTOR,
                        note: "the cluster's state",
                        announce: false,
                    },
                    now,
                )?;
            }
        }
        mark = id;
        store.set_pushed_marks(errors, mark)?;
    }
    Ok(())
}

/// An automatic state change for the cluster, inside `tx` (the account's
/// row locked): the account, an event and the change for every node.
#[allow(clippy::too_many_arguments)]
fn change_state(
    tx: &mut postgres::Transaction<'_>,
    account: &str,
    old: State,
    new: State,
    reason: &str,
    note: &str,
    node: &str,
    at: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE accounts SET state = $2, reason = $3, since = $4 WHERE name = $1",
        &[&account, &new.as_str(), &reason, &at],
    )?;
    tx.execute(
        "INSERT INTO events (account, at, old_state, new_state, reason, actor, note, node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &account,
            &at,
            &old.as_str(),
            &new.as_str(),
            &reason,
            &SYSTEM_ACTOR,
            &note,
            &node,
        ],
    )?;
    let mut c = Change::new(account, Kind::State);
    c.state = Some(new);
    c.reason = reason.into();
    c.since = at;
    c.actor = SYSTEM_ACTOR.into();
    c.note = note.into();
    c.origin = node.into();
    log::append(tx, &c)?;
    Ok(())
}

/// The error-ratio rule over every node (docs/bounces.md, "The
/// error-ratio rule", summed): each node's sample since the account's last
/// state change, pushed within the window.
fn ratio_rule(
    client: &mut Client,
    account: &str,
    p: &Protection,
    node: &str,
    now: i64,
) -> Result<()> {
    let mut tx = client.transaction()?;
    let Some(row) = tx.query_opt(
        "SELECT state, since FROM accounts WHERE name = $1 FOR UPDATE",
        &[&account],
    )?
    else {
        return Ok(());
    };
    let state = State::parse(row.get(0)).unwrap_or(State::Ok);
    let since: i64 = row.get(1);
    let ratio = match state {
        State::Ok => p.bounce_ratio,
        State::Force => p.bounce_ratio * 2.0,
        _ => return Ok(()),
    };
    let sums = tx.query_one(
        "SELECT coalesce(sum(ratio_errors), 0)::bigint, coalesce(sum(ratio_sent), 0)::bigint
         FROM node_accounts WHERE account = $1 AND ratio_from >= $2 AND ratio_from >= $3",
        &[&account, &since, &(now - p.window_ms.max(0) * 2)],
    )?;
    let (errors, sent): (i64, i64) = (sums.get(0), sums.get(1));
    let sample = errors + sent;
    if sample <= 0 || (sample as u64) < p.min_sample || (errors as f64) <= ratio * sample as f64 {
        return Ok(());
    }
    let note = format!(
        "error ratio {errors}/{sample} ({}%) over the cluster is above {}%",
        errors * 100 / sample,
        (ratio * 100.0).round()
    );
    change_state(
        &mut tx,
        account,
        state,
        State::Bounce,
        Reason::Bounce.as_str(),
        &note,
        node,
        now,
    )?;
    tx.commit()?;
    syslog::log(
        Level::Warning,
        &format!(
            "account={} state=bounce reason=bounce stat={}",
            sanitize::line(account),
            syslog::quote(&format!("{note}; new mail is held on every node"))
        ),
    );
    Ok(())
}
