//! The listener, the connections and the workers (docs/api.md, "Running
//! it").
//!
//! - **Workers**: a fixed pool of `api.workers` threads handles requests,
//!   each with its own [`Control`] (its own queue connection): at most that
//!   many requests touch the queue at once. Requests wait for a worker in
//!   a bounded queue; when it is full the answer is 503 at once.
//! - **Connections**: one thread each, at most [`MAX_CONNECTIONS`]; one
//!   more is answered 503 and closed. A connection's thread reads a whole
//!   request (`wire.rs`: bounded line, head and body sizes) within
//!   [`REQUEST_TIME`] of starting to wait for it — a client that is idle
//!   or trickles bytes is dropped then — hands it to a worker, and writes
//!   the answer within [`SEND_TIMEOUT`]. Connections are kept alive
//!   between requests (the same deadline then bounds the wait).
//!
//! A small server of our own rather than tiny_http: tiny_http 0.12 drains
//! an unread body on drop by allocating its whole declared length at once,
//! so one unauthenticated request with `Content-Length: 99999999999999`
//! aborts the process (reproduced), and it has no read timeouts or line
//! limits.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::{Gate, lock};
use super::http::{ApiError, Req, Resp};
use super::routes::{self, Access};
use super::tokens::Tokens;
use super::wire::{self, WireError};
use super::{Ctx, DaemonError, Shared, hosting};
use crate::clock;
use crate::config::{ApiListen, Config};
use crate::control::Control;
use crate::log::{self, Level};
use crate::os::signals;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client has to send a whole request, counted from when the
/// connection starts waiting for it (also the keep-alive idle time).
pub const REQUEST_TIME: Duration = Duration::from_secs(15);
/// How long writing an answer may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests waiting for a worker, per worker.
const QUEUE_PER_WORKER: usize = 64;
/// How often blocked threads look at the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// The longest a connection waits for its worker (a `flush` or `test`
/// waits up to 60 s for the outcome).
const HANDLER_TIME: Duration = Duration::from_secs(120);

/// A request on its way to a worker, and where the answer goes.
struct Job {
    req: Req,
    reply: SyncSender<Resp>,
}

/// Listen and serve until SIGTERM/SIGINT.
pub fn serve(cfg: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    signals::install();
    let mut controls = Vec::with_capacity(cfg.api.workers);
    for _ in 0..cfg.api.workers {
        controls.push(Control::open(
            cfg.clone(),
            config_path.as_deref(),
            "api".into(),
        )?);
    }
    let listen = cfg.api.listen.clone();
    let listener = Listener::bind(&listen).map_err(|source| DaemonError::Listen {
        addr: listen.to_string(),
        source,
    })?;
    let shared = Arc::new(Shared {
        gate: Gate {
            tokens: Mutex::new(Tokens::new(&cfg.api.tokens_file)),
            sessions: Mutex::default(),
            failures: Mutex::default(),
        },
        tasks: Mutex::new(hosting::Tasks::default()),
        cfg,
    });
    if let Some(e) = shared.gate.tokens().last_error.clone() {
        log::log(Level::Err, &format!("api tokens file unusable: {e}"));
    }
    let (tx, rx) = mpsc::sync_channel::<Job>(shared.cfg.api.workers * QUEUE_PER_WORKER);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = controls
        .into_iter()
        .enumerate()
        .map(|(i, mut control)| {
            let (rx, shared) = (Arc::clone(&rx), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(format!("api-worker-{i}"))
                .spawn(move || work(&rx, &shared, &mut control))
        })
        .collect::<Result<_, _>>()
        .map_err(|e| DaemonError::Stopped(format!("cannot start the workers: {e}")))?;
    log::log(
        Level::Info,
        &format!(
            "api listening on {listen} workers={} tokens_file={}",
            shared.cfg.api.workers,
            log::quote(&shared.cfg.api.tokens_file.display().to_string())
        ),
    );
    accept(&listener, &shared, &tx);
    for w in workers {
        let _ = w.join();
    }
    if let ApiListen::Unix(path) = &listen {
        let _ = std::fs::remove_file(path);
    }
    log::log(Level::Info, "api stopped");
    Ok(())
}

/// A connection, TCP or Unix.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }

    fn shutdown_write(&self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_write_timeout(Some(t)),
            Conn::Unix(s) => s.set_write_timeout(Some(t)),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// A reader that fails with `TimedOut` once its deadline has passed: each
/// read waits at most for what is left, so trickling bytes gains nothing.
struct Deadline {
    conn: Conn,
    until: Instant,
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.conn.set_read_timeout(left)?;
        match self.conn.read(buf) {
            // SO_RCVTIMEO ran out (EAGAIN): that is the deadline too.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                Err(std::io::ErrorKind::TimedOut.into())
            }
            other => other,
        }
    }
}

/// The listening socket, TCP or Unix.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Bind `listen`. `accept` returns every [`TICK`] (`SO_RCVTIMEO` on
    /// the listening socket), so the loop sees a stop request. A Unix
    /// socket left by a daemon that is gone is replaced; one in use is not.
    fn bind(listen: &ApiListen) -> std::io::Result<Listener> {
        match listen {
            ApiListen::Tcp(addr) => {
                let l = TcpListener::bind(addr)?;
                TcpStream::from(OwnedFd::from(l.try_clone()?)).set_read_timeout(Some(TICK))?;
                Ok(Listener::Tcp(l))
            }
            ApiListen::Unix(path) => {
                remove_stale(path)?;
                let l = UnixListener::bind(path)?;
                // The proxy connects as another user: it is given the
                // scriptmail group (docs/api.md, "Behind nginx").
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
                UnixStream::from(OwnedFd::from(l.try_clone()?)).set_read_timeout(Some(TICK))?;
                Ok(Listener::Unix(l))
            }
        }
    }

    fn accept(&self) -> std::io::Result<(Conn, Option<IpAddr>)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Conn::Tcp(s), Some(a.ip()))),
            Listener::Unix(l) => l.accept().map(|(s, _)| (Conn::Unix(s), None)),
        }
    }
}

fn remove_stale(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another daemon listens on it",
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists and is not a socket",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Counts a connection while its thread lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accept connections until asked to stop.
fn accept(listener: &Listener, shared: &Arc<Shared>, tx: &SyncSender<Job>) {
    let active = Arc::new(AtomicUsize::new(0));
    while !signals::stop_requested() {
        let (mut conn, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close.
                log::log(Level::Warning, &format!("api accept failed: {e}"));
                std::thread::sleep(TICK);
                continue;
            }
        };
        let _ = conn.set_write_timeout(SEND_TIMEOUT);
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            let busy = ApiError::new(503, "too many connections; try again").into_resp();
            let _ = wire::write_response(
                &mut conn,
                &busy.with_header("Retry-After", "1"),
                false,
                false,
            );
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let (shared, tx) = (Arc::clone(shared), tx.clone());
        let spawned = std::thread::Builder::new()
            .name("api-conn".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                let _slot = slot;
                connection(conn, peer, &shared, &tx);
            });
        if let Err(e) = spawned {
            log::log(
                Level::Warning,
                &format!("api cannot start a connection thread: {e}"),
            );
        }
    }
}

/// The client's address: the configured proxy header, else the peer.
fn client_of(headers: &[(String, String)], peer: Option<IpAddr>, cfg: &Config) -> String {
    if let Some(name) = &cfg.api.client_address_header
        && let Some((_, v)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
    {
        // X-Forwarded-For lists every hop; the proxy appends the last one.
        let last = v.rsplit(',').next().unwrap_or(v).trim();
        if !last.is_empty() {
            return crate::sanitize::truncate(last, 64).into_owned();
        }
    }
    peer.map_or_else(|| "unix".to_string(), |a| a.to_string())
}

/// Serve one connection: request after request until the client closes,
/// asks to, or misses its deadline.
fn connection(conn: Conn, peer: Option<IpAddr>, shared: &Shared, tx: &SyncSender<Job>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(Deadline {
        conn: read_half,
        until: Instant::now(),
    });
    let mut writer = BufWriter::new(conn);
    loop {
        reader.get_mut().until = Instant::now() + REQUEST_TIME;
        let raw = match wire::read_request(&mut reader, &mut writer) {
            Ok(raw) => raw,
            Err(WireError::Closed | WireError::Io(_)) => return,
            Err(WireError::Refuse(status, why)) => {
                let _ = wire::write_response(
                    &mut writer,
                    &ApiError::new(status, why).into_resp(),
                    false,
                    false,
                );
                linger(&mut reader, writer.get_ref());
                return;
            }
        };
        let keep_alive = raw.keep_alive && !signals::stop_requested();
        let resp = match raw.method {
            None => ApiError::new(405, "method not allowed").into_resp(),
            Some(method) => {
                let client = client_of(&raw.headers, peer, &shared.cfg);
                let mut req = Req::new(method, &raw.target, raw.headers, &client);
                req.body = raw.body;
                ask(tx, req)
            }
        };
        if wire::write_response(&mut writer, &resp, keep_alive, raw.head_only).is_err()
            || !keep_alive
        {
            return;
        }
    }
}

/// After refusing a request whose rest (a body too large) the client is
/// still sending: close our side for writing, then read and drop a little
/// of what comes, briefly, so the refusal is not lost to a reset — the
/// kernel resets a connection closed with unread data, and a reset can
/// discard the answer before the client reads it.
fn linger(reader: &mut BufReader<Deadline>, conn: &Conn) {
    const LINGER: Duration = Duration::from_secs(2);
    const LINGER_BYTES: u64 = 64 * 1024;
    let _ = conn.shutdown_write();
    reader.get_mut().until = Instant::now() + LINGER;
    let _ = std::io::copy(&mut reader.take(LINGER_BYTES), &mut std::io::sink());
}

/// Hand a request to the workers and wait for the answer.
fn ask(tx: &SyncSender<Job>, req: Req) -> Resp {
    let (reply, answer) = mpsc::sync_channel(1);
    match tx.try_send(Job { req, reply }) {
        Ok(()) => answer
            .recv_timeout(HANDLER_TIME)
            .unwrap_or_else(|_| ApiError::new(503, "no answer in time; try again").into_resp()),
        Err(TrySendError::Full(_)) => ApiError::new(503, "the API is busy; try again")
            .into_resp()
            .with_header("Retry-After", "1"),
        Err(TrySendError::Disconnected(_)) => ApiError::new(503, "the API is stopping").into_resp(),
    }
}

/// One worker: take requests until asked to stop.
fn work(rx: &Mutex<Receiver<Job>>, shared: &Shared, control: &mut Control) {
    while !signals::stop_requested() {
        let job = lock(rx).recv_timeout(TICK);
        let Ok(Job { mut req, reply }) = job else {
            continue;
        };
        let mut ctx = Ctx {
            control,
            shared,
            who: None,
            now: clock::now_ms(),
            instant: Instant::now(),
        };
        let resp = dispatch(&mut ctx, &mut req).unwrap_or_else(|e| {
            if e.status >= 500 {
                log::log(
                    Level::Err,
                    &format!(
                        "api {} {} failed: {}",
                        req.method.as_str(),
                        log::quote(&req.path),
                        log::quote(&e.message)
                    ),
                );
            }
            e.into_resp()
        });
        let _ = reply.send(resp);
    }
}

/// Route, authenticate, check the body's type, run the handler.
fn dispatch(ctx: &mut Ctx<'_>, req: &mut Req) -> Result<Resp, ApiError> {
    let (route, params) = routes::find(req.method, &req.path)?;
    ctx.who = match route.access {
        Access::Public => None,
        Access::Metrics if ctx.shared.cfg.api.open_metrics => None,
        Access::Metrics => {
            let who = ctx.shared.gate.authenticate(req, ctx.instant)?;
            who.admin("this endpoint (api.open_metrics = false)")?;
            Some(who)
        }
        Access::Token => Some(ctx.shared.gate.authenticate(req, ctx.instant)?),
    };
    if !req.body.is_empty() {
        let json = req.header("content-type").is_none_or(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            return Err(ApiError::new(415, "the body must be application/json"));
        }
    }
    (route.handler)(ctx, req, &params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("api.sock");
        let live = UnixListener::bind(&p).unwrap();
        assert_eq!(
            remove_stale(&p).unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse
        );
        drop(live);
        remove_stale(&p).unwrap();
        assert!(!p.exists());
        std::fs::write(&p, b"").unwrap();
        assert!(remove_stale(&p).is_err(), "not a socket: left alone");
    }

    #[test]
    fn a_deadline_bounds_a_client_that_trickles() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let writer = std::thread::spawn(move || {
            // A request line, then a header one byte every 100 ms: each
            // read succeeds, the whole does not end in time.
            let _ = client.write_all(b"GET / HTTP/1.1\r\n");
            for _ in 0..20 {
                if client.write_all(b"G").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let start = Instant::now();
        let mut r = BufReader::new(Deadline {
            conn: Conn::Tcp(server),
            until: start + Duration::from_millis(500),
        });
        let e = wire::read_request(&mut r, &mut Vec::new()).unwrap_err();
        // Without the deadline the 20 bytes would end in EOF mid-line (a
        // 400); with it, the read fails first.
        assert!(
            matches!(e, WireError::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut),
            "{e:?}"
        );
        drop(r);
        writer.join().unwrap();
    }

    #[test]
    fn the_client_is_the_peer_unless_a_proxy_header_is_configured() {
        let mut cfg = Config::parse("", Path::new("/x")).unwrap();
        let h = vec![("x-real-ip".to_string(), "10.1.2.3".to_string())];
        let peer = Some(IpAddr::from([127, 0, 0, 1]));
        assert_eq!(client_of(&h, peer, &cfg), "127.0.0.1");
        assert_eq!(client_of(&[], None, &cfg), "unix");
        cfg.api.client_address_header = Some("X-Real-IP".into());
        assert_eq!(client_of(&h, peer, &cfg), "10.1.2.3");
        let xff = vec![("x-real-ip".to_string(), "1.1.1.1, 10.9.9.9".to_string())];
        assert_eq!(client_of(&xff, peer, &cfg), "10.9.9.9");
        assert_eq!(client_of(&[], peer, &cfg), "127.0.0.1");
    }
}
