//! Importing the maildrop into the queue (docs/submission.md, "Maildrop").
//!
//! Each file is read, checked like a frame from the socket, given relayd's
//! `Received:` trace (the account from the uid the file carries, the time
//! `sendmail` took it), and committed through the same enqueue policy —
//! the state check happens at import. A file is unlinked only after its
//! commit; one whose queue id is already queued for the same account (the
//! connection to relayd was lost after relayd committed it) is just
//! unlinked. A file that can never be imported (damaged, or its uid no
//! longer allowed) is renamed `QID.rejected` and logged as an error; one
//! that failed for a passing reason (the database busy or full) stays for
//! the next round.
//!
//! Who imports: relayd's importer thread (at start, on every wake-up and
//! every few seconds) through the committer; the one-shot delivery at its
//! start, on wake-ups and before it exits; the sweep when no relayer runs.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::Via;
use super::commit::{self, ConfigFn, Job};
use crate::config::Config;
use crate::handoff::{frame, parcel};
use crate::log::{self, Level};
use crate::maildrop;
use crate::relay::RelayError;
use crate::store::{Durability, Intake, Intaken, Store, StoreError};

/// Files committed in one transaction by the one-shot and the sweep.
const CHUNK: usize = 64;
/// How often relayd looks at the maildrop without being woken.
const INTERVAL: Duration = Duration::from_secs(5);

/// Why a file was not imported.
enum Unfit {
    /// Damaged or no longer allowed: it never will be.
    Never(String),
    /// Could not be read now: try again later.
    NotNow(String),
}

/// Read one maildrop file into a job for the committer.
fn load(cfg: &Config, path: &Path) -> Result<Intake, Unfit> {
    let f = std::fs::File::open(path).map_err(|e| Unfit::NotNow(e.to_string()))?;
    let mut r = BufReader::new(f);
    let limits = super::limits(cfg);
    let never = |e: &dyn std::fmt::Display| Unfit::Never(e.to_string());
    let head = frame::read_head(&mut r, &limits.caps())
        .map_err(|e| never(&e))?
        .ok_or_else(|| Unfit::Never("empty file".into()))?;
    let env = parcel::envelope(&head, &limits, true).map_err(|e| never(&e))?;
    let origin = env.origin.ok_or_else(|| Unfit::Never("no origin".into()))?;
    let caller = crate::submit::identify(cfg, origin.uid).map_err(|e| never(&e))?;
    let mut data = super::received(
        cfg,
        origin.uid,
        &caller.account,
        &env.parcel.qid,
        origin.time,
    );
    let len = env.data_len;
    data.reserve(usize::try_from(len).unwrap_or(0));
    frame::read_data(&mut r, len, &mut data).map_err(|e| never(&e))?;
    if r.read(&mut [0u8; 1])
        .map_err(|e| Unfit::NotNow(e.to_string()))?
        != 0
    {
        return Err(Unfit::Never("bytes after the data".into()));
    }
    if !parcel::is_wire_form(&data) {
        return Err(Unfit::Never("message not in wire form".into()));
    }
    Ok(super::intake(
        env,
        &caller.account,
        origin.uid,
        origin.time,
        data,
    ))
}

/// Set a file aside that can never be imported.
fn reject(path: &Path, why: &str) {
    let mut to = path.as_os_str().to_owned();
    to.push(".rejected");
    let _ = std::fs::rename(path, &to);
    log::log(
        Level::Err,
        &format!(
            "maildrop file {} cannot be imported ({}); kept as {}",
            path.display(),
            crate::sanitize::line(why),
            PathBuf::from(to).display()
        ),
    );
}

/// Act on one file's commit result; true if it is now in the queue.
fn settle(path: &Path, result: &Result<Intaken, StoreError>) -> bool {
    match result {
        Ok(_) => {
            // Committed (or already there): the file has done its job.
            let _ = std::fs::remove_file(path);
            true
        }
        Err(StoreError::Conflict(why)) => {
            reject(path, why);
            false
        }
        // Logged by `commit::record`; the file waits for the next round.
        Err(_) => false,
    }
}

/// Load the files of `paths`; the ones to commit, paired with their paths,
/// in the order `sendmail` took them (the time each file carries: file
/// times are too coarse to order messages a few milliseconds apart).
fn load_all(cfg: &Config, paths: &[PathBuf]) -> Vec<(PathBuf, Intake)> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        match load(cfg, p) {
            Ok(i) => out.push((p.clone(), i)),
            Err(Unfit::Never(why)) => reject(p, &why),
            Err(Unfit::NotNow(why)) => log::log(
                Level::Warning,
                &format!(
                    "maildrop file {}: {}; trying again later",
                    p.display(),
                    crate::sanitize::line(&why)
                ),
            ),
        }
    }
    out.sort_by_key(|(_, i)| i.time);
    out
}

/// Import everything in the maildrop with `store` (which must commit with
/// `Durability::Full`: a file goes once its message is on disk). Returns
/// how many messages are now in the queue.
pub fn drain(cfg: &Config, store: &mut Store) -> Result<usize, RelayError> {
    maildrop::remove_stale_tmp(&cfg.queue_dir);
    let paths = maildrop::entries(&cfg.queue_dir)
        .map_err(|e| RelayError::Io(maildrop::dir(&cfg.queue_dir).display().to_string(), e))?;
    let mut imported = 0;
    for chunk in paths.chunks(CHUNK) {
        let (paths, items): (Vec<PathBuf>, Vec<Intake>) = load_all(cfg, chunk).into_iter().unzip();
        let results = store.enqueue_batch(&items, crate::store::EnqueuePolicy::from(cfg));
        for ((path, item), result) in paths.iter().zip(&items).zip(results) {
            commit::record(item, Via::Maildrop, &result);
            imported += usize::from(settle(path, &result));
        }
    }
    Ok(imported)
}

/// [`drain`] with a queue connection of its own.
pub fn drain_queue(cfg: &Config) -> Result<usize, RelayError> {
    if !maildrop::has_entries(&cfg.queue_dir) {
        return Ok(0);
    }
    let mut store = Store::open(&cfg.db_path(), Durability::Full)?;
    drain(cfg, &mut store)
}

/// For the sweep: import the maildrop if no relayer holds the relay lock
/// (a running relayer imports it itself). `None` when one does.
pub fn drain_if_idle(cfg: &Config) -> Result<Option<usize>, RelayError> {
    let Some(_lock) = crate::relay::try_lock(cfg)? else {
        return Ok(None);
    };
    drain_queue(cfg).map(Some)
}

/// A wake-up flag with a condition variable.
#[derive(Default)]
pub struct Signal {
    raised: Mutex<bool>,
    cond: Condvar,
}

impl Signal {
    pub fn raise(&self) {
        if let Ok(mut r) = self.raised.lock() {
            *r = true;
        }
        self.cond.notify_all();
    }

    /// Wait until raised or `timeout`; lowers it.
    fn wait(&self, timeout: Duration) {
        if let Ok(r) = self.raised.lock()
            && let Ok((mut r, _)) = self.cond.wait_timeout_while(r, timeout, |r| !*r)
        {
            *r = false;
        }
    }
}

/// relayd's importer thread: import at once, then on every raise of
/// `signal` (a wake-up datagram) and every [`INTERVAL`], through the
/// committer, until `stop`.
pub fn run(config: ConfigFn, jobs: Sender<Job>, signal: Arc<Signal>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let cfg = config();
        maildrop::remove_stale_tmp(&cfg.queue_dir);
        let paths = maildrop::entries(&cfg.queue_dir).unwrap_or_default();
        for chunk in paths.chunks(CHUNK) {
            // Send the whole chunk before waiting: it lands in one commit.
            let waiting: Vec<_> = load_all(&cfg, chunk)
                .into_iter()
                .map(|(path, intake)| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    let sent = jobs.send(Job::Message {
                        intake: Box::new(intake),
                        via: Via::Maildrop,
                        reply: tx,
                    });
                    (path, sent.ok().map(|()| rx))
                })
                .collect();
            for (path, rx) in waiting {
                if let Some(result) = rx.and_then(|rx| rx.recv().ok()) {
                    settle(&path, &result);
                }
            }
        }
        signal.wait(INTERVAL);
    }
}
