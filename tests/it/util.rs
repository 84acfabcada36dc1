//! The sealed test environment: a temp dir with its own config, queue and
//! syslog socket, and commands that run the real binaries against it.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The privileged `sendmail`, built by the workspace member crates/submit.
/// Another package's binary has no `CARGO_BIN_EXE_` variable, and
/// `cargo test --test it` (or `-p scriptmail`) would not rebuild it: the
/// first use builds it (`cargo build -p scriptmail-submit`, a no-op when up
/// to date), so a test never runs a stale `sendmail`.
pub const SENDMAIL: Sendmail = Sendmail;
pub const SCRIPTMAIL: &str = env!("CARGO_BIN_EXE_scriptmail");

/// The account the tests submit as: the login name of the user running
/// them (`root` in CI; the programs derive the account from the real uid).
pub fn me() -> &'static str {
    &caller().0
}

/// `text` (a path, a scope, a query, a JSON body) written for the account
/// `root`, with `root` spelled as [`me`]: the tests read as CI runs them and
/// pass as any user. Leaked: a test process makes a few dozen of them.
pub fn as_me(text: &str) -> &'static str {
    if me() == "root" {
        return Box::leak(text.into());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("root") {
        let before = rest[..i].chars().next_back();
        let after = rest[i + 4..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..i]);
        out.push_str(if word(before) || word(after) {
            "root"
        } else {
            me()
        });
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    Box::leak(out.into())
}

/// The uid of the user running the tests.
pub fn my_uid() -> u32 {
    caller().1
}

fn caller() -> &'static (String, u32) {
    static CALLER: OnceLock<(String, u32)> = OnceLock::new();
    CALLER.get_or_init(|| {
        let uid = scriptmail::os::real_uid();
        let user = scriptmail::os::user_by_uid(uid).expect("the test user has a passwd entry");
        (user.name, uid)
    })
}

/// See [`SENDMAIL`]: usable wherever a path or a string is.
#[derive(Clone, Copy)]
pub struct Sendmail;

impl Sendmail {
    pub fn path(self) -> &'static Path {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(build_sendmail)
    }
}

impl fmt::Display for Sendmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.path().display().fmt(f)
    }
}

impl AsRef<Path> for Sendmail {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<OsStr> for Sendmail {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

/// Build crates/submit's `sendmail` with the profile and target directory
/// of this test binary (TARGET/PROFILE/deps/it-HASH) and return its path.
fn build_sendmail() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in TARGET/PROFILE/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = match profile_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") => "dev",
        Some(name) => name,
        None => panic!("no profile directory above {}", exe.display()),
    };
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "-p", "scriptmail-submit"])
        .args(["--bin", "sendmail", "--profile", profile])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p scriptmail-submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir.join("sendmail")
}

/// Where a test installation keeps its parts (see [`config_text`]).
pub struct Layout<'a> {
    pub queue: &'a Path,
    /// The `scriptmail` program `sendmail` starts for a one-shot delivery.
    pub program: &'a Path,
    pub log_socket: &'a Path,
    pub submit_socket: &'a Path,
}

/// The configuration every test installation uses: relaying to
/// 127.0.0.1:`port` with short retries and timeouts, its parts where
/// `layout` says. `top` goes before the first table (dotted keys like
/// `relay.connections = 1`), `tables` after the generated ones.
pub fn config_text(port: u16, layout: &Layout<'_>, top: &str, tables: &str) -> String {
    format!(
        "{top}\n\
         node.domain = \"node1.example.net\"\n\
         queue.dir = \"{}\"\n\
         relay.host = \"127.0.0.1\"\n\
         relay.port = {port}\n\
         relay.program = \"{}\"\n\
         relay.retry_initial = \"1s\"\n\
         relay.retry_max = \"2s\"\n\
         relay.connect_timeout = \"5s\"\n\
         relay.command_timeout = \"10s\"\n\
         log.socket = \"{}\"\n\
         submit.socket = \"{}\"\n\
         {tables}\n",
        layout.queue.display(),
        layout.program.display(),
        layout.log_socket.display(),
        layout.submit_socket.display()
    )
}

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
        let layout = Layout {
            queue: &queue,
            program: Path::new(SCRIPTMAIL),
            log_socket: &log_path,
            submit_socket: &dir.path().join("submit.sock"),
        };
        std::fs::write(&config, config_text(port, &layout, top, tables)).expect("write config");
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

    fn base(&self, program: impl AsRef<OsStr>) -> Command {
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
    /// The queue ids of the accounts' own mail (not reports), oldest first.
    pub fn qids(&self) -> Vec<String> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT qid FROM messages WHERE system = 0 ORDER BY id")
            .expect("prepare");
        st.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    /// The mails in error of `account` so far (its `error_total`).
    pub fn error_total(&self, account: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT error_total FROM accounts WHERE name = ?1",
                [account],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    /// (qid, rcpt, kind, message) of every mail in error, oldest first.
    pub fn errors(&self) -> Vec<(String, String, String, String)> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT qid, rcpt, kind, message FROM errors ORDER BY id")
            .expect("prepare");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

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

/// Start `cmd` with its three standard descriptors piped; its stdin apart.
pub fn spawn_piped(cmd: &mut Command) -> (Child, std::process::ChildStdin) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// Start `cmd` with pipes and feed it `input` from a thread (the program
/// may exit before reading it all).
fn spawn_feeding(cmd: &mut Command, input: &[u8]) -> (Child, std::thread::JoinHandle<()>) {
    let (child, mut stdin) = spawn_piped(cmd);
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    (child, writer)
}

/// Whether a Unix stream socket listens at `path`: bound is not enough (a
/// connect between bind(2) and listen(2) is refused), so ask the kernel
/// (/proc/net/unix: Flags `00010000` is `__SO_ACCEPTCON`, a listener)
/// rather than connect, which relayd would count as a client.
pub fn listening(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let path = path.to_string_lossy();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 8 && f[3] == "00010000" && f[7] == path
    })
}

/// Run a command feeding `input` on stdin; collect its output.
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    let (child, writer) = spawn_feeding(cmd, input);
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// As [`run_with_input`], but kill it if it is not done within `limit` (so
/// a test fails instead of hanging). `None` if it was killed.
pub fn run_within(cmd: &mut Command, input: &[u8], limit: Duration) -> Option<Output> {
    let (mut child, writer) = spawn_feeding(cmd, input);
    let exited = wait_within(&mut child, limit);
    let _ = writer.join();
    exited.then(|| child.wait_with_output().expect("collect output"))
}

/// Wait up to `limit` for `child` to exit; past it, kill and reap it and
/// say false.
pub fn wait_within(child: &mut Child, limit: Duration) -> bool {
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Run the PHP script `name` (written into the environment's directory)
/// with `mail.add_x_header`, so PHP itself adds X-PHP-Originating-Script
/// (`UID:name`, the uid owning the script); each `mail()` must succeed.
pub fn php_script(env: &Env, name: &str, code: &str) {
    let path = env.path().join(name);
    std::fs::write(&path, format!("<?php\n{code}\n")).expect("write script");
    let out = Command::new("php")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SCRIPTMAIL_CONFIG", &env.config)
        .args(["-n", "-d", "mail.add_x_header=1", "-d"])
        .arg(format!("sendmail_path={SENDMAIL} -t -i"))
        .arg(&path)
        .current_dir(env.path())
        .output()
        .expect("run php");
    assert_ok(&out);
    let said = stdout(&out);
    assert!(
        !said.is_empty() && said.lines().all(|l| l == "sent"),
        "{name}: {said} {}",
        stderr(&out)
    );
}

/// `senders` concurrent loops of `each` `sendmail -t -i` runs; the subjects
/// that did not exit 0, with their status and stderr.
pub fn burst(env: &Env, senders: usize, each: usize, tag: &str) -> Vec<String> {
    burst_with(senders, each, tag, |subject| {
        let out = env.submit(&["-t", "-i"], &simple_message("burst@example.org", subject));
        (!out.status.success())
            .then(|| format!("{subject}: {:?} {}", out.status.code(), stderr(&out)))
    })
}

/// `senders` concurrent loops of `each` calls of `send` with the subjects
/// `TAG P-I`; what `send` said went wrong, for every call it said so.
pub fn burst_with(
    senders: usize,
    each: usize,
    tag: &str,
    send: impl Fn(&str) -> Option<String> + Sync,
) -> Vec<String> {
    let send = &send;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..senders)
            .map(|p| {
                s.spawn(move || {
                    (0..each)
                        .filter_map(|i| send(&format!("{tag} {p}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("sender thread"))
            .collect()
    })
}

/// How many times each subject arrived at the sink.
pub fn subjects(sink: &crate::sink::Sink) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    for m in sink.messages() {
        *seen
            .entry(m.header("Subject").unwrap_or_default())
            .or_default() += 1;
    }
    seen
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

/// Run `mailq-ctl ARGS`, assert it fails with `code` and one line on stderr.
#[track_caller]
pub fn refused(env: &Env, args: &[&str], code: i32) -> String {
    let out = env.ctl(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: stdout {} stderr {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("scriptmail: "))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one error line, got {err:?}");
    lines[0].to_string()
}

/// Whether this test can run: true as root. Otherwise it writes one line
/// naming the test and what it `needs` (straight to stderr, past the test
/// harness's capture, so a normal `cargo test` shows it) and the test
/// returns — unless `SCRIPTMAIL_ROOT_TESTS=1` says the run must cover it:
/// then it fails.
pub fn as_root(needs: &str) -> bool {
    if scriptmail::os::effective_uid() == 0 {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a root test")
        .to_string();
    if std::env::var_os("SCRIPTMAIL_ROOT_TESTS").is_some_and(|v| v == "1") {
        panic!("SCRIPTMAIL_ROOT_TESTS=1 but not root: {test} ({needs}) cannot run");
    }
    let _ = writeln!(
        std::io::stderr(),
        "needs root: {test} ({needs}) — run by .ci/run as root"
    );
    false
}
