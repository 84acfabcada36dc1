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

use std::path::PathBuf;

use crate::clock;
use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::log::{self, Level};
use crate::os::signals;
use crate::store::{Durability, Store, StoreError};
use crate::transport::{Smarthost, TransportError};

mod listener;
mod lock;
mod worker;

use listener::serve;
use lock::{lock_daemon, requeue_orphans, wait_for_relay_lock};
pub use lock::{recover_orphans, try_lock};
pub use worker::envelope_sender;

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

/// How a round of [`listener::serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Nothing was due any more (one-shot).
    Drained,
    /// SIGTERM, or a daemon asked this one-shot to hand over.
    Stopped,
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
