//! The sealed test environment: a temp dir with its own config, queue and
//! syslog socket, and commands that run the real binaries against it.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SENDMAIL: &str = env!("CARGO_BIN_EXE_sendmail");
pub const SCRIPTMAIL: &str = env!("CARGO_BIN_EXE_scriptmail");

/// One isolated scriptmail installation.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub queue: PathBuf,
    log: UnixDatagram,
}

impl Env {
    /// An environment relaying to `127.0.0.1:port`.
    pub fn new(port: u16) -> Env {
        Env::with_config(port, "")
    }

    /// As [`Env::new`], with extra TOML appended; a section already written
    /// here (`[node]`, `[queue]`, `[relay]`, `[log]`) must not be repeated, so
    /// extra keys for those go in `extra` as dotted keys at the top,
    /// e.g. `"queue.hold_max_age = \"2s\""` — see [`Env::with_sections`].
    pub fn with_config(port: u16, extra: &str) -> Env {
        Env::with_sections(port, extra, "")
    }

    /// `top` goes before the first table (dotted keys like `relay.connections = 1`),
    /// `tables` after the generated ones (new tables like `[accounts.map]`).
    pub fn with_sections(port: u16, top: &str, tables: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("scriptmail-it.")
            .tempdir()
            .expect("tempdir");
        let queue = dir.path().join("queue");
        let config = dir.path().join("scriptmail.toml");
        let log_path = dir.path().join("syslog.sock");
        let log = UnixDatagram::bind(&log_path).expect("bind syslog socket");
        log.set_nonblocking(true).expect("nonblocking");
        let text = format!(
            "{top}\n\
             node.domain = \"node1.example.net\"\n\
             queue.dir = \"{}\"\n\
             relay.host = \"127.0.0.1\"\n\
             relay.port = {port}\n\
             relay.program = \"{SCRIPTMAIL}\"\n\
             relay.retry_initial = \"1s\"\n\
             relay.retry_max = \"2s\"\n\
             relay.connect_timeout = \"5s\"\n\
             relay.command_timeout = \"10s\"\n\
             log.socket = \"{}\"\n\
             submit.socket = \"{}\"\n\
             {tables}\n",
            queue.display(),
            log_path.display(),
            dir.path().join("submit.sock").display()
        );
        std::fs::write(&config, text).expect("write config");
        std::fs::create_dir(&queue).expect("queue dir");
        Env {
            dir,
            config,
            queue,
            log,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// relayd's submit socket in this environment.
    pub fn submit_socket(&self) -> PathBuf {
        self.dir.path().join("submit.sock")
    }

    /// The maildrop files waiting for import.
    pub fn maildrop(&self) -> Vec<PathBuf> {
        scriptmail::maildrop::entries(&self.queue).unwrap_or_default()
    }

    fn base(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SCRIPTMAIL_CONFIG", &self.config)
            .current_dir(self.dir.path());
        c
    }

    /// The real `sendmail` binary with this environment's config.
    pub fn sendmail(&self) -> Command {
        self.base(SENDMAIL)
    }

    /// The `scriptmail` program with this environment's config.
    pub fn scriptmail(&self) -> Command {
        self.base(SCRIPTMAIL)
    }

    /// Run `sendmail ARGS` with `input` on stdin.
    pub fn submit(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.sendmail().args(args), input)
    }

    /// Run `scriptmail mailq-ctl ARGS` (after [`Env::settle`]: it reads the queue).
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.settle();
        self.scriptmail()
            .arg("mailq-ctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mailq-ctl")
    }

    /// Start `scriptmail relayd` in the background; killed on drop. Its
    /// stderr goes to a file (a pipe nobody reads could fill up and block it).
    pub fn relayd(&self) -> Daemon {
        let log = self.dir.path().join("relayd.stderr");
        let err = std::fs::File::create(&log).expect("relayd stderr file");
        let child = self
            .scriptmail()
            .arg("relayd")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start relayd");
        // Ready once it holds its lock (its pid in relayd.pid), listens
        // for wake-ups and takes submissions: the submit socket listening,
        // not only there (bind(2) creates the file before listen(2), and a
        // connect in between is refused).
        let pid = child.id().to_string();
        let (pid_file, sock, submit) = (
            self.queue.join("relayd.pid"),
            self.queue.join("relayd.sock"),
            self.submit_socket(),
        );
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid)
                && sock.exists()
                && listening(&submit)
        });
        Daemon {
            child: Some(child),
            stderr: Some(log),
        }
    }

    /// Wait until the maildrop is empty: a `sendmail` that found no relayd
    /// exits 0 once its message is in the maildrop, and the one-shot it
    /// started imports it moments later (docs/submission.md). Every
    /// assertion on the queue database looks after that.
    pub fn settle(&self) {
        let start = Instant::now();
        while !self.maildrop().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "maildrop not imported within 30 s: {:?}",
                self.maildrop()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A read-only connection to the queue database, for assertions (after
    /// [`Env::settle`]).
    pub fn db(&self) -> rusqlite::Connection {
        self.settle();
        let c = rusqlite::Connection::open_with_flags(
            self.queue.join("queue.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open queue db");
        c.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        c
    }

    /// `SELECT count(*) FROM messages WHERE <cond>`.
    pub fn count(&self, cond: &str) -> i64 {
        self.db()
            .query_row(
                &format!("SELECT count(*) FROM messages WHERE {cond}"),
                [],
                |r| r.get(0),
            )
            .expect("count")
    }

    /// Everything logged to this environment's syslog socket so far.
    pub fn log_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.log.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

/// Reads an environment's syslog socket all the time, so fewer lines of a burst
/// are lost to a full socket queue (the loggers drop lines rather than wait, and a
/// Unix datagram socket queues only `net.unix.max_dgram_qlen`, often 10): good for
/// "at least one such line", not for exact counts of a burst.
pub struct LogTap {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LogTap {
    /// Start reading `env`'s syslog socket (what was logged before is dropped).
    pub fn start(env: &Env) -> LogTap {
        env.log_lines();
        let sock = env.log.try_clone().expect("clone syslog socket");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (l, st) = (lines.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let stopping = st.load(std::sync::atomic::Ordering::SeqCst);
                while let Ok(n) = sock.recv(&mut buf) {
                    l.lock()
                        .expect("log lines")
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
                if stopping {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        LogTap {
            lines,
            stop,
            handle: Some(handle),
        }
    }

    /// Every line read so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }

    /// How many lines so far contain every one of `parts`.
    pub fn count(&self, parts: &[&str]) -> usize {
        self.lines()
            .iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

impl Drop for LogTap {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A background process killed (SIGKILL) when dropped, unless stopped.
pub struct Daemon {
    pub child: Option<Child>,
    /// Where its stderr goes, if captured.
    pub stderr: Option<PathBuf>,
}

impl Daemon {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        scriptmail::os::kill(self.pid(), sig).expect("kill");
    }

    /// SIGTERM and wait; returns its exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("child");
        let status = child.wait().expect("wait");
        let err = self
            .stderr
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        (status, err)
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a Unix stream socket listens on `path` (`/proc/net/unix`: flag
/// `__SO_ACCEPTCON`), without connecting to it.
pub fn listening(path: &Path) -> bool {
    let want = path.to_string_lossy();
    std::fs::read_to_string("/proc/net/unix").is_ok_and(|t| {
        t.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&"00010000") && f.get(7) == Some(&want.as_ref())
        })
    })
}

/// Run a command feeding `input` on stdin; collect its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Write from a thread: the program may exit before reading it all.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// Poll `cond` every 20 ms until it holds; panic after `timeout`.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A short RFC 5322 message for `-t`.
pub fn simple_message(to: &str, subject: &str) -> Vec<u8> {
    format!("To: {to}\r\nSubject: {subject}\r\n\r\nHello from a test.\r\n").into_bytes()
}

/// Assert success, printing stderr otherwise.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stdout as a string.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as a string.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A TCP port nobody listens on (for "smarthost down").
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}
