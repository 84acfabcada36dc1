//! Integration tests: `mailq-ctl` (docs/mailq-ctl.md; docs/design.md,
//! "Account states"; issue 4) — every state transition and refusal through
//! the real binaries, the submit/unblock race, expiry, purge counts, limits,
//! delivery on demand, the held mail in part, and the `--json` schema of
//! every verb checked against the documented one (docs/mailq-ctl.md).

use std::collections::HashSet;
use std::fs::File;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::fake_smtp::{Action, FakeSmtp};
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The documented JSON schema (docs/mailq-ctl.md), as data: every object
// must have exactly these keys with these types.

#[derive(Debug)]
enum J {
    Str,
    Int,
    Bool,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// `null` or the inner type.
    Opt(&'static J),
    Obj(&'static [(&'static str, J)]),
    Arr(&'static J),
}

const ACCOUNT_STATES: &[&str] = &["ok", "ko", "bounce", "spam", "force", "purging"];
const MESSAGE_STATES: &[&str] = &[
    "held", "queued", "sending", "deferred", "sent", "failed", "expired",
];

const QUEUE: &[(&str, J)] = &[
    ("held", J::Int),
    ("queued", J::Int),
    ("deferred", J::Int),
    ("sending", J::Int),
];
const DAY: &[(&str, J)] = &[
    ("day", J::Str),
    ("submitted", J::Int),
    ("sent", J::Int),
    ("errors", J::Int),
    ("held", J::Int),
    ("expired", J::Int),
];
const STATUS: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("changed_by", J::Opt(&J::Str)),
    ("note", J::Opt(&J::Str)),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("sent_total", J::Int),
    ("sent_today", J::Int),
    ("error_total", J::Int),
    ("today", J::Obj(DAY)),
    ("queue", J::Obj(QUEUE)),
    ("oldest_held", J::Opt(&J::Str)),
    ("oldest_held_age_s", J::Opt(&J::Int)),
    ("expires_in_s", J::Opt(&J::Int)),
    ("first_seen", J::Str),
    ("pending_nodes", J::Arr(&J::Str)),
];
const OVERVIEW: &[(&str, J)] = &[(
    "accounts",
    J::Arr(&J::Obj(&[
        ("account", J::Str),
        ("state", J::OneOf(ACCOUNT_STATES)),
        ("sends", J::Bool),
        ("reason", J::Str),
        ("since", J::Str),
        ("sent_total", J::Int),
        ("sent_today", J::Int),
        ("error_total", J::Int),
        ("queue", J::Obj(QUEUE)),
        ("oldest_held", J::Opt(&J::Str)),
    ])),
)];
const ACCOUNT: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("first_seen", J::Str),
];
const ACCOUNTS: &[(&str, J)] = &[("accounts", J::Arr(&J::Obj(ACCOUNT)))];
const SET: &[(&str, J)] = &[
    ("created", J::Bool),
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("reason", J::Str),
    ("since", J::Str),
    ("report_to", J::Opt(&J::Str)),
    ("max_per_day", J::Int),
    ("max_per_day_default", J::Bool),
    ("max_per_hour", J::Int),
    ("max_per_hour_default", J::Bool),
    ("first_seen", J::Str),
];
const CHANGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(ACCOUNT_STATES)),
    ("changed", J::Bool),
    ("reason", J::Str),
    ("actor", J::Str),
    ("note", J::Str),
    ("released", J::Int),
    ("held", J::Int),
];
const PURGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(&["ok"])),
    ("dropped", J::Int),
    ("dropped_held", J::Int),
    ("dropped_queued", J::Int),
    ("released", J::Int),
    ("actor", J::Str),
];
const SWEEP: &[(&str, J)] = &[
    ("recovered", J::Int),
    ("imported", J::Int),
    ("expired", J::Int),
    (
        "expired_by_account",
        J::Arr(&J::Obj(&[("account", J::Str), ("expired", J::Int)])),
    ),
    (
        "deleted",
        J::Obj(&[
            ("messages", J::Int),
            ("bodies", J::Int),
            ("errors", J::Int),
            ("events", J::Int),
            ("daily", J::Int),
            ("hourly", J::Int),
        ]),
    ),
    ("hold_max_age_s", J::Int),
    ("history_days", J::Int),
];
const MESSAGE: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("state", J::OneOf(MESSAGE_STATES)),
    ("created", J::Str),
    ("next_attempt", J::Opt(&J::Str)),
    ("attempts", J::Int),
    ("sender", J::Str),
    ("nrcpt", J::Int),
    ("size", J::Int),
    ("subject", J::Str),
    ("script", J::Str),
    ("last_error", J::Str),
    ("done_at", J::Opt(&J::Str)),
];
const QUEUE_LIST: &[(&str, J)] = &[("messages", J::Arr(&J::Obj(MESSAGE)))];
const SHOW: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("state", J::OneOf(MESSAGE_STATES)),
    ("created", J::Str),
    ("next_attempt", J::Opt(&J::Str)),
    ("attempts", J::Int),
    ("sender", J::Str),
    ("nrcpt", J::Int),
    ("size", J::Int),
    ("subject", J::Str),
    ("script", J::Str),
    ("last_error", J::Str),
    ("done_at", J::Opt(&J::Str)),
    ("cwd", J::Str),
    ("uid", J::Int),
    (
        "recipients",
        J::Arr(&J::Obj(&[
            ("address", J::Str),
            ("state", J::OneOf(&["pending", "sent", "failed"])),
        ])),
    ),
    ("headers", J::Opt(&J::Str)),
    ("body", J::Opt(&J::Str)),
];
const MOVE: &[(&str, J)] = &[
    ("qid", J::Str),
    ("account", J::Str),
    ("old_state", J::OneOf(MESSAGE_STATES)),
    ("new_state", J::Opt(&J::OneOf(&["queued"]))),
];
const FLUSH: &[(&str, J)] = &[
    ("account", J::Opt(&J::Str)),
    ("via", J::OneOf(&["foreground", "daemon", "none"])),
    ("due", J::Int),
    ("sent", J::Int),
    ("deferred", J::Int),
    ("failed", J::Int),
    ("pending", J::Int),
    ("gone", J::Int),
    (
        "messages",
        J::Arr(&J::Obj(&[
            ("qid", J::Str),
            ("account", J::Str),
            ("state", J::Opt(&J::OneOf(MESSAGE_STATES))),
            ("attempts", J::Int),
            ("answer", J::Str),
            ("next_attempt", J::Opt(&J::Str)),
        ])),
    ),
];
const STATS: &[(&str, J)] = &[
    ("account", J::Str),
    ("days", J::Arr(&J::Obj(DAY))),
    (
        "total",
        J::Obj(&[
            ("submitted", J::Int),
            ("sent", J::Int),
            ("errors", J::Int),
            ("held", J::Int),
            ("expired", J::Int),
        ]),
    ),
];
const ERRORS: &[(&str, J)] = &[
    ("account", J::Str),
    (
        "errors",
        J::Arr(&J::Obj(&[
            ("at", J::Str),
            ("qid", J::Str),
            ("recipient", J::Str),
            ("kind", J::OneOf(&["rejected", "expired", "dsn"])),
            ("answer", J::Str),
            ("subject", J::Str),
            ("script", J::Str),
        ])),
    ),
];
const HISTORY: &[(&str, J)] = &[
    ("account", J::Str),
    (
        "events",
        J::Arr(&J::Obj(&[
            ("at", J::Str),
            ("old_state", J::OneOf(ACCOUNT_STATES)),
            ("new_state", J::OneOf(ACCOUNT_STATES)),
            ("reason", J::Str),
            ("actor", J::Str),
            ("note", J::Str),
        ])),
    ),
];
const TEST: &[(&str, J)] = &[
    ("account", J::Str),
    ("qid", J::Str),
    ("to", J::Str),
    (
        "outcome",
        J::OneOf(&[
            "delivered",
            "deferred",
            "failed",
            "held",
            "pending",
            "deleted",
        ]),
    ),
    ("state", J::Opt(&J::OneOf(MESSAGE_STATES))),
    ("account_state", J::OneOf(ACCOUNT_STATES)),
    ("answer", J::Opt(&J::Str)),
    ("via", J::Opt(&J::OneOf(&["foreground", "daemon"]))),
];
const FILTER: &[(&str, J)] = &[
    ("script", J::Opt(&J::Str)),
    ("domain", J::Opt(&J::Str)),
    ("older_than_s", J::Opt(&J::Int)),
    ("newer_than_s", J::Opt(&J::Int)),
];
const HELD: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("sends", J::Bool),
    ("filter", J::Obj(FILTER)),
    ("held", J::Int),
    ("oldest", J::Opt(&J::Str)),
    ("oldest_age_s", J::Opt(&J::Int)),
    ("expires_in_s", J::Opt(&J::Int)),
    ("newest", J::Opt(&J::Str)),
    (
        "scripts",
        J::Arr(&J::Obj(&[("script", J::Str), ("held", J::Int)])),
    ),
    ("distinct_scripts", J::Int),
    (
        "domains",
        J::Arr(&J::Obj(&[("domain", J::Str), ("held", J::Int)])),
    ),
    ("distinct_domains", J::Int),
];
const HELD_RELEASE: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("filter", J::Obj(FILTER)),
    ("released", J::Int),
    ("held", J::Int),
    ("actor", J::Str),
];
const HELD_PURGE: &[(&str, J)] = &[
    ("account", J::Str),
    ("state", J::OneOf(ACCOUNT_STATES)),
    ("filter", J::Obj(FILTER)),
    ("dropped", J::Int),
    ("held", J::Int),
    ("actor", J::Str),
    ("note", J::Str),
];
const ERROR: &[(&str, J)] = &[("error", J::Str), ("exit", J::Int)];

/// Check `v` against `t`; `path` names the place for the failure message.
fn check(v: &Value, t: &J, path: &str) {
    match t {
        J::Str => assert!(v.is_string(), "{path}: expected a string, got {v}"),
        J::Int => assert!(v.is_i64(), "{path}: expected an integer, got {v}"),
        J::Bool => assert!(v.is_boolean(), "{path}: expected a boolean, got {v}"),
        J::OneOf(allowed) => {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{path}: expected a string, got {v}"));
            assert!(
                allowed.contains(&s),
                "{path}: {s:?} is not one of {allowed:?}"
            );
        }
        J::Opt(inner) => {
            if !v.is_null() {
                check(v, inner, path);
            }
        }
        J::Obj(fields) => {
            let o = v
                .as_object()
                .unwrap_or_else(|| panic!("{path}: expected an object, got {v}"));
            for (k, ft) in fields.iter() {
                let fv = o
                    .get(*k)
                    .unwrap_or_else(|| panic!("{path}: missing key {k:?} in {v}"));
                check(fv, ft, &format!("{path}.{k}"));
            }
            for k in o.keys() {
                assert!(
                    fields.iter().any(|(f, _)| f == k),
                    "{path}: undocumented key {k:?}"
                );
            }
        }
        J::Arr(inner) => {
            let a = v
                .as_array()
                .unwrap_or_else(|| panic!("{path}: expected an array, got {v}"));
            for (i, e) in a.iter().enumerate() {
                check(e, inner, &format!("{path}[{i}]"));
            }
        }
    }
}

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

// ---------------------------------------------------------------------------
// State transitions (docs/design.md, "Account states").

#[test]
fn block_holds_with_exit_0_and_unblock_relays_the_held_mail() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "before");
    sink.wait_for(1, WAIT);

    let b = json(&env, &["block", me(), "--note", "ticket 42"], CHANGE);
    assert_eq!(
        (b["old_state"].as_str(), b["new_state"].as_str()),
        (Some("ok"), Some("ko"))
    );
    assert_eq!(b["reason"], "manual");
    assert_eq!(b["actor"], me());
    send(&env, "a@example.com", "held 1");
    send(&env, "a@example.com", "held 2");
    assert_eq!(held(&env), 2);
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["sends"].as_bool()),
        (Some("ko"), Some(false))
    );
    assert_eq!(s["queue"]["held"], 2);
    assert_eq!(s["note"], "ticket 42");
    assert_eq!(s["changed_by"], me());
    assert!(s["oldest_held"].is_string());
    // 72 h by default, minus the few seconds the test took.
    let left = s["expires_in_s"].as_i64().unwrap();
    assert!((72 * 3600 - 60..=72 * 3600).contains(&left), "{left}");
    // Nothing reached the smarthost while blocked.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 1);

    let u = json(&env, &["unblock", me(), "--actor", "panel:alice"], CHANGE);
    assert_eq!(
        (u["old_state"].as_str(), u["new_state"].as_str()),
        (Some("ko"), Some("ok"))
    );
    assert_eq!(
        (u["released"].as_i64(), u["actor"].as_str()),
        (Some(2), Some("panel:alice"))
    );
    sink.wait_for(3, WAIT);
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(got, ["before", "held 1", "held 2"]);
    assert_eq!(held(&env), 0);

    // Every change is in the history, with its actor, and in syslog.
    let h = json(&env, &["history", me()], HISTORY);
    let ev: Vec<(&str, &str, &str)> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["old_state"].as_str().unwrap(),
                e["new_state"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ev, [("ok", "ko", me()), ("ko", "ok", "panel:alice")]);
    let logs = env.log_lines().join("\n");
    assert!(
        logs.contains(&format!(
            "account={me} old=ok new=ko reason=manual actor=\"{me}\"",
            me = me()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "account={} old=ko new=ok reason=unblock actor=\"panel:alice\" released=2",
            me()
        )),
        "{logs}"
    );
    // The human history names the same.
    let text = ok(env.ctl(&["history", me()]));
    assert!(
        text.contains("panel:alice") && text.contains("ticket 42"),
        "{text}"
    );
    // Behind sudo, the admin's own name is the default actor.
    let out = env
        .scriptmail()
        .env("SUDO_USER", "jdoe")
        .args(["mailq-ctl", "--json", "block", me()])
        .output()
        .expect("run");
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["actor"], "jdoe");
    json(&env, &["unblock", me()], CHANGE);
    // Unblocking a sending account is a harmless no-op.
    let again = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(again["changed"], false);
    assert_eq!(
        json(&env, &["history", me()], HISTORY)["events"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn spam_and_bounce_refusals_and_force() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "first");
    sink.wait_for(1, WAIT);

    // spam with held mail: plain unblock refused (77), nothing moves.
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    send(&env, "a@example.com", "spam held");
    let line = refused(&env, &["unblock", me()], 77);
    assert!(line.contains("purge") && line.contains("spam"), "{line}");
    assert_eq!(held(&env), 1);
    assert_eq!(status(&env)["state"], "spam");
    // --force from spam leads to ok and releases.
    let u = json(&env, &["unblock", me(), "--force"], CHANGE);
    assert_eq!(
        (u["new_state"].as_str(), u["released"].as_i64()),
        (Some("ok"), Some(1))
    );
    sink.wait_for(2, WAIT);

    // spam with nothing held: plain unblock is fine.
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["new_state"], "ok");

    // bounce (set by the error-ratio rule) with held mail: refused; --force → force (green).
    set_state_sql(&env, "bounce");
    send(&env, "a@example.com", "bounce held");
    assert_eq!(held(&env), 1);
    let line = refused(&env, &["unblock", me()], 77);
    assert!(line.contains("bounce"), "{line}");
    let u = json(&env, &["unblock", me(), "--force"], CHANGE);
    assert_eq!(
        (u["old_state"].as_str(), u["new_state"].as_str()),
        (Some("bounce"), Some("force"))
    );
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["sends"].as_bool()),
        (Some("force"), Some(true))
    );
    sink.wait_for(3, WAIT);
    // force sends: new mail is relayed, not held.
    send(&env, "a@example.com", "from force");
    sink.wait_for(4, WAIT);
    assert_eq!(held(&env), 0);
}

#[test]
fn block_refusals_and_unknown_accounts() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    // Unknown account: one line naming it, exit 67, for every account verb.
    for args in [
        &["status", "nosuchacct"][..],
        &["block", "nosuchacct"],
        &["unblock", "nosuchacct"],
        &["purge", "nosuchacct", "--yes"],
        &["stats", "nosuchacct"],
        &["errors", "nosuchacct"],
        &["history", "nosuchacct"],
        &["queue", "--account", "nosuchacct"],
        &["flush", "--account", "nosuchacct"],
        &["test", "nosuchacct", "--to", "a@example.com"],
        &["held", "nosuchacct"],
        &["release", "nosuchacct", "--script", "contact.php"],
        &["purge", "nosuchacct", "--domain", "example.com", "--yes"],
    ] {
        let line = refused(&env, args, 67);
        assert_eq!(line, "scriptmail: no such account: nosuchacct", "{args:?}");
    }
    let line = refused(&env, &["show", "0000000000000000"], 67);
    assert!(line.contains("no such message"), "{line}");
    // --json errors are JSON on stdout too, for the panel.
    let out = env.ctl(&["--json", "status", "nosuchacct"]);
    assert_eq!(out.status.code(), Some(67));
    let v: Value = serde_json::from_slice(&out.stdout).expect("error document");
    check(&v, &J::Obj(ERROR), "error");
    assert_eq!(
        (v["error"].as_str(), v["exit"].as_i64()),
        (Some("no such account: nosuchacct"), Some(67))
    );

    send(&env, "a@example.com", "hello");
    json(&env, &["block", me()], CHANGE);
    // Blocking a blocked account again is refused; spam upgrades ko.
    let line = refused(&env, &["block", me()], 77);
    assert!(line.contains("already blocked"), "{line}");
    let up = json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    assert_eq!(
        (up["old_state"].as_str(), up["new_state"].as_str()),
        (Some("ko"), Some("spam"))
    );
    refused(&env, &["block", me(), "--reason", "manual"], 77);
    // purge needs --yes without a terminal (64); purging refuses unblock (77).
    let line = refused(&env, &["purge", me()], 64);
    assert!(line.contains("--yes"), "{line}");
    assert_eq!(status(&env)["state"], "spam");
    set_state_sql(&env, "purging");
    let line = refused(&env, &["unblock", me(), "--force"], 77);
    assert!(line.contains("purge"), "{line}");
    refused(&env, &["block", me()], 77);
    // Running purge again finishes an interrupted one.
    let p = json(&env, &["purge", me(), "--yes"], PURGE);
    assert_eq!(
        (p["old_state"].as_str(), p["new_state"].as_str()),
        (Some("purging"), Some("ok"))
    );
    // Bad input: 64 and one line.
    refused(&env, &["set", me()], 64);
    refused(&env, &["set", me(), "--report-to", "not an address"], 64);
    refused(&env, &["set", me(), "--report-to", "a@b\r\nBcc: x@y"], 64);
    refused(&env, &["block", me(), "--actor", ""], 64);
}

#[test]
fn purge_reports_what_it_dropped_and_ends_ok() {
    // A smarthost that answers 4xx: queued mail stays deferred, not sent.
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        None,
        None,
        Action::reply(451, "4.3.0 try again later"),
    );
    let env = Env::new(fake.port());
    send(&env, "a@example.com", "deferred 1");
    send(&env, "a@example.com", "deferred 2");
    wait_settled(&env);
    assert_eq!(env.count("state = 'deferred'"), 2);
    json(&env, &["block", me(), "--reason", "spam"], CHANGE);
    for i in 0..3 {
        send(&env, "a@example.com", &format!("held {i}"));
    }
    let p = json(
        &env,
        &["purge", me(), "--yes", "--actor", "abuse-desk"],
        PURGE,
    );
    assert_eq!(p["dropped"], 5);
    // The two deferred ones were held by the block (a blocked account starts
    // no delivery), so all five were held when the purge came.
    assert_eq!(
        (p["dropped_held"].as_i64(), p["dropped_queued"].as_i64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        (p["old_state"].as_str(), p["new_state"].as_str()),
        (Some("spam"), Some("ok"))
    );
    assert_eq!(p["released"], 0);
    assert_eq!(env.count("1"), 0, "purge leaves no mail of the account");
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ok"), Some("purge"))
    );
    let h = json(&env, &["history", me()], HISTORY);
    let news: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["new_state"].as_str().unwrap())
        .collect();
    assert_eq!(news, ["spam", "purging", "ok"]);
    assert_eq!(h["events"][2]["actor"], "abuse-desk");
    // The human form says the count too.
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "held again");
    let text = ok(env.ctl(&["purge", me(), "-y"]));
    assert!(
        text.contains("dropped 1 message(s) (1 held, 0 queued/deferred)"),
        "{text}"
    );
    assert_eq!(fake.delivered().len(), 0);
}

/// A state change and a concurrent enqueue never strand a message
/// (docs/design.md, "Invariants").
/// sendmail submits in a loop (two processes at a time) while block/unblock
/// toggle; a reader checks throughout that no message is ever held in a
/// sending account; at the end every message is delivered exactly as sent.
#[test]
fn submit_while_block_unblock_toggle_strands_nothing() {
    const N: usize = 200;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    let _daemon = env.relayd();
    send(&env, "race@example.org", "warm-up");
    sink.wait_for(1, WAIT);
    let done = AtomicBool::new(false);
    let released = AtomicU64::new(0);
    let toggles = AtomicU64::new(0);
    let violations = AtomicU64::new(0);
    std::thread::scope(|s| {
        let submitters: Vec<_> = (0..2)
            .map(|t| {
                let env = &env;
                s.spawn(move || {
                    for i in 0..N / 2 {
                        let out = env.submit(
                            &["-t", "-i"],
                            &simple_message("race@example.org", &format!("race {t}-{i}")),
                        );
                        assert_ok(&out);
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) || toggles.load(Ordering::SeqCst) < 10 {
                let b = env.ctl(&["block", me()]);
                assert_ok(&b);
                let u = env.ctl(&["--json", "unblock", me()]);
                assert_ok(&u);
                let v: Value = serde_json::from_slice(&u.stdout).expect("json");
                released.fetch_add(v["released"].as_u64().unwrap(), Ordering::SeqCst);
                toggles.fetch_add(1, Ordering::SeqCst);
            }
        });
        s.spawn(|| {
            let db = env.db();
            while !done.load(Ordering::SeqCst) {
                // One read transaction: a consistent snapshot of both tables.
                let n: i64 = db
                    .query_row(
                        "SELECT count(*) FROM messages m JOIN accounts a ON a.id = m.account_id
                         WHERE m.state = 'held' AND a.state IN ('ok', 'force')",
                        [],
                        |r| r.get(0),
                    )
                    .expect("query");
                if n > 0 {
                    violations.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        for h in submitters {
            h.join().expect("submitter");
        }
        done.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "held mail seen in an ok account"
    );
    // The toggler always ends with unblock: the account sends and holds nothing.
    let s = status(&env);
    assert_eq!(s["state"], "ok");
    assert_eq!(
        held(&env),
        0,
        "a message was stranded held in an ok account"
    );
    assert!(toggles.load(Ordering::SeqCst) >= 10);
    assert!(
        released.load(Ordering::SeqCst) > 0,
        "the race never held anything: the test did not exercise it"
    );
    // Every message is delivered; none lost, none invented.
    sink.wait_for(N + 1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == (N + 1) as i64);
    let got: HashSet<String> = subjects(&sink).into_iter().collect();
    let want: HashSet<String> = (0..2)
        .flat_map(|t| (0..N / 2).map(move |i| format!("race {t}-{i}")))
        .chain(["warm-up".to_string()])
        .collect();
    assert_eq!(got, want);
    assert_eq!(env.count("1"), (N + 1) as i64);
}

#[test]
fn sweep_expires_held_mail_past_hold_max_age() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "queue.hold_max_age = \"1s\"");
    send(&env, "a@example.com", "sent");
    sink.wait_for(1, WAIT);
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "old 1");
    send(&env, "a@example.com", "old 2");
    std::thread::sleep(Duration::from_millis(1300));
    send(&env, "a@example.com", "young");
    let s = status(&env);
    assert_eq!(s["queue"]["held"], 3);
    assert_eq!(s["expires_in_s"], 0);
    let w = json(&env, &["sweep"], SWEEP);
    assert_eq!(w["expired"], 2);
    assert_eq!(w["expired_by_account"][0]["account"], me());
    assert_eq!(w["hold_max_age_s"], 1);
    assert_eq!(env.count("state = 'expired'"), 2);
    assert_eq!(held(&env), 1);
    // Expired mail has no body left, and is counted for the day.
    let bodies: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM bodies b JOIN messages m ON m.id = b.message_id
             WHERE m.state = 'expired'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bodies, 0);
    let st = json(&env, &["stats", me(), "--days", "1"], STATS);
    assert_eq!(st["days"][0]["expired"], 2);
    assert_eq!(st["days"][0]["held"], 3);
    assert_eq!(st["days"][0]["sent"], 1);
    assert!(
        env.log_lines()
            .iter()
            .any(|l| l.contains(&format!("account={} expired=2", me())))
    );
    // A second sweep finds nothing more; the young one still waits.
    assert_eq!(json(&env, &["sweep"], SWEEP)["expired"], 0);
    let q = json(&env, &["queue", "--state", "expired"], QUEUE_LIST);
    assert_eq!(q["messages"].as_array().unwrap().len(), 2);
    // Unblocking releases only what is still held.
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 1);
    let got = sink.wait_for(2, WAIT);
    assert_eq!(got[1].header("Subject").as_deref(), Some("young"));
}

#[test]
fn daily_limit_trips_to_ko_limit_and_holds() {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "limits.max_per_day = 3");
    for i in 0..5 {
        // Past the limit the sender still gets 0: held, not lost.
        send(&env, "a@example.com", &format!("m{i}"));
        if i < 3 {
            // Delivered before the limit trips: the block would hold it
            // if it were still queued.
            sink.wait_for(i + 1, WAIT);
            wait_until(WAIT, || env.count("state = 'sent'") == i as i64 + 1);
        }
    }
    let s = status(&env);
    assert_eq!(
        (s["state"].as_str(), s["reason"].as_str()),
        (Some("ko"), Some("limit"))
    );
    assert_eq!(
        (
            s["max_per_day"].as_i64(),
            s["max_per_day_default"].as_bool()
        ),
        (Some(3), Some(true))
    );
    assert_eq!(s["queue"]["held"], 2);
    assert_eq!(s["today"]["submitted"], 5);
    assert_eq!(s["changed_by"], "scriptmail");
    let text = ok(env.ctl(&["status", me()]));
    assert!(text.contains("3 / 3"), "sent today / max_per_day: {text}");
    let h = json(&env, &["history", me()], HISTORY);
    assert_eq!(h["events"][0]["reason"], "limit");
    // A per-account override set by the panel lifts it for this account.
    let set = json(&env, &["set", me(), "--max-per-day", "100"], SET);
    assert_eq!(
        (
            set["max_per_day"].as_i64(),
            set["max_per_day_default"].as_bool()
        ),
        (Some(100), Some(false))
    );
    assert_eq!(set["created"], false);
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 2);
    send(&env, "a@example.com", "m5");
    sink.wait_for(6, WAIT);
    assert_eq!(status(&env)["state"], "ok");
    // Back to the node default: the next mail trips it again (6 > 3).
    json(&env, &["set", me(), "--max-per-day", "default"], SET);
    send(&env, "a@example.com", "m6");
    assert_eq!(status(&env)["state"], "ko");
    assert_eq!(held(&env), 1);
}

#[test]
fn test_verb_reports_delivered_failed_deferred_and_held() {
    let fake = FakeSmtp::start();
    fake.on(
        "RCPT",
        Some("<bad@"),
        None,
        Action::reply(550, "5.1.1 no such user"),
    );
    fake.on(
        "RCPT",
        Some("<slow@"),
        None,
        Action::reply(451, "4.7.1 greylisted"),
    );
    let env = Env::new(fake.port());

    let t = json(&env, &["test", me(), "--to", "good@example.com"], TEST);
    assert_eq!(
        (t["outcome"].as_str(), t["state"].as_str()),
        (Some("delivered"), Some("sent"))
    );
    let d = fake.wait_for(1, WAIT);
    assert_eq!(d[0].rcpt_to, ["good@example.com"]);
    assert!(
        d[0].text().contains(&format!("account {}", me())),
        "trace names the account"
    );
    assert_eq!(d[0].mail_from, format!("{}@node1.example.net", me()));

    let t = json(&env, &["test", me(), "--to", "bad@example.com"], TEST);
    assert_eq!(t["outcome"], "failed");
    assert!(
        t["answer"].as_str().unwrap().contains("5.1.1 no such user"),
        "{t}"
    );
    let e = json(&env, &["errors", me()], ERRORS);
    assert_eq!(e["errors"][0]["recipient"], "bad@example.com");
    assert_eq!(e["errors"][0]["kind"], "rejected");
    assert_eq!(e["errors"][0]["script"], "mailq-ctl test");
    let text = ok(env.ctl(&["errors", me()]));
    assert!(
        text.contains("bad@example.com") && text.contains("no such user"),
        "{text}"
    );

    let t = json(&env, &["test", me(), "--to", "slow@example.com"], TEST);
    assert_eq!(t["outcome"], "deferred");
    assert!(t["answer"].as_str().unwrap().contains("greylisted"), "{t}");

    json(&env, &["block", me()], CHANGE);
    let t = json(&env, &["test", me(), "--to", "good@example.com"], TEST);
    assert_eq!(
        (t["outcome"].as_str(), t["account_state"].as_str()),
        (Some("held"), Some("ko"))
    );
    let text = ok(env.ctl(&["test", me(), "--to", "good@example.com"]));
    assert!(text.contains("held") && text.contains("unblock"), "{text}");
    // The test mails count like any other mail of the account.
    let s = status(&env);
    assert_eq!(
        (s["sent_total"].as_i64(), s["error_total"].as_i64()),
        (Some(1), Some(1))
    );
    // The two test mails sent while blocked, and the deferred one: a block
    // holds what was not yet delivered.
    assert_eq!(s["queue"]["held"], 3);
    refused(&env, &["test", me(), "--to", "x@y\r\nBcc: z@w"], 64);
}

#[test]
fn flush_relays_deferred_mail_now_in_the_foreground() {
    let fake = FakeSmtp::start();
    fake.down();
    let env = Env::with_config(fake.port(), "");
    send(&env, "a@example.com", "one");
    send(&env, "b@example.com", "two");
    wait_settled(&env);
    assert_eq!(env.count("state = 'deferred'"), 2);
    fake.up();
    // No daemon: flush relays in this process and reports each message.
    let f = json(&env, &["flush", "--account", me()], FLUSH);
    assert_eq!(
        (f["via"].as_str(), f["due"].as_i64(), f["sent"].as_i64()),
        (Some("foreground"), Some(2), Some(2))
    );
    assert_eq!(f["messages"][0]["state"], "sent");
    assert_eq!(fake.delivered().len(), 2);
    // Nothing due: a no-op that says so.
    let f = json(&env, &["flush"], FLUSH);
    assert_eq!(
        (f["due"].as_i64(), f["via"].as_str()),
        (Some(0), Some("none"))
    );
    assert!(ok(env.ctl(&["flush"])).contains("nothing to flush"));
}

#[test]
fn flush_wakes_a_running_daemon_and_waits_for_the_outcome() {
    let fake = FakeSmtp::start();
    fake.on("RCPT", None, Some(1), Action::reply(451, "4.3.0 later"));
    let env = Env::new(fake.port());
    let _daemon = env.relayd();
    send(&env, "a@example.com", "retry me");
    wait_until(WAIT, || {
        env.count("state = 'deferred' AND attempts = 1") == 1
    });
    let f = json(&env, &["flush"], FLUSH);
    assert_eq!(
        (f["via"].as_str(), f["sent"].as_i64()),
        (Some("daemon"), Some(1))
    );
    assert_eq!(fake.delivered().len(), 1);
}

#[test]
fn queue_show_release_delete() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "delivered");
    sink.wait_for(1, WAIT);
    json(&env, &["block", me()], CHANGE);
    let msg = b"To: a@example.com, b@example.com\r\nSubject: keep \x1b[31mme\r\nX-PHP-Originating-Script: 1000:contact.php\r\n\r\nline one\r\nline two\r\n";
    assert_ok(&env.submit(&["-t", "-i"], msg));
    send(&env, "c@example.com", "drop me");
    let q = json(&env, &["queue", "--account", me()], QUEUE_LIST);
    let list = q["messages"].as_array().unwrap();
    assert_eq!(list.len(), 2, "only not-yet-done mail by default: {q}");
    let keep = list.iter().find(|m| m["nrcpt"] == 2).unwrap()["qid"]
        .as_str()
        .unwrap()
        .to_string();
    let drop = list.iter().find(|m| m["nrcpt"] == 1).unwrap()["qid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(list[0]["state"], "held");
    assert_eq!(list[0]["script"], "1000:contact.php");

    // show: headers only, unless --body; terminal output cleaned.
    let s = json(&env, &["show", &keep], SHOW);
    assert!(s["headers"].as_str().unwrap().contains("Subject: keep"));
    assert!(s["body"].is_null());
    assert_eq!(s["recipients"].as_array().unwrap().len(), 2);
    let s = json(&env, &["show", &keep, "--body"], SHOW);
    assert!(s["body"].as_str().unwrap().contains("line two"));
    let text = ok(env.ctl(&["show", &keep]));
    assert!(text.contains("Subject: keep ?[31mme"), "{text}");
    assert!(
        !text.contains('\x1b') && !text.contains("line two"),
        "{text}"
    );
    assert!(ok(env.ctl(&["show", &keep, "--body"])).contains("line two"));

    // release one held message: relayed although the account is blocked.
    let r = json(&env, &["release", &keep], MOVE);
    assert_eq!(
        (r["old_state"].as_str(), r["new_state"].as_str()),
        (Some("held"), Some("queued"))
    );
    let got = sink.wait_for(2, WAIT);
    assert!(got.iter().any(|m| m.rcpt_to.len() == 2));
    wait_until(WAIT, || env.count("state = 'sent'") == 2);
    let line = refused(&env, &["release", &keep], 77);
    assert!(line.contains("not held"), "{line}");
    // delete the other; sent mail cannot be deleted.
    let d = json(&env, &["delete", &drop], MOVE);
    assert_eq!(
        (d["old_state"].as_str(), d["new_state"].is_null()),
        (Some("held"), true)
    );
    refused(&env, &["show", &drop], 67);
    let line = refused(&env, &["delete", &keep], 77);
    assert!(line.contains("sent"), "{line}");
    assert_eq!(held(&env), 0);
    let sent = json(&env, &["queue", "--state", "sent"], QUEUE_LIST);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 2);
    assert_eq!(status(&env)["state"], "ko");
}

// ---------------------------------------------------------------------------
// The held mail in part (issue 15 item 3).

/// Run the PHP script `name` (written into the environment's directory)
/// with `mail.add_x_header`, so PHP itself adds X-PHP-Originating-Script
/// (`UID:name`, the uid owning the script); each `mail()` must succeed.
fn php_script(env: &Env, name: &str, code: &str) {
    let path = env.path().join(name);
    std::fs::write(&path, format!("<?php\n{code}\n")).expect("write script");
    let out = std::process::Command::new("php")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .args(["-n", "-d", "mail.add_x_header=1", "-d"])
        .arg(format!("sendmail_path={SENDMAIL} -t -i"))
        .arg(&path)
        .current_dir(env.path())
        .output()
        .expect("run php");
    assert_ok(&out);
    let said = stdout(&out);
    assert!(
        !said.is_empty() && said.lines().all(|l| l == "sent"),
        "{name}: {said} {}",
        stderr(&out)
    );
}

/// Make the message with this subject `secs` seconds older, as if it had
/// been held that long (the age filters need mail of different ages).
fn backdate(env: &Env, subject: &str, secs: i64) {
    env.settle();
    let c = rusqlite::Connection::open(env.queue.join("queue.db")).expect("open rw");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    let n = c
        .execute(
            "UPDATE messages SET created = created - ?1 * 1000 WHERE subject = ?2",
            rusqlite::params![secs, subject],
        )
        .expect("update");
    assert_eq!(n, 1, "{subject}");
}

/// `[{<key>: name, held: n}]` as pairs.
fn counts<'a>(v: &'a Value, key: &str) -> Vec<(&'a str, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| (c[key].as_str().unwrap(), c["held"].as_i64().unwrap()))
        .collect()
}

/// A blocked account's held mail, from two real PHP scripts and the `-t`
/// path: broken down by script and recipient domain, previewed with a
/// filter, then released in part (by script: delivered, the account stays
/// blocked) and purged in part (by age, by domain and age); a filter that
/// matches nothing is 0, not an error; none of it changes the state.
#[test]
fn held_mail_by_script_domain_and_age_released_or_purged_in_part() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    json(&env, &["block", me(), "--note", "spam run"], CHANGE);
    let mail = |to: &str, subject: &str| {
        format!("echo mail(\"{to}\", \"{subject}\", \"hello\") ? \"sent\\n\" : \"failed\\n\";\n")
    };
    php_script(
        &env,
        "contact.php",
        &(mail("a@example.org", "contact 1") + &mail("b@example.org, c@gmail.com", "contact 2")),
    );
    php_script(&env, "wp-login.php", &mail("d@gmail.com", "login"));
    // The -t path, a script of another uid, held three hours ago.
    let old =
        b"To: e@yahoo.com\r\nSubject: old\r\nX-PHP-Originating-Script: 33:old.php\r\n\r\nhi\r\n";
    assert_ok(&env.submit(&["-t", "-i"], old));
    backdate(&env, "old", 3 * 3600);
    assert_eq!(held(&env), 4);

    // What is held: by script (most first, then by name) and by domain
    // (a message to two domains counts for both).
    let h = json(&env, &["held", me()], HELD);
    assert_eq!(
        (
            h["held"].as_i64(),
            h["state"].as_str(),
            h["sends"].as_bool()
        ),
        (Some(4), Some("ko"), Some(false))
    );
    // PHP writes its own uid before the script's name.
    let contact = format!("{}:contact.php", my_uid());
    let login = format!("{}:wp-login.php", my_uid());
    let mut by_script = vec![
        (contact.as_str(), 2),
        (login.as_str(), 1),
        ("33:old.php", 1),
    ];
    by_script.sort_by_key(|&(name, n)| (-n, name));
    assert_eq!(counts(&h["scripts"], "script"), by_script);
    assert_eq!(
        counts(&h["domains"], "domain"),
        [("example.org", 2), ("gmail.com", 2), ("yahoo.com", 1)]
    );
    assert!(h["filter"]["script"].is_null() && h["filter"]["older_than_s"].is_null());
    // The oldest was held three hours ago: 72 h - 3 h left before expiry,
    // minus the few seconds the test took.
    let left = h["expires_in_s"].as_i64().unwrap();
    assert!((69 * 3600 - 60..=69 * 3600).contains(&left), "{left}");
    assert!(h["oldest_age_s"].as_i64().unwrap() >= 3 * 3600);
    assert!(h["newest"].as_str().unwrap() > h["oldest"].as_str().unwrap());
    let top = json(&env, &["held", me(), "--limit", "1"], HELD);
    assert_eq!(counts(&top["scripts"], "script"), [(contact.as_str(), 2)]);
    assert_eq!(top["distinct_scripts"], 3);
    // A filter previews what release or purge with it would take.
    let gmail = json(&env, &["held", me(), "--domain", "@GMAIL.com"], HELD);
    assert_eq!(
        (gmail["held"].as_i64(), gmail["filter"]["domain"].as_str()),
        (Some(2), Some("gmail.com"))
    );
    let text = ok(env.ctl(&["held", me()]));
    assert!(
        text.contains(&format!(
            "{}: 4 held message(s) (all held mail); the account is ko",
            me()
        )) && text.contains(&contact)
            && text.contains("RECIPIENT DOMAIN"),
        "{text}"
    );

    // Release by script (without the UID: prefix): relayed at once
    // although the account stays blocked.
    let r = json(
        &env,
        &["release", me(), "--script", "wp-login.php"],
        HELD_RELEASE,
    );
    assert_eq!(
        (
            r["released"].as_i64(),
            r["held"].as_i64(),
            r["state"].as_str()
        ),
        (Some(1), Some(3), Some("ko"))
    );
    assert_eq!(r["filter"]["script"], "wp-login.php");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].header("Subject").as_deref(), Some("login"));
    assert_eq!(status(&env)["state"], "ko");

    // Purge by age: only the mail submitted at least two hours ago.
    let p = json(
        &env,
        &[
            "purge",
            me(),
            "--older-than",
            "2h",
            "--yes",
            "--note",
            "old spam",
        ],
        HELD_PURGE,
    );
    assert_eq!(
        (
            p["dropped"].as_i64(),
            p["held"].as_i64(),
            p["filter"]["older_than_s"].as_i64()
        ),
        (Some(1), Some(2), Some(7200))
    );
    assert_eq!(env.count("subject = 'old'"), 0);
    // By domain and age together, in the human form.
    let text = ok(env.ctl(&[
        "purge",
        me(),
        "--domain",
        "gmail.com",
        "--newer-than",
        "1h",
        "-y",
    ]));
    assert!(
        text.contains(&format!(
            "{}: dropped 1 held message(s) (domain gmail.com, newer than 1h00m); 1 still held, the account stays ko",
            me()
        )),
        "{text}"
    );
    assert_eq!(env.count("subject = 'contact 2'"), 0);

    // Nothing matching is 0, not an error.
    let none = json(
        &env,
        &["release", me(), "--script", "nothing.php"],
        HELD_RELEASE,
    );
    assert_eq!(
        (none["released"].as_i64(), none["held"].as_i64()),
        (Some(0), Some(1))
    );
    let none = json(
        &env,
        &["purge", me(), "--domain", "nowhere.example", "--yes"],
        HELD_PURGE,
    );
    assert_eq!(
        (none["dropped"].as_i64(), none["held"].as_i64()),
        (Some(0), Some(1))
    );
    // A filtered purge drops mail: --yes without a terminal; bad filters.
    let line = refused(&env, &["purge", me(), "--script", "contact.php"], 64);
    assert!(line.contains("--yes"), "{line}");
    refused(&env, &["held", me(), "--domain", "a@b.example"], 64);
    refused(&env, &["release", me(), "--older-than", "soon"], 64);
    assert_eq!(held(&env), 1);

    // Each partial change is logged; none is a state change.
    let logs = env.log_lines().join("\n");
    assert!(
        logs.contains(&format!(
            "account={me} released=1 held=3 script=\"wp-login.php\" actor=\"{me}\"",
            me = me()
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "account={me} dropped=1 held=2 older_than=7200s actor=\"{me}\" note=\"old spam\"",
            me = me()
        )),
        "{logs}"
    );
    let u = json(&env, &["unblock", me()], CHANGE);
    assert_eq!(u["released"], 1);
    sink.wait_for(2, WAIT);
    let mut got = subjects(&sink);
    got.sort();
    assert_eq!(got, ["contact 1", "login"]);
    let events = json(&env, &["history", me()], HISTORY)["events"].clone();
    assert_eq!(events.as_array().unwrap().len(), 2, "{events}");
}

#[test]
fn status_of_all_accounts_accounts_and_stats() {
    let sink = Sink::start();
    // `newsite`: a name the node resolves (the uid map), not a Unix user.
    let env = Env::with_sections(sink.port(), "", "[accounts.map]\n\"60000\" = \"newsite\"\n");
    send(&env, "a@example.com", "1");
    send(&env, "a@example.com", "2");
    sink.wait_for(2, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 2);
    // The panel configures an account before its first mail.
    let set = json(
        &env,
        &[
            "set",
            "newsite",
            "--report-to",
            "Web Master <webmaster@example.com>",
            "--max-per-hour",
            "10",
        ],
        SET,
    );
    assert_eq!(set["created"], true);
    assert_eq!(set["report_to"], "webmaster@example.com");
    json(&env, &["block", "newsite", "--reason", "spam"], CHANGE);

    let all = json(&env, &["status", "--sort", "state"], OVERVIEW);
    let names: Vec<&str> = all["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["newsite", me()], "blocked first");
    assert_eq!(all["accounts"][1]["sent_today"], 2);
    let by_sent = json(&env, &["status", "--sort", "sent"], OVERVIEW);
    assert_eq!(by_sent["accounts"][0]["account"], me());
    let text = ok(env.ctl(&["status"]));
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("ACCOUNT") && header.contains("HELD"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let acc = json(&env, &["accounts"], ACCOUNTS);
    let newsite = &acc["accounts"][0];
    assert_eq!(
        (
            newsite["account"].as_str(),
            newsite["max_per_hour"].as_i64()
        ),
        (Some("newsite"), Some(10))
    );
    json(&env, &["set", "newsite", "--no-report"], SET);
    assert!(json(&env, &["accounts"], ACCOUNTS)["accounts"][0]["report_to"].is_null());

    let st = json(&env, &["stats", me(), "--days", "7"], STATS);
    let days = st["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6]["sent"], 2, "today is last");
    assert_eq!(days[0]["sent"], 0);
    assert_eq!(st["total"]["sent"], 2);
    let chart = ok(env.ctl(&["stats", me(), "--days", "3"]));
    assert_eq!(
        chart.lines().filter(|l| l.contains("#")).count(),
        1,
        "{chart}"
    );
}

/// On a terminal the state is coloured as a control panel shows it (green
/// sends, red does not; docs/mailq-ctl.md), and NO_COLOR turns it off.
#[test]
fn state_is_coloured_on_a_terminal_unless_no_color() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "x");
    json(&env, &["block", me()], CHANGE);
    let on_tty = |no_color: bool| -> String {
        // script(1) gives the command a pseudo-terminal as stdout.
        let cmd = format!("{SCRIPTMAIL} mailq-ctl status");
        let mut c = std::process::Command::new("script");
        c.args(["-qefc", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SCRIPTMAIL_CONFIG", &env.config)
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        ok(c.output().expect("script"))
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("\x1b[1;31mko\x1b[0m"), "{coloured:?}");
    let plain = on_tty(true);
    assert!(!plain.contains('\x1b') && plain.contains("ko"), "{plain:?}");
    json(&env, &["unblock", me()], CHANGE);
    assert!(on_tty(false).contains("\x1b[1;32mok\x1b[0m"));
}

/// On a terminal, purge asks first; "n" keeps everything (77), "y" purges.
#[test]
fn purge_asks_on_a_terminal() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    send(&env, "a@example.com", "x");
    // Delivered before the block (which would hold it otherwise).
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 1);
    json(&env, &["block", me()], CHANGE);
    send(&env, "a@example.com", "held");
    env.settle();
    let purge_on_tty = |answer: &str| -> Output {
        let cmd = format!("{SCRIPTMAIL} mailq-ctl purge {}", me());
        let mut c = std::process::Command::new("script");
        c.args(["-qefc", &cmd, "/dev/null"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SCRIPTMAIL_CONFIG", &env.config);
        run_with_input(&mut c, answer.as_bytes())
    };
    let no = purge_on_tty("n\n");
    assert_eq!(no.status.code(), Some(77), "{}", stdout(&no));
    let text = stdout(&no);
    assert!(
        text.contains(&format!(
            "Drop 1 held and 0 queued/deferred message(s) of {}",
            me()
        )),
        "{text}"
    );
    assert!(text.contains("purge cancelled"), "{text}");
    assert_eq!(held(&env), 1);
    assert_eq!(status(&env)["state"], "ko");
    let yes = purge_on_tty("y\n");
    assert_ok(&yes);
    assert!(
        stdout(&yes).contains("dropped 1 message(s)"),
        "{}",
        stdout(&yes)
    );
    assert_eq!(held(&env), 0);
    assert_eq!(status(&env)["state"], "ok");
}

/// `test` goes through the same gate as sendmail: an account outside
/// `accounts.allow` is refused (77), nothing is queued.
#[test]
fn test_verb_honours_accounts_allow() {
    let sink = Sink::start();
    let env = Env::with_sections(sink.port(), "", "[accounts]\nallow = [\"someone-else\"]");
    let line = refused(&env, &["test", me(), "--to", "a@example.com"], 77);
    assert!(line.contains("accounts.allow"), "{line}");
    assert_eq!(env.count("1"), 0);
}

const REPORT_EVENT: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("old_state", J::OneOf(ACCOUNT_STATES)),
    ("new_state", J::OneOf(ACCOUNT_STATES)),
    ("reason", J::Str),
    ("actor", J::Str),
    ("note", J::Str),
];
const REPORT_ERROR: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("qid", J::Str),
    ("rcpt", J::Str),
    ("kind", J::OneOf(&["rejected", "expired", "dsn"])),
    ("message", J::Str),
    ("subject", J::Str),
    ("script", J::Str),
];
const REPORT_EXPIRED: &[(&str, J)] = &[
    ("at", J::Str),
    ("at_ms", J::Int),
    ("created", J::Str),
    ("qid", J::Str),
    ("sender", J::Str),
    ("recipients", J::Arr(&J::Str)),
    ("subject", J::Str),
    ("script", J::Str),
];
const REPORT: &[(&str, J)] = &[
    ("day", J::Str),
    (
        "reports",
        J::Arr(&J::Obj(&[
            ("account", J::Str),
            ("report_to", J::Opt(&J::Str)),
            ("day", J::Str),
            ("status", J::Str),
            ("qid", J::Opt(&J::Str)),
            (
                "errors",
                J::Obj(&[("total", J::Int), ("items", J::Arr(&J::Obj(REPORT_ERROR)))]),
            ),
            (
                "expired",
                J::Obj(&[
                    ("total", J::Int),
                    ("items", J::Arr(&J::Obj(REPORT_EXPIRED))),
                ]),
            ),
            ("events", J::Arr(&J::Obj(REPORT_EVENT))),
        ])),
    ),
];
const METRICS: &[(&str, J)] = &[(
    "accounts",
    J::Arr(&J::Obj(&[
        ("account", J::Str),
        ("state", J::OneOf(ACCOUNT_STATES)),
        ("sent_total", J::Int),
        ("errors_total", J::Int),
        ("sent_today", J::Int),
        ("held", J::Int),
        ("queued", J::Int),
        ("deferred", J::Int),
    ])),
)];

/// `report` from the command line: today's block/unblock shows up, with the
/// documented JSON; `--send` queues one mail to the recipient, once.
#[test]
fn report_verb_prints_and_sends_once() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    assert_ok(&env.ctl(&["set", me(), "--report-to", "webmaster@example.com"]));
    assert_ok(&env.ctl(&["block", me(), "--note", "ticket 42"]));
    assert_ok(&env.ctl(&["unblock", me()]));
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    let v = json(&env, &["report", "--day", &today], REPORT);
    let reports = v["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{v}");
    let events = reports[0]["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["new_state"] == "ko" && e["note"] == "ticket 42"),
        "{v}"
    );
    let text = stdout(&env.ctl(&["report", "--day", &today]));
    assert!(text.contains("ticket 42"), "{text}");

    assert_ok(&env.ctl(&["report", "--day", &today, "--send"]));
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_to, ["webmaster@example.com"]);
    // A second run of the timer sends nothing twice.
    assert_ok(&env.ctl(&["report", "--day", &today, "--send"]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1);
    // Nothing to say about a quiet day.
    let v = json(&env, &["report", "--day", "2020-01-01"], REPORT);
    assert!(v["reports"].as_array().unwrap().is_empty(), "{v}");
    let line = refused(&env, &["report", "--day", "yesterday"], 64);
    assert!(line.contains("YYYY-MM-DD"), "{line}");
}

/// `metrics`: Prometheus text format, one series per account, values that
/// match `status`; labels escaped.
#[test]
fn metrics_verb_exports_prometheus_text() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "m")));
    sink.wait_for(1, WAIT);
    wait_until(WAIT, || env.count("state = 'sent'") == 1);
    assert_ok(&env.ctl(&["block", me()]));
    assert_ok(&env.submit(&["-t", "-i"], &simple_message("a@example.com", "held")));
    let out = env.ctl(&["metrics"]);
    assert_ok(&out);
    let text = stdout(&out);
    let me = me();
    for line in [
        format!("scriptmail_sent_total{{account=\"{me}\"}} 1"),
        format!("scriptmail_held{{account=\"{me}\"}} 1"),
        format!("scriptmail_sending{{account=\"{me}\"}} 0"),
        format!("scriptmail_state{{account=\"{me}\",state=\"ko\"}} 1"),
        "# TYPE scriptmail_sent_total counter".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    // Every sample line is `name{labels} integer`.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        assert!(
            series.starts_with("scriptmail_") && series.ends_with('}'),
            "{l}"
        );
        value.parse::<i64>().unwrap_or_else(|_| panic!("{l}"));
    }
    let v = json(&env, &["metrics"], METRICS);
    assert_eq!(v["accounts"][0]["held"], 1);
}

// ---------------------------------------------------------------------------
// Issue 11: the queue side of the hardening.

/// The characters no output of untrusted text may carry (SECURITY.md):
/// controls, bidi overrides and isolates, line separators, zero-width.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}'
            | '\u{061C}' | '\u{2028}' | '\u{2029}' | '\u{200B}'..='\u{200D}' | '\u{2060}'
            | '\u{FEFF}')
}

/// Every line of `text` is free of [`unsafe_char`]s.
#[track_caller]
fn assert_clean_lines(text: &str, what: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(unsafe_char),
            "{what}: unsafe character in {line:?}"
        );
    }
}

/// Item 17: a panel blocks or configures an account before its first mail:
/// any name the node resolves (a Unix user, or a name of `[accounts.map]`).
/// A name that resolves to nothing is still 67.
#[test]
fn block_set_and_status_work_before_the_first_mail() {
    let sink = Sink::start();
    let env = Env::with_sections(
        sink.port(),
        "",
        &format!("[accounts.map]\n\"{}\" = \"site-42\"\n", my_uid()),
    );
    // `daemon`: a Unix user that never sent mail through this node.
    let b = json(&env, &["block", "daemon", "--note", "pre-emptive"], CHANGE);
    assert_eq!(
        (b["old_state"].as_str(), b["new_state"].as_str()),
        (Some("ok"), Some("ko"))
    );
    assert_eq!(json(&env, &["status", "daemon"], STATUS)["state"], "ko");
    let s = json(&env, &["set", "daemon", "--max-per-day", "5"], SET);
    assert_eq!(
        (s["created"].as_bool(), s["max_per_day"].as_i64()),
        (Some(false), Some(5))
    );
    // A name only the configuration's map knows: shown as a fresh account
    // without being created, blocked, and its first mail is held.
    let s = json(&env, &["status", "site-42"], STATUS);
    assert_eq!(
        (
            s["state"].as_str(),
            s["sent_total"].as_i64(),
            s["queue"]["held"].as_i64()
        ),
        (Some("ok"), Some(0), Some(0))
    );
    assert!(
        json(&env, &["accounts"], ACCOUNTS)["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["account"] != "site-42"),
        "status created the account"
    );
    json(&env, &["block", "site-42"], CHANGE);
    send(&env, "a@example.com", "first mail of site-42");
    assert_eq!(held(&env), 1);
    assert_eq!(
        json(&env, &["status", "site-42"], STATUS)["queue"]["held"],
        1
    );
    assert!(sink.messages().is_empty());
    // Nothing resolves this name: 67, and nothing is created.
    for args in [
        &["block", "no-such-user-xyz"][..],
        &["status", "no-such-user-xyz"],
        &["set", "no-such-user-xyz", "--max-per-day", "1"],
    ] {
        let line = refused(&env, args, 67);
        assert_eq!(
            line, "scriptmail: no such account: no-such-user-xyz",
            "{args:?}"
        );
    }
    assert_eq!(
        json(&env, &["accounts"], ACCOUNTS)["accounts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Item 12: `set --report-to` accepts exactly what the report sender can
/// send (one shared rule), so an accepted recipient always gets its report.
#[test]
fn report_to_is_checked_by_the_rule_reports_are_sent_with() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    for bad in [
        "\"a b\"@x.org",
        "a..b@x.org",
        ".a@x.org",
        "a@x..org",
        "a@-x.org",
    ] {
        let line = refused(&env, &["set", me(), "--report-to", bad], 64);
        assert!(line.contains("not a valid"), "{bad}: {line}");
    }
    assert!(json(&env, &["status", me()], STATUS)["report_to"].is_null());
    // What is accepted is sent.
    for good in [
        "o'brien+reports@x.org",
        "Web Master <web.master@sub.example.com>",
    ] {
        json(&env, &["set", me(), "--report-to", good], SET);
    }
    assert_ok(&env.ctl(&["block", me()]));
    let today =
        scriptmail::clock::format_day(scriptmail::clock::day_of(scriptmail::clock::now_ms()));
    let v = json(&env, &["report", "--day", &today, "--send"], REPORT);
    assert_eq!(v["reports"][0]["status"], "queued", "{v}");
    let got = sink.wait_for(1, WAIT);
    assert_eq!(got[0].rcpt_to, ["web.master@sub.example.com"]);
}

/// Item 10: the daily report is queued and marked sent in one transaction:
/// however many `report --send` run at once, one report per account and day.
#[test]
fn concurrent_report_runs_send_one_report_per_account_and_day() {
    const DAYS: i64 = 12;
    const RUNS: usize = 4;
    let env = Env::new(closed_port());
    // Nobody relays: the reports stay in the queue to be counted.
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, text.replace(SCRIPTMAIL, "/bin/true")).unwrap();
    assert_ok(&env.ctl(&["set", me(), "--report-to", "webmaster@example.com"]));
    let today = scriptmail::clock::day_of(scriptmail::clock::now_ms());
    {
        // Something to report on each of the last DAYS days.
        let c = rusqlite::Connection::open(env.queue.join("queue.db")).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        for d in 1..=DAYS {
            c.execute(
                "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note, notified)
                 SELECT id, ?1, 'ok', 'ko', 'manual', ?3, 'day ' || ?2, 1 FROM accounts WHERE name = ?3",
                rusqlite::params![(today - d) * 86_400_000 + 3_600_000, d, me()],
            )
            .unwrap();
        }
    }
    for d in 1..=DAYS {
        let day = scriptmail::clock::format_day(today - d);
        let runs: Vec<std::process::Child> = (0..RUNS)
            .map(|_| {
                env.scriptmail()
                    .args(["mailq-ctl", "report", "--send", "--day", &day])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("report")
            })
            .collect();
        for r in runs {
            let out = r.wait_with_output().expect("wait");
            assert_ok(&out);
        }
    }
    let db = env.db();
    let dup: Vec<(String, i64)> = db
        .prepare("SELECT subject, count(*) FROM messages WHERE system GROUP BY subject HAVING count(*) > 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(dup.is_empty(), "reports queued more than once: {dup:?}");
    assert_eq!(env.count("system"), DAYS);
    let marked: i64 = db
        .query_row("SELECT count(*) FROM reports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(marked, DAYS);
}

/// Item 11: untrusted text reaches no terminal and no syslog line with
/// control, bidi, line-separator or zero-width characters; JSON keeps the
/// exact strings (the panel escapes them itself).
#[test]
fn hostile_text_is_sanitised_in_tables_and_syslog() {
    let sink = Sink::start();
    let env = Env::new(sink.port());
    const HOSTILE: &str = "x\u{202e}txt\u{2066}iso\u{2069}\u{200b}zw\u{feff}\u{2028}ls\u{061c}\u{200f}\u{1b}[2J\u{85}";
    // Through the command line: a note, and a sending script's directory
    // (logged by sendmail) and subject (listed by `queue`).
    assert_ok(&env.ctl(&["set", me(), "--max-per-day", "100"]));
    assert_ok(&env.ctl(&["block", me(), "--note", HOSTILE]));
    let dir = env.path().join(format!("site{HOSTILE}"));
    std::fs::create_dir(&dir).unwrap();
    let message = "To: a@example.com\r\nSubject: inv\u{202e}txt\u{200b}oice\r\n\r\nbody\r\n";
    assert_ok(&run_with_input(
        env.sendmail().current_dir(&dir).args(["-t", "-i"]),
        message.as_bytes(),
    ));
    // Straight into the database: an actor and a note as an older build
    // or another writer might have stored them.
    env.settle();
    let c = rusqlite::Connection::open(env.queue.join("queue.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute(
        "INSERT INTO events (account_id, at, old_state, new_state, reason, actor, note, notified)
         SELECT id, 1, 'ko', 'ko', 'manual', ?1, ?1, 1 FROM accounts WHERE name = ?2",
        [HOSTILE, me()],
    )
    .unwrap();
    drop(c);

    let history = ok(env.ctl(&["history", me()]));
    assert_clean_lines(&history, "history");
    assert!(history.contains("x?txt?iso??zw??ls???[2J?"), "{history}");
    let status = ok(env.ctl(&["status", me()]));
    assert_clean_lines(&status, "status");
    let queue = ok(env.ctl(&["queue"]));
    assert_clean_lines(&queue, "queue");
    assert!(queue.contains("inv?txt?oice"), "{queue}");
    let h = json(&env, &["history", me()], HISTORY);
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == HOSTILE),
        "JSON keeps the exact string: {h}"
    );
    let logs = env.log_lines();
    assert!(logs.iter().any(|l| l.contains("note=")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("cwd=")), "{logs:?}");
    for l in &logs {
        assert!(!l.chars().any(unsafe_char), "syslog: {l:?}");
    }
}
