//! The operations over a real queue in a temporary directory: each
//! document keeps its keys in the order `mailq-ctl --json` has always
//! printed them (the integration tests check the keys and types, not their
//! order), and the held-mail operations leave the state alone.

use std::path::Path;

use serde::Serialize;

use super::*;
use crate::account::BlockReason;
use crate::store::{EnqueuePolicy, NewMessage};

/// 2026-11-22T13:24:18Z.
const T0: i64 = 1_795_353_858_000;

fn control() -> (tempfile::TempDir, Control) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "queue.dir = \"{}\"\nrelay.program = \"/bin/true\"\n[accounts.map]\n\"60000\" = \"alice\"\n",
            dir.path().display()
        ),
        Path::new("/t.toml"),
    )
    .unwrap();
    let store = Store::open(&cfg.db_path(), Durability::Normal).unwrap();
    let c = Control::new(cfg, None, "admin".into(), Box::new(Local::new(store)));
    (dir, c)
}

/// Submit a message of `account` from `script` to `rcpt`, as sendmail would.
fn submit(c: &mut Control, account: &str, qid: &str, script: &str, rcpt: &str, now: i64) {
    let rcpts = [rcpt.to_string()];
    let m = NewMessage {
        subject: "hi",
        script,
        ..NewMessage::new(
            qid,
            account,
            60000,
            "a@node.example",
            &rcpts,
            b"Subject: hi\r\n\r\nx\r\n",
        )
    };
    c.store_mut()
        .enqueue(&m, EnqueuePolicy::default(), now)
        .unwrap();
}

/// The keys of a document's top-level object, in the order serialised.
fn keys<T: Serialize>(doc: &T) -> Vec<String> {
    let text = serde_json::to_string_pretty(doc).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once("\":").map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn documents_keep_their_keys_in_order() {
    let (_d, mut c) = control();
    // A name only [accounts.map] knows: blocked before its first mail.
    let b = c
        .block("alice", BlockReason::Spam, Some("ticket 1"), T0)
        .unwrap();
    assert_eq!(
        keys(&b),
        [
            "account",
            "old_state",
            "new_state",
            "changed",
            "reason",
            "actor",
            "note",
            "released",
            "held"
        ]
    );
    assert_eq!((b.new_state, b.actor.as_str()), (State::Spam, "admin"));
    submit(
        &mut c,
        "alice",
        "Q1",
        "1001:contact.php",
        "x@example.org",
        T0 + 1,
    );
    let s = c.status("alice", T0 + 2).unwrap();
    assert_eq!(
        keys(&s),
        [
            "account",
            "state",
            "sends",
            "reason",
            "since",
            "changed_by",
            "note",
            "report_to",
            "max_per_day",
            "max_per_day_default",
            "max_per_hour",
            "max_per_hour_default",
            "sent_total",
            "sent_today",
            "error_total",
            "today",
            "queue",
            "oldest_held",
            "oldest_held_age_s",
            "expires_in_s",
            "first_seen",
            "pending_nodes"
        ]
    );
    assert_eq!((s.queue.held, s.note.as_deref()), (1, Some("ticket 1")));
    assert!(s.pending_nodes.is_empty(), "a node alone owes nothing");
    let o = c.overview(SortKey::Held, T0 + 2).unwrap();
    assert_eq!(
        keys(&o.accounts[0]),
        [
            "account",
            "state",
            "sends",
            "reason",
            "since",
            "sent_total",
            "sent_today",
            "error_total",
            "queue",
            "oldest_held"
        ]
    );
    let set = c
        .set(
            "alice",
            &SettingsChange {
                report_to: Some(Some("Web <web@example.org>")),
                ..SettingsChange::default()
            },
            T0 + 3,
        )
        .unwrap();
    assert_eq!(
        keys(&set),
        [
            "created",
            "account",
            "state",
            "sends",
            "reason",
            "since",
            "report_to",
            "max_per_day",
            "max_per_day_default",
            "max_per_hour",
            "max_per_hour_default",
            "first_seen"
        ]
    );
    assert_eq!(set.account.report_to.as_deref(), Some("web@example.org"));
    let m = c.metrics(T0 + 4).unwrap();
    assert_eq!(
        keys(&m.accounts[0]),
        [
            "account",
            "deferred",
            "errors_total",
            "held",
            "queued",
            "sent_today",
            "sent_total",
            "state"
        ]
    );
    assert!(
        m.prometheus()
            .contains("scriptmail_oldest_held_age_seconds{account=\"alice\"} 0\n")
    );
    let q = c.queue(Some("alice"), None, 10).unwrap();
    assert_eq!(
        keys(&q.messages[0]),
        [
            "qid",
            "account",
            "state",
            "created",
            "next_attempt",
            "attempts",
            "sender",
            "nrcpt",
            "size",
            "subject",
            "script",
            "last_error",
            "done_at"
        ]
    );
    let show = c.show("Q1", true).unwrap();
    assert_eq!(
        keys(&show)[13..],
        ["cwd", "uid", "recipients", "headers", "body"]
    );
    assert_eq!(show.body.as_deref(), Some("x\r\n"));
    let h = c.history("alice", 10).unwrap();
    assert_eq!(keys(&h), ["account", "events"]);
    let st = c.stats("alice", 2, T0 + 4).unwrap();
    assert_eq!(keys(&st), ["account", "days", "total"]);
    assert_eq!(
        keys(&st.days[1]),
        ["day", "submitted", "sent", "errors", "held", "expired"]
    );
    let f = c.flush(Some("alice"), std::time::Duration::ZERO).unwrap();
    assert_eq!(
        keys(&f),
        [
            "account", "via", "due", "sent", "deferred", "failed", "pending", "gone", "messages"
        ]
    );
    assert_eq!(f.via, Via::None, "held mail is not flushed");
    let p = c.purge("alice", Some("bye"), T0 + 5).unwrap();
    assert_eq!(
        keys(&p),
        [
            "account",
            "old_state",
            "new_state",
            "dropped",
            "dropped_held",
            "dropped_queued",
            "released",
            "actor"
        ]
    );
    assert_eq!((p.dropped_held, p.new_state), (1, State::Ok));
}

#[test]
fn held_mail_in_part_leaves_the_state_alone() {
    let (_d, mut c) = control();
    c.block("alice", BlockReason::Manual, None, T0).unwrap();
    submit(
        &mut c,
        "alice",
        "A",
        "1001:contact.php",
        "a@example.org",
        T0,
    );
    submit(
        &mut c,
        "alice",
        "B",
        "1001:contact.php",
        "b@gmail.com",
        T0 + 1,
    );
    submit(
        &mut c,
        "alice",
        "C",
        "1001:wp-login.php",
        "c@gmail.com",
        T0 + 2,
    );
    let h = c.held("alice", &HeldFilter::default(), 1, T0 + 3).unwrap();
    assert_eq!(
        keys(&h),
        [
            "account",
            "state",
            "sends",
            "filter",
            "held",
            "oldest",
            "oldest_age_s",
            "expires_in_s",
            "newest",
            "scripts",
            "distinct_scripts",
            "domains",
            "distinct_domains"
        ]
    );
    assert_eq!((h.held, h.scripts.len(), h.distinct_scripts), (3, 1, 2));
    assert_eq!(
        (h.scripts[0].script.as_str(), h.scripts[0].held),
        ("1001:contact.php", 2)
    );
    // 72 h by default, less the 3 ms the oldest has been held.
    assert_eq!(h.expires_in_s, Some((72 * 3600 * 1000 - 3) / 1000));
    let gmail = held_filter(None, Some("GMAIL.COM"), None, None).unwrap();
    let p = c.purge_held("alice", &gmail, Some("spam"), T0 + 4).unwrap();
    assert_eq!(
        keys(&p),
        [
            "account", "state", "filter", "dropped", "held", "actor", "note"
        ]
    );
    assert_eq!((p.dropped, p.held, p.state), (2, 1, State::Ko));
    let none = c.release_held("alice", &gmail, T0 + 5).unwrap();
    assert_eq!(
        keys(&none),
        ["account", "state", "filter", "released", "held", "actor"]
    );
    assert_eq!((none.released, none.held), (0, 1));
    assert_eq!(c.status("alice", T0 + 6).unwrap().state, State::Ko);
    assert!(matches!(
        c.held("bob", &gmail, 10, T0),
        Err(ControlError::Store(StoreError::NoAccount(_)))
    ));
}

/// The API daemon hands a `Control` to a worker thread.
#[test]
fn control_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Control>();
}
