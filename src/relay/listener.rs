//! A round of relaying: the state the workers share, the listener on the
//! wake socket (wake-ups, hand-over requests, signals) that starts and joins
//! the workers, and SIGHUP reloads (see the module doc of `relay`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::worker::worker;
use super::{Ended, Mode, RelayError, YIELD};
use crate::config::Config;
use crate::log::{self, Level};
use crate::os::signals;
use crate::transport::Smarthost;

/// Shared between the workers and the listener.
pub(super) struct Shared {
    cfg: Mutex<Arc<Config>>,
    /// Bumped at every wake-up; workers wait for it to change.
    generation: Mutex<u64>,
    cond: Condvar,
    /// Stop this round: SIGTERM, a hand-over request, or a failed worker.
    stop: AtomicBool,
}

impl Shared {
    pub(super) fn wake_all(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g += 1;
        }
        self.cond.notify_all();
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || signals::stop_requested()
    }

    pub(super) fn config(&self) -> Arc<Config> {
        match self.cfg.lock() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// Sleep until a wake-up after `seen`, or `timeout`.
    pub(super) fn wait(&self, seen: u64, timeout: Duration) {
        if let Ok(g) = self.generation.lock() {
            let _ = self.cond.wait_timeout_while(g, timeout, |g| *g == seen);
        }
    }
}

pub(super) fn serve(
    cfg: &Config,
    config_path: Option<&Path>,
    mode: Mode,
) -> Result<Ended, RelayError> {
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
