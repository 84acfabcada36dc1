//! A scriptable ESMTP server on 127.0.0.1 (std only, one thread per connection) for fault injection.
//!
//! Without rules it behaves like a permissive MTA: `220` greeting; EHLO announces
//! PIPELINING, 8BITMIME, DSN, SIZE, ENHANCEDSTATUSCODES; MAIL/RCPT/DATA/RSET/NOOP/VRFY/QUIT
//! get their normal replies (with 503 for commands out of sequence) and the data is
//! dot-unstuffed and stored byte for byte (CRLF untouched).
//!
//! Rules change single answers. They are tried in the order they were added against the
//! command verb and its argument; the first one that matches and still has uses left is
//! used (and one use is spent). Verbs: `CONNECT` (greeting; argument empty), `EHLO`,
//! `HELO`, `MAIL`, `RCPT`, `DATA`, `DOT` (the final `.`; its argument is the message
//! text), `RSET`, `NOOP`, `QUIT`, `VRFY`, or any other verb the client may send (`AUTH`,
//! `STARTTLS`, ... are answered 502 by default). `arg_contains` is a case-insensitive
//! substring of the argument (`FROM:<a@b> BODY=8BITMIME` for MAIL).
//!
//! ```ignore
//! let f = FakeSmtp::start();
//! f.on("DATA", None, Some(1), Action::reply(451, "4.3.0 try again later")); // 4xx once, then 250
//! f.on("RCPT", Some("<b@"), None, Action::reply(550, "5.1.1 no such user")); // one RCPT of three
//! f.on("DATA", None, Some(1), Action::DropMidData);                        // cut mid-DATA once
//! f.on("CONNECT", None, Some(1), Action::reply(421, "4.3.2 busy"));          // 421 greeting once
//! f.on("DOT", None, None, Action::delay(Duration::from_secs(5), Action::Pass)); // slow server
//! f.on("MAIL", None, Some(1), Action::Pass);                                // skip the 1st MAIL ...
//! f.on("MAIL", None, Some(1), Action::reply(452, "4.3.1 full"));            // ... 4xx on the 2nd
//! f.down(); /* connections refused */ f.up(); /* same port again */
//! ```
//!
//! A reply code of 421, or any reply to QUIT, closes the connection after the reply; a
//! multi-line reply is written by putting `\n` between the lines of the text.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const HOSTNAME: &str = "fake-smtp.test";
const DEFAULT_EHLO: &str =
    "fake-smtp.test\nPIPELINING\n8BITMIME\nDSN\nSIZE 52428800\nENHANCEDSTATUSCODES";

/// What to do instead of the normal answer to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer with this code and text (the text may hold `\n` for a multi-line reply). The
    /// session follows the code: a 2xx MAIL opens a transaction, a 2xx RCPT accepts the
    /// recipient, 354 to DATA reads data, 2xx to DOT delivers, 421 closes the connection.
    Reply(u16, String),
    /// The normal answer (useful with `Delay`, or to let the first N matches through).
    Pass,
    /// Close the connection at once, without an answer (on CONNECT: no greeting).
    Drop,
    /// On DATA: answer 354, read the first line of data, then close the connection.
    /// On any other verb: same as `Drop`.
    DropMidData,
    /// Wait, then do the inner action.
    Delay(Duration, Box<Action>),
}

impl Action {
    pub fn reply(code: u16, text: &str) -> Action {
        Action::Reply(code, text.to_string())
    }

    pub fn delay(d: Duration, then: Action) -> Action {
        Action::Delay(d, Box::new(then))
    }
}

/// A message whose final dot got a 2xx answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// 0-based number of the connection it came in on (equal numbers: same session).
    pub connection: usize,
    /// Argument of the last EHLO/HELO.
    pub helo: String,
    /// Reverse path without angle brackets (`""` for `MAIL FROM:<>`).
    pub mail_from: String,
    /// Everything after `MAIL FROM:`, e.g. `<a@b> BODY=8BITMIME SIZE=120`.
    pub mail_args: String,
    /// Accepted recipients (2xx to RCPT), without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// Recipients refused in this transaction (non-2xx to RCPT), without angle brackets.
    pub rcpt_rejected: Vec<String>,
    /// The message exactly as sent, dot-unstuffed, without the terminating `.<CRLF>`.
    pub data: Vec<u8>,
}

impl Delivered {
    /// `data` as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

struct Rule {
    verb: String,
    arg_contains: Option<String>,
    remaining: Option<usize>,
    action: Action,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    delivered: Vec<Delivered>,
    connections: usize,
    transcript: Vec<(usize, String)>,
    open: HashMap<usize, TcpStream>,
    next_queue_id: u64,
}

struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The action of the first matching rule with uses left, spending one use.
    /// `seen` goes into the transcript under the same lock: a test that
    /// waits for a line in the transcript knows its rule is spent.
    fn decide(&self, id: usize, seen: Option<&str>, verb: &str, arg: &str) -> Action {
        let mut st = self.lock();
        if let Some(line) = seen {
            st.transcript.push((id, line.to_string()));
        }
        let arg = arg.to_ascii_lowercase();
        for rule in st.rules.iter_mut() {
            if !rule.verb.eq_ignore_ascii_case(verb) || rule.remaining == Some(0) {
                continue;
            }
            if let Some(pat) = &rule.arg_contains
                && !arg.contains(&pat.to_ascii_lowercase())
            {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            return rule.action.clone();
        }
        Action::Pass
    }
}

struct Listening {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The server. Dropping it stops the listener and closes every connection.
pub struct FakeSmtp {
    port: u16,
    shared: Arc<Shared>,
    listening: Mutex<Option<Listening>>,
}

/// A port on 127.0.0.1 that nothing listens on right now (for "server down" tests; start
/// the server later with [`FakeSmtp::start_on`]).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl FakeSmtp {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> FakeSmtp {
        FakeSmtp::start_on(0)
    }

    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(port: u16) -> FakeSmtp {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("fake SMTP: bind 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let f = FakeSmtp {
            port,
            shared,
            listening: Mutex::new(None),
        };
        f.listen(listener);
        f
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Adds a rule (see the module doc). `times: None` means for ever.
    pub fn on(&self, verb: &str, arg_contains: Option<&str>, times: Option<usize>, action: Action) {
        self.shared.lock().rules.push(Rule {
            verb: verb.to_ascii_uppercase(),
            arg_contains: arg_contains.map(str::to_string),
            remaining: times,
            action,
        });
    }

    /// Removes every rule: back to normal answers.
    pub fn clear_rules(&self) {
        self.shared.lock().rules.clear();
    }

    /// Messages delivered so far, in order.
    pub fn delivered(&self) -> Vec<Delivered> {
        self.shared.lock().delivered.clone()
    }

    /// Polls until at least `n` messages were delivered; panics after `timeout` with the
    /// transcript so far.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivered> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.delivered();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake SMTP on port {}: expected at least {n} delivered message(s) within \
                     {timeout:?}, got {} after {} connection(s); transcript:\n{}",
                    self.port,
                    got.len(),
                    self.connections(),
                    self.transcript_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connections accepted so far (including ones a rule dropped at once).
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// Every command line received, with its connection number, in order; the end of data
    /// shows as `"."`.
    pub fn transcript(&self) -> Vec<(usize, String)> {
        self.shared.lock().transcript.clone()
    }

    /// The transcript as text, one `#conn line` per line (for assertion messages).
    pub fn transcript_text(&self) -> String {
        self.transcript()
            .iter()
            .map(|(c, l)| format!("#{c} {l}\n"))
            .collect()
    }

    /// Stops listening (new connections are refused); open sessions go on.
    pub fn down(&self) {
        let taken = self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(l) = taken {
            l.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = l.thread.join();
        }
    }

    /// Listens again on the same port after [`FakeSmtp::down`].
    pub fn up(&self) {
        if self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("fake SMTP: bind 127.0.0.1:{} again: {e}", self.port));
        self.listen(listener);
    }

    /// Closes every open connection (as a restarting server would), without a reply.
    pub fn kill_connections(&self) {
        let open: Vec<TcpStream> = self.shared.lock().open.drain().map(|(_, s)| s).collect();
        for s in open {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn listen(&self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&self.shared));
            thread::Builder::new()
                .name(format!("fake-smtp-{}", self.port))
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let id = {
                            let mut st = shared.lock();
                            let id = st.connections;
                            st.connections += 1;
                            if let Ok(c) = conn.try_clone() {
                                st.open.insert(id, c);
                            }
                            id
                        };
                        let shared = Arc::clone(&shared);
                        let _ = thread::Builder::new()
                            .name(format!("fake-smtp-conn-{id}"))
                            .spawn(move || {
                                let _ = Session::new(id, conn, &shared).run();
                                shared.lock().open.remove(&id);
                            });
                    }
                })
                .expect("spawn fake SMTP acceptor")
        };
        *self.listening.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Listening { stop, thread });
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.down();
        self.kill_connections();
    }
}

// ---------------------------------------------------------------------------------------

struct Txn {
    mail_from: String,
    mail_args: String,
    rcpt_to: Vec<String>,
    rcpt_rejected: Vec<String>,
}

/// Why a session ended early.
enum End {
    Closed,
}

type Step<T> = Result<T, End>;

struct Session<'a> {
    id: usize,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    shared: &'a Shared,
    helo: String,
    txn: Option<Txn>,
}

impl<'a> Session<'a> {
    fn new(id: usize, conn: TcpStream, shared: &'a Shared) -> Session<'a> {
        let _ = conn.set_nodelay(true);
        let reader = BufReader::new(conn.try_clone().expect("clone connection"));
        Session {
            id,
            reader,
            writer: conn,
            shared,
            helo: String::new(),
            txn: None,
        }
    }

    fn run(mut self) -> Step<()> {
        // Greeting.
        match self.resolve(None, "CONNECT", "")? {
            Action::Reply(code, text) => {
                self.reply(code, &text)?;
                if code != 220 {
                    // A refusing server (421/554) closes; 554 servers may wait for QUIT,
                    // but closing is what clients must cope with anyway.
                    return self.close();
                }
            }
            _ => self.reply(220, &format!("{HOSTNAME} ESMTP fake"))?,
        }
        loop {
            let mut line = Vec::new();
            if self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|_| End::Closed)?
                == 0
            {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            let (verb, arg) = match text.split_once([' ', '\t']) {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim_start().to_string()),
                None => (text.to_ascii_uppercase(), String::new()),
            };
            self.command(&text, &verb, &arg)?;
        }
    }

    /// Records `seen` in the transcript and decides, then applies Delay and
    /// the connection-closing actions; returns `Reply` or `Pass`.
    fn resolve(&mut self, seen: Option<&str>, verb: &str, arg: &str) -> Step<Action> {
        let mut action = self.shared.decide(self.id, seen, verb, arg);
        loop {
            match action {
                Action::Delay(d, inner) => {
                    thread::sleep(d);
                    action = *inner;
                }
                Action::Drop => return self.close().map(|_| Action::Drop),
                Action::DropMidData if verb == "DATA" => {
                    self.reply(354, "End data with <CR><LF>.<CR><LF>")?;
                    let mut first = Vec::new();
                    let _ = self.reader.read_until(b'\n', &mut first);
                    return self.close().map(|_| Action::Drop);
                }
                Action::DropMidData => return self.close().map(|_| Action::Drop),
                other => return Ok(other),
            }
        }
    }

    fn command(&mut self, line: &str, verb: &str, arg: &str) -> Step<()> {
        let custom = self.resolve(Some(line), verb, arg)?;
        let (code, text) = match custom {
            Action::Reply(code, text) => (code, text),
            _ => self.default_reply(verb),
        };
        self.reply(code, &text)?;
        let ok = (200..300).contains(&code);
        match verb {
            "EHLO" | "HELO" => {
                self.txn = None;
                if ok {
                    self.helo = arg.to_string();
                }
            }
            "MAIL" if ok => {
                let args = after_colon(arg);
                self.txn = Some(Txn {
                    mail_from: path_of(&args),
                    mail_args: args,
                    rcpt_to: Vec::new(),
                    rcpt_rejected: Vec::new(),
                });
            }
            "RCPT" => {
                if let Some(t) = self.txn.as_mut() {
                    let rcpt = path_of(&after_colon(arg));
                    if ok {
                        t.rcpt_to.push(rcpt);
                    } else {
                        t.rcpt_rejected.push(rcpt);
                    }
                }
            }
            "DATA" if code == 354 => self.data()?,
            "RSET" => self.txn = None,
            "QUIT" => return self.close(),
            _ => {}
        }
        if code == 421 {
            return self.close();
        }
        Ok(())
    }

    fn default_reply(&self, verb: &str) -> (u16, String) {
        let has_txn = self.txn.is_some();
        let has_rcpt = self.txn.as_ref().is_some_and(|t| !t.rcpt_to.is_empty());
        let (code, text) = match verb {
            "EHLO" => (250, DEFAULT_EHLO),
            "HELO" => (250, HOSTNAME),
            "MAIL" if has_txn => (503, "5.5.1 Error: nested MAIL command"),
            "MAIL" => (250, "2.1.0 Ok"),
            "RCPT" if !has_txn => (503, "5.5.1 Error: need MAIL command"),
            "RCPT" => (250, "2.1.5 Ok"),
            "DATA" if !has_rcpt => (503, "5.5.1 Error: need RCPT command"),
            "DATA" => (354, "End data with <CR><LF>.<CR><LF>"),
            "RSET" | "NOOP" => (250, "2.0.0 Ok"),
            "VRFY" => (252, "2.0.0 Send some mail, I'll try my best"),
            "QUIT" => (221, "2.0.0 Bye"),
            _ => (502, "5.5.2 Error: command not recognized"),
        };
        (code, text.to_string())
    }

    /// Reads the data after a 354, then answers the final dot.
    fn data(&mut self) -> Step<()> {
        let mut data = Vec::new();
        let mut line_start = true;
        loop {
            let mut line = Vec::new();
            if self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|_| End::Closed)?
                == 0
            {
                return Err(End::Closed);
            }
            if line_start && line == b".\r\n" {
                break;
            }
            let body = if line_start && line.first() == Some(&b'.') {
                &line[1..]
            } else {
                &line[..]
            };
            data.extend_from_slice(body);
            line_start = line.ends_with(b"\r\n");
        }
        let text = String::from_utf8_lossy(&data).into_owned();
        let (code, reply) = match self.resolve(Some("."), "DOT", &text)? {
            Action::Reply(code, text) => (code, text),
            _ => {
                let mut st = self.shared.lock();
                st.next_queue_id += 1;
                (
                    250,
                    format!("2.0.0 Ok: queued as FAKE{:05}", st.next_queue_id),
                )
            }
        };
        let txn = self.txn.take();
        if (200..300).contains(&code)
            && let Some(t) = txn
        {
            self.shared.lock().delivered.push(Delivered {
                connection: self.id,
                helo: self.helo.clone(),
                mail_from: t.mail_from,
                mail_args: t.mail_args,
                rcpt_to: t.rcpt_to,
                rcpt_rejected: t.rcpt_rejected,
                data,
            });
        }
        // Record before replying, so a client that read the 250 finds the message.
        self.reply(code, &reply)
    }

    fn reply(&mut self, code: u16, text: &str) -> Step<()> {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{code}{sep}{}\r\n", l.trim_end_matches('\r')));
        }
        self.writer
            .write_all(out.as_bytes())
            .map_err(|_| End::Closed)
    }

    fn close(&mut self) -> Step<()> {
        let _ = self.writer.shutdown(Shutdown::Both);
        Err(End::Closed)
    }
}

/// `FROM:<a@b> X=Y` -> `<a@b> X=Y`.
fn after_colon(arg: &str) -> String {
    match arg.split_once(':') {
        Some((_, rest)) => rest.trim_start_matches(':').trim_start().to_string(),
        None => String::new(),
    }
}

/// `<a@b> X=Y` -> `a@b`.
fn path_of(args: &str) -> String {
    match args.strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or("").to_string(),
        None => args.split([' ', '\t']).next().unwrap_or("").to_string(),
    }
}
