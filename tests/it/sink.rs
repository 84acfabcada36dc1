//! Debian Postfix's real `smtp-sink` behind a recording TCP tap on 127.0.0.1, for integration tests.
//!
//! [`Sink::start`] runs `/usr/sbin/smtp-sink -d DIR/msg. unix:DIR/sock` in a fresh temporary
//! directory and puts a small std-only TCP proxy (the "tap") on `127.0.0.1:<free port>` in
//! front of it. Clients (scriptmail's relay) talk to [`Sink::port`]; every byte is passed
//! through to smtp-sink unchanged, so the SMTP dialogue is the real smtp-sink's.
//!
//! Why both a dump and a tap:
//! - smtp-sink's `-d` dump is the real server's view of each transaction (envelope as
//!   `X-Mail-Args` / `X-Rcpt-Args` headers), but it drops **every** CR byte of the data
//!   (CRLF and bare CR alike), sanitises the envelope lines (any byte outside 0x20..=0x7e,
//!   tab included, becomes `?`), and creates the file at `MAIL` time, filling it through a
//!   buffer that is only flushed when the final dot arrives (an in-progress file is empty
//!   or truncated; an aborted transaction's file is deleted).
//! - The tap records the exact bytes, so [`Captured::data`] keeps CRLF, bare CR/LF and
//!   8-bit bytes as sent, and it sees smtp-sink's `250` reply to the final dot *before*
//!   forwarding it to the client. smtp-sink closes the dump file before it writes that
//!   reply, so a transaction the tap has seen accepted always has a complete dump file.
//!   [`Sink::messages`] pairs each accepted transaction with its dump file (same envelope,
//!   same body once CRs are removed) and panics if smtp-sink and the wire disagree.
//!
//! Consequently a client that received `250` for its final dot will find the message in
//! [`Sink::messages`] immediately; [`Sink::wait_for`] is for clients running elsewhere
//! (a spawned relay daemon).
//!
//! Extra smtp-sink options can be passed with [`Sink::start_with`] (for example
//! `["-r", "rcpt"]` for 4xx on every RCPT, `["-w", "2"]` to delay DATA, `["-8"]` to hide
//! 8BITMIME). Do not pass `-d`, `-D`, `-L` or a listen address.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Where Debian's `postfix` package installs smtp-sink.
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// How long [`Sink::start`] waits for smtp-sink to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One message that smtp-sink accepted (its reply to the final dot was 2xx).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// 0-based number of the tap connection it came in on (equal numbers: same session).
    pub connection: usize,
    /// The argument of the last EHLO/HELO before it, exactly as sent.
    pub helo: String,
    /// The reverse path without angle brackets: `MAIL FROM:<a@b> ...` gives `a@b`;
    /// `MAIL FROM:<>` gives the empty string.
    pub mail_from: String,
    /// Everything after `MAIL FROM:` (leading blanks skipped), exactly as sent,
    /// e.g. `<a@b> BODY=8BITMIME SIZE=123`. Same shape as smtp-sink's `X-Mail-Args`.
    pub mail_args: String,
    /// Accepted forward paths without angle brackets, in the order sent.
    pub rcpt_to: Vec<String>,
    /// Everything after `RCPT TO:` for each accepted recipient, e.g. `<c@d> NOTIFY=NEVER`.
    pub rcpt_args: Vec<String>,
    /// The message exactly as the client sent it: dot-unstuffed, line endings untouched,
    /// without the terminating `.<CRLF>` (the CRLF ending the last line belongs to it).
    pub data: Vec<u8>,
    /// The DATA payload as it was on the wire: still dot-stuffed, ending in `<CRLF>.<CRLF>`
    /// (or just `.<CRLF>` for an empty message).
    pub wire: Vec<u8>,
    /// The message as smtp-sink stored it: `data` with every CR removed (the trailing empty
    /// line smtp-sink appends is stripped here).
    pub sink_data: Vec<u8>,
    /// smtp-sink's whole dump file, its `X-*` and `Received:` headers included.
    pub dump: Vec<u8>,
}

impl Captured {
    /// `data` as (lossy) UTF-8, for `contains` checks and assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The value of the first header field `name` (case-insensitive) in the message
    /// header, unfolded, without leading and trailing blanks.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let mut value: Option<String> = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((field, rest)) = line.split_once(':')
                && field.eq_ignore_ascii_case(name)
            {
                value = Some(rest.trim().to_string());
            }
        }
        value
    }
}

/// Counters the tap keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// TCP connections accepted by the tap.
    pub connections: usize,
    /// Messages accepted (2xx to the final dot).
    pub messages: usize,
    /// Transactions whose final dot got a non-2xx reply.
    pub rejected: usize,
}

/// A running smtp-sink plus its tap. Dropping it kills smtp-sink and closes every connection.
pub struct Sink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Sink {
    /// Starts smtp-sink with its default behaviour (accept everything; it announces
    /// PIPELINING, 8BITMIME, AUTH, XCLIENT, XFORWARD, ENHANCEDSTATUSCODES, DSN; no SIZE,
    /// no STARTTLS, no CHUNKING).
    pub fn start() -> Sink {
        Sink::start_with(&[])
    }

    /// Starts smtp-sink with extra options (see `man smtp-sink`).
    pub fn start_with(extra_args: &[&str]) -> Sink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's postfix package (.ci/run does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink.")
            .tempdir()
            .expect("create temporary directory for smtp-sink");
        let base = dir
            .path()
            .canonicalize()
            .expect("canonicalize smtp-sink directory");
        let base_str = base.to_str().expect("temporary directory path is UTF-8");
        // The dump template goes through strftime(3).
        assert!(
            !base_str.contains('%'),
            "temporary directory path contains %"
        );
        let socket = base.join("sock");
        let stderr = fs::File::create(base.join("stderr")).expect("create smtp-sink stderr file");

        let mut cmd = Command::new(SMTP_SINK);
        // smtp-sink refuses to run as root without -u; keep root's privileges then, so it
        // can write into our 0700 temporary directory.
        if running_as_root() {
            cmd.args(["-u", "root"]);
        }
        cmd.arg("-d")
            .arg(format!("{base_str}/msg."))
            .args(["-m", "512"])
            .args(extra_args)
            .arg(format!("unix:{}", socket.display()))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {SMTP_SINK}: {e}"));

        // Ready when the Unix socket accepts a connection and smtp-sink greets.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("poll smtp-sink") {
                panic!(
                    "smtp-sink exited during start-up ({status}): {}",
                    read_lossy(&base.join("stderr"))
                );
            }
            if let Ok(stream) = UnixStream::connect(&socket) {
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("set probe timeout");
                let mut greeting = String::new();
                let _ = BufReader::new(&stream).read_line(&mut greeting);
                // Leave without QUIT: smtp-sink just logs a lost connection.
                drop(stream);
                if !greeting.is_empty() {
                    break;
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "smtp-sink did not accept connections within {START_TIMEOUT:?}: {}",
                    read_lossy(&base.join("stderr"))
                );
            }
            thread::sleep(Duration::from_millis(10));
        }

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tap listener on 127.0.0.1:0");
        let port = listener.local_addr().expect("tap listener address").port();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("sink-tap-accept".into())
                .spawn(move || accept_loop(listener, socket, shared))
                .expect("spawn tap acceptor")
        };
        Sink {
            child,
            dir,
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The TCP port on 127.0.0.1 to relay to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding smtp-sink's dump files (`msg.*`), socket and stderr.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What smtp-sink wrote on stderr so far (warnings such as "lost connection").
    pub fn stderr(&self) -> String {
        read_lossy(&self.dir.path().join("stderr"))
    }

    /// Connection and message counters.
    pub fn stats(&self) -> SinkStats {
        let st = self.shared.lock();
        SinkStats {
            connections: st.connections,
            messages: st.accepted.len(),
            rejected: st.rejected,
        }
    }

    /// Number of TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Every message accepted so far, in the order smtp-sink accepted them. Only complete
    /// messages are returned. Panics if a message has no matching smtp-sink dump file.
    pub fn messages(&self) -> Vec<Captured> {
        let accepted = self.shared.lock().accepted.clone();
        if accepted.is_empty() {
            return Vec::new();
        }
        let mut dumps = read_dumps(self.dir.path());
        accepted
            .into_iter()
            .map(|t| {
                let expected_body = {
                    let mut b: Vec<u8> = t.data.iter().copied().filter(|&c| c != b'\r').collect();
                    b.push(b'\n');
                    b
                };
                let pos = dumps.iter().position(|d| {
                    d.mail_args == sanitize(&t.mail_args)
                        && d.rcpt_args.len() == t.rcpt_args.len()
                        && d.rcpt_args
                            .iter()
                            .zip(&t.rcpt_args)
                            .all(|(a, b)| *a == sanitize(b))
                        && d.body == expected_body
                });
                let Some(pos) = pos else {
                    panic!(
                        "smtp-sink dump and wire disagree: no dump file in {} matches the \
                         accepted transaction MAIL {:?} RCPT {:?} data {:?}; dump files: {:#?}",
                        self.dir.path().display(),
                        lossy(&t.mail_args),
                        t.rcpt_args.iter().map(|r| lossy(r)).collect::<Vec<_>>(),
                        lossy(&t.data),
                        dumps.iter().map(|d| lossy(&d.raw)).collect::<Vec<_>>(),
                    )
                };
                let dump = dumps.swap_remove(pos);
                let mut sink_data = dump.body;
                sink_data.pop();
                Captured {
                    connection: t.connection,
                    helo: lossy(&t.helo),
                    mail_from: path_of(&t.mail_args),
                    mail_args: lossy(&t.mail_args),
                    rcpt_to: t.rcpt_args.iter().map(|r| path_of(r)).collect(),
                    rcpt_args: t.rcpt_args.iter().map(|r| lossy(r)).collect(),
                    data: t.data,
                    wire: t.wire,
                    sink_data,
                    dump: dump.raw,
                }
            })
            .collect()
    }

    /// Whether at least `n` messages were accepted within `timeout`.
    pub fn wait_until(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.shared.lock().accepted.len() < n {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Polls until at least `n` messages were accepted and returns them all; panics after
    /// `timeout` with what was received so far.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        if !self.wait_until(n, timeout) {
            let got = self.messages();
            panic!(
                "smtp-sink: expected at least {n} message(s) within {timeout:?}, got {} \
                 ({:?}); envelopes: {:?}; smtp-sink stderr: {}",
                got.len(),
                self.stats(),
                got.iter()
                    .map(|m| (m.mail_from.clone(), m.rcpt_to.clone()))
                    .collect::<Vec<_>>(),
                self.stderr()
            );
        }
        self.messages()
    }
}

/// smtp-sink stopped (SIGSTOP) until dropped (SIGCONT): connections are
/// still accepted by the kernel, but nothing is answered, so mail being
/// relayed stays in delivery meanwhile.
pub struct Paused<'a>(&'a Sink);

impl Sink {
    /// Stop answering until the guard is dropped; see [`Paused`].
    pub fn pause(&self) -> Paused<'_> {
        signal(self.child.id(), "-STOP");
        Paused(self)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        signal(self.0.child.id(), "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} {pid}");
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let streams: Vec<TcpStream> = self.shared.lock().open.drain().map(|(_, s)| s).collect();
        for s in streams {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Tap

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct State {
    connections: usize,
    accepted: Vec<WireTxn>,
    rejected: usize,
    /// Client sockets still open, to shut down on drop.
    open: HashMap<usize, TcpStream>,
}

#[derive(Clone, Debug)]
struct WireTxn {
    connection: usize,
    helo: Vec<u8>,
    mail_args: Vec<u8>,
    rcpt_args: Vec<Vec<u8>>,
    wire: Vec<u8>,
    data: Vec<u8>,
}

fn accept_loop(listener: TcpListener, socket: PathBuf, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let id = {
            let mut st = shared.lock();
            st.connections += 1;
            st.connections - 1
        };
        let Ok(server) = UnixStream::connect(&socket) else {
            // smtp-sink is gone: behave like a dead server.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let (Ok(c2), Ok(c3), Ok(s2)) = (client.try_clone(), client.try_clone(), server.try_clone())
        else {
            continue;
        };
        shared.lock().open.insert(id, c3);
        let conv = Arc::new(Mutex::new(Conversation::new(id)));
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(2));
        let spawn = |from: End, to: End, dir: Dir| {
            let (conv, shared, live) = (Arc::clone(&conv), Arc::clone(&shared), Arc::clone(&live));
            thread::Builder::new()
                .name(format!("sink-tap-{id}-{dir:?}"))
                .spawn(move || {
                    pump(from, to, dir, &conv, &shared);
                    if live.fetch_sub(1, Ordering::SeqCst) == 1 {
                        shared.lock().open.remove(&id);
                    }
                })
                .is_ok()
        };
        spawn(End::Tcp(client), End::Unix(server), Dir::ToServer);
        spawn(End::Unix(s2), End::Tcp(c2), Dir::ToClient);
    }
}

enum End {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl End {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            End::Tcp(s) => s.read(buf),
            End::Unix(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            End::Tcp(s) => s.write_all(buf),
            End::Unix(s) => s.write_all(buf),
        }
    }
    fn shutdown(&self, how: Shutdown) {
        let _ = match self {
            End::Tcp(s) => s.shutdown(how),
            End::Unix(s) => s.shutdown(how),
        };
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

/// Copies bytes one way. Each chunk is recorded and parsed *before* it is forwarded, so a
/// client that has read smtp-sink's reply to its final dot finds the message recorded.
fn pump(mut from: End, mut to: End, dir: Dir, conv: &Mutex<Conversation>, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut write_failed = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = conv.lock().unwrap_or_else(|e| e.into_inner());
            c.push(dir, &buf[..n]);
            let (done, rejected) = c.advance();
            if !done.is_empty() || rejected > 0 {
                let mut st = shared.lock();
                st.accepted.extend(done);
                st.rejected += rejected;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            write_failed = true;
            break;
        }
    }
    to.shutdown(Shutdown::Write);
    if write_failed {
        from.shutdown(Shutdown::Both);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Greeting,
    Command,
    Data,
    DotReply,
    Done,
}

#[derive(Default)]
struct Txn {
    mail_args: Vec<u8>,
    rcpt_args: Vec<Vec<u8>>,
    wire: Vec<u8>,
}

/// Replays one SMTP session from both byte streams: each client command is paired with
/// the next server reply, so pipelining needs no special care.
struct Conversation {
    id: usize,
    client: Vec<u8>,
    cpos: usize,
    server: Vec<u8>,
    spos: usize,
    phase: Phase,
    /// A command read from the client that still waits for its reply.
    pending: Option<(String, Vec<u8>)>,
    /// Where to resume looking for the end of data.
    scan: usize,
    helo: Vec<u8>,
    txn: Option<Txn>,
}

impl Conversation {
    fn new(id: usize) -> Conversation {
        Conversation {
            id,
            client: Vec::new(),
            cpos: 0,
            server: Vec::new(),
            spos: 0,
            phase: Phase::Greeting,
            pending: None,
            scan: 0,
            helo: Vec::new(),
            txn: None,
        }
    }

    fn push(&mut self, dir: Dir, bytes: &[u8]) {
        match dir {
            Dir::ToServer => self.client.extend_from_slice(bytes),
            Dir::ToClient => self.server.extend_from_slice(bytes),
        }
    }

    /// Consumes what can be paired up; returns accepted transactions and the number of
    /// rejected final dots.
    fn advance(&mut self) -> (Vec<WireTxn>, usize) {
        let mut done = Vec::new();
        let mut rejected = 0;
        loop {
            match self.phase {
                Phase::Done => break,
                Phase::Greeting => {
                    let Some(code) = self.next_reply() else { break };
                    self.phase = if code == 220 {
                        Phase::Command
                    } else {
                        Phase::Done
                    };
                }
                Phase::Command => {
                    if self.pending.is_none() {
                        let Some(line) = self.next_line() else { break };
                        self.pending = Some(split_command(&line));
                    }
                    let Some(code) = self.next_reply() else { break };
                    let (verb, args) = self.pending.take().expect("pending command");
                    self.on_reply(&verb, args, code);
                }
                Phase::Data => {
                    let Some(end) = self.find_end_of_data() else {
                        break;
                    };
                    let wire = self.client[self.cpos..end].to_vec();
                    self.cpos = end;
                    if let Some(t) = self.txn.as_mut() {
                        t.wire = wire;
                    }
                    self.phase = Phase::DotReply;
                }
                Phase::DotReply => {
                    let Some(code) = self.next_reply() else { break };
                    if let Some(t) = self.txn.take() {
                        if (200..300).contains(&code) {
                            done.push(WireTxn {
                                connection: self.id,
                                helo: self.helo.clone(),
                                data: unstuff(&t.wire),
                                mail_args: t.mail_args,
                                rcpt_args: t.rcpt_args,
                                wire: t.wire,
                            });
                        } else {
                            rejected += 1;
                        }
                    }
                    self.phase = if code == 421 {
                        Phase::Done
                    } else {
                        Phase::Command
                    };
                }
            }
        }
        // Forget consumed bytes.
        self.client.drain(..self.cpos);
        self.scan = self.scan.saturating_sub(self.cpos);
        self.cpos = 0;
        self.server.drain(..self.spos);
        self.spos = 0;
        (done, rejected)
    }

    fn on_reply(&mut self, verb: &str, args: Vec<u8>, code: u16) {
        let ok = (200..300).contains(&code);
        match verb {
            "EHLO" | "HELO" | "LHLO" => {
                self.txn = None;
                if ok {
                    self.helo = args;
                }
            }
            "MAIL" if ok => {
                self.txn = Some(Txn {
                    mail_args: after_colon(&args),
                    ..Txn::default()
                });
            }
            "RCPT" if ok => {
                if let Some(t) = self.txn.as_mut() {
                    t.rcpt_args.push(after_colon(&args));
                }
            }
            "DATA" if code == 354 => {
                self.phase = Phase::Data;
                self.scan = self.cpos;
            }
            "RSET" => self.txn = None,
            _ => {}
        }
        if code == 421 {
            self.phase = Phase::Done;
        }
    }

    /// The next CRLF-terminated command line (smtp-sink only accepts CRLF there).
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let rest = &self.client[self.cpos..];
        let i = find(rest, b"\r\n")?;
        let line = rest[..i].to_vec();
        self.cpos += i + 2;
        Some(line)
    }

    /// The code of the next complete (possibly multi-line) reply.
    fn next_reply(&mut self) -> Option<u16> {
        let mut pos = self.spos;
        loop {
            let rest = &self.server[pos..];
            let nl = rest.iter().position(|&b| b == b'\n')?;
            let line = &rest[..nl];
            pos += nl + 1;
            if line.len() < 4 || line[3] != b'-' {
                let code = std::str::from_utf8(line.get(..3).unwrap_or(b"000"))
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                self.spos = pos;
                return Some(code);
            }
        }
    }

    /// End (exclusive) of the DATA payload: the data starts at a line start, so an
    /// immediate `.<CRLF>` ends it, else the first `<CRLF>.<CRLF>`.
    fn find_end_of_data(&mut self) -> Option<usize> {
        let data = &self.client[self.cpos..];
        if data.starts_with(b".\r\n") {
            return Some(self.cpos + 3);
        }
        let from = self.scan.max(self.cpos);
        match find(&self.client[from..], b"\r\n.\r\n") {
            Some(i) => Some(from + i + 5),
            None => {
                self.scan = self.client.len().saturating_sub(4).max(self.cpos);
                None
            }
        }
    }
}

fn split_command(line: &[u8]) -> (String, Vec<u8>) {
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(line.len());
    let verb = String::from_utf8_lossy(&line[..end]).to_ascii_uppercase();
    let mut rest = &line[end..];
    while let [b' ' | b'\t', tail @ ..] = rest {
        rest = tail;
    }
    (verb, rest.to_vec())
}

/// `FROM:<a@b> X=Y` -> `<a@b> X=Y`, the way smtp-sink cuts `X-Mail-Args` / `X-Rcpt-Args`.
fn after_colon(args: &[u8]) -> Vec<u8> {
    let mut rest = match args.iter().position(|&b| b == b':') {
        Some(i) => &args[i..],
        None => &args[args.len()..],
    };
    while let [b':', tail @ ..] = rest {
        rest = tail;
    }
    while let [b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c, tail @ ..] = rest {
        rest = tail;
    }
    rest.to_vec()
}

/// Address out of `<a@b> X=Y` (or a bare `a@b X=Y`).
fn path_of(args: &[u8]) -> String {
    let s = lossy(args);
    if let Some(rest) = s.strip_prefix('<') {
        rest.split('>').next().unwrap_or("").to_string()
    } else {
        s.split([' ', '\t']).next().unwrap_or("").to_string()
    }
}

/// Removes the terminating `.<CRLF>` and one leading dot from every line that has one.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = &wire[..wire.len().saturating_sub(3)];
    let mut out = Vec::with_capacity(body.len());
    let mut line_start = true;
    for (i, &b) in body.iter().enumerate() {
        if !(line_start && b == b'.') {
            out.push(b);
        }
        line_start = b == b'\n' && i > 0 && body[i - 1] == b'\r';
    }
    out
}

/// Postfix `printable(s, '?')` as smtp-sink applies it to envelope lines.
fn sanitize(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| if (0x20..=0x7e).contains(&b) { b } else { b'?' })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| lossy(&b)).unwrap_or_default()
}

fn running_as_root() -> bool {
    // /proc/self belongs to the effective uid.
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// smtp-sink dump files

/// One parsed `-d` dump file:
///
/// ```text
/// X-Client-Addr: local              (the tap connects over a Unix socket)
/// X-Client-Proto: ESMTP
/// X-Helo-Args: client.example       (only after HELO/EHLO)
/// X-Mail-Args: <a@b> BODY=8BITMIME
/// X-Rcpt-Args: <c@d> NOTIFY=NEVER   (one per accepted RCPT)
/// Received: from client.example ([local])
/// <TAB>by smtp-sink (smtp-sink) with ESMTP id 37daa76e;
/// <TAB>Sun, 22 Nov 2026 13:28:02 +0000 (UTC)
/// <message, CRs removed, dot-unstuffed>
/// <one extra empty line>
/// ```
#[derive(Debug)]
struct Dump {
    mail_args: Vec<u8>,
    rcpt_args: Vec<Vec<u8>>,
    body: Vec<u8>,
    raw: Vec<u8>,
}

fn read_dumps(dir: &Path) -> Vec<Dump> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("msg."))
        .filter_map(|e| fs::read(e.path()).ok())
        .filter_map(parse_dump)
        .collect()
}

fn parse_dump(raw: Vec<u8>) -> Option<Dump> {
    let mut pos = 0;
    let mut mail_args = None;
    let mut rcpt_args = Vec::new();
    loop {
        let nl = raw[pos..].iter().position(|&b| b == b'\n')?;
        let line = &raw[pos..pos + nl];
        pos += nl + 1;
        if let Some(v) = line.strip_prefix(b"X-Mail-Args: ") {
            mail_args = Some(v.to_vec());
        } else if let Some(v) = line.strip_prefix(b"X-Rcpt-Args: ") {
            rcpt_args.push(v.to_vec());
        } else if line.starts_with(b"Received: ") {
            // Two more lines: "\tby ... id N;" and "\t<date>".
            for _ in 0..2 {
                let nl = raw[pos..].iter().position(|&b| b == b'\n')?;
                pos += nl + 1;
            }
            break;
        } else if !line.starts_with(b"X-") {
            return None;
        }
    }
    Some(Dump {
        mail_args: mail_args?,
        rcpt_args,
        body: raw[pos..].to_vec(),
        raw,
    })
}
