//! Helpers for the store's unit tests: a fresh queue in a temporary
//! directory, and messages to put in it.

use super::accounts::{Transition, set_state};
use super::{
    Attempt, Durability, EnqueuePolicy, Enqueued, NewMessage, Protection, RcptOutcome, Store,
};
use crate::account::{Reason, State};
use crate::clock::DAY_MS;
use crate::queue::MessageState;

/// A time well inside the supported range: 2026-11-22T13:24:18Z.
pub const T0: i64 = 1_795_353_858_000;

/// A new queue database in a temporary directory (kept alive by the guard).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("queue.db"), Durability::Normal).unwrap();
    (dir, s)
}

/// The ENVID of [`message`]'s messages.
static ENV_1: std::sync::LazyLock<crate::dsn_params::Envid> =
    std::sync::LazyLock::new(|| crate::dsn_params::Envid::new(b"ENV-1").unwrap());

/// A message of `account` to `rcpts`, as a PHP script would submit it
/// (ENVID `ENV-1`).
pub fn message<'a>(account: &'a str, qid: &'a str, rcpts: &'a [String]) -> NewMessage<'a> {
    let data = b"Subject: t\r\n\r\nbody\r\n";
    NewMessage {
        subject: "t",
        script: "/var/www/x.php",
        cwd: "/var/www",
        envid: Some(&ENV_1),
        ..NewMessage::new(qid, account, 1000, "www@node.example.net", rcpts, data)
    }
}

/// Enqueue a message of `account` to `rcpts` (scriptmail's own when
/// `system`) under the default policy.
pub fn submit_to(
    s: &mut Store,
    account: &str,
    qid: &str,
    rcpts: &[&str],
    system: bool,
    now: i64,
) -> Enqueued {
    let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
    let m = NewMessage {
        system,
        ..message(account, qid, &rcpts)
    };
    s.enqueue(&m, EnqueuePolicy::default(), now).unwrap()
}

/// Enqueue a message of `account` to one recipient; whether it was held.
pub fn submit(s: &mut Store, account: &str, qid: &str, now: i64) -> bool {
    submit_to(s, account, qid, &["someone@example.com"], false, now).held
}

/// A message's state, by queue id.
pub fn state_of(s: &Store, qid: &str) -> MessageState {
    s.message(qid, false).unwrap().row.state
}

/// A new queue whose error-ratio rule trips above `ratio` over a day,
/// from `min_sample` mails on.
pub fn store_with_ratio(ratio: f64, min_sample: u64) -> (tempfile::TempDir, Store) {
    let (dir, mut s) = store();
    s.set_protection(Protection {
        bounce_ratio: ratio,
        window_ms: DAY_MS,
        min_sample,
    });
    (dir, s)
}
/// Submit one message to `rcpt` and relay it with this outcome.
pub fn relay(s: &mut Store, account: &str, qid: &str, outcome: RcptOutcome, now: i64) {
    submit_to(s, account, qid, &["rcpt@example.com"], false, now);
    // Other mail due (an account's first message, left queued) is
    // claimed and left on its connection.
    let claim = loop {
        let c = s.claim_next(now).unwrap().expect("a due message");
        if c.qid == qid {
            break c;
        }
    };
    let attempt = Attempt {
        results: vec![("rcpt@example.com".into(), outcome)],
        retry_at: now + 60_000,
        expire: false,
    };
    assert!(s.record_attempt(&claim, &attempt, now).unwrap());
}

/// An account's state.
pub fn account_state(s: &Store, account: &str) -> State {
    s.account(account).unwrap().state
}

/// Move an account to `new` as an admin would (reason `unblock`).
pub fn set_account_state(s: &mut Store, account: &str, new: State, now: i64) {
    let a = s.account(account).unwrap();
    let tx = s.write_tx().unwrap();
    let change = Transition {
        old: a.state,
        new,
        reason: Reason::Unblock,
        actor: "admin",
        note: "",
    };
    set_state(&tx, a.id, &change, now).unwrap();
    tx.commit().unwrap();
}

/// A permanent rejection.
pub fn fail() -> RcptOutcome {
    RcptOutcome::Failed("550 5.1.1 no such user".into())
}

/// SQLite's plan for `sql` (parameters unbound), one step per `|`.
pub fn query_plan(s: &Store, sql: &str) -> String {
    let mut stmt = s
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap();
    let nulls = vec![rusqlite::types::Value::Null; stmt.parameter_count()];
    let plan: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    plan.join(" | ")
}

/// Claim the message due first and record it delivered to every recipient.
pub fn deliver_next(s: &mut Store, now: i64) -> String {
    let c = s.claim_next(now).unwrap().expect("a due message");
    let attempt = Attempt {
        results: c
            .recipients
            .iter()
            .map(|r| (r.clone(), RcptOutcome::Sent))
            .collect(),
        retry_at: now,
        expire: false,
    };
    assert!(s.record_attempt(&c, &attempt, now).unwrap());
    c.qid
}
