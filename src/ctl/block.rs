//! The verbs that change an account's state: `block`, `unblock` and
//! `purge` (docs/mailq-ctl.md, "Account states"). Each is logged with its
//! actor and note.

use std::io::BufRead;

use serde::Serialize;

use super::view;
use super::{CtlError, Ctx, Result, check_note, resolvable};
use crate::account::{BlockReason, Reason, State};
use crate::log;
use crate::sanitize;
use crate::store::{Change, StoreError};

/// Rows per purge transaction: short enough that `sendmail` never waits
/// long for the lock, long enough that 100,000 messages go in seconds.
const PURGE_CHUNK: usize = 5000;

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

impl<'a> ChangeJson<'a> {
    fn new(c: &'a Change, reason: Reason, actor: &'a str, note: &'a str) -> ChangeJson<'a> {
        ChangeJson {
            account: &c.account,
            old_state: c.old.as_str(),
            new_state: c.new.as_str(),
            changed: c.changed(),
            reason: reason.as_str(),
            actor,
            note,
            released: c.released,
            held: c.held,
        }
    }
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
    let json = ChangeJson::new(&c, Reason::Block(reason), &ctx.actor, &note);
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
    let json = ChangeJson::new(&c, reason, &ctx.actor, &note);
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
