//! Who relays: the relay lock, the daemon's pid file, the hand-over from a
//! one-shot, and putting back the claims of a dead relayer (see the module
//! doc of `relay`).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RelayError, YIELD};
use crate::clock;
use crate::config::Config;
use crate::log::{self, Level};
use crate::os::signals;
use crate::store::{Durability, Store};

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
pub(super) fn lock_daemon(cfg: &Config) -> Result<File, RelayError> {
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

/// Take the relay lock, asking a one-shot that holds it to hand over.
/// `None` if SIGTERM arrived while waiting.
pub(super) fn wait_for_relay_lock(cfg: &Config) -> Result<Option<File>, RelayError> {
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

/// We hold the relay lock, so no other relayer is alive: every `sending`
/// message is an orphan of a crash, to be sent again. Returns how many.
pub(super) fn requeue_orphans(cfg: &Config) -> Result<usize, RelayError> {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(extra, Path::new("/t.toml")).unwrap()
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
