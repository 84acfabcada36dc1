//! Relaying the queue: the daemon (`scriptmail relayd`), the one-shot
//! delivery `sendmail` starts when no daemon runs, and `mailq-ctl flush`.
//!
//! Only one relayer runs per queue: it holds `relayd.lock` (a `flock`), so
//! when a relayer starts, every message still marked `sending` belongs to one
//! that died, and is put back at once. Inside the daemon, `connections`
//! worker threads each claim a small batch (an atomic UPDATE with a lease),
//! deliver it over their own reused SMTP connection, and record the outcomes
//! in one transaction. A crash between the smarthost's 250 and that commit
//! re-sends — the at-least-once window SPEC §5 allows; nothing else can.
//!
//! Wake-ups arrive as datagrams on `relayd.sock`; between them, workers sleep
//! until the next deferred message is due.

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock;
use crate::config::Config;
use crate::exit::Exit;
use crate::log::{self, Level};
use crate::os::signals;
use crate::schedule::{self, Decision, Policy};
use crate::store::{Attempt, Claim, Durability, RcptOutcome, Store, StoreError};
use crate::transport::{Outgoing, Smarthost};

/// Messages a worker claims at once.
const BATCH: usize = 8;
/// How long a claim is valid; only matters if the lock-based recovery cannot
/// run (it always can while relayers hold the lock).
const LEASE: Duration = Duration::from_secs(900);

/// Why relaying could not run.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("another relayd is already running on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0}")]
    Setup(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl RelayError {
    pub fn exit_code(&self) -> Exit {
        match self {
            RelayError::Store(e) => e.exit_code(),
            RelayError::AlreadyRunning(_) => Exit::Unavailable,
            RelayError::Setup(_) => Exit::Config,
            RelayError::Io(..) => Exit::IoErr,
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

/// Take the relay lock without waiting; `None` if another relayer holds it.
pub fn try_lock(cfg: &Config) -> Result<Option<File>, RelayError> {
    let path = cfg.relay_lock();
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RelayError::Io(path.display().to_string(), e))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(RelayError::Io(path.display().to_string(), e)),
    }
}

/// Shared between the workers and the wake-up listener.
struct Shared {
    cfg: Mutex<Arc<Config>>,
    /// Bumped at every wake-up; workers wait for it to change.
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Shared {
    fn wake_all(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g += 1;
        }
        self.cond.notify_all();
    }
}

/// Run the relayer. `config_path` is re-read on SIGHUP.
pub fn run(cfg: Config, config_path: Option<PathBuf>, mode: Mode) -> Result<(), RelayError> {
    signals::install();
    let Some(lock) = try_lock(&cfg)? else {
        return match mode {
            // Another relayer is active and re-checks the queue before it
            // lets go of the lock: nothing for us to do.
            Mode::Once => Ok(()),
            Mode::Daemon => Err(RelayError::AlreadyRunning(cfg.queue_dir.clone())),
        };
    };
    let mut lock = Some(lock);
    loop {
        {
            let mut store = Store::open(&cfg.db_path(), Durability::Normal)?;
            let n = store.requeue_orphans(clock::now_ms(), true)?;
            if n > 0 {
                log::log(
                    Level::Warning,
                    &format!("requeued {n} message(s) left in delivery by a crashed relayer"),
                );
            }
        }
        serve(&cfg, config_path.as_deref(), mode)?;
        if mode == Mode::Daemon {
            return Ok(());
        }
        // One-shot: let go of the lock, then look again. A submission that
        // committed before we let go finds us here; one after it could not
        // take the lock before, so it started nobody — so we must look.
        drop(lock.take());
        let store = Store::open(&cfg.db_path(), Durability::Normal)?;
        let due = store.next_due()?.is_some_and(|t| t <= clock::now_ms());
        drop(store);
        if !due {
            return Ok(());
        }
        match try_lock(&cfg)? {
            Some(l) => lock = Some(l),
            None => return Ok(()),
        }
    }
}

fn serve(cfg: &Config, config_path: Option<&Path>, mode: Mode) -> Result<(), RelayError> {
    let socket_path = cfg.wake_socket();
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path)
        .map_err(|e| RelayError::Io(socket_path.display().to_string(), e))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(250)))
        .map_err(|e| RelayError::Io(socket_path.display().to_string(), e))?;
    let shared = Arc::new(Shared {
        cfg: Mutex::new(Arc::new(cfg.clone())),
        generation: Mutex::new(0),
        cond: Condvar::new(),
    });
    if mode == Mode::Daemon {
        log::log(
            Level::Info,
            &format!(
                "relayd started queue={} relay={}:{} connections={}",
                cfg.queue_dir.display(),
                cfg.relay.host,
                cfg.relay.port,
                cfg.relay.connections
            ),
        );
    }
    let workers = match mode {
        Mode::Daemon => cfg.relay.connections,
        Mode::Once => 1,
    };
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..workers {
        let shared = Arc::clone(&shared);
        let done = Arc::clone(&done);
        handles.push(
            std::thread::Builder::new()
                .name(format!("relay-{i}"))
                .spawn(move || {
                    let r = worker(&shared, mode);
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    shared.wake_all();
                    r
                })
                .map_err(|e| RelayError::Io("thread".into(), e))?,
        );
    }
    // The listener: wake-ups, signals, and (daemon) reloads.
    let mut buf = [0u8; 64];
    while done.load(std::sync::atomic::Ordering::SeqCst) < workers {
        match socket.recv(&mut buf) {
            Ok(_) => {
                // Drain the burst: one wake-up is enough for all of it.
                let _ = socket.set_nonblocking(true);
                while socket.recv(&mut buf).is_ok() {}
                let _ = socket.set_nonblocking(false);
                shared.wake_all();
            }
            Err(_) => {
                if signals::stop_requested() {
                    shared.wake_all();
                }
            }
        }
        if mode == Mode::Daemon && signals::take_reload() {
            match Config::load(config_path) {
                Ok(new) => {
                    log::log(Level::Info, "configuration reloaded");
                    if let Ok(mut c) = shared.cfg.lock() {
                        *c = Arc::new(new);
                    }
                    shared.wake_all();
                }
                Err(e) => log::log(
                    Level::Err,
                    &format!("reload failed, keeping the old configuration: {e}"),
                ),
            }
        }
    }
    let _ = std::fs::remove_file(&socket_path);
    let mut first_err = None;
    for h in handles {
        if let Ok(Err(e)) = h.join() {
            first_err.get_or_insert(e);
        }
    }
    if mode == Mode::Daemon {
        log::log(Level::Info, "relayd stopped");
    }
    first_err.map_or(Ok(()), Err)
}

fn worker(shared: &Shared, mode: Mode) -> Result<(), RelayError> {
    let mut cfg = shared
        .cfg
        .lock()
        .map(|c| Arc::clone(&c))
        .map_err(|_| RelayError::Setup("poisoned".into()))?;
    let mut store = Store::open(&cfg.db_path(), Durability::Normal)?;
    store.set_protection(cfg.protection());
    let mut host = Smarthost::new(cfg.relay.clone(), &cfg.hostname).map_err(RelayError::Setup)?;
    loop {
        if signals::stop_requested() {
            return Ok(());
        }
        let seen = shared.generation.lock().map(|g| *g).unwrap_or(0);
        if let Ok(c) = shared.cfg.lock() {
            if !Arc::ptr_eq(&c, &cfg) {
                cfg = Arc::clone(&c);
                store.set_protection(cfg.protection());
                host =
                    Smarthost::new(cfg.relay.clone(), &cfg.hostname).map_err(RelayError::Setup)?;
            }
        }
        let now = clock::now_ms();
        let claims = store.claim_due(now, BATCH, LEASE)?;
        if claims.is_empty() {
            if mode == Mode::Once {
                return Ok(());
            }
            host.close_if_idle();
            let wait = match store.next_due()? {
                Some(t) => Duration::from_millis((t - clock::now_ms()).clamp(0, 1000) as u64),
                None => Duration::from_secs(1),
            };
            if let Ok(g) = shared.generation.lock() {
                let _ = shared.cond.wait_timeout_while(g, wait, |g| *g == seen);
            }
            continue;
        }
        deliver_batch(&cfg, &mut store, &mut host, claims)?;
    }
}

/// Deliver claimed messages and record the outcomes (used by `flush` too).
pub fn deliver_batch(
    cfg: &Config,
    store: &mut Store,
    host: &mut Smarthost,
    claims: Vec<Claim>,
) -> Result<(), RelayError> {
    let policy = Policy {
        initial: cfg.relay.retry_initial,
        max: cfg.relay.retry_max,
        lifetime: cfg.queue_lifetime,
    };
    let mut attempts = Vec::with_capacity(claims.len());
    let mut unsent = Vec::new();
    for claim in claims {
        if signals::stop_requested() {
            unsent.push(claim.id);
            continue;
        }
        let body = store.body(claim.id)?;
        let sender = envelope_sender(cfg, &claim);
        let started = clock::now_ms();
        let results = host.deliver(
            &Outgoing {
                sender: &sender,
                recipients: &claim.recipients,
                body_8bit: claim.body_8bit,
                dsn_notify: claim.dsn_notify.as_deref(),
                dsn_ret: claim.dsn_ret.as_deref(),
                envid: claim.envid.as_deref(),
            },
            &body,
        );
        let now = clock::now_ms();
        let any_deferred = results
            .iter()
            .any(|(_, o)| matches!(o, RcptOutcome::Deferred(_)));
        let decision = if any_deferred {
            policy.after_temporary_failure(
                claim.created,
                claim.attempts.max(1) as u32,
                now,
                schedule::jitter(),
            )
        } else {
            Decision::RetryAt(now)
        };
        for (rcpt, o) in &results {
            let (status, stat) = match o {
                RcptOutcome::Sent => ("sent", "ok"),
                RcptOutcome::Failed(t) => ("bounced", t.as_str()),
                RcptOutcome::Deferred(t) if decision == Decision::Expire => ("expired", t.as_str()),
                RcptOutcome::Deferred(t) => ("deferred", t.as_str()),
            };
            log::log(
                Level::Info,
                &format!(
                    "qid={} account={} from=<{}> to=<{}> relay={} delay={:.3} status={status} stat={}",
                    claim.qid,
                    claim.account,
                    log::clean(&sender),
                    log::clean(rcpt),
                    host.name(),
                    (now - claim.created) as f64 / 1000.0,
                    log::quote(stat)
                ),
            );
        }
        let _ = started;
        let (retry_at, expire) = match decision {
            Decision::RetryAt(t) => (t, false),
            Decision::Expire => (now, true),
        };
        attempts.push((
            claim,
            Attempt {
                results,
                retry_at,
                expire,
            },
        ));
    }
    store.record_attempts(&attempts, clock::now_ms())?;
    if !unsent.is_empty() {
        store.release_claims(&unsent)?;
    }
    Ok(())
}

/// The envelope sender on the wire: VERP-rewritten when configured, so a
/// later DSN names the message it is about (SPEC §6.3).
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
