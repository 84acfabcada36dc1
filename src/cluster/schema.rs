//! The cluster store's tables, as an append-only list of migrations on a
//! version table (`scriptmail_schema`), like the queue's
//! (`store/migrations.rs`). The first program that connects creates or
//! migrates them when its role may (or `mailq-ctl cluster init`, or the SQL
//! it prints for a DBA: docs/cluster.md, "Setting up the database"); a
//! store newer than this program is refused, never modified.
//!
//! **Never reorder, edit or remove an entry.** Times are milliseconds since
//! the epoch (bigint), as in the queue; days and hours are UTC numbers.

use postgres::Client;

use super::{ClusterError, Result};

/// Each entry runs once, in order, in one transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    -- Revisions of the change log: taken under scriptmail_log's lock, so
    -- they commit in order (cluster/log.rs).
    CREATE SEQUENCE scriptmail_revision;
    -- The nodes: when each last synced, the newest change it applied.
    CREATE TABLE nodes (
        name          text PRIMARY KEY,
        first_seen    timestamptz NOT NULL DEFAULT now(),
        last_sync     timestamptz,
        revision      bigint NOT NULL DEFAULT 0,
        lease_ms      bigint NOT NULL DEFAULT 10000,
        version       text NOT NULL DEFAULT '',
        retired       boolean NOT NULL DEFAULT false
    );
    -- The authority: every account's state, settings and a purge under way.
    CREATE TABLE accounts (
        name          text PRIMARY KEY,
        state         text NOT NULL DEFAULT 'ok',
        reason        text NOT NULL DEFAULT '',
        since         bigint NOT NULL,
        report_to     text,
        max_per_day   bigint,
        max_per_hour  bigint,
        first_seen    bigint NOT NULL,
        purge         bigint
    );
    -- State history (`mailq-ctl history`).
    CREATE TABLE events (
        id            bigserial PRIMARY KEY,
        account       text NOT NULL,
        at            bigint NOT NULL,
        old_state     text NOT NULL,
        new_state     text NOT NULL,
        reason        text NOT NULL,
        actor         text NOT NULL,
        note          text NOT NULL DEFAULT '',
        node          text NOT NULL DEFAULT ''
    );
    CREATE INDEX events_account ON events (account, at);
    -- The change log every node replays in revision order: states,
    -- settings and commands (release_held, purge, release, delete).
    CREATE TABLE changes (
        revision      bigint PRIMARY KEY,
        account       text NOT NULL,
        kind          text NOT NULL,
        state         text,
        reason        text NOT NULL DEFAULT '',
        since         bigint NOT NULL DEFAULT 0,
        actor         text NOT NULL DEFAULT '',
        note          text NOT NULL DEFAULT '',
        report_to     text,
        max_per_day   bigint,
        max_per_hour  bigint,
        at            bigint NOT NULL,
        filter        text NOT NULL DEFAULT '',
        qid           text NOT NULL DEFAULT '',
        origin        text NOT NULL DEFAULT '',
        issued        timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX changes_issued ON changes (issued);
    -- What each node did for each change.
    CREATE TABLE acks (
        revision      bigint NOT NULL,
        node          text NOT NULL,
        done_at       timestamptz NOT NULL DEFAULT now(),
        count         bigint NOT NULL,
        extra         bigint NOT NULL,
        detail        text NOT NULL DEFAULT '',
        PRIMARY KEY (revision, node)
    );
    -- Absolute per-node figures, so a push repeated is harmless.
    CREATE TABLE counters (
        account       text NOT NULL,
        day           bigint NOT NULL,
        node          text NOT NULL,
        submitted     bigint NOT NULL,
        sent          bigint NOT NULL,
        errors        bigint NOT NULL,
        held          bigint NOT NULL,
        expired       bigint NOT NULL,
        PRIMARY KEY (account, day, node)
    );
    CREATE INDEX counters_day ON counters (day);
    CREATE TABLE hourly (
        account       text NOT NULL,
        hour          bigint NOT NULL,
        node          text NOT NULL,
        submitted     bigint NOT NULL,
        PRIMARY KEY (account, hour, node)
    );
    CREATE TABLE node_accounts (
        account       text NOT NULL,
        node          text NOT NULL,
        sent_total    bigint NOT NULL,
        error_total   bigint NOT NULL,
        held          bigint NOT NULL,
        queued        bigint NOT NULL,
        deferred      bigint NOT NULL,
        sending       bigint NOT NULL,
        oldest_held   bigint,
        ratio_from    bigint,
        ratio_errors  bigint NOT NULL DEFAULT 0,
        ratio_sent    bigint NOT NULL DEFAULT 0,
        updated       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account, node)
    );
    -- The mails in error of every node.
    CREATE TABLE errors (
        node          text NOT NULL,
        qid           text NOT NULL,
        rcpt          text NOT NULL,
        kind          text NOT NULL,
        account       text NOT NULL,
        at            bigint NOT NULL,
        message       text NOT NULL,
        subject       text NOT NULL,
        script        text NOT NULL,
        PRIMARY KEY (node, qid, rcpt, kind)
    );
    CREATE INDEX errors_account ON errors (account, at);
    -- The held mail of every node (`held` and its filters).
    CREATE TABLE held (
        node          text NOT NULL,
        qid           text NOT NULL,
        account       text NOT NULL,
        created       bigint NOT NULL,
        script        text NOT NULL,
        domains       text[] NOT NULL,
        PRIMARY KEY (node, qid)
    );
    CREATE INDEX held_account ON held (account, created);
    -- Held mail the sweeps expired (the daily report).
    CREATE TABLE expired (
        node          text NOT NULL,
        qid           text NOT NULL,
        account       text NOT NULL,
        at            bigint NOT NULL,
        created       bigint NOT NULL,
        sender        text NOT NULL,
        recipients    text[] NOT NULL,
        subject       text NOT NULL,
        script        text NOT NULL,
        PRIMARY KEY (node, qid)
    );
    CREATE INDEX expired_account ON expired (account, at);
    -- The limits' allowances (cluster/allowance.rs): per account, period
    -- (kind 'd' or 'h') and node, what it let through and may.
    CREATE TABLE quota (
        account       text NOT NULL,
        kind          text NOT NULL,
        period        bigint NOT NULL,
        node          text NOT NULL,
        used          bigint NOT NULL DEFAULT 0,
        reserved      bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (account, kind, period, node)
    );
    -- A node is starved while others hold allowances they do not use.
    CREATE TABLE quota_squeeze (
        account       text NOT NULL,
        kind          text NOT NULL,
        period        bigint NOT NULL,
        PRIMARY KEY (account, kind, period)
    );
    -- The daily report, once per account and day for the cluster.
    CREATE TABLE reports (
        account       text NOT NULL,
        day           bigint NOT NULL,
        node          text NOT NULL,
        qid           text NOT NULL,
        at            timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account, day)
    );
    -- Housekeeping marks (the newest revision pruned from the log).
    CREATE TABLE meta (
        key           text PRIMARY KEY,
        value         bigint NOT NULL
    );
    INSERT INTO meta VALUES ('pruned', 0);
    "#,
];

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// The store's schema version, `None` before the first migration.
pub fn version(client: &mut Client) -> Result<Option<i64>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('scriptmail_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client.query_opt("SELECT version FROM scriptmail_schema", &[])?;
    Ok(Some(row.map_or(0, |r| r.get::<_, i32>(0).into())))
}

/// Make sure the schema is this build's: create or migrate it (when the
/// role may), refuse a newer one. Returns the version found.
pub fn ensure(client: &mut Client) -> Result<i64> {
    let found = version(client)?;
    if found == Some(latest()) {
        return Ok(latest());
    }
    if let Some(v) = found
        && v > latest()
    {
        return Err(ClusterError::TooNew {
            found: v,
            supported: latest(),
        });
    }
    migrate(client).map_err(|e| match e {
        ClusterError::Db(why) => ClusterError::Outdated {
            found: found.unwrap_or(0),
            needed: latest(),
            why,
        },
        other => other,
    })?;
    Ok(found.unwrap_or(0))
}

/// Apply the migrations the store lacks, in one transaction, under a lock
/// (two nodes starting at once migrate once).
pub fn migrate(client: &mut Client) -> Result<()> {
    let mut tx = client.transaction()?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('scriptmail_schema'))")?;
    // Nothing is written when the schema is current: the nodes' role may
    // only read the version table.
    let exists: bool = tx
        .query_one("SELECT to_regclass('scriptmail_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE scriptmail_schema (version integer NOT NULL)")?;
    }
    let v: i64 = match tx.query_opt("SELECT version FROM scriptmail_schema", &[])? {
        Some(r) => r.get::<_, i32>(0).into(),
        None => {
            tx.execute("INSERT INTO scriptmail_schema VALUES (0)", &[])?;
            0
        }
    };
    if v == latest() {
        return Ok(());
    }
    if v > latest() {
        return Err(ClusterError::TooNew {
            found: v,
            supported: latest(),
        });
    }
    for sql in MIGRATIONS.iter().skip(v.max(0) as usize) {
        tx.batch_execute(sql)?;
    }
    let latest = latest() as i32;
    tx.execute("UPDATE scriptmail_schema SET version = $1", &[&latest])?;
    tx.commit()?;
    Ok(())
}

/// The whole schema as SQL, for a DBA to run as the owner
/// (`mailq-ctl cluster init --sql`).
pub fn sql() -> String {
    let mut out = String::from(
        "BEGIN;\nCREATE TABLE IF NOT EXISTS scriptmail_schema (version integer NOT NULL);\n\
         INSERT INTO scriptmail_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM scriptmail_schema);\n",
    );
    for (i, m) in MIGRATIONS.iter().enumerate() {
        out.push_str(&format!("-- migration {}\n", i + 1));
        out.push_str(m.trim_matches('\n'));
        out.push('\n');
    }
    out.push_str(&format!(
        "UPDATE scriptmail_schema SET version = {};\nCOMMIT;\n",
        latest()
    ));
    out
}

/// The privileges a node's role needs, and no more (docs/cluster.md, "A
/// role for the nodes"): rows only — no DDL, no TRUNCATE — and accounts,
/// nodes and the log are never deleted from except by pruning.
const GRANTS: &[(&str, &str)] = &[
    ("scriptmail_schema", "SELECT"),
    ("meta", "SELECT, UPDATE"),
    ("nodes", "SELECT, INSERT, UPDATE"),
    ("accounts", "SELECT, INSERT, UPDATE"),
    ("events", "SELECT, INSERT, DELETE"),
    ("changes", "SELECT, INSERT, DELETE"),
    ("acks", "SELECT, INSERT, DELETE"),
    ("counters", "SELECT, INSERT, UPDATE, DELETE"),
    ("hourly", "SELECT, INSERT, UPDATE, DELETE"),
    ("node_accounts", "SELECT, INSERT, UPDATE"),
    ("errors", "SELECT, INSERT, DELETE"),
    ("held", "SELECT, INSERT, UPDATE, DELETE"),
    ("expired", "SELECT, INSERT, DELETE"),
    ("quota", "SELECT, INSERT, UPDATE, DELETE"),
    ("quota_squeeze", "SELECT, INSERT, DELETE"),
    ("reports", "SELECT, INSERT, DELETE"),
];

/// The GRANT statements for the nodes' role `role` (`mailq-ctl cluster
/// init --sql --grant ROLE`). `role` is checked by the caller.
pub fn grants(role: &str) -> String {
    let mut out = String::new();
    for (table, privileges) in GRANTS {
        out.push_str(&format!("GRANT {privileges} ON {table} TO {role};\n"));
    }
    out.push_str(&format!(
        "GRANT USAGE ON SEQUENCE scriptmail_revision, events_id_seq TO {role};\n"
    ));
    out
}

/// Whether `role` can be written into SQL as it is (a plain identifier).
pub fn is_plain_role(role: &str) -> bool {
    let mut b = role.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && role.len() <= 63
        && role
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_granted_and_roles_are_plain_words() {
        let sql = sql();
        for (table, _) in GRANTS {
            assert!(
                sql.contains(&format!("CREATE TABLE {table} ")) || *table == "scriptmail_schema",
                "{table}"
            );
        }
        let created = sql.matches("CREATE TABLE ").count();
        assert_eq!(created, GRANTS.len(), "a table without a grant");
        assert!(
            grants("scriptmail_node")
                .contains("GRANT SELECT, INSERT, UPDATE ON accounts TO scriptmail_node;")
        );
        assert!(is_plain_role("scriptmail_node"));
        for bad in ["", "Node", "a-b", "x; DROP TABLE accounts", "1abc"] {
            assert!(!is_plain_role(bad), "{bad}");
        }
    }
}
