//! The benchmark's synthetic cluster store (bench/cluster.sh): accounts,
//! their history as per-node daily counters, mails in error, state
//! changes and every node's totals — the control-plane data set at
//! hosting scale, built set-based inside the store (hidden
//! `mailq-ctl cluster populate`).

use postgres::Client;
use serde::Serialize;

use super::{Result, big};
use crate::clock::{self, DAY_MS};

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub accounts: u64,
    /// Messages of history, spread over the accounts, nodes and days.
    pub messages: u64,
    pub nodes: u64,
}

/// What was built.
#[derive(Debug, Clone, Serialize)]
pub struct PopulateDoc {
    pub accounts: u64,
    pub messages: u64,
    pub nodes: u64,
    pub days: i64,
    pub counter_rows: i64,
    pub errors: i64,
    pub seconds: f64,
}

/// Fill the store (one transaction); accounts are `acct-00001`...
pub fn populate(c: &mut Client, s: Spec, now: i64) -> Result<PopulateDoc> {
    let started = std::time::Instant::now();
    let (accounts, nodes) = (big(s.accounts.max(1)), big(s.nodes.max(1)));
    // One message per counter row at most: the worst case for the sums.
    let days = (big(s.messages) / (accounts * nodes)).clamp(1, 400);
    let per_row = (big(s.messages) / (accounts * nodes * days)).max(1);
    let today = clock::day_of(now);
    let mut tx = c.transaction()?;
    tx.execute(
        "INSERT INTO nodes (name, last_sync) SELECT 'bench-' || n, now()
         FROM generate_series(1, $1::bigint) n ON CONFLICT DO NOTHING",
        &[&nodes],
    )?;
    tx.execute(
        "INSERT INTO accounts (name, state, reason, since, first_seen)
         SELECT 'acct-' || lpad(i::text, 5, '0'),
                CASE WHEN i % 50 = 0 THEN 'ko' ELSE 'ok' END,
                CASE WHEN i % 50 = 0 THEN 'manual' ELSE '' END,
                $2::bigint - (i % 400) * $3::bigint, $2::bigint - 400 * $3::bigint
         FROM generate_series(1, $1::bigint) i ON CONFLICT DO NOTHING",
        &[&accounts, &now, &DAY_MS],
    )?;
    let rows = tx.execute(
        "INSERT INTO counters (account, day, node, submitted, sent, errors, held, expired)
         SELECT 'acct-' || lpad(i::text, 5, '0'), $3::bigint - d, 'bench-' || n,
                $4::bigint, $4::bigint - CASE WHEN (i + d) % 50 = 0 THEN 1 ELSE 0 END,
                CASE WHEN (i + d) % 50 = 0 THEN 1 ELSE 0 END, 0, 0
         FROM generate_series(1, $1::bigint) i, generate_series(1, $5::bigint) n,
              generate_series(0, $2::bigint - 1) d
         ON CONFLICT DO NOTHING",
        &[&accounts, &days, &today, &per_row, &nodes],
    )?;
    let errors = tx.execute(
        "INSERT INTO errors (node, qid, rcpt, kind, account, at, message, subject, script)
         SELECT c.node, 'Q' || md5(c.account || c.day || c.node), 'user' || c.day || '@example.com',
                'rejected', c.account, c.day * $1::bigint + 3600000,
                '550 5.1.1 no such user', 'newsletter', '/var/www/send.php'
         FROM counters c WHERE c.errors > 0 AND c.node LIKE 'bench-%'
         ON CONFLICT DO NOTHING",
        &[&DAY_MS],
    )?;
    tx.execute(
        "INSERT INTO events (account, at, old_state, new_state, reason, actor, note)
         SELECT name, since, 'ok', state, 'manual', 'bench', '' FROM accounts
         WHERE state <> 'ok' AND name LIKE 'acct-%'",
        &[],
    )?;
    tx.execute(
        "INSERT INTO node_accounts (account, node, sent_total, error_total, held, queued,
             deferred, sending, oldest_held)
         SELECT account, node, sum(sent), sum(errors),
                CASE WHEN min(account) LIKE '%0' THEN 3 ELSE 0 END, 0, 0, 0,
                CASE WHEN min(account) LIKE '%0' THEN $1::bigint - 3600000 END
         FROM counters WHERE node LIKE 'bench-%' GROUP BY account, node
         ON CONFLICT DO NOTHING",
        &[&now],
    )?;
    tx.commit()?;
    c.batch_execute("ANALYZE")?;
    Ok(PopulateDoc {
        accounts: s.accounts,
        messages: s.messages,
        nodes: s.nodes,
        days,
        counter_rows: rows as i64,
        errors: errors as i64,
        seconds: started.elapsed().as_secs_f64(),
    })
}
