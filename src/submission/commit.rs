//! The committer: ONE thread that owns relayd's submission connection to
//! the queue and does group commit (docs/submission.md, "Group commit").
//!
//! It sleeps until a job arrives, then takes every job already waiting (up
//! to [`MAX_BATCH`]), commits all their messages in one `BEGIN IMMEDIATE`
//! transaction (`Store::enqueue_batch`: the enqueue policy per message, one
//! fsync for the batch), answers each waiting connection or import, and
//! wakes the relay workers in-process. While it commits, new frames queue
//! up behind it, so the busier the node, the larger the batches. Nobody else
//! touches this connection, and no job reaches it before its frame was read
//! completely: a slow or stopped sender never holds the write lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Via, listing};
use crate::config::Config;
use crate::handoff::listing::Row;
use crate::log::{self, Level};
use crate::store::{Intake, Intaken, Store, StoreError};

/// Most messages in one transaction: a bound on how long one commit holds
/// the write lock (a few milliseconds).
pub const MAX_BATCH: usize = 256;

/// The live configuration (relayd reloads it on SIGHUP).
pub type ConfigFn = Arc<dyn Fn() -> Arc<Config> + Send + Sync>;
/// Wakes relayd's relay workers.
pub type WakeFn = Arc<dyn Fn() + Send + Sync>;

/// What the committer is asked to do.
pub enum Job {
    /// Commit a message, then answer.
    Message {
        intake: Box<Intake>,
        via: Via,
        reply: SyncSender<Result<Intaken, StoreError>>,
    },
    /// List one account's pending mail (`sendmail -bp`).
    List {
        account: String,
        reply: SyncSender<Result<Vec<Row>, StoreError>>,
    },
}

/// Start the committer on `store`. It stops once `stop` is set and no job
/// is waiting.
pub fn start(
    store: Store,
    config: ConfigFn,
    wake: WakeFn,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Sender<Job>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("committer".into())
        .spawn(move || run(store, &rx, &config, &wake, &stop))?;
    Ok((tx, handle))
}

fn run(mut store: Store, rx: &Receiver<Job>, config: &ConfigFn, wake: &WakeFn, stop: &AtomicBool) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(j) => j,
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut messages = Vec::new();
        let mut lists = Vec::new();
        let mut next = Some(first);
        while let Some(j) = next {
            match j {
                Job::Message { intake, via, reply } => messages.push((*intake, via, reply)),
                Job::List { account, reply } => lists.push((account, reply)),
            }
            next = if messages.len() + lists.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let cfg = config();
        if !messages.is_empty() {
            let (items, rest): (Vec<Intake>, Vec<(Via, SyncSender<_>)>) = messages
                .into_iter()
                .map(|(i, via, reply)| (i, (via, reply)))
                .unzip();
            let results = store.enqueue_batch(&items, crate::store::EnqueuePolicy::from(&*cfg));
            let mut relay = false;
            for ((item, (via, reply)), result) in items.iter().zip(rest).zip(results) {
                relay |= record(item, via, &result);
                // A connection that gave up meanwhile: its sendmail uses the
                // maildrop, and the import finds the message committed.
                let _ = reply.send(result);
            }
            if relay {
                wake();
            }
        }
        for (account, reply) in lists {
            let _ = reply.send(listing::rows(&cfg, &store, &account));
        }
    }
}

/// Log what became of one message (one `key=value` line, docs/design.md, "Logging");
/// true if it is queued for relay now.
pub fn record(it: &Intake, via: Via, result: &Result<Intaken, StoreError>) -> bool {
    match result {
        Ok(Intaken::New(e)) => {
            let cwd = format!(" cwd={}", log::quote(&it.parcel.cwd));
            crate::store::log_enqueued(&it.as_new(), e, &cwd, Some(via.as_str()));
            !e.held
        }
        Ok(Intaken::Known { .. }) => {
            log::log(
                Level::Info,
                &format!(
                    "qid={} account={} via={} stat=\"already in the queue; not taken twice\"",
                    it.parcel.qid,
                    crate::sanitize::line(&it.account),
                    via.as_str()
                ),
            );
            false
        }
        Err(e) => {
            log::log(
                Level::Err,
                &format!(
                    "qid={} account={} via={} stat={}",
                    it.parcel.qid,
                    crate::sanitize::line(&it.account),
                    via.as_str(),
                    log::quote(&e.to_string())
                ),
            );
            false
        }
    }
}

/// Send a job and wait for its answer; `None` when the committer is gone
/// (relayd is stopping).
pub fn ask<T>(jobs: &Sender<Job>, make: impl FnOnce(SyncSender<T>) -> Job) -> Option<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    jobs.send(make(tx)).ok()?;
    rx.recv().ok()
}
