//! The message rows: enqueue (the account's state check, its limits and the
//! insert in one transaction), listing and showing messages, and releasing
//! or deleting one of them.

use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::accounts::{Transition, account_for_submit, set_state};
use super::counters::{Counter, bump_daily, count_submission};
use super::quota;
use super::{Result, Store, StoreError};
use crate::account::{self, BlockReason, RateLimit, Reason};
use crate::cluster::allowance::Admit;
use crate::dsn_params::{Envid, Notify, Ret};
use crate::log::{self, Level};
use crate::queue::{MessageState, RecipientState};
use crate::sanitize;

/// The columns [`message_from_row`] reads, in order (`m` is `messages`, `a` `accounts`).
macro_rules! message_cols {
    () => {
        "m.id, m.qid, a.name, m.state, m.created, m.next_attempt, m.attempts, m.sender,
         m.size, m.subject, m.script, m.cwd, m.uid, m.last_error, m.done_at,
         (SELECT count(*) FROM recipients r WHERE r.message_id = m.id)"
    };
}

/// A message to enqueue.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub qid: &'a str,
    pub account: &'a str,
    pub uid: u32,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub data: &'a [u8],
    pub subject: &'a str,
    pub script: &'a str,
    pub cwd: &'a str,
    pub dsn_notify: Option<Notify>,
    pub dsn_ret: Option<Ret>,
    pub envid: Option<&'a Envid>,
    pub body_8bit: bool,
    /// Mail from scriptmail itself (reports): relayed even for a blocked
    /// account and not counted against it.
    pub system: bool,
}

impl<'a> NewMessage<'a> {
    /// A message of `account` with this envelope and these bytes, and
    /// nothing else: no subject or script recorded, no DSN parameters, not
    /// scriptmail's own. Set the rest with struct update syntax.
    pub fn new(
        qid: &'a str,
        account: &'a str,
        uid: u32,
        sender: &'a str,
        recipients: &'a [String],
        data: &'a [u8],
    ) -> NewMessage<'a> {
        NewMessage {
            qid,
            account,
            uid,
            sender,
            recipients,
            data,
            subject: "",
            script: "",
            cwd: "",
            dsn_notify: None,
            dsn_ret: None,
            envid: None,
            body_8bit: false,
            system: false,
        }
    }
}

/// Node-wide defaults the enqueue transaction applies.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnqueuePolicy {
    pub max_per_day: u64,
    pub max_per_hour: u64,
    /// Cluster mode (docs/cluster.md): the limits count the account's mail
    /// on every node, through the allowances relayd's sync thread keeps
    /// (`quota.rs`).
    pub cluster: bool,
}

impl From<&crate::config::Config> for EnqueuePolicy {
    fn from(cfg: &crate::config::Config) -> Self {
        EnqueuePolicy {
            max_per_day: cfg.limits.max_per_day,
            max_per_hour: cfg.limits.max_per_hour,
            cluster: cfg.cluster.is_some(),
        }
    }
}

/// What happened to a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Held because the account is blocked (or was just blocked by a limit).
    pub held: bool,
    /// Set when this very submission tripped a limit and blocked the account.
    pub tripped: Option<RateLimit>,
}

/// A message not yet done, as listed to its sender.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: i64,
    pub qid: String,
    pub size: i64,
    pub created: i64,
    pub state: MessageState,
    pub sender: String,
    pub recipients: Vec<String>,
}

/// One message, without its body.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub qid: String,
    pub account: String,
    pub state: MessageState,
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: i64,
    pub sender: String,
    pub size: i64,
    pub subject: String,
    pub script: String,
    pub cwd: String,
    pub uid: i64,
    pub last_error: String,
    pub done_at: Option<i64>,
    pub nrcpt: i64,
}

/// One message with its recipients (and its bytes while it has them).
#[derive(Debug, Clone)]
pub struct MessageDetail {
    pub row: MessageRow,
    /// Each envelope recipient and its outcome so far.
    pub recipients: Vec<(String, RecipientState)>,
    /// `None` once delivered (bodies are deleted when a message is done).
    pub data: Option<Vec<u8>>,
}

/// Which messages `queue` lists.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub account: Option<String>,
    /// A message state; `None` lists the not-yet-done mail.
    pub state: Option<MessageState>,
    pub limit: i64,
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        qid: r.get(1)?,
        account: r.get(2)?,
        state: r.get(3)?,
        created: r.get(4)?,
        next_attempt: r.get(5)?,
        attempts: r.get(6)?,
        sender: r.get(7)?,
        size: r.get(8)?,
        subject: r.get(9)?,
        script: r.get(10)?,
        cwd: r.get(11)?,
        uid: r.get(12)?,
        last_error: r.get(13)?,
        done_at: r.get(14)?,
        nrcpt: r.get(15)?,
    })
}

impl Store {
    /// Durably enqueue a message: in one transaction, find or create the
    /// account, apply its limits, and insert the message as `queued` (the
    /// account sends) or `held` (it does not).
    pub fn enqueue(
        &mut self,
        m: &NewMessage<'_>,
        policy: EnqueuePolicy,
        now: i64,
    ) -> Result<Enqueued> {
        let tx = self.write_tx()?;
        let done = enqueue_in(&tx, m, policy, now)?;
        tx.commit()?;
        Ok(done)
    }

    /// Enqueue a message a tenant (or `mailq-ctl test`) submitted, as
    /// [`Store::enqueue`] does, and log it ([`log_enqueued`]; `extra`, e.g.
    /// ` actor="root"`, goes before the status).
    pub fn submit(
        &mut self,
        m: &NewMessage<'_>,
        policy: EnqueuePolicy,
        now: i64,
        extra: &str,
    ) -> Result<Enqueued> {
        let r = self.enqueue(m, policy, now)?;
        log_enqueued(m, &r, extra, None);
        Ok(r)
    }

    /// An account's mail that is not done yet (held, queued, deferred,
    /// sending), oldest first: what `sendmail -bp` shows a tenant.
    pub fn pending_of(&self, account: &str) -> Result<Vec<Pending>> {
        let mut stmt = self.conn.prepare_cached(concat!(
            "SELECT m.id, m.qid, m.size, m.created, m.state, m.sender FROM messages m
             JOIN accounts a ON a.id = m.account_id
             WHERE a.name = ?1 AND m.",
            pending!(),
            " ORDER BY m.created"
        ))?;
        let rows = stmt
            .query_map([account], |r| {
                Ok(Pending {
                    id: r.get(0)?,
                    qid: r.get(1)?,
                    size: r.get(2)?,
                    created: r.get(3)?,
                    state: r.get(4)?,
                    sender: r.get(5)?,
                    recipients: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for mut p in rows {
            p.recipients = self.recipients_of(p.id)?;
            out.push(p);
        }
        Ok(out)
    }

    /// The envelope recipients of a message.
    pub fn recipients_of(&self, id: i64) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT rcpt FROM recipients WHERE message_id = ?1 ORDER BY rcpt")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Messages for `queue`: not-yet-done mail oldest first, or the newest
    /// messages in one state.
    pub fn messages(&self, f: &QueueFilter) -> Result<Vec<MessageRow>> {
        let account_id = match &f.account {
            Some(name) => Some(self.account(name)?.id),
            None => None,
        };
        let limit = f.limit.max(1);
        let mut args: Vec<&dyn ToSql> = Vec::with_capacity(3);
        if let Some(id) = &account_id {
            args.push(id);
        }
        if let Some(state) = &f.state {
            args.push(state);
        }
        args.push(&limit);
        let sql = listing_sql(account_id.is_some(), f.state);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(&*args, message_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One message by queue id, with its recipients and (if `with_data` and
    /// it still has them) its bytes.
    pub fn message(&self, qid: &str, with_data: bool) -> Result<MessageDetail> {
        let row = self
            .conn
            .prepare_cached(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.qid = ?1"
            ))?
            .query_row([qid], message_from_row)
            .optional()?
            .ok_or_else(|| StoreError::NoMessage(qid.to_string()))?;
        let recipients = self
            .conn
            .prepare_cached(
                "SELECT rcpt, state FROM recipients WHERE message_id = ?1 ORDER BY rcpt",
            )?
            .query_map([row.id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let data = if with_data {
            self.conn
                .prepare_cached("SELECT data FROM bodies WHERE message_id = ?1")?
                .query_row([row.id], |r| r.get(0))
                .optional()?
        } else {
            None
        };
        Ok(MessageDetail {
            row,
            recipients,
            data,
        })
    }

    /// Release one held message to `queued`, due now (even for a blocked
    /// account: the admin vouches for this one message, so it stays exempt
    /// from the block through its retries, until the account is blocked
    /// again; see `mod.rs`, "Claims and blocks").
    pub fn release(&mut self, qid: &str, now: i64) -> Result<MessageRow> {
        let tx = self.write_tx()?;
        let n = tx
            .prepare_cached(
                "UPDATE messages SET state = 'queued', next_attempt = ?2, released = 1
                 WHERE qid = ?1 AND state = 'held'",
            )?
            .execute(params![qid, now])?;
        if n == 0 {
            let state: Option<MessageState> = tx
                .prepare_cached("SELECT state FROM messages WHERE qid = ?1")?
                .query_row([qid], |r| r.get(0))
                .optional()?;
            return Err(match state {
                None => StoreError::NoMessage(qid.to_string()),
                Some(s) => StoreError::Conflict(format!(
                    "message {qid} is {s}, not held: only held mail can be released"
                )),
            });
        }
        tx.commit()?;
        self.message(qid, false).map(|d| d.row)
    }

    /// Delete one not-yet-sent message (held, queued or deferred). A
    /// message on a connection (`sending`: its transaction has begun) and
    /// the history of done mail cannot be deleted.
    pub fn delete_message(&mut self, qid: &str) -> Result<MessageRow> {
        let before = self.message(qid, false)?.row;
        let tx = self.write_tx()?;
        let state: Option<MessageState> = tx
            .prepare_cached("SELECT state FROM messages WHERE id = ?1")?
            .query_row([before.id], |r| r.get(0))
            .optional()?;
        match state {
            None => return Err(StoreError::NoMessage(qid.to_string())),
            Some(s) if s.is_deletable() => delete_message_rows(&tx, before.id)?,
            Some(MessageState::Sending) => {
                return Err(StoreError::Conflict(format!(
                    "message {qid} is being sent now (on a connection to the smarthost): it cannot be recalled"
                )));
            }
            Some(s) => {
                return Err(StoreError::Conflict(format!(
                    "message {qid} is {s}: only held, queued or deferred mail can be deleted"
                )));
            }
        }
        tx.commit()?;
        Ok(before)
    }
}

/// [`Store::enqueue`]'s work inside a write transaction the caller owns
/// (one message of a group commit: `intake.rs`).
pub(super) fn enqueue_in(
    tx: &Transaction<'_>,
    m: &NewMessage<'_>,
    policy: EnqueuePolicy,
    now: i64,
) -> Result<Enqueued> {
    let (account_id, mut state, limits) = account_for_submit(tx, m.account, policy, now)?;
    let mut tripped = None;
    let mut gated = false;
    if !m.system {
        let (today, this_hour) = count_submission(tx, account_id, now)?;
        // Cluster mode counts the account's mail on every node
        // (`quota.rs`); a node alone counts its own.
        let over = match state.is_sending() {
            false => None,
            true if policy.cluster => match quota::admit(tx, account_id, &limits, now)? {
                Admit::Pass => None,
                Admit::Gate => {
                    gated = true;
                    None
                }
                Admit::Trip(limit) => Some(limit),
            },
            true => limits.exceeded(today, this_hour),
        };
        if let Some(limit) = over {
            let change = Transition {
                old: state,
                new: BlockReason::Limit.target(),
                reason: Reason::Block(BlockReason::Limit),
                actor: account::SYSTEM_ACTOR,
                note: &format!("{limit} exceeded"),
            };
            set_state(tx, account_id, &change, now)?;
            state = change.new;
            tripped = Some(limit);
        }
    }
    let held = !m.system && !state.is_sending();
    let initial = if held {
        MessageState::Held
    } else {
        MessageState::Queued
    };
    let id = insert_message(tx, m, account_id, initial, now)?;
    if held {
        bump_daily(tx, account_id, now, Counter::Held, 1)?;
    } else if gated {
        quota::gate(tx, id)?;
    }
    Ok(Enqueued { held, tripped })
}

/// Insert a message with its body and recipients, in state `state`, due
/// now; its id.
pub(super) fn insert_message(
    tx: &Transaction<'_>,
    m: &NewMessage<'_>,
    account_id: i64,
    state: MessageState,
    now: i64,
) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO messages (qid, account_id, state, created, next_attempt, sender, size,
             subject, script, cwd, uid, dsn_notify, dsn_ret, envid, body_8bit, system)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        m.qid,
        account_id,
        state,
        now,
        m.sender,
        m.data.len() as i64,
        m.subject,
        m.script,
        m.cwd,
        m.uid,
        // Stored as the text the relay sends (`dsn_params`).
        m.dsn_notify.map(|n| n.to_string()),
        m.dsn_ret.map(|r| r.to_string()),
        m.envid.map(Envid::as_str),
        m.body_8bit,
        m.system,
    ])?;
    let id = tx.last_insert_rowid();
    tx.prepare_cached("INSERT INTO bodies (message_id, data) VALUES (?1, ?2)")?
        .execute(params![id, m.data])?;
    let mut ins =
        tx.prepare_cached("INSERT OR IGNORE INTO recipients (message_id, rcpt) VALUES (?1, ?2)")?;
    for r in m.recipients {
        ins.execute(params![id, r])?;
    }
    Ok(id)
}

/// Delete one message and everything hanging off it.
pub(super) fn delete_message_rows(tx: &Transaction<'_>, id: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM recipients WHERE message_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM bodies WHERE message_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// The statement behind [`Store::messages`]; its parameters are the
/// account id (if `by_account`), the state (if any), then the limit.
///
/// Not-yet-done mail is listed oldest first through the `messages_pending`
/// partial index, so its condition is spelled out even when one pending
/// state is asked for (see `mod.rs`, "Indexes"); one account's done mail
/// newest first through `messages_account`; everyone's done mail by newest
/// id, so the scan stops at the limit. A test checks the plans.
pub(super) fn listing_sql(by_account: bool, state: Option<MessageState>) -> String {
    let mut conds: Vec<&str> = Vec::with_capacity(3);
    if by_account {
        conds.push("m.account_id = ?");
    }
    let pending = state.is_none_or(MessageState::is_pending);
    if pending {
        conds.push(concat!("m.", pending!()));
    }
    if state.is_some() {
        conds.push("m.state = ?");
    }
    let order = match (pending, by_account) {
        (true, _) => "m.created, m.id",
        (false, true) => "m.created DESC, m.id DESC",
        (false, false) => "m.id DESC",
    };
    format!(
        concat!(
            "SELECT ",
            message_cols!(),
            " FROM messages m JOIN accounts a ON a.id = m.account_id WHERE {} ORDER BY {} LIMIT ?"
        ),
        conds.join(" AND "),
        order
    )
}

/// Log a message the queue took (docs/mailq-ctl.md, "Logging"): one line
/// with its envelope, `extra` fields (` key=value`, values quoted by the
/// caller), whether it was queued or held and, for a submission relayd
/// took, the way it came (`via`); and a warning when it tripped a limit
/// and so blocked its account. relayd's committer, the maildrop import and
/// `mailq-ctl test` all log through here.
pub fn log_enqueued(m: &NewMessage<'_>, r: &Enqueued, extra: &str, via: Option<&str>) {
    let status = if r.held {
        MessageState::Held
    } else {
        MessageState::Queued
    };
    let via = via.map(|v| format!(" via={v}")).unwrap_or_default();
    log::log(
        Level::Info,
        &format!(
            "qid={} account={} uid={} from=<{}> nrcpt={} size={} script={}{extra} status={status}{via}",
            m.qid,
            sanitize::line(m.account),
            m.uid,
            sanitize::line(m.sender),
            m.recipients.len(),
            m.data.len(),
            log::quote(m.script),
        ),
    );
    if let Some(limit) = r.tripped {
        log::log(
            Level::Warning,
            &format!(
                "account={} state={} reason={} stat=\"{limit} exceeded, new mail is held\"",
                sanitize::line(m.account),
                BlockReason::Limit.target(),
                BlockReason::Limit.as_str(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{BlockReason, State};
    use crate::clock::HOUR_MS;
    use crate::store::testing::{T0, deliver_next, message, query_plan, store, submit, submit_to};
    use crate::store::{Limit, Settings};

    fn policy(max_per_day: u64, max_per_hour: u64) -> EnqueuePolicy {
        EnqueuePolicy {
            max_per_day,
            max_per_hour,
            cluster: false,
        }
    }

    fn enqueue(s: &mut Store, qid: &str, p: EnqueuePolicy, now: i64) -> Enqueued {
        let rcpts = ["a@example.com".to_string()];
        s.enqueue(&message("alice", qid, &rcpts), p, now).unwrap()
    }

    /// The first mail creates the account (`ok`); the message is queued,
    /// due at once, with its body, its recipients (each once) and today's
    /// and this hour's submission counted.
    #[test]
    fn enqueue_creates_the_account_and_queues_the_message_due_now() {
        let (_d, mut s) = store();
        let rcpts = ["a@example.com", "b@example.com", "a@example.com"];
        let r = submit_to(&mut s, "alice", "Q1", &rcpts, false, T0);
        assert_eq!(
            r,
            Enqueued {
                held: false,
                tripped: None
            }
        );
        let a = s.account("alice").unwrap();
        assert_eq!((a.state, a.first_seen, a.since), (State::Ok, T0, T0));
        let d = s.message("Q1", true).unwrap();
        assert_eq!(d.row.state, MessageState::Queued);
        assert_eq!(
            (d.row.created, d.row.next_attempt, d.row.attempts),
            (T0, T0, 0)
        );
        assert_eq!((d.row.nrcpt, d.row.uid), (2, 1000));
        assert_eq!(
            d.recipients,
            [
                ("a@example.com".into(), RecipientState::Pending),
                ("b@example.com".into(), RecipientState::Pending)
            ]
        );
        assert_eq!(d.data.as_deref(), Some(&b"Subject: t\r\n\r\nbody\r\n"[..]));
        assert_eq!(s.next_due().unwrap(), Some(T0));
        let today = s.daily_stats("alice", 1, T0).unwrap()[0];
        assert_eq!((today.submitted, today.held), (1, 0));
        let pending = s.pending_of("alice").unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].recipients, ["a@example.com", "b@example.com"]);
        // A queue id is unique: the same one again is refused, not queued twice.
        let again = s.enqueue(
            &message("alice", "Q1", &["c@example.com".into()]),
            EnqueuePolicy::default(),
            T0,
        );
        assert!(matches!(again, Err(StoreError::Sql(_))), "{again:?}");
        assert_eq!(s.pending_of("alice").unwrap().len(), 1);
    }

    /// A blocked account's mail is held and counted as held, never queued.
    #[test]
    fn enqueue_for_a_blocked_account_holds() {
        let (_d, mut s) = store();
        submit(&mut s, "alice", "Q1", T0);
        s.block("alice", BlockReason::Spam, "root", "", T0 + 1)
            .unwrap();
        assert!(submit(&mut s, "alice", "Q2", T0 + 2));
        assert_eq!(
            s.message("Q2", false).unwrap().row.state,
            MessageState::Held
        );
        // Q1 was held by the block, Q2 on arrival.
        assert_eq!(s.daily_stats("alice", 1, T0).unwrap()[0].held, 2);
        assert_eq!(s.next_due().unwrap(), None);
    }

    /// The submission that goes over the daily limit blocks the account
    /// (`ko`, reason `limit`, by scriptmail) and is held with the mail not
    /// yet relayed; the ones before it went out as usual.
    #[test]
    fn the_submission_over_the_daily_limit_blocks_the_account() {
        let (_d, mut s) = store();
        for i in 0..3 {
            let r = enqueue(&mut s, &format!("Q{i}"), policy(3, 0), T0 + i);
            assert_eq!((r.held, r.tripped), (false, None), "Q{i}");
        }
        let r = enqueue(&mut s, "Q3", policy(3, 0), T0 + 3);
        assert_eq!((r.held, r.tripped), (true, Some(RateLimit::PerDay)));
        let a = s.account("alice").unwrap();
        assert_eq!((a.state, a.reason.as_str()), (State::Ko, "limit"));
        let event = s.history("alice", 1).unwrap().pop().unwrap();
        assert_eq!(event.actor, account::SYSTEM_ACTOR);
        assert_eq!(event.note, "max_per_day exceeded");
        let q = s.queue_counts(a.id).unwrap();
        assert_eq!((q.held, q.queued), (4, 0));
        // Blocked now: more mail is held without tripping again.
        let r = enqueue(&mut s, "Q4", policy(3, 0), T0 + 4);
        assert_eq!((r.held, r.tripped), (true, None));
        assert_eq!(s.daily_stats("alice", 1, T0).unwrap()[0].submitted, 5);
    }

    /// The hourly limit counts per UTC hour: the next hour starts afresh.
    #[test]
    fn the_hourly_limit_counts_per_hour() {
        let (_d, mut s) = store();
        let hour = (T0 / HOUR_MS + 1) * HOUR_MS;
        for i in 0..2 {
            assert_eq!(
                enqueue(&mut s, &format!("A{i}"), policy(0, 2), hour - 10 + i).tripped,
                None
            );
        }
        for i in 0..2 {
            assert_eq!(
                enqueue(&mut s, &format!("B{i}"), policy(0, 2), hour + i).tripped,
                None
            );
        }
        let r = enqueue(&mut s, "B2", policy(0, 2), hour + 2);
        assert_eq!((r.held, r.tripped), (true, Some(RateLimit::PerHour)));
    }

    /// The account's own limits beat the node's; 0 is unlimited.
    #[test]
    fn the_account_s_own_limit_applies() {
        let (_d, mut s) = store();
        let own = |day| Settings {
            max_per_day: Some(day),
            ..Settings::default()
        };
        s.configure("alice", &own(Limit::Value(0)), T0).unwrap();
        for i in 0..5 {
            assert_eq!(
                enqueue(&mut s, &format!("Q{i}"), policy(2, 0), T0).tripped,
                None
            );
        }
        s.configure("alice", &own(Limit::Value(6)), T0).unwrap();
        assert_eq!(enqueue(&mut s, "Q5", policy(2, 0), T0).tripped, None);
        assert_eq!(
            enqueue(&mut s, "Q6", policy(100, 0), T0).tripped,
            Some(RateLimit::PerDay)
        );
    }

    /// Scriptmail's own mail (reports) is queued for a blocked account, and
    /// neither counted nor stopped by the limits.
    #[test]
    fn system_mail_is_not_counted_nor_held() {
        let (_d, mut s) = store();
        submit(&mut s, "alice", "Q0", T0);
        s.block("alice", BlockReason::Manual, "root", "", T0)
            .unwrap();
        let rcpts = ["admin@example.com".to_string()];
        for i in 0..3 {
            let qid = format!("S{i}");
            let m = NewMessage {
                system: true,
                ..message("alice", &qid, &rcpts)
            };
            let r = s.enqueue(&m, policy(1, 1), T0 + 1).unwrap();
            assert_eq!((r.held, r.tripped), (false, None));
        }
        assert_eq!(
            s.message("S2", false).unwrap().row.state,
            MessageState::Queued
        );
        let today = s.daily_stats("alice", 1, T0).unwrap()[0];
        assert_eq!((today.submitted, today.held), (1, 1));
    }

    fn listed(
        s: &Store,
        account: Option<&str>,
        state: Option<MessageState>,
        limit: i64,
    ) -> Vec<String> {
        s.messages(&QueueFilter {
            account: account.map(str::to_string),
            state,
            limit,
        })
        .unwrap()
        .into_iter()
        .map(|m| m.qid)
        .collect()
    }

    /// Not-yet-done mail oldest first, done mail newest first, by account
    /// and by state.
    #[test]
    fn queue_lists_by_account_and_state() {
        let (_d, mut s) = store();
        submit(&mut s, "alice", "A1", T0);
        submit(&mut s, "bob", "B1", T0 + 1);
        submit(&mut s, "alice", "A2", T0 + 2);
        submit(&mut s, "alice", "A3", T0 + 3);
        assert_eq!(deliver_next(&mut s, T0 + 4), "A1");
        assert_eq!(deliver_next(&mut s, T0 + 5), "B1");
        s.block("alice", BlockReason::Manual, "root", "", T0 + 6)
            .unwrap();
        s.unblock("alice", false, "root", "", T0 + 7).unwrap();
        s.block("alice", BlockReason::Manual, "root", "", T0 + 8)
            .unwrap();
        s.release("A3", T0 + 9).unwrap();
        // A2 held, A3 queued (released), A1 and B1 sent.
        assert_eq!(listed(&s, None, None, 100), ["A2", "A3"]);
        assert_eq!(listed(&s, Some("alice"), None, 100), ["A2", "A3"]);
        assert!(listed(&s, Some("bob"), None, 100).is_empty());
        assert_eq!(listed(&s, None, Some(MessageState::Held), 100), ["A2"]);
        assert_eq!(
            listed(&s, Some("alice"), Some(MessageState::Queued), 100),
            ["A3"]
        );
        assert_eq!(
            listed(&s, None, Some(MessageState::Sent), 100),
            ["B1", "A1"]
        );
        assert_eq!(
            listed(&s, Some("alice"), Some(MessageState::Sent), 100),
            ["A1"]
        );
        assert_eq!(listed(&s, None, Some(MessageState::Sent), 1), ["B1"]);
        assert_eq!(listed(&s, None, None, 0), ["A2"], "a limit below 1 is 1");
        assert!(matches!(
            s.messages(&QueueFilter {
                account: Some("nobody".into()),
                state: None,
                limit: 10,
            }),
            Err(StoreError::NoAccount(_))
        ));
    }

    /// Each shape of the listing uses an index: one account's mail is a
    /// search; everyone's pending mail goes through the partial index;
    /// everyone's done mail is read newest id first, so it stops at the
    /// limit without sorting the history.
    #[test]
    fn queue_listing_plans_use_the_indexes() {
        let (_d, s) = store();
        for by_account in [true, false] {
            for state in [None].into_iter().chain(MessageState::ALL.map(Some)) {
                let sql = listing_sql(by_account, state);
                let plan = query_plan(&s, &sql);
                if by_account {
                    assert!(plan.contains("SEARCH m USING INDEX"), "{sql}: {plan}");
                    assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
                } else if state.is_none_or(MessageState::is_pending) {
                    assert!(plan.contains("INDEX messages_pending"), "{sql}: {plan}");
                } else {
                    assert!(!plan.contains("TEMP B-TREE"), "{sql}: {plan}");
                }
                let params = usize::from(by_account) + usize::from(state.is_some()) + 1;
                assert_eq!(sql.matches('?').count(), params, "{sql}");
            }
        }
    }
}
