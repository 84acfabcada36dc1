//! relayd's sync thread (docs/cluster.md, "How a change reaches every
//! node"): it keeps this node's SQLite copy of the cluster's state, so
//! `sendmail` and the relay check an account locally and never wait on the
//! network.
//!
//! On every (re)connect it LISTENs and catches up by revision — so no
//! change is missed across a store restart, a node restart or a
//! partition — and marks every account for a full push. Then, at each
//! NOTIFY and at least every `sync_interval`, one cycle: apply the new
//! changes in revision order, push the acknowledgements, the figures and
//! the mails in error, renew the limits' allowances, and record the
//! heartbeat (which also measures this node's clock offset to the store,
//! for the cutoff of a purge). Each successful cycle extends the
//! allowances' lease; once it runs out with the store out of reach, gated
//! mail goes by the local rule (`allowance.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::commands::{self, Applier};
use super::log::{self, CHANNEL};
use super::{ClusterError, Result, client, counters, lease, limits, ms, schema};
use crate::clock;
use crate::config::{ClusterConfig, Config};
use crate::log::{self as syslog, Level};
use crate::os::signals;
use crate::store::{Durability, ReplicatedState, Store};

/// Changes applied per query while catching up.
const CATCH_UP_BATCH: i64 = 500;
/// Longest single wait, so a stop request is seen quickly.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// Changes are kept this long; a node away longer catches up from the
/// accounts table.
const LOG_KEEP_DAYS: i64 = 7;
/// How often the housekeeping runs.
const HOUSEKEEPING: Duration = Duration::from_secs(3600);

/// The running sync thread; stopped (not waited for) when dropped.
pub struct SyncThread {
    stop: Arc<AtomicBool>,
    _handle: JoinHandle<()>,
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Start the sync thread when `[cluster]` is set. Without it, a node that
/// was in a cluster leaves it: its limits count its own mail again.
pub fn start(cfg: &Config) -> Option<SyncThread> {
    let Some(cc) = cfg.cluster.clone() else {
        if let Ok(mut s) = Store::open(&cfg.db_path(), Durability::Normal)
            && let Err(e) = s.leave_cluster()
        {
            syslog::log(Level::Err, &format!("leaving cluster mode: {e}"));
        }
        return None;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = cfg.clone();
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("cluster-sync".into())
        .spawn(move || {
            let store = match Store::open(&cfg.db_path(), Durability::Normal)
                .and_then(|mut s| s.join_cluster(&cc.node).map(|()| s))
            {
                Ok(s) => s,
                Err(e) => {
                    syslog::log(Level::Err, &format!("cluster sync cannot start: {e}"));
                    return;
                }
            };
            Sync {
                cfg,
                cc,
                store,
                client: None,
                offset_ms: 0,
                clock: Offset::default(),
                held_by_purging: HashMap::new(),
                online_until: 0,
                down: None,
                housekept: None,
                stop: flag,
            }
            .run();
        });
    match spawned {
        Ok(h) => Some(SyncThread { stop, _handle: h }),
        Err(e) => {
            syslog::log(Level::Err, &format!("cluster sync cannot start: {e}"));
            None
        }
    }
}

struct Sync {
    cfg: Config,
    cc: ClusterConfig,
    store: Store,
    client: Option<Client>,
    /// The store's clock minus ours (ms), measured at each heartbeat.
    offset_ms: i64,
    clock: Offset,
    held_by_purging: HashMap<String, u64>,
    /// The lease last written to the queue (ms).
    online_until: i64,
    /// Since when the store is out of reach (and the error, logged once).
    down: Option<Instant>,
    housekept: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Sync {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || signals::stop_requested()
    }

    fn run(mut self) {
        syslog::log(
            Level::Info,
            &format!(
                "cluster sync started node={} sync_interval={}ms",
                self.cc.node,
                self.cc.sync_interval.as_millis()
            ),
        );
        while !self.stopping() {
            let r = match self.client.take() {
                Some(c) => Ok(c),
                None => self.connect(),
            }
            .and_then(|mut c| match self.cycle(&mut c) {
                Ok(()) => Ok(c),
                Err(e) => Err(e),
            });
            match r {
                Ok(c) => {
                    if let Some(since) = self.down.take() {
                        syslog::log(
                            Level::Info,
                            &format!(
                                "cluster store reachable again after {}s; caught up",
                                since.elapsed().as_secs()
                            ),
                        );
                    }
                    // Written when half the lease is used up, not at every
                    // cycle: an idle node writes its queue every few seconds.
                    let now = clock::now_ms();
                    let lease = ms(lease(&self.cc));
                    if now + lease / 2 >= self.online_until {
                        match self.store.set_online_until(now + lease) {
                            Ok(()) => self.online_until = now + lease,
                            Err(e) => syslog::log(Level::Err, &format!("cluster sync: {e}")),
                        }
                    }
                    self.client = Some(c);
                    self.wait();
                }
                Err(e) => {
                    self.offline(&e);
                    self.pause(self.cc.sync_interval.max(Duration::from_millis(500)));
                }
            }
        }
    }

    /// Connect, check the schema, LISTEN, register this node.
    fn connect(&mut self) -> Result<Client> {
        let mut c = client::connect(&self.cc, "relayd")?;
        schema::ensure(&mut c)?;
        c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        let joined: bool = c
            .query_one(
                "INSERT INTO nodes (name, lease_ms, version) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET lease_ms = $2, version = $3, retired = false
                 RETURNING (xmax = 0)",
                &[
                    &self.cc.node,
                    &ms(lease(&self.cc)),
                    &env!("CARGO_PKG_VERSION"),
                ],
            )?
            .get(0);
        if joined {
            syslog::log(
                Level::Info,
                &format!("node {} joined the cluster", self.cc.node),
            );
            counters::push_history(&mut c, &self.store, &self.cc.node)?;
        }
        // A full push after every (re)connect: whatever a failed push lost.
        self.store.mark_all_dirty()?;
        Ok(c)
    }

    /// One cycle (see the module doc).
    fn cycle(&mut self, c: &mut Client) -> Result<()> {
        let now = clock::now_ms();
        let mut wake = self.catch_up(c, now)?;
        commands::push_acks(c, &mut self.store, &self.cc.node)?;
        counters::push(
            c,
            &mut self.store,
            &self.cc.node,
            &crate::store::Protection::from(&self.cfg),
            now,
        )?;
        wake |= limits::sync(
            c,
            &mut self.store,
            &self.cc.node,
            crate::store::EnqueuePolicy::from(&self.cfg),
            now,
        )?;
        self.heartbeat(c)?;
        if self.housekept.is_none_or(|t| t.elapsed() >= HOUSEKEEPING) {
            self.housekeep(c, now)?;
            self.housekept = Some(Instant::now());
        }
        if wake {
            crate::wake::poke(&self.cfg.wake_socket());
        }
        Ok(())
    }

    /// Apply every change after the newest one applied here; whether mail
    /// became due.
    fn catch_up(&mut self, c: &mut Client, now: i64) -> Result<bool> {
        let mut rev = self.store.cluster_revision()?;
        let mut wake = false;
        if rev < log::pruned(c)? {
            wake |= self.snapshot(c, now)?;
            rev = self.store.cluster_revision()?;
        }
        loop {
            let batch = log::after(c, rev, CATCH_UP_BATCH)?;
            let n = batch.len();
            for (revision, change) in batch {
                let done = match change {
                    Some(ch) => Applier {
                        store: &mut self.store,
                        node: &self.cc.node,
                        offset_ms: self.offset_ms,
                        held_by_purging: &mut self.held_by_purging,
                    }
                    .apply(&ch, now)?,
                    None => {
                        syslog::log(
                            Level::Warning,
                            &format!(
                                "cluster change {revision} is of a kind this scriptmail does not know; skipped (upgrade this node)"
                            ),
                        );
                        commands::Done::default()
                    }
                };
                wake |= done.wake;
                self.store.cluster_applied(revision, done.ack.as_ref())?;
                rev = revision;
            }
            if (n as i64) < CATCH_UP_BATCH {
                return Ok(wake);
            }
        }
    }

    /// Away longer than the log keeps changes: take every account as the
    /// store has it now. A sending account holds nothing, so its held mail
    /// is released.
    fn snapshot(&mut self, c: &mut Client, now: i64) -> Result<bool> {
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .start()?;
        let top: i64 = tx
            .query_one(
                "SELECT greatest(coalesce(max(revision), 0),
                        (SELECT value FROM meta WHERE key = 'pruned')) FROM changes",
                &[],
            )?
            .get(0);
        let rows = tx.query(
            "SELECT name, state, reason, since, report_to, max_per_day, max_per_hour FROM accounts",
            &[],
        )?;
        tx.commit()?;
        let mut wake = false;
        for r in &rows {
            let name: String = r.get(0);
            let Some(state) = crate::account::State::parse(r.get(1)) else {
                continue;
            };
            self.store
                .replicate_settings(&name, r.get(4), r.get(5), r.get(6), now)?;
            self.store.replicate_state(
                &ReplicatedState {
                    account: &name,
                    state,
                    reason: r.get(2),
                    since: r.get(3),
                    actor: "scriptmail",
                    note: "the cluster's state after a long absence",
                    announce: false,
                },
                now,
            )?;
            if state.is_sending() {
                wake |= self.store.release_all_held(&name, now)? > 0;
            }
        }
        self.store.cluster_applied(top, None)?;
        syslog::log(
            Level::Warning,
            &format!(
                "node {} was away longer than the cluster keeps changes: took the state of {} account(s) at revision {top}",
                self.cc.node,
                rows.len()
            ),
        );
        Ok(wake)
    }

    /// Record the sync, and measure the clock offset around it.
    fn heartbeat(&mut self, c: &mut Client) -> Result<()> {
        let rev = self.store.cluster_revision()?;
        c.execute(
            "UPDATE nodes SET last_sync = now(), revision = $2 WHERE name = $1",
            &[&self.cc.node, &rev],
        )?;
        let t0 = now_us();
        let theirs: i64 = c
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
                &[],
            )?
            .get(0);
        let t1 = now_us();
        self.offset_ms = self.clock.sample(t1 - t0, theirs - (t0 + (t1 - t0) / 2));
        Ok(())
    }

    /// Hourly: the log and the allowances of past periods, and this node's
    /// own figures older than `history_days`.
    fn housekeep(&mut self, c: &mut Client, now: i64) -> Result<()> {
        log::prune(c, LOG_KEEP_DAYS)?;
        limits::prune(c, now)?;
        let cutoff_day = clock::day_of(now) - i64::from(self.cfg.history_days);
        let cutoff = cutoff_day * clock::DAY_MS;
        c.execute(
            "DELETE FROM counters WHERE node = $1 AND day < $2",
            &[&self.cc.node, &cutoff_day],
        )?;
        c.execute(
            "DELETE FROM hourly WHERE node = $1 AND hour < $2",
            &[&self.cc.node, &(clock::hour_of(now) - 48)],
        )?;
        for table in ["errors", "expired"] {
            c.execute(
                &format!("DELETE FROM {table} WHERE node = $1 AND at < $2"),
                &[&self.cc.node, &cutoff],
            )?;
        }
        c.execute("DELETE FROM events WHERE at < $1", &[&cutoff])?;
        c.execute(
            "DELETE FROM reports WHERE at < now() - interval '60 days'",
            &[],
        )?;
        Ok(())
    }

    /// The store is out of reach: say so once, and past the lease let gated
    /// mail go by the local rule.
    fn offline(&mut self, e: &ClusterError) {
        if self.down.is_none() {
            syslog::log(
                Level::Warning,
                &format!("{e}; relaying by the last known state, figures kept for later"),
            );
            self.down = Some(Instant::now());
        }
        let now = clock::now_ms();
        // Within the lease the allowances still hold: gated mail waits.
        if now < self.online_until {
            return;
        }
        match self
            .store
            .quota_offline(crate::store::EnqueuePolicy::from(&self.cfg), now)
        {
            Ok((released, blocked)) => {
                for account in blocked {
                    syslog::log(
                        Level::Warning,
                        &format!(
                            "account={} state=ko reason=limit stat=\"limit reached by this node's count while the cluster store is unreachable\"",
                            crate::sanitize::line(&account)
                        ),
                    );
                }
                if released > 0 {
                    crate::wake::poke(&self.cfg.wake_socket());
                }
            }
            Err(e) => syslog::log(Level::Err, &format!("cluster sync: {e}")),
        }
    }

    /// Sleep up to `d`, in slices, unless stopping.
    fn pause(&self, d: Duration) {
        let start = Instant::now();
        while !self.stopping() && start.elapsed() < d {
            std::thread::sleep(WAIT_SLICE.min(d - start.elapsed()));
        }
    }

    /// Wait for a NOTIFY or `sync_interval`, whichever comes first.
    fn wait(&mut self) {
        let start = Instant::now();
        let interval = self.cc.sync_interval;
        while !self.stopping() && start.elapsed() < interval {
            let Some(c) = self.client.as_mut() else {
                return;
            };
            let slice = WAIT_SLICE.min(interval.saturating_sub(start.elapsed()));
            // A fresh iterator each time: postgres 0.19's `TimeoutIter`
            // arms its timer once, and after one timeout returns at once.
            let got = c.notifications().timeout_iter(slice).next();
            match got {
                Ok(Some(_)) => {
                    // Drain what else arrived: one cycle covers all of it.
                    let _ = c.notifications().iter().count();
                    return;
                }
                Ok(None) => {
                    if c.is_closed() {
                        self.client = None;
                        return;
                    }
                }
                Err(e) => {
                    self.offline(&e.into());
                    self.client = None;
                    return;
                }
            }
        }
    }
}

/// This node's clock, in µs since the epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

/// The clock offset to the store, NTP-style: each sample is a round trip
/// (its time, and the offset read at its midpoint, whose error is at most
/// half the round trip); the estimate is the sample with the shortest
/// round trip among the recent ones, so a slow query (a busy server, a
/// loaded node) does not move it. A purge's cutoff is only as exact as
/// this (docs/cluster.md, "Commands").
#[derive(Debug, Default)]
struct Offset {
    /// (round trip, offset), in µs; the newest last.
    samples: std::collections::VecDeque<(i64, i64)>,
}

impl Offset {
    /// Samples kept (32 heartbeats: 32 s at the default sync interval).
    const KEEP: usize = 32;

    /// Add a sample; the estimate, in ms.
    fn sample(&mut self, rtt_us: i64, offset_us: i64) -> i64 {
        if self.samples.len() == Self::KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back((rtt_us.max(0), offset_us));
        let best = self
            .samples
            .iter()
            .min_by_key(|s| s.0)
            .map_or(offset_us, |s| s.1);
        best.div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::Offset;

    #[test]
    fn the_shortest_round_trip_sets_the_offset() {
        let mut o = Offset::default();
        assert_eq!(o.sample(2_000, 5_000), 5);
        // A slow, skewed sample does not move it.
        assert_eq!(o.sample(80_000, 40_000), 5);
        assert_eq!(o.sample(500, -3_000), -3);
        for _ in 0..Offset::KEEP {
            o.sample(10_000, 1_000);
        }
        // Old samples age out.
        assert_eq!(o.sample(10_000, 1_000), 1);
    }
}
