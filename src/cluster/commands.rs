//! Carrying out the change log on a node, and what the issuer waits for
//! (docs/cluster.md, "Commands"): each change is applied to the local
//! copy in revision order and acknowledged per node with what it did —
//! messages held, released or dropped — so `mailq-ctl` reports the
//! cluster's total and `mailq-ctl cluster` the nodes that have not done it.
//!
//! Commands are idempotent (`store/replica.rs`). A purge drops only mail
//! submitted before it was asked for: its cutoff is the store's clock when
//! it was written, turned into this node's clock with the offset measured
//! at each sync, so mail accepted after the request survives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use postgres::Client;

use super::log::{self, Change, Kind};
use super::{Result, count};
use crate::account::{Reason, SYSTEM_ACTOR, State};
use crate::queue::MessageState;
use crate::store::{ClusterAck, MessageRow, ReplicatedState, Store, StoreError};

/// Rows per purge transaction on a node (`sendmail` never waits long).
const PURGE_CHUNK: usize = 5000;

/// What applying a change did that the caller acts on.
#[derive(Debug, Clone, Default)]
pub struct Done {
    pub ack: Option<ClusterAck>,
    /// Mail became due: wake the relay.
    pub wake: bool,
}

/// A node applying changes: this node's name and clock offset, and what
/// the `purging` state held, counted as queued when the purge drops it.
pub struct Applier<'a> {
    pub store: &'a mut Store,
    pub node: &'a str,
    /// The store's clock minus this node's (ms).
    pub offset_ms: i64,
    pub held_by_purging: &'a mut HashMap<String, u64>,
}

impl Applier<'_> {
    /// Apply one change; what to acknowledge (every change is).
    pub fn apply(&mut self, c: &Change, now: i64) -> Result<Done> {
        let local = c.at - self.offset_ms;
        let ack = |count: u64, extra: u64, detail: String| ClusterAck {
            revision: c.revision,
            count: super::big(count),
            extra: super::big(extra),
            detail,
        };
        let mut wake = false;
        let a = match c.kind {
            Kind::State => {
                let Some(state) = c.state else {
                    return Ok(Done::default());
                };
                let held = self.store.replicate_state(
                    &ReplicatedState {
                        account: &c.account,
                        state,
                        reason: &c.reason,
                        since: c.since,
                        actor: &c.actor,
                        note: &c.note,
                        // The automatic block this node made comes back
                        // here: its notice goes from here, once.
                        announce: c.origin == self.node && c.actor == SYSTEM_ACTOR,
                    },
                    now,
                )?;
                if state == State::Purging {
                    *self.held_by_purging.entry(c.account.clone()).or_default() += held;
                }
                ack(held, 0, String::new())
            }
            Kind::Settings => {
                self.store.replicate_settings(
                    &c.account,
                    c.report_to.as_deref(),
                    c.max_per_day,
                    c.max_per_hour,
                    now,
                )?;
                ack(0, 0, String::new())
            }
            Kind::ReleaseHeld => {
                let (moved, left) = match &c.filter {
                    None => (self.store.release_all_held(&c.account, now)?, 0),
                    Some(f) => match self.store.release_held_matching(&c.account, f, local) {
                        Ok(m) => (m.moved, m.left),
                        Err(StoreError::NoAccount(_)) => (0, 0),
                        Err(StoreError::Conflict(why)) => {
                            return Ok(Done {
                                ack: Some(ack(0, 0, error_json(&why))),
                                wake: false,
                            });
                        }
                        Err(e) => return Err(e.into()),
                    },
                };
                wake = moved > 0;
                ack(moved, left, String::new())
            }
            Kind::Purge => match &c.filter {
                None => {
                    let (mut held, mut queued) = (0u64, 0u64);
                    loop {
                        let d = self.store.purge_before(&c.account, local, PURGE_CHUNK)?;
                        held += d.held;
                        queued += d.queued;
                        if ((d.held + d.queued) as usize) < PURGE_CHUNK {
                            break;
                        }
                    }
                    // What the purging state held was queued when the
                    // purge began.
                    let moved = self
                        .held_by_purging
                        .remove(&c.account)
                        .unwrap_or(0)
                        .min(held);
                    ack(held + queued, queued + moved, String::new())
                }
                Some(f) => match self.store.purge_held_matching(&c.account, f, local) {
                    Ok(m) => ack(m.moved, m.left, String::new()),
                    Err(StoreError::NoAccount(_)) => ack(0, 0, String::new()),
                    Err(StoreError::Conflict(why)) => ack(0, 0, error_json(&why)),
                    Err(e) => return Err(e.into()),
                },
            },
            Kind::Release | Kind::Delete => {
                let r = if c.kind == Kind::Release {
                    self.store.release(&c.qid, now)
                } else {
                    self.store.delete_message(&c.qid)
                };
                match r {
                    Ok(m) => {
                        wake = c.kind == Kind::Release;
                        ack(1, 0, row_json(&m))
                    }
                    Err(StoreError::NoMessage(_)) => ack(0, 0, String::new()),
                    Err(StoreError::Conflict(why)) => ack(0, 0, error_json(&why)),
                    Err(e) => return Err(e.into()),
                }
            }
        };
        Ok(Done { ack: Some(a), wake })
    }
}

fn error_json(why: &str) -> String {
    serde_json::json!({ "error": why }).to_string()
}

/// The error a node reported for a command, if any.
pub fn ack_error(detail: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(detail).ok()?;
    v.get("error")?.as_str().map(str::to_string)
}

/// A message as a node reports it in an acknowledgement.
fn row_json(m: &MessageRow) -> String {
    serde_json::json!({
        "id": m.id, "qid": m.qid, "account": m.account, "state": m.state.as_str(),
        "created": m.created, "next_attempt": m.next_attempt, "attempts": m.attempts,
        "sender": m.sender, "size": m.size, "subject": m.subject, "script": m.script,
        "cwd": m.cwd, "uid": m.uid, "last_error": m.last_error, "done_at": m.done_at,
        "nrcpt": m.nrcpt,
    })
    .to_string()
}

/// The message a node reported (see [`row_json`]).
pub fn row_from_json(detail: &str) -> Option<MessageRow> {
    let v: serde_json::Value = serde_json::from_str(detail).ok()?;
    let i = |k: &str| v.get(k).and_then(serde_json::Value::as_i64);
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    Some(MessageRow {
        id: i("id")?,
        qid: s("qid")?,
        account: s("account")?,
        state: MessageState::parse(&s("state")?)?,
        created: i("created")?,
        next_attempt: i("next_attempt")?,
        attempts: i("attempts")?,
        sender: s("sender")?,
        size: i("size")?,
        subject: s("subject")?,
        script: s("script")?,
        cwd: s("cwd")?,
        uid: i("uid")?,
        last_error: s("last_error")?,
        done_at: i("done_at"),
        nrcpt: i("nrcpt")?,
    })
}

/// One node's acknowledgement of a change.
#[derive(Debug, Clone)]
pub struct Ack {
    pub count: u64,
    pub extra: u64,
    pub detail: String,
}

/// Wait until every active node acknowledged `revision`, or `wait` passed;
/// the acknowledgements so far and the active nodes that have not.
pub fn wait_acks(
    client: &mut Client,
    revision: i64,
    wait: Duration,
) -> Result<(Vec<Ack>, Vec<String>)> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        // Who is missing first, then the acknowledgements: read the other
        // way round, one arriving in between would be missing from both.
        let missing: Vec<String> = client
            .query(
                "SELECT n.name FROM nodes n WHERE NOT n.retired
                   AND n.last_sync > now() - make_interval(secs => n.lease_ms * 2 / 1000.0)
                   AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.revision = $1 AND a.node = n.name)
                 ORDER BY n.name",
                &[&revision],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let acks: Vec<Ack> = client
            .query(
                "SELECT count, extra, detail FROM acks WHERE revision = $1 ORDER BY node",
                &[&revision],
            )?
            .iter()
            .map(|r| Ack {
                count: count(r.get(0)),
                extra: count(r.get(1)),
                detail: r.get(2),
            })
            .collect();
        if missing.is_empty() || start.elapsed() >= wait {
            return Ok((acks, missing));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// End a purge once every active node has done it: the account goes back
/// to `ok` and the mail it held meanwhile is released (two changes, after
/// the purge in the log, so a node that comes back later drops first and
/// releases after). Whoever sees it done first — the last node to
/// acknowledge, or `mailq-ctl` waiting for them — ends it; the others
/// find it ended. The revision of the release, when this call ended it.
pub fn finish_purge(client: &mut Client, account: &str, purge: i64) -> Result<Option<i64>> {
    let mut tx = client.transaction()?;
    let Some(row) = tx.query_opt(
        "SELECT state, purge FROM accounts WHERE name = $1 FOR UPDATE",
        &[&account],
    )?
    else {
        return Ok(None);
    };
    let (state, current): (String, Option<i64>) = (row.get(0), row.get(1));
    if State::parse(&state) != Some(State::Purging) || current != Some(purge) {
        return Ok(None);
    }
    let pending: i64 = tx
        .query_one(
            "SELECT count(*) FROM nodes n WHERE NOT n.retired
               AND n.last_sync > now() - make_interval(secs => n.lease_ms * 2 / 1000.0)
               AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.revision = $1 AND a.node = n.name)",
            &[&purge],
        )?
        .get(0);
    if pending > 0 {
        return Ok(None);
    }
    let Some(p) = log::get(&mut tx, purge)? else {
        return Ok(None);
    };
    let now: i64 = tx
        .query_one(&format!("SELECT {}", log::NOW_MS), &[])?
        .get(0);
    tx.execute(
        "UPDATE accounts SET state = 'ok', reason = $2, since = $3, purge = NULL WHERE name = $1",
        &[&account, &Reason::Purge.as_str(), &now],
    )?;
    tx.execute(
        "INSERT INTO events (account, at, old_state, new_state, reason, actor, note)
         VALUES ($1, $2, 'purging', 'ok', $3, $4, '')",
        &[&account, &now, &Reason::Purge.as_str(), &p.actor],
    )?;
    let mut ok = Change::new(account, Kind::State);
    ok.state = Some(State::Ok);
    ok.reason = Reason::Purge.as_str().into();
    ok.since = now;
    ok.actor = p.actor.clone();
    log::append(&mut tx, &ok)?;
    let release = log::append(&mut tx, &Change::new(account, Kind::ReleaseHeld))?;
    tx.commit()?;
    Ok(Some(release))
}

/// Push this node's acknowledgements; for a purge it completes, end it.
pub fn push_acks(client: &mut Client, store: &mut Store, node: &str) -> Result<()> {
    let acks = store.cluster_acks()?;
    let Some(last) = acks.last().map(|a| a.revision) else {
        return Ok(());
    };
    let mut purges = Vec::new();
    {
        let mut tx = client.transaction()?;
        for a in &acks {
            tx.execute(
                "INSERT INTO acks (revision, node, count, extra, detail)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&a.revision, &node, &a.count, &a.extra, &a.detail],
            )?;
            if let Some(row) = tx.query_opt(
                "SELECT account FROM changes WHERE revision = $1 AND kind = 'purge' AND filter = ''",
                &[&a.revision],
            )? {
                purges.push((row.get::<_, String>(0), a.revision));
            }
        }
        tx.commit()?;
    }
    store.cluster_acks_sent(last)?;
    for (account, revision) in purges {
        finish_purge(client, &account, revision)?;
    }
    Ok(())
}
