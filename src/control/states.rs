//! The operations that change an account's state: `block`, `unblock` and
//! `purge` (docs/mailq-ctl.md, "Account states"). Each is logged with its
//! actor and note.

use serde::Serialize;

use super::{Control, Result, check_note, note_field};
use crate::account::{BlockReason, Reason, State};
use crate::store::Change;

/// `block`, `unblock`: the change, who made it and what it moved.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeDoc {
    pub account: String,
    pub old_state: State,
    pub new_state: State,
    /// False when unblocking an account that sends already.
    pub changed: bool,
    pub reason: Reason,
    pub actor: String,
    pub note: String,
    /// Held messages sent back to the queue (unblock).
    pub released: u64,
    /// Queued or deferred messages the block held (block).
    pub held: u64,
}

/// `purge`: what was dropped, and the mail submitted meanwhile that was released.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeDoc {
    pub account: String,
    pub old_state: State,
    /// `ok`; in cluster mode `purging` while a node has not done its part.
    pub new_state: State,
    pub dropped: u64,
    pub dropped_held: u64,
    pub dropped_queued: u64,
    pub released: u64,
    pub actor: String,
}

impl Control {
    fn change_doc(&self, c: Change, reason: Reason, note: String) -> ChangeDoc {
        ChangeDoc {
            changed: c.changed(),
            account: c.account,
            old_state: c.old,
            new_state: c.new,
            reason,
            actor: self.actor.clone(),
            note,
            released: c.released,
            held: c.held,
        }
    }

    /// `block ACCOUNT`: its new mail is held, and so is its queued and
    /// deferred mail, in the same transaction. A name the node resolves is
    /// created first (see "Accounts before their first mail").
    pub fn block(
        &mut self,
        name: &str,
        reason: BlockReason,
        note: Option<&str>,
        now: i64,
    ) -> Result<ChangeDoc> {
        let note = check_note(note)?;
        if self
            .authority
            .account(name)
            .is_err_and(|e| e.is_no_account())
            && self.resolvable(name)
        {
            // Before its first mail: the account starts `ok`, and is blocked
            // at once (a mail submitted in between is held by the block).
            self.authority.ensure_account(name, now)?;
        }
        let c = self
            .authority
            .block(name, reason, &self.actor, &note, now)?;
        self.log_change(
            &c.account,
            c.old,
            c.new,
            Reason::Block(reason),
            &format!(" held={}{}", c.held, note_field(&note)),
        );
        Ok(self.change_doc(c, Reason::Block(reason), note))
    }

    /// `unblock ACCOUNT [--force]`: back to sending, the held mail released
    /// in the same transaction and the relay woken.
    pub fn unblock(
        &mut self,
        name: &str,
        force: bool,
        note: Option<&str>,
        now: i64,
    ) -> Result<ChangeDoc> {
        let note = check_note(note)?;
        let c = self
            .authority
            .unblock(name, force, &self.actor, &note, now)?;
        let reason = if force {
            Reason::Force
        } else {
            Reason::Unblock
        };
        if c.changed() {
            self.log_change(
                &c.account,
                c.old,
                c.new,
                reason,
                &format!(" released={}{}", c.released, note_field(&note)),
            );
        }
        if c.released > 0 {
            self.wake_relay();
        }
        Ok(self.change_doc(c, reason, note))
    }

    /// `purge ACCOUNT`: drop its held and not-yet-sent mail, then `ok` with
    /// the mail that arrived meanwhile released. The caller has had it
    /// confirmed.
    pub fn purge(&mut self, name: &str, note: Option<&str>, now: i64) -> Result<PurgeDoc> {
        let note = check_note(note)?;
        let p = self.authority.purge(name, &self.actor, &note, now)?;
        if p.old != State::Purging {
            self.log_change(
                &p.account,
                p.old,
                State::Purging,
                Reason::Purge,
                &note_field(&note),
            );
        }
        let dropped = p.dropped_held + p.dropped_queued;
        if p.new != State::Purging {
            self.log_change(
                &p.account,
                State::Purging,
                p.new,
                Reason::Purge,
                &format!(" dropped={dropped} released={}", p.released),
            );
        }
        if p.released > 0 {
            self.wake_relay();
        }
        Ok(PurgeDoc {
            account: p.account,
            old_state: p.old,
            new_state: p.new,
            dropped,
            dropped_held: p.dropped_held,
            dropped_queued: p.dropped_queued,
            released: p.released,
            actor: self.actor.clone(),
        })
    }
}
