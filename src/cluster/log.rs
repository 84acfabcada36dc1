//! The change log (docs/cluster.md, "How a change reaches every node"):
//! every state change, settings change and command is a row of `changes`
//! with a revision, and every node applies the rows in revision order.
//!
//! Revisions come from a sequence, and a sequence hands numbers out in the
//! order transactions *ask*, not the order they *commit*: a node catching
//! up by `revision > last` could see revision 6 before 5 commits, and then
//! never see 5. So every transaction that appends takes one lock
//! (`pg_advisory_xact_lock`) right before it asks for its revision and
//! keeps it until it commits: revisions commit in order, and a node that
//! sees one has seen all before it. Each append also `NOTIFY`s the nodes
//! (delivered at commit).

use postgres::{GenericClient, Row, Transaction};

use super::Result;
use crate::account::State;
use crate::store::HeldFilter;

/// The channel nodes LISTEN on.
pub const CHANNEL: &str = "scriptmail";

/// SQL: the store's clock, in ms (the time commands carry).
pub const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The account's state (and why, since when, by whom).
    State,
    /// Its report recipient and limits.
    Settings,
    /// Release its held mail (all of it, or what a filter matches).
    ReleaseHeld,
    /// Drop its mail submitted before the command (all not-yet-sent mail,
    /// or the held mail a filter matches).
    Purge,
    /// Release one held message (`qid`).
    Release,
    /// Delete one not-yet-sent message (`qid`).
    Delete,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::State,
        Kind::Settings,
        Kind::ReleaseHeld,
        Kind::Purge,
        Kind::Release,
        Kind::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::State => "state",
            Kind::Settings => "settings",
            Kind::ReleaseHeld => "release_held",
            Kind::Purge => "purge",
            Kind::Release => "release",
            Kind::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it moves mail (what `mailq-ctl cluster` counts as a command).
    pub fn is_command(self) -> bool {
        !matches!(self, Kind::State | Kind::Settings)
    }
}

/// One change, as written and as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub revision: i64,
    pub account: String,
    pub kind: Kind,
    pub state: Option<State>,
    pub reason: String,
    pub since: i64,
    pub actor: String,
    pub note: String,
    pub report_to: Option<String>,
    pub max_per_day: Option<i64>,
    pub max_per_hour: Option<i64>,
    /// The store's clock when it was written (ms): a purge's cutoff, the
    /// "now" of a filter's ages.
    pub at: i64,
    pub filter: Option<HeldFilter>,
    pub qid: String,
    /// The node that made it (an automatic block), or `""`.
    pub origin: String,
}

impl Change {
    /// A change of `kind` for `account`, everything else empty.
    pub fn new(account: &str, kind: Kind) -> Change {
        Change {
            revision: 0,
            account: account.to_string(),
            kind,
            state: None,
            reason: String::new(),
            since: 0,
            actor: String::new(),
            note: String::new(),
            report_to: None,
            max_per_day: None,
            max_per_hour: None,
            at: 0,
            filter: None,
            qid: String::new(),
            origin: String::new(),
        }
    }
}

/// Append `c` to the log in `tx` (see the module doc); its revision.
pub fn append(tx: &mut Transaction<'_>, c: &Change) -> Result<i64> {
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('scriptmail_log'))")?;
    let state = c.state.map(State::as_str);
    let filter = c.filter.as_ref().map(filter_json).unwrap_or_default();
    let row = tx.query_one(
        &format!(
            "INSERT INTO changes (revision, account, kind, state, reason, since, actor, note,
                 report_to, max_per_day, max_per_hour, at, filter, qid, origin)
             VALUES (nextval('scriptmail_revision'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                     {NOW_MS}, $11, $12, $13)
             RETURNING revision"
        ),
        &[
            &c.account,
            &c.kind.as_str(),
            &state,
            &c.reason,
            &c.since,
            &c.actor,
            &c.note,
            &c.report_to,
            &c.max_per_day,
            &c.max_per_hour,
            &filter,
            &c.qid,
            &c.origin,
        ],
    )?;
    let revision: i64 = row.get(0);
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &revision.to_string()],
    )?;
    Ok(revision)
}

const COLUMNS: &str = "revision, account, kind, state, reason, since, actor, note, report_to,
     max_per_day, max_per_hour, at, filter, qid, origin";

fn from_row(r: &Row) -> Option<Change> {
    let filter: String = r.get(12);
    Some(Change {
        revision: r.get(0),
        account: r.get(1),
        kind: Kind::parse(r.get(2))?,
        state: r.get::<_, Option<&str>>(3).and_then(State::parse),
        reason: r.get(4),
        since: r.get(5),
        actor: r.get(6),
        note: r.get(7),
        report_to: r.get(8),
        max_per_day: r.get(9),
        max_per_hour: r.get(10),
        at: r.get(11),
        filter: parse_filter(&filter),
        qid: r.get(13),
        origin: r.get(14),
    })
}

/// The changes after `after`, oldest first, at most `limit`. A row this
/// build cannot read (a kind from a newer one) comes back as `None`.
pub fn after(
    client: &mut impl GenericClient,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, Option<Change>)>> {
    let rows = client.query(
        &format!("SELECT {COLUMNS} FROM changes WHERE revision > $1 ORDER BY revision LIMIT $2"),
        &[&after, &limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), from_row(r)))
        .collect())
}

/// One change by revision.
pub fn get(client: &mut impl GenericClient, revision: i64) -> Result<Option<Change>> {
    Ok(client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM changes WHERE revision = $1"),
            &[&revision],
        )?
        .as_ref()
        .and_then(from_row))
}

/// The newest revision removed from the log by [`prune`].
pub fn pruned(client: &mut impl GenericClient) -> Result<i64> {
    Ok(client
        .query_opt("SELECT value FROM meta WHERE key = 'pruned'", &[])?
        .map_or(0, |r| r.get(0)))
}

/// Remove changes (and their acks) older than `keep_days`: a node away
/// longer catches up from the accounts table instead (`sync.rs`).
pub fn prune(client: &mut postgres::Client, keep_days: i64) -> Result<u64> {
    let mut tx = client.transaction()?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('scriptmail_log'))")?;
    let top: Option<i64> = tx
        .query_one(
            "SELECT max(revision) FROM changes WHERE issued < now() - make_interval(days => $1::int)",
            &[&(keep_days as i32)],
        )?
        .get(0);
    let Some(top) = top else {
        return Ok(0);
    };
    tx.execute("DELETE FROM acks WHERE revision <= $1", &[&top])?;
    let n = tx.execute("DELETE FROM changes WHERE revision <= $1", &[&top])?;
    tx.execute(
        "UPDATE meta SET value = greatest(value, $1) WHERE key = 'pruned'",
        &[&top],
    )?;
    tx.commit()?;
    Ok(n)
}

/// A held-mail filter as the log keeps it (JSON; ages in ms).
pub fn filter_json(f: &HeldFilter) -> String {
    serde_json::json!({
        "script": f.script,
        "domain": f.domain,
        "older_than": f.older_than,
        "newer_than": f.newer_than,
    })
    .to_string()
}

/// The filter of a change; `None` for none (or one this build cannot read).
pub fn parse_filter(s: &str) -> Option<HeldFilter> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let ms = |k: &str| v.get(k).and_then(serde_json::Value::as_i64);
    Some(HeldFilter {
        script: text("script"),
        domain: text("domain"),
        older_than: ms("older_than"),
        newer_than: ms("newer_than"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_filters_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("reboot"), None);
        let f = HeldFilter {
            script: Some("contact.php".into()),
            domain: None,
            older_than: Some(7_200_000),
            newer_than: None,
        };
        assert_eq!(parse_filter(&filter_json(&f)), Some(f));
        assert_eq!(parse_filter(""), None);
    }
}
