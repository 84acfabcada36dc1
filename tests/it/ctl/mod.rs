//! Integration tests: `mailq-ctl` (docs/mailq-ctl.md; docs/design.md,
//! "Account states"; issue 4) — every state transition and refusal through
//! the real binaries, the submit/unblock race, expiry, purge counts, limits,
//! delivery on demand, the held mail in part, and the `--json` schema of
//! every verb checked against the documented one (docs/mailq-ctl.md).
//!
//! This module holds the helpers every file below shares; the tests are
//! grouped by concern: `states` (transitions, refusals, the submit/unblock
//! race), `held` (purge, expiry, the held mail in part), `delivery` (limits,
//! `test`, `flush`, the per-message queue verbs), `report` (`status` of all,
//! `report`, `metrics`), `terminal` (colour and hostile text), and `schema`
//! (the documented `--json` schema, as data).

mod delivery;
mod held;
mod report;
mod schema;
mod states;
mod terminal;

use std::collections::HashSet;
use std::fs::File;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::fake_smtp::{Action, FakeSmtp};
use crate::sink::Sink;
use crate::util::*;

use schema::*;

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers.

/// `mailq-ctl --json ARGS`: asserts exit 0, checks the schema, returns the document.
#[track_caller]
fn json(env: &Env, args: &[&str], schema: &'static [(&'static str, J)]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = env.ctl(&full);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)));
    check(&v, &J::Obj(schema), &args.join(" "));
    v
}

#[track_caller]
fn ok(out: Output) -> String {
    assert_ok(&out);
    stdout(&out)
}

/// Submit one message as root with `-t -i`, asserting exit 0.
#[track_caller]
fn send(env: &Env, to: &str, subject: &str) {
    assert_ok(&env.submit(&["-t", "-i"], &simple_message(to, subject)));
}

fn status(env: &Env) -> Value {
    json(env, &["status", me()], STATUS)
}

fn held(env: &Env) -> i64 {
    env.count("state = 'held'")
}

/// Wait until no message is queued or being sent, and no relayer holds
/// the queue (a one-shot started by sendmail has finished).
fn wait_settled(env: &Env) {
    wait_until(WAIT, || env.count("state IN ('queued', 'sending')") == 0);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(env.queue.join("relayd.lock"))
        .expect("relay lock");
    wait_until(WAIT, || lock.try_lock().is_ok());
    lock.unlock().expect("unlock");
}

/// A read-write connection, to put the queue in a state no verb makes
/// (`bounce` is set by the error-ratio rule, `purging` by a crashed purge).
fn set_state_sql(env: &Env, state: &str) {
    env.settle();
    let c = rusqlite::Connection::open(env.queue.join("queue.db")).expect("open rw");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    c.execute(
        "UPDATE accounts SET state = ?1, state_reason = 'test' WHERE name = ?2",
        [state, me()],
    )
    .expect("update");
}

fn subjects(sink: &Sink) -> Vec<String> {
    sink.messages()
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect()
}
