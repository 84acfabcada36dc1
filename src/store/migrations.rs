//! The queue schema, as an append-only list of migrations on `user_version`.
//!
//! **Never reorder, edit or remove an entry**: a node's database is at the
//! version of the newest entry it has run, and upgrades run only the entries
//! after it. Add a new entry at the end for every schema change, and keep
//! each change backwards compatible with the previous release's reads where
//! you can (an upgrade may run while an old `sendmail` is still submitting).

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Each entry is run once, in order, inside one exclusive transaction.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    -- One row per hosting account (Unix user) that ever submitted or was
    -- configured; the control panel's "email scripts" page.
    CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        state         TEXT NOT NULL DEFAULT 'ok',
        state_reason  TEXT NOT NULL DEFAULT '',
        state_since   INTEGER NOT NULL,
        report_to     TEXT,
        max_per_day   INTEGER,            -- NULL: node default; 0: unlimited
        max_per_hour  INTEGER,
        sent_total    INTEGER NOT NULL DEFAULT 0,
        error_total   INTEGER NOT NULL DEFAULT 0,
        first_seen    INTEGER NOT NULL
    );
    -- One row per message; the body lives in `bodies` until delivery.
    CREATE TABLE messages (
        id            INTEGER PRIMARY KEY,
        qid           TEXT NOT NULL UNIQUE,
        account_id    INTEGER NOT NULL,
        state         TEXT NOT NULL,       -- held queued sending deferred sent failed expired
        created       INTEGER NOT NULL,    -- ms since the epoch
        next_attempt  INTEGER NOT NULL,
        lease_until   INTEGER NOT NULL DEFAULT 0,
        attempts      INTEGER NOT NULL DEFAULT 0,
        sender        TEXT NOT NULL,       -- '' is the null sender
        size          INTEGER NOT NULL,
        subject       TEXT NOT NULL DEFAULT '',
        script        TEXT NOT NULL DEFAULT '',
        cwd           TEXT NOT NULL DEFAULT '',
        uid           INTEGER NOT NULL DEFAULT 0,
        dsn_notify    TEXT,
        dsn_ret       TEXT,
        envid         TEXT,
        body_8bit     INTEGER NOT NULL DEFAULT 0,
        system        INTEGER NOT NULL DEFAULT 0,  -- sent by scriptmail itself (reports): not counted
        last_error    TEXT NOT NULL DEFAULT '',
        done_at       INTEGER
    );
    CREATE INDEX messages_due ON messages(next_attempt) WHERE state IN ('queued', 'deferred');
    CREATE INDEX messages_sending ON messages(lease_until) WHERE state = 'sending';
    CREATE INDEX messages_pending ON messages(account_id, state, created)
        WHERE state IN ('held', 'queued', 'deferred', 'sending');
    CREATE INDEX messages_done ON messages(done_at) WHERE done_at IS NOT NULL;
    CREATE INDEX messages_account ON messages(account_id, created);
    -- Message bytes, CRLF, ready for DATA; deleted once the message is done.
    CREATE TABLE bodies (
        message_id    INTEGER PRIMARY KEY,
        data          BLOB NOT NULL
    );
    -- Envelope recipients and their individual outcome.
    CREATE TABLE recipients (
        message_id    INTEGER NOT NULL,
        rcpt          TEXT NOT NULL,
        state         TEXT NOT NULL DEFAULT 'pending',   -- pending sent failed
        PRIMARY KEY (message_id, rcpt)
    ) WITHOUT ROWID;
    -- The mails in error: permanent rejections, queue expiry, DSNs.
    CREATE TABLE errors (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL,
        message_id    INTEGER,
        qid           TEXT NOT NULL DEFAULT '',
        at            INTEGER NOT NULL,
        rcpt          TEXT NOT NULL,
        kind          TEXT NOT NULL,       -- rejected expired dsn
        message       TEXT NOT NULL,
        subject       TEXT NOT NULL DEFAULT '',
        script        TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX errors_account ON errors(account_id, at);
    -- Per-account, per-UTC-day counters (the "history of sent mails").
    CREATE TABLE daily (
        account_id    INTEGER NOT NULL,
        day           INTEGER NOT NULL,
        submitted     INTEGER NOT NULL DEFAULT 0,
        sent          INTEGER NOT NULL DEFAULT 0,
        errors        INTEGER NOT NULL DEFAULT 0,
        held          INTEGER NOT NULL DEFAULT 0,
        expired       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, day)
    ) WITHOUT ROWID;
    -- Per-account, per-UTC-hour submissions, for max_per_hour.
    CREATE TABLE hourly (
        account_id    INTEGER NOT NULL,
        hour          INTEGER NOT NULL,
        submitted     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account_id, hour)
    ) WITHOUT ROWID;
    -- Every state change: who, when, why.
    CREATE TABLE events (
        id            INTEGER PRIMARY KEY,
        account_id    INTEGER NOT NULL,
        at            INTEGER NOT NULL,
        old_state     TEXT NOT NULL,
        new_state     TEXT NOT NULL,
        reason        TEXT NOT NULL,
        actor         TEXT NOT NULL,
        note          TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_account ON events(account_id, at);
    "#,
    // 2: bounce intake and the daily report (docs/bounces.md).
    r#"
    -- Bounces `scriptmail bounce` could not match to a message: kept (size
    -- capped) so nothing is lost silently; admins inspect them.
    CREATE TABLE bounces_unmatched (
        id            INTEGER PRIMARY KEY,
        at            INTEGER NOT NULL,
        envelope_rcpt TEXT NOT NULL DEFAULT '',
        reason        TEXT NOT NULL,
        size          INTEGER NOT NULL,  -- of the whole input; `data` may be cut
        data          BLOB NOT NULL
    );
    CREATE INDEX bounces_unmatched_at ON bounces_unmatched(at);
    -- Daily reports sent, so a re-run of the timer sends none twice.
    CREATE TABLE reports (
        account_id    INTEGER NOT NULL,
        day           INTEGER NOT NULL,
        at            INTEGER NOT NULL,
        qid           TEXT NOT NULL,
        PRIMARY KEY (account_id, day)
    ) WITHOUT ROWID;
    -- A DSN for a recipient already in error is a duplicate: found by message.
    CREATE INDEX errors_message ON errors(message_id) WHERE message_id IS NOT NULL;
    -- Automatic blocks whose immediate notice is not yet queued; the events
    -- already there predate notices and are not announced.
    ALTER TABLE events ADD COLUMN notified INTEGER NOT NULL DEFAULT 0;
    UPDATE events SET notified = 1;
    CREATE INDEX events_unnotified ON events(id) WHERE notified = 0;
    "#,
    // 3: a purge drops the messages that existed when it began, by id: a
    // clock reading would miss mail submitted while the admin confirmed,
    // and a clock step backwards could drop mail submitted during it.
    r#"
    ALTER TABLE accounts ADD COLUMN purge_cutoff INTEGER;
    "#,
    // 4: a message an admin released one by one from a blocked account
    // (`mailq-ctl release`) is relayed, and retried, although the account
    // does not send; everything else of a blocked account is held (see
    // `store/mod.rs`, "Claims and blocks"). A new block clears the mark.
    r#"
    ALTER TABLE messages ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
    "#,
    // 5: cluster mode (docs/cluster.md): this node's link to the cluster
    // store, its share of the limits, and what it has not pushed yet. The
    // triggers fire only once relayd's sync thread has written the
    // `cluster_node` row, so a node alone pays one lookup of an empty table.
    r#"
    -- One row in cluster mode: the newest cluster change applied, until
    -- when the limits' allowances hold (the last sync plus its lease), and
    -- the watermarks of what was pushed.
    CREATE TABLE cluster_node (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        name          TEXT NOT NULL,
        revision      INTEGER NOT NULL DEFAULT 0,
        online_until  INTEGER NOT NULL DEFAULT 0,
        errors_pushed INTEGER NOT NULL DEFAULT 0,
        events_pushed INTEGER NOT NULL DEFAULT 0
    );
    -- Per account, this node's share of the current day's and hour's limit
    -- (src/cluster/allowance.rs): let through, allowed, the others' count.
    CREATE TABLE cluster_quota (
        account_id    INTEGER PRIMARY KEY,
        day           INTEGER NOT NULL DEFAULT 0,
        day_passed    INTEGER NOT NULL DEFAULT 0,
        day_cap       INTEGER NOT NULL DEFAULT 0,
        day_others    INTEGER NOT NULL DEFAULT 0,
        hour          INTEGER NOT NULL DEFAULT 0,
        hour_passed   INTEGER NOT NULL DEFAULT 0,
        hour_cap      INTEGER NOT NULL DEFAULT 0,
        hour_others   INTEGER NOT NULL DEFAULT 0,
        pushed        INTEGER NOT NULL DEFAULT 0   -- the counts above are in the store
    );
    -- Accounts whose counters or queue changed since the last push.
    CREATE TABLE cluster_dirty (account_id INTEGER PRIMARY KEY);
    -- Messages that entered or left `held` since the last push.
    CREATE TABLE cluster_held (
        message_id    INTEGER PRIMARY KEY,
        qid           TEXT NOT NULL,
        account_id    INTEGER NOT NULL
    );
    -- What this node did for each cluster command, until the store has it.
    CREATE TABLE cluster_acks (
        revision      INTEGER PRIMARY KEY,
        count         INTEGER NOT NULL,
        extra         INTEGER NOT NULL,
        detail        TEXT NOT NULL DEFAULT ''
    );
    -- A state change that came from the cluster (not to be pushed back).
    ALTER TABLE events ADD COLUMN cluster INTEGER NOT NULL DEFAULT 0;
    -- Queued past this node's allowance: not claimable (next_attempt far
    -- ahead) until a sync releases it; any move out of `queued` clears it.
    ALTER TABLE messages ADD COLUMN gated INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_gated ON messages(account_id, created) WHERE gated = 1;
    CREATE TRIGGER messages_ungate AFTER UPDATE OF state ON messages
        WHEN NEW.gated AND NEW.state <> 'queued'
    BEGIN
        UPDATE messages SET gated = 0 WHERE id = NEW.id;
    END;
    CREATE TRIGGER cluster_daily_insert AFTER INSERT ON daily
        WHEN EXISTS (SELECT 1 FROM cluster_node)
    BEGIN
        INSERT INTO cluster_dirty SELECT NEW.account_id
            WHERE NOT EXISTS (SELECT 1 FROM cluster_dirty WHERE account_id = NEW.account_id);
    END;
    CREATE TRIGGER cluster_daily_update AFTER UPDATE ON daily
        WHEN EXISTS (SELECT 1 FROM cluster_node)
    BEGIN
        INSERT INTO cluster_dirty SELECT NEW.account_id
            WHERE NOT EXISTS (SELECT 1 FROM cluster_dirty WHERE account_id = NEW.account_id);
    END;
    -- (Conflict clauses in a trigger body give way to the outer
    -- statement's, so each insert checks for the row itself.)
    CREATE TRIGGER cluster_message_insert AFTER INSERT ON messages
        WHEN EXISTS (SELECT 1 FROM cluster_node)
    BEGIN
        INSERT INTO cluster_dirty SELECT NEW.account_id
            WHERE NOT EXISTS (SELECT 1 FROM cluster_dirty WHERE account_id = NEW.account_id);
        INSERT INTO cluster_held SELECT NEW.id, NEW.qid, NEW.account_id
            WHERE NEW.state = 'held'
              AND NOT EXISTS (SELECT 1 FROM cluster_held WHERE message_id = NEW.id);
    END;
    CREATE TRIGGER cluster_message_state AFTER UPDATE OF state ON messages
        WHEN EXISTS (SELECT 1 FROM cluster_node)
    BEGIN
        INSERT INTO cluster_dirty SELECT NEW.account_id
            WHERE NOT EXISTS (SELECT 1 FROM cluster_dirty WHERE account_id = NEW.account_id);
        INSERT INTO cluster_held SELECT NEW.id, NEW.qid, NEW.account_id
            WHERE (OLD.state = 'held') <> (NEW.state = 'held')
              AND NOT EXISTS (SELECT 1 FROM cluster_held WHERE message_id = NEW.id);
    END;
    CREATE TRIGGER cluster_message_delete AFTER DELETE ON messages
        WHEN EXISTS (SELECT 1 FROM cluster_node)
    BEGIN
        INSERT INTO cluster_dirty SELECT OLD.account_id
            WHERE NOT EXISTS (SELECT 1 FROM cluster_dirty WHERE account_id = OLD.account_id);
        INSERT INTO cluster_held SELECT OLD.id, OLD.qid, OLD.account_id
            WHERE OLD.state = 'held'
              AND NOT EXISTS (SELECT 1 FROM cluster_held WHERE message_id = OLD.id);
    END;
    "#,
];

// `sendmail`'s maildrop refuses a newer queue without SQLite: it knows the
// version as a constant, which must follow this list.
const _: () = assert!(
    MIGRATIONS.len() as i64 == scriptmail_submit::maildrop::QUEUE_SCHEMA_VERSION,
    "bump QUEUE_SCHEMA_VERSION in crates/submit/src/maildrop.rs"
);

/// The schema version this build writes.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}

/// Bring the database up to [`latest`]; refuse a database from a newer build.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == latest() {
        return Ok(());
    }
    if version > latest() {
        return Err(StoreError::TooNew {
            found: version,
            supported: latest(),
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    // Re-read inside the lock: another process may have migrated meanwhile.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for sql in MIGRATIONS.iter().skip(version.max(0) as usize) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", latest())?;
    tx.commit()?;
    Ok(())
}
