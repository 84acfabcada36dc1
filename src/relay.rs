//! Relaying the queue: the daemon (`scriptmail relayd`), the one-shot
//! delivery `sendmail` starts when no daemon runs (`relayd --once`), and
//! `mailq-ctl flush`.
//!
//! ## Who relays
//! Whoever relays holds `relayd.lock` (a `flock`), so when a relayer starts,
//! every message still marked `sending` belongs to one that died, and is put
//! back at once. The daemon also holds `relayd.pid` for its whole life: a
//! second daemon on the same queue refuses to start. A daemon that starts
//! while a one-shot holds `relayd.lock` asks it to hand over (a `Y` datagram
//! on the wake socket) and waits for the lock. The sweep takes the lock for
//! a moment too ([`recover_orphans`]): when no daemon runs and a one-shot was
//! killed (`kill -9`, or with PHP-FPM's cgroup), its claim comes back then
//! at the latest, not only at the next submission.
//!
//! ## Delivering
//! `connections` worker threads each claim **one** message (an atomic
//! UPDATE), start its SMTP transaction at once over their own reused
//! connection, and record its outcome in its own transaction; only then do
//! they claim the next. So `sending` means "on a connection": at most
//! `connections` messages, and `block`, `purge` and `delete` can take every
//! other one (issue 11; `store/mod.rs`, "Claims and blocks"). When the
//! connection had to be opened first, the claim is confirmed after the
//! connect, so a block that came meanwhile still holds it. A crash between
//! the smarthost's 250 and the recording commit re-sends one message per
//! connection — the at-least-once window the delivery guarantee allows
//! (docs/relay.md); nothing else can.
//!
//! ## Waiting
//! Wake-ups arrive as datagrams on `relayd.sock`; between them, workers sleep
//! until the next deferred message is due (at most a few seconds, so a
//! writer that forgot to wake us costs little), never spinning. While the
//! smarthost is unreachable an idle worker probes it at the transport's
//! hold pace, and when it answers again the deferred backlog is made due.
//!
//! ## Submissions
//! The daemon also takes submissions on the submit socket and imports the
//! maildrop (`submission`, docs/submission.md); a one-shot imports the
//! maildrop when it starts, on every wake-up and in its last look.
//!
//! ## The one-shot's last look
//! A one-shot exits when the queue has nothing due. A submission that
//! committed while the one-shot was finishing either reached its socket (so
//! it committed before the one-shot lets go of the lock) or found no socket
//! and started another one-shot, which may find the lock still held and exit.
//! So after letting go of the lock the one-shot looks once more, and relays
//! again if anything is due (or waits in the maildrop) and the lock is free.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::log::{self, Level};
use crate::os::signals;
use crate::sanitize;
use crate::schedule::{self, Decision, Policy};
use crate::store::{Attempt, Claim, Durability, RcptOutcome, Store, StoreError};
use crate::transport::{Outgoing, Smarthost, TransportError};

/// Longest sleep with nothing due: a safety net for writers that change
/// the queue without waking us.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(5);
/// The datagram a starting daemon sends to ask a one-shot to hand over.
const YIELD: u8 = b'Y';

/// Why relaying could not run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("another relayd (pid {pid}) is already running on {dir}")]
    AlreadyRunning { dir: PathBuf, pid: String },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("relay worker failed: {0}")]
    Worker(String),
}

impl Failure for RelayError {
    fn exit_code(&self) -> Exit {
        match self {
            RelayError::Store(e) => e.exit_code(),
            RelayError::Transport(e) => e.exit_code(),
            RelayError::AlreadyRunning { .. } => Exit::Unavailable,
            RelayError::Io(..) => Exit::IoErr,
            RelayError::Worker(_) => Exit::Software,
        }
    }
}

/// How the relayer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run until SIGTERM.
    Daemon,
    /// Deliver what is due, then exit (started by `sendmail`).
    Once,
}

/// How a round of [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Nothing was due any more (one-shot).
    Drained,
    /// SIGTERM, or a daemon asked this one-shot to hand over.
    Stopped,
}

/// Take `path`'s lock without waiting; `None` if another process holds it.
fn try_lock_file(path: &Path) -> Result<Option<File>, RelayError> {
    let f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| RelayError::Io(path.display().to_string(), e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(RelayError::Io(path.display().to_string(), e)),
    }
}

/// Take the relay lock without waiting; `None` if another relayer holds it.
pub fn try_lock(cfg: &Config) -> Result<Option<File>, RelayError> {
    try_lock_file(&cfg.relay_lock())
}

/// The daemon's lock file (it also names the daemon's pid).
fn pid_file(cfg: &Config) -> PathBuf {
    cfg.queue_dir.join("relayd.pid")
}

/// Become the one daemon of this queue, or say who already is.
fn lock_daemon(cfg: &Config) -> Result<File, RelayError> {
    let path = pid_file(cfg);
    let io = |e| RelayError::Io(path.display().to_string(), e);
    match try_lock_file(&path)? {
        Some(mut f) => {
            f.set_len(0).map_err(io)?;
            f.rewind().map_err(io)?;
            writeln!(f, "{}", std::process::id()).map_err(io)?;
            Ok(f)
        }
        None => {
            let mut pid = String::new();
            let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut pid));
            let pid = pid.trim();
            Err(RelayError::AlreadyRunning {
                dir: cfg.queue_dir.clone(),
                pid: if pid.is_empty() { "?" } else { pid }.to_string(),
            })
        }
    }
}

/// Run the relayer. `config_path` is re-read on SIGHUP.
pub fn run(cfg: Config, config_path: Option<PathBuf>, mode: Mode) -> Result<(), RelayError> {
    signals::install();
    match mode {
        Mode::Daemon => run_daemon(cfg, config_path),
        Mode::Once => run_once(&cfg),
    }
}

fn run_daemon(cfg: Config, config_path: Option<PathBuf>) -> Result<(), RelayError> {
    let _daemon = lock_daemon(&cfg)?;
    // A broken credentials file is a configuration error: say so now,
    // not as a deferral on every message.
    drop(Smarthost::new(cfg.relay.clone(), &cfg.hostname)?);
    let Some(_lock) = wait_for_relay_lock(&cfg)? else {
        return Ok(());
    };
    requeue_orphans(&cfg)?;
    // Cluster mode (docs/cluster.md): keeps the local copy of the cluster's
    // state; stopped when the daemon returns.
    let _sync = crate::cluster::start(&cfg);
    log::log(
        Level::Info,
        &format!(
            "relayd started queue={} relay={}:{} tls={:?} connections={}",
            cfg.queue_dir.display(),
            cfg.relay.host,
            cfg.relay.port,
            cfg.relay.tls,
            cfg.relay.connections
        ),
    );
    let r = serve(&cfg, config_path.as_deref(), Mode::Daemon);
    log::log(Level::Info, "relayd stopped");
    r.map(|_| ())
}

/// Take the relay lock, asking a one-shot that holds it to hand over.
/// `None` if SIGTERM arrived while waiting.
fn wait_for_relay_lock(cfg: &Config) -> Result<Option<File>, RelayError> {
    let mut told = false;
    loop {
        if let Some(l) = try_lock(cfg)? {
            return Ok(Some(l));
        }
        if signals::stop_requested() {
            return Ok(None);
        }
        if !told {
            log::log(
                Level::Info,
                "a one-shot delivery holds the queue; asking it to hand over",
            );
            told = true;
        }
        if let Ok(s) = UnixDatagram::unbound() {
            let _ = s.set_nonblocking(true);
            let _ = s.send_to(&[YIELD], cfg.wake_socket());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_once(cfg: &Config) -> Result<(), RelayError> {
    let Some(mut lock) = try_lock(cfg)? else {
        // Another relayer is active and looks at the queue again before it
        // lets go of the lock: nothing for us to do.
        return Ok(());
    };
    loop {
        requeue_orphans(cfg)?;
        crate::submission::import::drain_queue(cfg)?;
        if serve(cfg, None, Mode::Once)? == Ended::Stopped {
            return Ok(());
        }
        drop(lock);
        let due = crate::maildrop::has_entries(&cfg.queue_dir)
            || Store::open(&cfg.db_path(), Durability::Normal)?
                .next_due()?
                .is_some_and(|t| t <= clock::now_ms());
        if !due {
            return Ok(());
        }
        match try_lock(cfg)? {
            Some(l) => lock = l,
            None => return Ok(()),
        }
    }
}

/// We hold the relay lock, so no other relayer is alive: every `sending`
/// message is an orphan of a crash, to be sent again. Returns how many.
fn requeue_orphans(cfg: &Config) -> Result<usize, RelayError> {
    let mut store = Store::open(&cfg.db_path(), Durability::Normal)?;
    let n = store.requeue_orphans(clock::now_ms())?;
    if n > 0 {
        log::log(
            Level::Warning,
            &format!("requeued {n} message(s) left in delivery by a crashed relayer"),
        );
    }
    Ok(n)
}

/// For a caller that is not a relayer (the sweep): if no relayer holds the
/// relay lock, put back what dead ones left in `sending`, and say how many;
/// `None` when a relayer is alive (it owns those claims, and put back any
/// orphans when it started). The caller wakes the relay afterwards if
/// anything is due — a one-shot started while we held the lock has left.
pub fn recover_orphans(cfg: &Config) -> Result<Option<usize>, RelayError> {
    let Some(_lock) = try_lock(cfg)? else {
        return Ok(None);
    };
    requeue_orphans(cfg).map(Some)
}

/// Shared between the workers and the listener.
struct Shared {
    cfg: Mutex<Arc<Config>>,
    /// Bumped at every wake-up; workers wait for it to change.
    generation: Mutex<u64>,
    cond: Condvar,
    /// Stop this round: SIGTERM, a hand-over request, or a failed worker.
    stop: AtomicBool,
}

impl Shared {
    fn wake_all(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g += 1;
        }
        self.cond.notify_all();
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || signals::stop_requested()
    }

    fn config(&self) -> Arc<Config> {
        match self.cfg.lock() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn generation(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// Sleep until a wake-up after `seen`, or `timeout`.
    fn wait(&self, seen: u64, timeout: Duration) {
        if let Ok(g) = self.generation.lock() {
            let _ = self.cond.wait_timeout_while(g, timeout, |g| *g == seen);
        }
    }
}

fn serve(cfg: &Config, config_path: Option<&Path>, mode: Mode) -> Result<Ended, RelayError> {
    let socket_path = cfg.wake_socket();
    let io = |e| RelayError::Io(socket_path.display().to_string(), e);
    // We hold the relay lock: a socket file left here is a dead relayer's.
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).map_err(io)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(io)?;
    let shared = Arc::new(Shared {
        cfg: Mutex::new(Arc::new(cfg.clone())),
        generation: Mutex::new(0),
        cond: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    // The daemon takes submissions (docs/submission.md); it and the
    // one-shot import the maildrop, on every wake-up too.
    let intake = match mode {
        Mode::Daemon => Some(crate::submission::Server::start(
            cfg,
            {
                let s = Arc::clone(&shared);
                Arc::new(move || s.config())
            },
            {
                let s = Arc::clone(&shared);
                Arc::new(move || s.wake_all())
            },
        )?),
        Mode::Once => None,
    };
    let import = || match &intake {
        Some(server) => server.import_soon(),
        None => {
            if let Err(e) = crate::submission::import::drain_queue(cfg) {
                log::log(Level::Err, &format!("maildrop import failed: {e}"));
            }
        }
    };
    let workers = match mode {
        Mode::Daemon => cfg.relay.connections,
        Mode::Once => 1,
    };
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..workers {
        let mine = Arc::clone(&shared);
        let done = Arc::clone(&done);
        let listener = socket_path.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("relay-{i}"))
            .spawn(move || {
                let r = worker(&mine, mode);
                if let Err(e) = &r {
                    log::log(Level::Err, &format!("relay worker stopped: {e}"));
                    // One broken worker stops the daemon (its supervisor
                    // restarts it, and the restart requeues its claims)
                    // rather than leave it running at half strength.
                    mine.stop.store(true, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
                mine.wake_all();
                // Unblock the listener now rather than at its next read
                // timeout: a one-shot must let go of the socket quickly, or
                // submissions keep waking a relayer that already left.
                if let Ok(s) = UnixDatagram::unbound() {
                    let _ = s.set_nonblocking(true);
                    let _ = s.send_to(b"!", &listener);
                }
                r
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                shared.stop.store(true, Ordering::SeqCst);
                shared.wake_all();
                for h in handles {
                    let _ = h.join();
                }
                return Err(RelayError::Io("spawning a relay worker".into(), e));
            }
        }
    }
    // The listener: wake-ups, hand-over requests, signals, reloads.
    let mut buf = [0u8; 64];
    while done.load(Ordering::SeqCst) < workers {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let mut handover = buf[..n].contains(&YIELD);
                // Drain the burst: one wake-up is enough for all of it.
                let _ = socket.set_nonblocking(true);
                while let Ok(n) = socket.recv(&mut buf) {
                    handover |= buf[..n].contains(&YIELD);
                }
                let _ = socket.set_nonblocking(false);
                if handover && mode == Mode::Once {
                    shared.stop.store(true, Ordering::SeqCst);
                } else {
                    import();
                }
                shared.wake_all();
            }
            Err(_) => {
                if signals::stop_requested() {
                    shared.wake_all();
                }
            }
        }
        if mode == Mode::Daemon && signals::take_reload() {
            reload(&shared, config_path);
        }
    }
    let _ = std::fs::remove_file(&socket_path);
    if let Some(server) = intake {
        server.stop();
    }
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(RelayError::Worker("a relay worker panicked".into()));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None if shared.stopping() => Ok(Ended::Stopped),
        None => Ok(Ended::Drained),
    }
}

/// SIGHUP: re-read the configuration; keep the old one if the new one is
/// broken. Workers pick it up before their next batch.
fn reload(shared: &Shared, config_path: Option<&Path>) {
    let old = shared.config();
    let new = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            log::log(
                Level::Err,
                &format!("reload failed, keeping the old configuration: {e}"),
            );
            return;
        }
    };
    if new.queue_dir != old.queue_dir {
        log::log(
            Level::Err,
            "reload: queue.dir changed; restart relayd for that. Keeping the old configuration",
        );
        return;
    }
    if let Err(e) = Smarthost::new(new.relay.clone(), &new.hostname) {
        log::log(
            Level::Err,
            &format!("reload failed, keeping the old configuration: {e}"),
        );
        return;
    }
    if new.relay.connections != old.relay.connections {
        log::log(
            Level::Warning,
            "reload: relay.connections takes effect when relayd restarts",
        );
    }
    let (n, o) = (&new.submit, &old.submit);
    if n.socket != o.socket
        || n.max_connections != o.max_connections
        || n.max_connections_per_uid != o.max_connections_per_uid
    {
        log::log(
            Level::Warning,
            "reload: submit.socket and submit.max_connections* take effect when relayd restarts",
        );
    }
    log::log(
        Level::Info,
        &format!(
            "configuration reloaded relay={}:{} tls={:?}",
            new.relay.host, new.relay.port, new.relay.tls
        ),
    );
    match shared.cfg.lock() {
        Ok(mut c) => *c = Arc::new(new),
        Err(p) => *p.into_inner() = Arc::new(new),
    }
    shared.wake_all();
}

fn worker(shared: &Shared, mode: Mode) -> Result<(), RelayError> {
    let mut cfg = shared.config();
    let mut store = Store::open(&cfg.db_path(), Durability::Normal)?;
    store.set_protection(crate::store::Protection::from(&*cfg));
    let mut host = Smarthost::new(cfg.relay.clone(), &cfg.hostname)?;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let seen = shared.generation();
        let current = shared.config();
        if !Arc::ptr_eq(&current, &cfg) {
            cfg = current;
            store.set_protection(crate::store::Protection::from(&*cfg));
            host = Smarthost::new(cfg.relay.clone(), &cfg.hostname)?;
        }
        let Some(claim) = store.claim_next(clock::now_ms())? else {
            if mode == Mode::Once {
                return Ok(());
            }
            host.close_if_idle();
            if host.is_unreachable() && store.next_due()?.is_some() {
                host.probe();
                if after_outage(shared, &mut store, &mut host)? {
                    continue;
                }
            }
            let cap = if host.is_open() || host.is_unreachable() {
                Duration::from_secs(1)
            } else {
                MAX_IDLE_WAIT
            };
            let wait = match store.next_due()? {
                Some(t) => Duration::from_millis(
                    (t - clock::now_ms()).clamp(0, cap.as_millis() as i64) as u64,
                ),
                None => cap,
            };
            shared.wait(seen, wait);
            continue;
        };
        // Connecting can take up to connect_timeout: the account may have
        // been blocked meanwhile (see the module doc). While the smarthost
        // is marked down no attempt is made, and the message is deferred at
        // once.
        if host.connect_now() && !store.confirm_claim(&claim, clock::now_ms())? {
            log::log(
                Level::Info,
                &format!(
                    "qid={} account={} status=held stat=\"account blocked before delivery began\"",
                    sanitize::line(&claim.qid),
                    sanitize::line(&claim.account)
                ),
            );
            continue;
        }
        deliver_one(&cfg, &mut store, &mut host, claim)?;
        after_outage(shared, &mut store, &mut host)?;
    }
}

/// When the smarthost answers again after failed connection attempts, send
/// what was deferred meanwhile now, not at its backoff (which may be an
/// hour after a long outage). True if anything was rescheduled.
fn after_outage(
    shared: &Shared,
    store: &mut Store,
    host: &mut Smarthost,
) -> Result<bool, RelayError> {
    if !host.take_recovered() {
        return Ok(false);
    }
    let n = store.retry_deferred_now(clock::now_ms())?;
    if n > 0 {
        log::log(
            Level::Info,
            &format!(
                "relay={} reachable again: retrying {n} deferred message(s) now",
                host.name()
            ),
        );
        shared.wake_all();
    }
    Ok(n > 0)
}

/// Deliver one claimed message and record the outcome.
fn deliver_one(
    cfg: &Config,
    store: &mut Store,
    host: &mut Smarthost,
    claim: Claim,
) -> Result<(), RelayError> {
    let sender = envelope_sender(cfg, &claim);
    let results = match store.body(claim.id)? {
        Some(body) => host.deliver(
            &Outgoing {
                sender: &sender,
                recipients: &claim.recipients,
                body_8bit: claim.body_8bit,
                dsn_notify: claim.dsn_notify.as_deref(),
                dsn_ret: claim.dsn_ret.as_deref(),
                envid: claim.envid.as_deref(),
            },
            &body,
        ),
        // Bodies go only with a finished message; a claimed one without is
        // damaged. Record it as in error rather than retry it forever.
        None => claim
            .recipients
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    RcptOutcome::Failed("message body missing from the queue".into()),
                )
            })
            .collect(),
    };
    let now = clock::now_ms();
    let attempt = outcome(cfg, &claim, results, now, schedule::jitter());
    for (rcpt, o) in &attempt.results {
        let (status, stat) = match o {
            RcptOutcome::Sent => ("sent", "ok"),
            RcptOutcome::Failed(t) => ("bounced", t.as_str()),
            RcptOutcome::Deferred(t) if attempt.expire => ("expired", t.as_str()),
            RcptOutcome::Deferred(t) => ("deferred", t.as_str()),
        };
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} from=<{}> to=<{}> relay={} delay={:.3} tries={} status={status} stat={}",
                sanitize::line(&claim.qid),
                sanitize::line(&claim.account),
                sanitize::line(&sender),
                sanitize::line(rcpt),
                host.name(),
                (now - claim.created) as f64 / 1000.0,
                claim.attempts,
                log::quote(stat)
            ),
        );
    }
    if !store.record_attempt(&claim, &attempt, clock::now_ms())? {
        log::log(
            Level::Warning,
            &format!(
                "qid={} was removed from the queue while being delivered",
                sanitize::line(&claim.qid)
            ),
        );
    }
    let failed = attempt.expire
        || attempt
            .results
            .iter()
            .any(|(_, o)| matches!(o, RcptOutcome::Failed(_)));
    if failed {
        // Errors may have tripped the ratio rule: tell the report recipient
        // now (the notice is system mail this relayer sends next).
        if let Err(e) = crate::report::notify(cfg, store, clock::now_ms()) {
            log::log(Level::Warning, &format!("block notice not queued: {e}"));
        }
    }
    Ok(())
}

/// Turn per-recipient results into an attempt: when to retry what is left,
/// or fail it because the queue lifetime is over.
fn outcome(
    cfg: &Config,
    claim: &Claim,
    results: Vec<(String, RcptOutcome)>,
    now: i64,
    jitter: f64,
) -> Attempt {
    let policy = Policy {
        initial: cfg.relay.retry_initial,
        max: cfg.relay.retry_max,
        lifetime: cfg.queue_lifetime,
    };
    let any_deferred = results
        .iter()
        .any(|(_, o)| matches!(o, RcptOutcome::Deferred(_)));
    let decision = if any_deferred {
        policy.after_temporary_failure(claim.created, claim.attempts.max(1) as u32, now, jitter)
    } else {
        Decision::RetryAt(now)
    };
    let (retry_at, expire) = match decision {
        Decision::RetryAt(t) => (t, false),
        Decision::Expire => (now, true),
    };
    Attempt {
        results,
        retry_at,
        expire,
    }
}

/// The envelope sender on the wire: VERP-rewritten when configured, so a
/// later DSN names the message it is about (docs/bounces.md, "Turn on VERP").
pub fn envelope_sender(cfg: &Config, claim: &Claim) -> String {
    if cfg.bounce.verp && !claim.sender.is_empty() {
        format!(
            "{}+{}@{}",
            cfg.bounce.local_part, claim.qid, cfg.bounce.domain
        )
    } else {
        claim.sender.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(extra, Path::new("/t.toml")).unwrap()
    }

    fn claim(created: i64, attempts: i64) -> Claim {
        Claim {
            id: 1,
            qid: "Q1".into(),
            account: "web1".into(),
            sender: "web1@node1.example.net".into(),
            created,
            attempts,
            dsn_notify: None,
            dsn_ret: None,
            envid: None,
            body_8bit: false,
            recipients: vec!["a@x.org".into(), "b@x.org".into()],
        }
    }

    #[test]
    fn all_final_results_need_no_retry() {
        let c = cfg("");
        let a = outcome(
            &c,
            &claim(0, 1),
            vec![
                ("a@x.org".into(), RcptOutcome::Sent),
                ("b@x.org".into(), RcptOutcome::Failed("550 no".into())),
            ],
            1000,
            0.5,
        );
        assert!(!a.expire);
        assert_eq!(a.retry_at, 1000);
    }

    #[test]
    fn a_deferred_recipient_schedules_a_backoff_retry() {
        let c = cfg("[relay]\nretry_initial = \"1m\"\nretry_max = \"1h\"\n");
        let a = outcome(
            &c,
            &claim(0, 2),
            vec![
                ("a@x.org".into(), RcptOutcome::Sent),
                ("b@x.org".into(), RcptOutcome::Deferred("451 later".into())),
            ],
            1000,
            0.5,
        );
        assert!(!a.expire);
        assert_eq!(a.retry_at, 1000 + 120_000);
    }

    #[test]
    fn past_lifetime_the_pending_recipients_expire() {
        let c = cfg("[queue]\nqueue_lifetime = \"2s\"\n");
        let a = outcome(
            &c,
            &claim(0, 3),
            vec![("a@x.org".into(), RcptOutcome::Deferred("refused".into()))],
            2000,
            0.5,
        );
        assert!(a.expire);
    }

    #[test]
    fn verp_rewrites_only_real_senders() {
        let c = cfg("[bounce]\nverp = true\ndomain = \"b.example.net\"\n");
        assert_eq!(
            envelope_sender(&c, &claim(0, 1)),
            "bounces+Q1@b.example.net"
        );
        let mut null = claim(0, 1);
        null.sender = String::new();
        assert_eq!(envelope_sender(&c, &null), "");
    }

    #[test]
    fn second_daemon_lock_names_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&format!("[queue]\ndir = \"{}\"\n", dir.path().display()));
        let first = lock_daemon(&c).unwrap();
        match lock_daemon(&c) {
            Err(RelayError::AlreadyRunning { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(lock_daemon(&c).is_ok());
    }
}
