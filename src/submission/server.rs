//! relayd's submit socket (docs/submission.md, "The server").
//!
//! - **Identity from the kernel.** Each connection's uid is its
//!   `SO_PEERCRED` (recorded at connect(2); `sendmail` connects with its
//!   caller's uid as effective uid), mapped to the account with the same
//!   rules as `sendmail` (`submit::identify`). Nothing in a frame names an
//!   account.
//! - **A stalled caller stalls only itself.** One thread per connection,
//!   at most `submit.max_connections` in all and
//!   `submit.max_connections_per_uid` per uid (past a cap: `421` and close,
//!   and the client uses the maildrop); each reads with a deadline
//!   (`submit.read_timeout`, afresh after each answer) and a size cap, and holds an in-memory budget for the data it reads (per uid
//!   and in all, [`Budgets`]). No database work while reading: only a
//!   complete frame goes to the committer.
//! - **Socket activation.** The socket systemd passes (fd 3,
//!   `scriptmail-submit.socket`) is used when present; otherwise relayd
//!   binds `submit.socket` itself (mode 0666), replacing a dead relayd's
//!   socket file but never a live one's, and removes it when it stops.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::commit::{self, ConfigFn, Job, WakeFn};
use super::import::{self, Signal};
use crate::clock;
use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::handoff::frame::{self, FrameError, Reply, Verb};
use crate::handoff::{listing, parcel};
use crate::log::{self, Level};
use crate::maildrop;
use crate::relay::RelayError;
use crate::store::{Durability, Intaken, Store, StoreError};

/// Stack of a connection thread: frames live on the heap.
const STACK: usize = 256 * 1024;

/// The running submission side of relayd.
pub struct Server {
    stop: Arc<AtomicBool>,
    import: Arc<Signal>,
    threads: Vec<JoinHandle<()>>,
    /// The socket file we bound (removed at stop); `None` under systemd.
    bound: Option<PathBuf>,
}

impl Server {
    /// Start the committer, the maildrop importer and, if the socket can be
    /// had, the acceptor. Without the socket relayd still imports the
    /// maildrop (where every `sendmail` then writes): it logs why.
    pub fn start(cfg: &Config, config: ConfigFn, wake: WakeFn) -> Result<Server, RelayError> {
        let io = |what: &Path, e| RelayError::Io(what.display().to_string(), e);
        maildrop::ensure_dir(&cfg.queue_dir).map_err(|e| io(&maildrop::dir(&cfg.queue_dir), e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let store = Store::open(&cfg.db_path(), Durability::Full)?;
        let (jobs, committer) = commit::start(store, Arc::clone(&config), wake, Arc::clone(&stop))
            .map_err(|e| io(Path::new("committer thread"), e))?;
        let mut threads = vec![committer];
        let signal = Arc::new(Signal::default());
        {
            let (config, jobs, signal, stop) = (
                Arc::clone(&config),
                jobs.clone(),
                Arc::clone(&signal),
                Arc::clone(&stop),
            );
            threads.push(
                std::thread::Builder::new()
                    .name("import".into())
                    .spawn(move || import::run(config, jobs, signal, stop))
                    .map_err(|e| io(Path::new("import thread"), e))?,
            );
        }
        let mut bound = None;
        match listen(&cfg.submit.socket) {
            Ok((listener, ours)) => {
                bound = ours;
                let gate = Arc::new(Gate::new(cfg));
                let stop = Arc::clone(&stop);
                threads.push(
                    std::thread::Builder::new()
                        .name("accept".into())
                        .spawn(move || accept(&listener, &gate, &jobs, &config, &stop))
                        .map_err(|e| io(Path::new("accept thread"), e))?,
                );
                log::log(
                    Level::Info,
                    &format!("submissions on {}", cfg.submit.socket.display()),
                );
            }
            Err(e) => log::log(
                Level::Err,
                &format!(
                    "cannot listen on {}: {e}; sendmail uses the maildrop, which relayd imports",
                    cfg.submit.socket.display()
                ),
            ),
        }
        Ok(Server {
            stop,
            import: signal,
            threads,
            bound,
        })
    }

    /// Look at the maildrop now (a `sendmail` just wrote to it).
    pub fn import_soon(&self) {
        self.import.raise();
    }

    /// Stop accepting, finish the batch in hand, remove our socket file.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.import.raise();
        if let Some(p) = &self.bound {
            let _ = std::fs::remove_file(p);
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The listening socket: systemd's, or one we bind (then its path).
fn listen(path: &Path) -> io::Result<(UnixListener, Option<PathBuf>)> {
    if let Some(l) = crate::os::socket::activated_listener() {
        l.set_nonblocking(true)?;
        return Ok((l, None));
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process serves this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    // Anyone may connect: the kernel tells us who they are.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    l.set_nonblocking(true)?;
    Ok((l, Some(path.to_path_buf())))
}

/// In-memory budgets for message data being read: per uid and in all. The
/// data of a frame is reserved before it is read; past a budget the frame
/// is deferred (`451`) and its `sendmail` writes the maildrop instead.
struct Budgets {
    per_uid: u64,
    total: u64,
}

/// Connection and memory accounting.
struct Gate {
    max_total: usize,
    max_per_uid: usize,
    budgets: Budgets,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    conns: usize,
    bytes: u64,
    /// uid → (connections, bytes reserved)
    per_uid: HashMap<u32, (usize, u64)>,
}

impl Gate {
    fn new(cfg: &Config) -> Gate {
        let frame = super::limits(cfg).max_data;
        Gate {
            max_total: cfg.submit.max_connections,
            max_per_uid: cfg.submit.max_connections_per_uid,
            // Four large messages of one uid, sixteen in all, at once: far
            // above honest traffic (mail() messages are kilobytes), and a
            // bound on what a hostile tenant can make relayd hold.
            budgets: Budgets {
                per_uid: frame.saturating_mul(4),
                total: frame.saturating_mul(16),
            },
            state: Mutex::new(GateState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Let a connection of `uid` in, or say which cap is reached.
    fn enter(self: &Arc<Self>, uid: u32) -> Result<Ticket, &'static str> {
        let mut s = self.lock();
        if s.conns >= self.max_total {
            return Err("too many connections (submit.max_connections)");
        }
        let e = s.per_uid.entry(uid).or_default();
        if e.0 >= self.max_per_uid {
            return Err("too many connections of this uid (submit.max_connections_per_uid)");
        }
        e.0 += 1;
        s.conns += 1;
        Ok(Ticket {
            gate: Arc::clone(self),
            uid,
        })
    }

    /// Reserve `n` bytes for `uid`'s frame data, if the budgets allow.
    fn reserve(self: &Arc<Self>, uid: u32, n: u64) -> Option<Budget> {
        let mut s = self.lock();
        let mine = s.per_uid.get(&uid).map_or(0, |e| e.1);
        if s.bytes.saturating_add(n) > self.budgets.total
            || mine.saturating_add(n) > self.budgets.per_uid
        {
            return None;
        }
        s.bytes += n;
        s.per_uid.entry(uid).or_default().1 += n;
        Some(Budget {
            gate: Arc::clone(self),
            uid,
            n,
        })
    }

    fn release(&self, uid: u32, conns: usize, bytes: u64) {
        let mut s = self.lock();
        s.conns -= conns;
        s.bytes -= bytes;
        if let Some(e) = s.per_uid.get_mut(&uid) {
            e.0 -= conns;
            e.1 -= bytes;
            if *e == (0, 0) {
                s.per_uid.remove(&uid);
            }
        }
    }
}

/// A connection let in; leaving frees its place.
struct Ticket {
    gate: Arc<Gate>,
    uid: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.release(self.uid, 1, 0);
    }
}

/// Bytes reserved for one frame's data.
struct Budget {
    gate: Arc<Gate>,
    uid: u32,
    n: u64,
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.gate.release(self.uid, 0, self.n);
    }
}

/// The acceptor: let connections in (or turn them away) until `stop`.
fn accept(
    listener: &UnixListener,
    gate: &Arc<Gate>,
    jobs: &Sender<Job>,
    config: &ConfigFn,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        if !crate::os::readable_within(listener, Duration::from_millis(250)).unwrap_or(false) {
            continue;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                // Out of descriptors or memory: let it pass, do not spin.
                log::log(Level::Warning, &format!("submit socket: accept: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let uid = match crate::os::socket::peer_uid(&stream) {
            Ok(u) => u,
            Err(_) => continue,
        };
        let ticket = match gate.enter(uid) {
            Ok(t) => t,
            Err(why) => {
                turn_away(&stream, uid, why);
                continue;
            }
        };
        let (gate, jobs, config) = (Arc::clone(gate), jobs.clone(), Arc::clone(config));
        let spawned = std::thread::Builder::new()
            .name("submit".into())
            .stack_size(STACK)
            .spawn(move || {
                serve(&stream, uid, &gate, &jobs, &config());
                drop(ticket);
            });
        // No thread: the connection is closed unanswered, and the client
        // uses the maildrop, as after a 421.
        if let Err(e) = spawned {
            log::log(
                Level::Warning,
                &format!("uid={uid} stat=\"submission connection dropped: {e}\""),
            );
        }
    }
}

/// Say `421` and close: the client writes the maildrop instead.
fn turn_away(mut stream: &UnixStream, uid: u32, why: &str) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&frame::turned_away(why));
    log::log(
        Level::Warning,
        &format!("uid={uid} stat=\"submission connection turned away: {why}\""),
    );
}

/// Reads a connection until a deadline the server moves after each answer.
struct Deadlined<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

/// The SMTP-ish code that goes with a refusal's exit status.
fn code_for(exit: Exit) -> u16 {
    match exit {
        Exit::Unavailable => 552,
        Exit::NoPerm => 550,
        _ => 554,
    }
}

/// Serve one connection: greet, then answer frame after frame.
fn serve(stream: &UnixStream, uid: u32, gate: &Arc<Gate>, jobs: &Sender<Job>, cfg: &Config) {
    let mut w = stream;
    let _ = w.set_write_timeout(Some(Duration::from_secs(10)));
    if w.write_all(&frame::greeting()).is_err() {
        return;
    }
    let caller = crate::submit::identify(cfg, uid);
    let limits = super::limits(cfg);
    let idle = cfg.submit.read_timeout;
    let mut r = BufReader::with_capacity(
        16 * 1024,
        Deadlined {
            stream,
            until: Instant::now() + idle,
        },
    );
    let refuse = |w: &mut &UnixStream, exit: Exit, text: &str| {
        log::log(
            Level::Info,
            &format!(
                "uid={uid} stat={}",
                log::quote(&format!("submission refused: {text}"))
            ),
        );
        let _ = w.write_all(
            &Reply::Refused {
                code: code_for(exit),
                exit,
                text: text.to_string(),
            }
            .line(),
        );
    };
    loop {
        let head = match frame::read_head(&mut r, &limits.caps()) {
            Ok(Some(h)) => h,
            // The client is done.
            Ok(None) => return,
            // Gone, or out of time: nobody to answer.
            Err(FrameError::Io(_)) | Err(FrameError::Truncated) => return,
            Err(e) => return refuse(&mut w, e.exit(), &e.to_string()),
        };
        let caller = match &caller {
            Ok(c) => c,
            Err(e) => return refuse(&mut w, e.exit_code(), &e.to_string()),
        };
        let answer = match head.verb {
            Verb::Msg => {
                let env = match parcel::envelope(&head, &limits, false) {
                    Ok(env) => env,
                    Err(e) => return refuse(&mut w, e.exit, &e.text),
                };
                let now = clock::now_ms();
                let mut data = super::received(cfg, uid, &caller.account, &env.parcel.qid, now);
                let Some(_budget) =
                    gate.reserve(uid, env.data_len.saturating_add(data.len() as u64))
                else {
                    let _ = w.write_all(
                        &Reply::Deferred {
                            code: 451,
                            text: "relayd is busy with this uid's messages".into(),
                        }
                        .line(),
                    );
                    return;
                };
                data.reserve(usize::try_from(env.data_len).unwrap_or(0));
                if frame::read_data(&mut r, env.data_len, &mut data).is_err() {
                    return;
                }
                let data_start = data.len() - env.data_len as usize;
                if !parcel::is_wire_form(data.get(data_start..).unwrap_or_default()) {
                    refuse(
                        &mut w,
                        Exit::DataErr,
                        "message not in wire form (CRLF lines of at most 998 octets)",
                    );
                    r.get_mut().until = Instant::now() + idle;
                    continue;
                }
                let qid = env.parcel.qid.clone();
                let intake = super::intake(env, &caller.account, uid, now, data);
                match commit::ask(jobs, |reply| Job::Message {
                    intake: Box::new(intake),
                    via: super::Via::Socket,
                    reply,
                }) {
                    Some(result) => reply_for(qid, &result),
                    None => stopping(),
                }
            }
            Verb::List => {
                if head.data_len != 0 {
                    return refuse(&mut w, Exit::Usage, "a LIST frame carries no data");
                }
                match commit::ask(jobs, |reply| Job::List {
                    account: caller.account.clone(),
                    reply,
                }) {
                    Some(Ok(rows)) => {
                        if w.write_all(&listing::encode(&rows)).is_err() {
                            return;
                        }
                        r.get_mut().until = Instant::now() + idle;
                        continue;
                    }
                    Some(Err(e)) => deferred(&e),
                    None => stopping(),
                }
            }
            Verb::Maildrop => return refuse(&mut w, Exit::Usage, "not a frame for the socket"),
        };
        if w.write_all(&answer.line()).is_err() {
            return;
        }
        r.get_mut().until = Instant::now() + idle;
    }
}

/// The answer for a commit result.
fn reply_for(qid: String, result: &Result<Intaken, StoreError>) -> Reply {
    match result {
        Ok(i) => Reply::Accepted {
            qid,
            held: i.held(),
        },
        Err(StoreError::Conflict(why)) => Reply::Refused {
            code: 550,
            exit: Exit::NoPerm,
            text: why.clone(),
        },
        Err(e) => deferred(e),
    }
}

/// A failure that is not the message's: the client uses the maildrop.
fn deferred(e: &StoreError) -> Reply {
    Reply::Deferred {
        code: 451,
        text: e.to_string(),
    }
}

fn stopping() -> Reply {
    Reply::Deferred {
        code: 421,
        text: "relayd is stopping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(extra: &str) -> Arc<Gate> {
        let cfg = Config::parse(extra, Path::new("/t.toml")).unwrap();
        Arc::new(Gate::new(&cfg))
    }

    #[test]
    fn connections_are_capped_in_all_and_per_uid() {
        let g = gate("[submit]\nmax_connections = 3\nmax_connections_per_uid = 2\n");
        let a1 = g.enter(1001).unwrap();
        let _a2 = g.enter(1001).unwrap();
        assert!(g.enter(1001).err().unwrap().contains("per_uid"));
        let _b1 = g.enter(1002).unwrap();
        assert!(g.enter(1003).err().unwrap().contains("max_connections"));
        drop(a1);
        let _a3 = g.enter(1001).unwrap();
        assert_eq!(g.lock().conns, 3);
    }

    #[test]
    fn frame_data_is_budgeted_per_uid_and_in_all() {
        let g = gate("[queue]\nmax_message_size = 1000\n");
        let frame = super::super::limits(
            &Config::parse("[queue]\nmax_message_size = 1000\n", Path::new("/t.toml")).unwrap(),
        )
        .max_data;
        let big = g.reserve(1001, 3 * frame).unwrap();
        assert!(
            g.reserve(1001, 2 * frame).is_none(),
            "past 4 frames of one uid"
        );
        let _small = g.reserve(1001, frame).unwrap();
        let others: Vec<Budget> = (0..3)
            .map(|i| g.reserve(2000 + i, 4 * frame).unwrap())
            .collect();
        assert!(g.reserve(3000, 1).is_none(), "past 16 frames in all");
        drop(big);
        assert!(g.reserve(3000, frame).is_some());
        drop(others);
        assert_eq!(
            g.lock().per_uid.get(&2000),
            None,
            "released uids are forgotten"
        );
    }
}
