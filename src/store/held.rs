//! An account's held mail, in part: what it holds by sending script and
//! by recipient domain, and releasing or dropping only the held messages a
//! [`HeldFilter`] matches (docs/mailq-ctl.md, "held").
//!
//! Each operation is one transaction, and the invariants of "Claims and
//! blocks" (`mod.rs`) hold: a partial release marks its messages
//! `released`, exactly like releasing one message by its queue id (they go
//! out although the account stays blocked, until the next block); a
//! partial purge drops only held rows, never a message on a connection;
//! neither changes the account's state. Both are refused while a purge of
//! the account runs: that purge owns its mail until it ends.

use rusqlite::{Connection, params};

use super::accounts::account_in;
use super::{Account, Result, Store, StoreError};
use crate::account::State;

/// Which held messages a partial release or purge takes: every criterion
/// given must match; no criterion matches all held mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldFilter {
    /// The sending script as recorded (`X-PHP-Originating-Script`, e.g.
    /// `1001:contact.php`), or the same without its `UID:` prefix.
    pub script: Option<String>,
    /// A recipient domain: the message has at least one recipient there
    /// (compared without regard to ASCII case, RFC 5321 §2.4).
    pub domain: Option<String>,
    /// Submitted at least this long before `now` (ms): the age the
    /// sweep's expiry counts.
    pub older_than: Option<i64>,
    /// Submitted less than this long before `now` (ms).
    pub newer_than: Option<i64>,
}

/// One held message, as far as a [`HeldFilter`] looks at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldMessage {
    pub id: i64,
    pub created: i64,
    pub script: String,
    /// The domains of its recipients ([`domain_of`]), each once.
    pub domains: Vec<String>,
}

/// What an account holds (the part a filter matches).
#[derive(Debug, Clone)]
pub struct HeldSummary {
    pub account: Account,
    /// Held messages that match.
    pub held: u64,
    /// Creation time of the oldest and the newest of them.
    pub oldest: Option<i64>,
    pub newest: Option<i64>,
    /// Per sending script, the messages that match: most first, then by name.
    pub scripts: Vec<(String, u64)>,
    /// Per recipient domain, the matching messages with a recipient there
    /// (a message to two domains counts for both): most first, then by name.
    pub domains: Vec<(String, u64)>,
}

/// What a partial release or purge did.
#[derive(Debug, Clone)]
pub struct HeldMoved {
    /// The account (its state is unchanged).
    pub account: Account,
    /// Messages released, or dropped.
    pub moved: u64,
    /// Held messages the account has left.
    pub left: u64,
}

impl HeldFilter {
    /// Whether no criterion is given (it matches all held mail).
    pub fn is_empty(&self) -> bool {
        *self == HeldFilter::default()
    }

    /// Whether the held message `m` matches at `now`.
    pub fn matches(&self, m: &HeldMessage, now: i64) -> bool {
        let age = now - m.created;
        self.script
            .as_deref()
            .is_none_or(|s| script_matches(&m.script, s))
            && self
                .domain
                .as_deref()
                .is_none_or(|d| m.domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
            && self.older_than.is_none_or(|min| age >= min)
            && self.newer_than.is_none_or(|max| age < max)
    }
}

/// Whether a recorded script is the one asked for: the same text, or the
/// same once PHP's `UID:` prefix is taken off (`1001:contact.php` is
/// `contact.php`).
fn script_matches(recorded: &str, wanted: &str) -> bool {
    recorded == wanted
        || recorded.split_once(':').is_some_and(|(uid, path)| {
            !uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()) && path == wanted
        })
}

/// The domain of an address: what follows its last `@` (a quoted local
/// part may hold one too), in ASCII lower case; `""` for a local name.
pub fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or("", |(_, d)| d)
        .to_ascii_lowercase()
}

/// An account's held messages with their recipients, oldest first: an
/// index search through `messages_pending` (see `mod.rs`, "Indexes").
const HELD_OF: &str = concat!(
    "SELECT m.id, m.created, m.script, r.rcpt FROM messages m
     LEFT JOIN recipients r ON r.message_id = m.id
     WHERE m.account_id = ?1 AND m.",
    pending!(),
    " AND m.state = 'held' ORDER BY m.created, m.id"
);

/// The account's held messages, oldest first, in one statement (one
/// snapshot).
fn held_messages(conn: &Connection, account_id: i64) -> Result<Vec<HeldMessage>> {
    let mut stmt = conn.prepare_cached(HELD_OF)?;
    let mut rows = stmt.query([account_id])?;
    let mut out: Vec<HeldMessage> = Vec::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        if out.last().is_none_or(|m| m.id != id) {
            out.push(HeldMessage {
                id,
                created: r.get(1)?,
                script: r.get(2)?,
                domains: Vec::new(),
            });
        }
        if let (Some(m), Some(rcpt)) = (out.last_mut(), r.get::<_, Option<String>>(3)?) {
            let d = domain_of(&rcpt);
            if !m.domains.contains(&d) {
                m.domains.push(d);
            }
        }
    }
    Ok(out)
}

/// Counts per key, most first, then by key.
fn ranked(counts: std::collections::HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// The summary of the held messages `filter` matches (cluster mode
/// summarises every node's held mail with it).
pub fn summarise(
    account: Account,
    held: &[HeldMessage],
    filter: &HeldFilter,
    now: i64,
) -> HeldSummary {
    let mut s = HeldSummary {
        account,
        held: 0,
        oldest: None,
        newest: None,
        scripts: Vec::new(),
        domains: Vec::new(),
    };
    let (mut scripts, mut domains) = (Default::default(), Default::default());
    for m in held.iter().filter(|m| filter.matches(m, now)) {
        s.held += 1;
        s.oldest = Some(s.oldest.map_or(m.created, |t| t.min(m.created)));
        s.newest = Some(s.newest.map_or(m.created, |t| t.max(m.created)));
        add(&mut scripts, &m.script);
        for d in &m.domains {
            add(&mut domains, d);
        }
    }
    s.scripts = ranked(scripts);
    s.domains = ranked(domains);
    s
}

fn add(counts: &mut std::collections::HashMap<String, u64>, key: &str) {
    *counts.entry(key.to_string()).or_default() += 1;
}

/// One transaction of a partial release or purge: find the account's
/// held messages `filter` matches (refused while a purge runs) and apply
/// `act` to them, set-based: it gets their ids as a JSON array for
/// `json_each` and says how many it moved.
fn move_matching(
    store: &mut Store,
    name: &str,
    filter: &HeldFilter,
    now: i64,
    act: impl Fn(&rusqlite::Transaction<'_>, &str) -> Result<u64>,
) -> Result<HeldMoved> {
    let tx = store.write_tx()?;
    let account = account_in(&tx, name)?;
    if account.state == State::Purging {
        return Err(StoreError::Conflict(format!(
            "{}: a purge is running (finish it with mailq-ctl purge {})",
            account.name, account.name
        )));
    }
    let held = held_messages(&tx, account.id)?;
    let ids: Vec<String> = held
        .iter()
        .filter(|m| filter.matches(m, now))
        .map(|m| m.id.to_string())
        .collect();
    let moved = if ids.is_empty() {
        0
    } else {
        act(&tx, &format!("[{}]", ids.join(",")))?
    };
    tx.commit()?;
    Ok(HeldMoved {
        account,
        moved,
        left: held.len() as u64 - moved,
    })
}

/// SQL: the ids of the JSON array `?1`.
macro_rules! ids {
    () => {
        "(SELECT value FROM json_each(?1))"
    };
}

/// A partial release: the messages `?1` to `queued`, due at `?2`, marked
/// `released`.
const RELEASE_IDS: &str = concat!(
    "UPDATE messages SET state = 'queued', next_attempt = ?2, released = 1
     WHERE id IN ",
    ids!(),
    " AND state = 'held'"
);

/// A partial purge: the messages `?1` and what hangs off them. The ids
/// were read as held in the same write transaction, so they still are.
const DELETE_IDS: [&str; 3] = [
    concat!("DELETE FROM recipients WHERE message_id IN ", ids!()),
    concat!("DELETE FROM bodies WHERE message_id IN ", ids!()),
    concat!("DELETE FROM messages WHERE id IN ", ids!()),
];

impl Store {
    /// What the account holds, by script and recipient domain: all of its
    /// held mail, or the part `filter` matches.
    pub fn held_summary(&self, name: &str, filter: &HeldFilter, now: i64) -> Result<HeldSummary> {
        let account = self.account(name)?;
        let held = held_messages(&self.conn, account.id)?;
        Ok(summarise(account, &held, filter, now))
    }

    /// Release the held messages `filter` matches for delivery, due now,
    /// in one transaction; the account stays as it is. Like
    /// [`Store::release`], each is marked `released` so the relay takes it
    /// from a blocked account (see `mod.rs`, "Claims and blocks").
    pub fn release_held_matching(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        now: i64,
    ) -> Result<HeldMoved> {
        move_matching(self, name, filter, now, |tx, ids| {
            let n = tx.prepare_cached(RELEASE_IDS)?.execute(params![ids, now])?;
            Ok(n as u64)
        })
    }

    /// Drop the held messages `filter` matches, in one transaction; the
    /// account's state and its other mail stay as they are.
    pub fn purge_held_matching(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        now: i64,
    ) -> Result<HeldMoved> {
        move_matching(self, name, filter, now, |tx, ids| {
            let mut n = 0;
            for sql in DELETE_IDS {
                n = tx.prepare_cached(sql)?.execute([ids])?;
            }
            // The last statement deletes the messages themselves.
            Ok(n as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::BlockReason;
    use crate::queue::MessageState;
    use crate::store::testing::{T0, message, state_of, store, submit};
    use crate::store::{EnqueuePolicy, NewMessage};

    const MIN: i64 = 60_000;

    /// Submit a message of alice from `script` to `rcpts` at `at`.
    fn held_mail(s: &mut Store, qid: &str, script: &str, rcpts: &[&str], at: i64) {
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        let m = NewMessage {
            script,
            ..message("alice", qid, &rcpts)
        };
        assert!(s.enqueue(&m, EnqueuePolicy::default(), at).unwrap().held);
    }

    /// alice blocked with four held messages from two scripts to three domains.
    fn blocked_alice() -> (tempfile::TempDir, Store) {
        let (d, mut s) = store();
        submit(&mut s, "alice", "SENT", T0);
        s.block("alice", BlockReason::Spam, "root", "", T0).unwrap();
        // SENT was still queued: the block held it (script /var/www/x.php).
        held_mail(
            &mut s,
            "A",
            "1001:contact.php",
            &["x@Example.ORG"],
            T0 + MIN,
        );
        held_mail(
            &mut s,
            "B",
            "1001:contact.php",
            &["y@example.org", "z@gmail.com"],
            T0 + 2 * MIN,
        );
        held_mail(
            &mut s,
            "C",
            "1001:wp-login.php",
            &["w@gmail.com"],
            T0 + 3 * MIN,
        );
        (d, s)
    }

    #[test]
    fn filters_match_by_script_domain_and_age() {
        let m = HeldMessage {
            id: 1,
            created: T0,
            script: "1001:contact.php".into(),
            domains: vec!["example.org".into(), "gmail.com".into()],
        };
        let now = T0 + 10 * MIN;
        let f = |f: HeldFilter| f.matches(&m, now);
        assert!(f(HeldFilter::default()));
        assert!(f(HeldFilter {
            script: Some("1001:contact.php".into()),
            ..Default::default()
        }));
        assert!(f(HeldFilter {
            script: Some("contact.php".into()),
            ..Default::default()
        }));
        for other in ["1001:contact", "1001", "php", "x:contact.php"] {
            let script = Some(other.to_string());
            assert!(!f(HeldFilter {
                script,
                ..Default::default()
            }));
        }
        assert!(f(HeldFilter {
            domain: Some("GMAIL.com".into()),
            ..Default::default()
        }));
        assert!(!f(HeldFilter {
            domain: Some("mail.com".into()),
            ..Default::default()
        }));
        // Age: older_than is inclusive, newer_than exclusive.
        for (older, newer, want) in [
            (Some(10 * MIN), None, true),
            (Some(10 * MIN + 1), None, false),
            (None, Some(10 * MIN), false),
            (None, Some(10 * MIN + 1), true),
            (Some(5 * MIN), Some(20 * MIN), true),
        ] {
            let got = f(HeldFilter {
                older_than: older,
                newer_than: newer,
                ..Default::default()
            });
            assert_eq!(got, want, "{older:?} {newer:?}");
        }
        // Every criterion must match.
        assert!(!f(HeldFilter {
            script: Some("contact.php".into()),
            domain: Some("yahoo.com".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn held_mail_is_read_through_the_pending_index() {
        let (_d, s) = store();
        let plan = crate::store::testing::query_plan(&s, HELD_OF);
        assert!(
            plan.contains("SEARCH m USING INDEX messages_pending (account_id=? AND state=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
        // Each message a partial release or purge moves is one rowid
        // search, not a scan of the history.
        for sql in DELETE_IDS.iter().chain([&RELEASE_IDS]) {
            let plan = crate::store::testing::query_plan(&s, sql);
            assert!(
                plan.contains("PRIMARY KEY") && !plan.contains("SCAN messages"),
                "{sql}: {plan}"
            );
        }
    }

    #[test]
    fn domains_follow_the_last_at_sign() {
        assert_eq!(domain_of("a@Example.ORG"), "example.org");
        assert_eq!(domain_of("\"a@b\"@c.example"), "c.example");
        assert_eq!(domain_of("root"), "");
    }

    #[test]
    fn summary_counts_by_script_and_domain() {
        let (_d, s) = blocked_alice();
        let all = s
            .held_summary("alice", &HeldFilter::default(), T0 + 10 * MIN)
            .unwrap();
        assert_eq!(all.held, 4);
        assert_eq!((all.oldest, all.newest), (Some(T0), Some(T0 + 3 * MIN)));
        assert_eq!(
            all.scripts,
            [
                ("1001:contact.php".to_string(), 2),
                ("/var/www/x.php".to_string(), 1),
                ("1001:wp-login.php".to_string(), 1),
            ]
        );
        assert_eq!(
            all.domains,
            [
                ("example.org".to_string(), 2),
                ("gmail.com".to_string(), 2),
                ("example.com".to_string(), 1),
            ]
        );
        let gmail = s
            .held_summary(
                "alice",
                &HeldFilter {
                    domain: Some("gmail.com".into()),
                    ..Default::default()
                },
                T0 + 10 * MIN,
            )
            .unwrap();
        assert_eq!(gmail.held, 2);
        assert_eq!(gmail.oldest, Some(T0 + 2 * MIN));
        assert!(matches!(
            s.held_summary("nobody", &HeldFilter::default(), T0),
            Err(StoreError::NoAccount(_))
        ));
    }

    #[test]
    fn partial_release_marks_released_and_keeps_the_block() {
        let (_d, mut s) = blocked_alice();
        let by_script = HeldFilter {
            script: Some("contact.php".into()),
            ..Default::default()
        };
        let r = s
            .release_held_matching("alice", &by_script, T0 + 10 * MIN)
            .unwrap();
        assert_eq!((r.moved, r.left, r.account.state), (2, 2, State::Spam));
        assert_eq!(state_of(&s, "A"), MessageState::Queued);
        assert_eq!(state_of(&s, "C"), MessageState::Held);
        assert_eq!(s.account("alice").unwrap().state, State::Spam);
        // Released mail is exempt from the block: the relay claims it.
        let c = s
            .claim_next(T0 + 10 * MIN)
            .unwrap()
            .expect("released mail is due");
        assert!(["A", "B"].contains(&c.qid.as_str()));
        // Nothing left to match: 0, not an error.
        let again = s
            .release_held_matching("alice", &by_script, T0 + 10 * MIN)
            .unwrap();
        assert_eq!((again.moved, again.left), (0, 2));
    }

    #[test]
    fn partial_purge_drops_only_the_matching_held_mail() {
        let (_d, mut s) = blocked_alice();
        let old = HeldFilter {
            older_than: Some(9 * MIN),
            ..Default::default()
        };
        // At T0+11m: SENT (11m), A (10m) and B (9m) are at least 9 minutes old.
        let p = s.purge_held_matching("alice", &old, T0 + 11 * MIN).unwrap();
        assert_eq!((p.moved, p.left), (3, 1));
        for gone in ["SENT", "A", "B"] {
            assert!(matches!(
                s.message(gone, false),
                Err(StoreError::NoMessage(_))
            ));
        }
        assert_eq!(state_of(&s, "C"), MessageState::Held);
        let a = s.account("alice").unwrap();
        assert_eq!(a.state, State::Spam);
        assert_eq!(s.history("alice", 10).unwrap().len(), 1, "no state change");
        // A running purge owns the account's mail.
        s.purge_begin("alice", "root", "", T0 + 12 * MIN).unwrap();
        assert!(matches!(
            s.purge_held_matching("alice", &old, T0 + 12 * MIN),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.release_held_matching("nobody", &old, T0),
            Err(StoreError::NoAccount(_))
        ));
    }
}
