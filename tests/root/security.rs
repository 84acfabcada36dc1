//! Tenant isolation (SECURITY.md; issue 6): the installed set-uid `sendmail`, real PHP-FPM pools
//! and real Unix users trying to read, stall or impersonate.
//!
//! A privileged `sendmail` ignores `--config` and `SCRIPTMAIL_CONFIG`, so these tests need a
//! real installation: [`Install`] copies the built `sendmail` set-uid and set-gid
//! `scriptmail:scriptmail` (mode 6755, as the package installs it) into a root-owned directory
//! under /usr/local/lib, gives it a queue directory owned by `scriptmail` (0700) and a syslog
//! socket the test reads, and writes /etc/scriptmail/scriptmail.toml — backing up whatever was
//! there and restoring it on drop. Every test that touches /etc/scriptmail holds [`lock_etc`]
//! for its whole run (an in-process mutex plus a `flock`, so a concurrently running test
//! binary waits too).
//!
//! The tenants are real users (`sm-tenant-a`, `sm-tenant-b`, created with `useradd` when
//! missing). Their attacks run as them: `Command::uid/gid` for our own processes, and small
//! Perl probes (perl-base is Essential in Debian) where a syscall's errno is the evidence —
//! `unsafe` stays in crates/submit/src/os.rs. Every probe has a positive control showing the same probe
//! succeeds against a process that is *not* protected, so a pass cannot come from a broken
//! probe. Every wait has a timeout; every process started here is killed by a drop guard.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use scriptmail::config;
use scriptmail::os::{self, User};

use crate::sink::Sink;
use crate::util::{Layout, SCRIPTMAIL, SENDMAIL, closed_port, config_text};

/// What these tests need root for (`crate::as_root`).
const NEEDS: &str =
    "tenant isolation: real Unix users, the set-uid sendmail installed, /etc/scriptmail rewritten";

/// The service user the package creates; the set-uid `sendmail` runs as it.
pub(crate) const SERVICE: &str = "scriptmail";
pub(crate) const TENANT_A: &str = "sm-tenant-a";
pub(crate) const TENANT_B: &str = "sm-tenant-b";
/// Upper bound for anything we wait for (a submission, a delivery, a process state).
pub(crate) const WAIT: Duration = Duration::from_secs(20);
/// First line of the test config: a leftover from a killed run is recognised and not
/// "restored" over the admin's file later.
const MARKER: &str = "# written by scriptmail tests/it/security.rs";
pub(crate) const PERL: &str = "/usr/bin/perl";
pub(crate) const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

// ---------------------------------------------------------------------------------------
// Serialising /etc/scriptmail
// ---------------------------------------------------------------------------------------

static ETC_MUTEX: Mutex<()> = Mutex::new(());

/// Exclusive use of /etc/scriptmail and of the `scriptmail` user for as long as it lives.
/// Any test that installs a config there (or the real package) should hold it.
pub struct EtcLock {
    _file: File,
    _guard: MutexGuard<'static, ()>,
}

/// Take [`EtcLock`], waiting for other tests in this process and in other processes.
pub fn lock_etc() -> EtcLock {
    // A test that panicked while holding the mutex poisons it; the files it changed are
    // restored by its drop guards, so the lock is still good.
    let guard = ETC_MUTEX.lock().unwrap_or_else(|e| e.into_inner());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/scriptmail-it-etc.lock")
        .expect("open /tmp/scriptmail-it-etc.lock");
    file.lock().expect("flock /tmp/scriptmail-it-etc.lock");
    EtcLock {
        _file: file,
        _guard: guard,
    }
}

/// Our config in /etc/scriptmail; puts back what was there when dropped.
struct EtcConfig {
    /// The admin's file (bytes, mode, owner), if there was one.
    previous: Option<(Vec<u8>, u32, u32, u32)>,
    created_dir: bool,
}

impl EtcConfig {
    fn install(text: &str) -> EtcConfig {
        let path = Path::new(config::DEFAULT_PATH);
        let dir = path.parent().expect("config dir");
        let created_dir = !dir.exists();
        fs::create_dir_all(dir).expect("create /etc/scriptmail");
        let previous = match (fs::read(path), fs::metadata(path)) {
            (Ok(bytes), Ok(meta)) if !bytes.starts_with(MARKER.as_bytes()) => {
                Some((bytes, meta.mode() & 0o7777, meta.uid(), meta.gid()))
            }
            _ => None,
        };
        let tmp = dir.join(".scriptmail.toml.it-tmp");
        fs::write(&tmp, text).expect("write test config");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).expect("chmod config");
        fs::rename(&tmp, path).expect("install test config");
        EtcConfig {
            previous,
            created_dir,
        }
    }
}

impl Drop for EtcConfig {
    fn drop(&mut self) {
        let path = Path::new(config::DEFAULT_PATH);
        match self.previous.take() {
            Some((bytes, mode, uid, gid)) => {
                let _ = fs::write(path, bytes);
                let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
                let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode));
            }
            None => {
                let _ = fs::remove_file(path);
                if self.created_dir {
                    let _ = fs::remove_dir(path.parent().expect("config dir"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

/// The service user and the two tenants, created when missing.
struct Users {
    service: User,
    a: User,
    b: User,
}

static USERADD: Mutex<()> = Mutex::new(());

fn ensure_user(name: &str, system: bool) -> User {
    let _serial = USERADD.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10 {
        if let Some(u) = os::user_by_name(name) {
            return u;
        }
        let mut cmd = Command::new("useradd");
        // A group left behind (the package's purge deletes the user, not its group) is
        // reused; otherwise the user gets a group of its own.
        let group_exists = Command::new("getent")
            .args(["group", name])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if group_exists {
            cmd.args(["--gid", name]);
        } else {
            cmd.arg("--user-group");
        }
        if system {
            // As the package's postinst does: a system user and no login.
            cmd.args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/var/lib/scriptmail",
                "--shell",
                "/usr/sbin/nologin",
            ]);
        } else {
            cmd.args(["--create-home", "--shell", "/bin/sh"]);
        }
        let out = cmd.arg(name).output().expect("run useradd");
        if !out.status.success() {
            // Another process may hold /etc/passwd's lock; look again shortly.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    os::user_by_name(name).unwrap_or_else(|| panic!("cannot create user {name}"))
}

fn users() -> Users {
    Users {
        service: ensure_user(SERVICE, true),
        a: ensure_user(TENANT_A, false),
        b: ensure_user(TENANT_B, false),
    }
}

// ---------------------------------------------------------------------------------------
// Running things with a time limit
// ---------------------------------------------------------------------------------------

/// A child killed (SIGKILL) and reaped when dropped.
pub(crate) struct Guard(pub(crate) Option<Child>);

impl Guard {
    pub(crate) fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    pub(crate) fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    /// Wait for the exit, collecting stdout/stderr if they were piped; panic after `timeout`.
    pub(crate) fn finish(mut self, timeout: Duration) -> Output {
        let mut child = self.0.take().expect("child");
        let out = child.stdout.take().map(reader);
        let err = child.stderr.take().map(reader);
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("process {} did not finish within {timeout:?}", child.id());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // A grandchild that inherited the pipes could keep them open: collect what came,
        // for a bounded time.
        let deadline = Instant::now() + Duration::from_secs(5);
        Output {
            status,
            stdout: out.map(|c| c.take(deadline)).unwrap_or_default(),
            stderr: err.map(|c| c.take(deadline)).unwrap_or_default(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a reader thread collected from a pipe so far, and whether it saw the end.
#[derive(Clone, Default)]
struct Collected(std::sync::Arc<Mutex<(Vec<u8>, bool)>>);

impl Collected {
    /// Wait (until `deadline`) for the end of the stream; the bytes read so far.
    fn take(&self, deadline: Instant) -> Vec<u8> {
        while !self.0.lock().expect("collected").1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::mem::take(&mut self.0.lock().expect("collected").0)
    }
}

fn reader(mut r: impl Read + Send + 'static) -> Collected {
    let c = Collected::default();
    let shared = c.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => shared
                    .0
                    .lock()
                    .expect("collected")
                    .0
                    .extend_from_slice(&buf[..n]),
            }
        }
        shared.0.lock().expect("collected").1 = true;
    });
    c
}

/// Run `cmd` with `input` on stdin (or /dev/null for `None`); panic after `timeout`.
pub(crate) fn run_timed(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut g = Guard(Some(cmd.spawn().expect("spawn")));
    if let Some(input) = input {
        let mut stdin = g.child().stdin.take().expect("stdin");
        let input = input.to_vec();
        // From a thread: the program may exit before reading it all.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    g.finish(timeout)
}

/// Poll every 10 ms until `f` returns `Some`; panic with `what` after [`WAIT`].
pub(crate) fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
pub(crate) fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The `Uid:` and `Gid:` lines of /proc/PID/status as four numbers each (real, effective,
/// saved, filesystem).
fn credentials(pid: u32) -> Option<([u32; 4], [u32; 4])> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ids = |key: &str| -> Option<[u32; 4]> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let v: Vec<u32> = line[key.len()..]
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        v.try_into().ok()
    };
    Some((ids("Uid:")?, ids("Gid:")?))
}

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, tty, tpgid.
fn stat(pid: u32) -> Option<(char, u32, i32, i32, i32, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
        f.get(4)?.parse().ok()?,
        f.get(5)?.parse().ok()?,
    ))
}

/// A descendant of `root` whose argv[0] ends in `name`.
fn descendant(root: u32, name: &str) -> Option<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
            && let Some((_, ppid, ..)) = stat(pid)
        {
            parent.insert(pid, ppid);
        }
    }
    let is_below = |mut p: u32| {
        for _ in 0..64 {
            match parent.get(&p) {
                Some(&pp) if pp == root => return true,
                Some(&pp) if pp > 1 => p = pp,
                _ => return false,
            }
        }
        false
    };
    parent.keys().copied().find(|&pid| {
        let argv0 = fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .and_then(|c| c.split(|&b| b == 0).next().map(<[u8]>::to_vec))
            .unwrap_or_default();
        argv0.ends_with(name.as_bytes()) && is_below(pid)
    })
}

// ---------------------------------------------------------------------------------------
// The installation under test
// ---------------------------------------------------------------------------------------

/// A real installation: set-uid `sendmail`, `scriptmail`, /etc/scriptmail/scriptmail.toml,
/// a `scriptmail`-owned queue and a syslog socket. Dropping it restores /etc/scriptmail.
pub(crate) struct Install {
    // Dropped first: put the admin's config back before anything else goes away.
    _etc: EtcConfig,
    pub(crate) state: tempfile::TempDir,
    pub(crate) bin: tempfile::TempDir,
    pub(crate) sendmail: PathBuf,
    pub(crate) scriptmail: PathBuf,
    pub(crate) queue: PathBuf,
    log: UnixDatagram,
    users: Users,
    // Dropped last.
    _lock: EtcLock,
}

impl Install {
    /// Relaying to `127.0.0.1:port`.
    pub(crate) fn new(port: u16) -> Install {
        Install::with(port, "", "")
    }

    /// `top`: dotted keys before the generated ones; `tables`: tables after them.
    pub(crate) fn with(port: u16, top: &str, tables: &str) -> Install {
        let lock = lock_etc();
        let users = users();
        let svc = &users.service;

        // Programs: a root-owned directory every user can traverse, on a file system
        // mounted without nosuid (a set-uid bit under a nosuid /tmp would be ignored).
        fs::create_dir_all("/usr/local/lib").expect("/usr/local/lib");
        let bin = tempfile::Builder::new()
            .prefix("scriptmail-it.")
            .tempdir_in("/usr/local/lib")
            .expect("bin dir");
        fs::set_permissions(bin.path(), fs::Permissions::from_mode(0o755)).expect("chmod bin");
        assert_set_id_works(bin.path());
        let sendmail = bin.path().join("sendmail");
        fs::copy(SENDMAIL, &sendmail).expect("copy sendmail");
        // chown first: it clears the set-id bits.
        std::os::unix::fs::chown(&sendmail, Some(svc.uid), Some(svc.gid)).expect("chown");
        fs::set_permissions(&sendmail, fs::Permissions::from_mode(0o6755)).expect("chmod 6755");
        let scriptmail = bin.path().join("scriptmail");
        fs::copy(SCRIPTMAIL, &scriptmail).expect("copy scriptmail");
        fs::set_permissions(&scriptmail, fs::Permissions::from_mode(0o755)).expect("chmod");
        symlink("scriptmail", bin.path().join("mailq-ctl")).expect("mailq-ctl link");

        // State: queue (service user, 0700), syslog socket (writable by the service user),
        // PHP scripts and pools, tenants' scratch directories.
        let state = tempfile::Builder::new()
            .prefix("scriptmail-sec.")
            .tempdir()
            .expect("state dir");
        fs::set_permissions(state.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let queue = state.path().join("queue");
        fs::create_dir(&queue).expect("queue dir");
        std::os::unix::fs::chown(&queue, Some(svc.uid), Some(svc.gid)).expect("chown queue");
        fs::set_permissions(&queue, fs::Permissions::from_mode(0o700)).expect("chmod queue");
        // Where relayd (as the service user) binds its submit socket.
        let run = state.path().join("run");
        fs::create_dir(&run).expect("run dir");
        std::os::unix::fs::chown(&run, Some(svc.uid), Some(svc.gid)).expect("chown run");
        fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).expect("chmod run");
        let sock = state.path().join("syslog.sock");
        let log = UnixDatagram::bind(&sock).expect("bind syslog socket");
        log.set_nonblocking(true).expect("nonblocking");
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).expect("chmod socket");

        let layout = Layout {
            queue: &queue,
            program: &scriptmail,
            log_socket: &sock,
            submit_socket: &run.join("submit.sock"),
        };
        let etc = EtcConfig::install(&format!(
            "{MARKER}; restored when the test ends\n{}",
            config_text(port, &layout, top, tables)
        ));
        Install {
            _etc: etc,
            state,
            bin,
            sendmail,
            scriptmail,
            queue,
            log,
            users,
            _lock: lock,
        }
    }

    pub(crate) fn a(&self) -> &User {
        &self.users.a
    }

    pub(crate) fn b(&self) -> &User {
        &self.users.b
    }

    pub(crate) fn svc(&self) -> &User {
        &self.users.service
    }

    /// A scratch directory owned by `user` (created on first use).
    pub(crate) fn home(&self, user: &User) -> PathBuf {
        let dir = self.state.path().join(format!("home-{}", user.name));
        if !dir.exists() {
            fs::create_dir(&dir).expect("home dir");
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).expect("chown home");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod home");
        }
        dir
    }

    /// `program` run as `user` (no supplementary groups), in its scratch directory, with a
    /// minimal environment.
    pub(crate) fn as_user(&self, user: &User, program: impl AsRef<OsStr>) -> Command {
        let home = self.home(user);
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", PATH)
            .env("HOME", &home)
            .current_dir(&home)
            .uid(user.uid)
            .gid(user.gid);
        c
    }

    /// The installed `sendmail ARGS` run by `user` with `input`.
    pub(crate) fn submit_as(&self, user: &User, args: &[&str], input: &[u8]) -> Output {
        run_timed(
            self.as_user(user, &self.sendmail).args(args),
            Some(input),
            WAIT,
        )
    }

    /// The installed `mailq-ctl ARGS`, run by root (it reads /etc/scriptmail).
    pub(crate) fn ctl(&self, args: &[&str]) -> Output {
        run_timed(
            Command::new(self.bin.path().join("mailq-ctl"))
                .env_clear()
                .env("PATH", PATH)
                .args(args),
            None,
            WAIT,
        )
    }

    /// relayd's submit socket in this installation.
    pub(crate) fn submit_socket(&self) -> PathBuf {
        self.state.path().join("run/submit.sock")
    }

    /// The maildrop files waiting for import.
    pub(crate) fn maildrop(&self) -> Vec<PathBuf> {
        scriptmail::maildrop::entries(&self.queue).unwrap_or_default()
    }

    /// Wait until the maildrop is empty: without relayd a `sendmail` exits 0 once its
    /// message is in the maildrop, and the one-shot it starts imports it. A caller too
    /// degraded to start one (`a_degraded_caller_does_not_start_the_delivery_run`)
    /// leaves it for the sweep, which this runs then (as the timer would).
    pub(crate) fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.maildrop().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !self.maildrop().is_empty() {
            assert_exit(&self.ctl(&["sweep"]), 0, "mailq-ctl sweep");
        }
        poll("the maildrop to be imported", || {
            self.maildrop().is_empty().then_some(())
        });
    }

    /// `scriptmail relayd`, started by root (it switches to the service user), ready
    /// once its submit socket is there; killed when the guard goes.
    pub(crate) fn relayd(&self) -> Guard {
        let err = File::create(self.state.path().join("relayd.stderr")).expect("stderr file");
        let g = Guard(Some(
            Command::new(&self.scriptmail)
                .arg("relayd")
                .env_clear()
                .env("PATH", PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .expect("start relayd"),
        ));
        let sock = self.submit_socket();
        let pid_file = self.queue.join("relayd.pid");
        let pid = g.pid().to_string();
        poll("relayd to listen", || {
            (sock.exists() && fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == pid))
                .then_some(())
        });
        g
    }

    /// The queue database, opened by root (after [`Install::settle`]). Opened read-write
    /// on purpose: SQLite gives a `-wal`/`-shm` it creates as root to the database file's
    /// owner, which a read-only connection could not create at all.
    pub(crate) fn db(&self) -> rusqlite::Connection {
        self.settle();
        let c = rusqlite::Connection::open(self.queue.join("queue.db")).expect("open queue db");
        c.busy_timeout(Duration::from_secs(10)).expect("busy");
        c
    }

    /// (account, state, envelope sender) of every message whose subject contains `tag`.
    pub(crate) fn messages(&self, tag: &str) -> Vec<(String, String, String)> {
        self.settle();
        if !self.queue.join("queue.db").exists() {
            return Vec::new();
        }
        let db = self.db();
        let mut st = db
            .prepare(
                "SELECT a.name, m.state, m.sender FROM messages m \
                 JOIN accounts a ON a.id = m.account_id \
                 WHERE instr(m.subject, ?1) > 0 ORDER BY m.id",
            )
            .expect("prepare");
        st.query_map([tag], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    }

    /// The queue id of the one message whose subject contains `tag`.
    pub(crate) fn qid(&self, tag: &str) -> String {
        self.db()
            .query_row(
                "SELECT qid FROM messages WHERE instr(subject, ?1) > 0",
                [tag],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("no message tagged {tag}: {e}"))
    }

    pub(crate) fn account_state(&self, name: &str) -> Option<String> {
        self.db()
            .query_row("SELECT state FROM accounts WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .ok()
    }

    fn integrity(&self) -> String {
        self.db()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check")
    }

    /// Every datagram received on the syslog socket since the last call.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.log.recv(&mut buf) {
            out.push(text(&buf[..n]));
        }
        out
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // A one-shot delivery started by a submission may still run as the service user;
        // give it a moment to let go of the queue before the directory goes.
        let lock = self.queue.join("relayd.lock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match File::open(&lock) {
                Ok(f) if f.try_lock().is_err() => std::thread::sleep(Duration::from_millis(20)),
                _ => break,
            }
        }
    }
}

/// Fail early and clearly where the kernel would silently ignore set-id bits: a `nosuid`
/// mount under `dir`, or a test run with `no_new_privs` set (e.g. a container started with
/// `--security-opt no-new-privileges`).
fn assert_set_id_works(dir: &Path) {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    assert!(
        !status
            .lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "no_new_privs is set: the kernel ignores set-uid bits, these tests cannot run"
    );
    let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(1)?, *f.get(3)?))
        })
        .filter(|(point, _)| dir.starts_with(point))
        .max_by_key(|(point, _)| point.len());
    if let Some((point, options)) = mount {
        assert!(
            !options.split(',').any(|o| o == "nosuid"),
            "{point} is mounted nosuid: the set-uid sendmail cannot be tested under {}",
            dir.display()
        );
    }
}

/// A minimal message for `-t`.
pub(crate) fn message(subject: &str) -> Vec<u8> {
    format!("To: rcpt@example.com\nSubject: {subject}\n\nBody of {subject}.\n").into_bytes()
}

// ---------------------------------------------------------------------------------------
// PHP-FPM
// ---------------------------------------------------------------------------------------

/// Debian's php-fpm binary (php-fpm8.2 on bookworm).
fn php_fpm() -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/sbin")
        .expect("/usr/sbin")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("php-fpm is missing: install Debian's php-fpm (.ci/run does)")
}

/// A PHP-FPM master started directly (no systemd) with one pool per user, each pool's
/// `sendmail_path` the installed set-uid `sendmail`.
pub(crate) struct Fpm {
    master: Option<Child>,
    dir: PathBuf,
}

impl Fpm {
    pub(crate) fn start(inst: &Install, pools: &[&User]) -> Fpm {
        let dir = inst.state.path().join("fpm");
        fs::create_dir_all(&dir).expect("fpm dir");
        let mut conf = format!(
            "[global]\nerror_log = {0}/fpm.log\ndaemonize = no\n",
            dir.display()
        );
        for u in pools {
            conf += &format!(
                "[{name}]\n\
                 user = {name}\n\
                 group = {name}\n\
                 listen = {dir}/{name}.sock\n\
                 listen.owner = root\n\
                 listen.mode = 0600\n\
                 pm = static\n\
                 pm.max_children = 1\n\
                 php_admin_value[sendmail_path] = \"{sendmail} -t -i\"\n\
                 php_admin_flag[mail.add_x_header] = on\n",
                name = u.name,
                dir = dir.display(),
                sendmail = inst.sendmail.display()
            );
        }
        let conf_path = dir.join("php-fpm.conf");
        fs::write(&conf_path, conf).expect("write php-fpm.conf");
        let master = Command::new(php_fpm())
            .args(["-n", "-F", "-y"])
            .arg(&conf_path)
            .env_clear()
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php-fpm");
        let mut fpm = Fpm {
            master: Some(master),
            dir,
        };
        for u in pools {
            let sock = fpm.socket(u);
            let deadline = Instant::now() + WAIT;
            while !sock.exists() {
                let exited = fpm
                    .master
                    .as_mut()
                    .and_then(|m| m.try_wait().ok().flatten());
                if exited.is_some() || Instant::now() >= deadline {
                    panic!(
                        "php-fpm did not open {} ({exited:?}); its log:\n{}",
                        sock.display(),
                        fs::read_to_string(fpm.dir.join("fpm.log")).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        fpm
    }

    fn socket(&self, user: &User) -> PathBuf {
        self.dir.join(format!("{}.sock", user.name))
    }

    /// A real FastCGI request (`cgi-fcgi`) for `script?query` to `user`'s pool; the response.
    pub(crate) fn request(&self, user: &User, script: &Path, query: &str) -> String {
        let out = run_timed(
            Command::new("cgi-fcgi")
                .args(["-bind", "-connect"])
                .arg(self.socket(user))
                .env_clear()
                .env("PATH", PATH)
                .env("SCRIPT_FILENAME", script)
                .env("REQUEST_METHOD", "GET")
                .env("QUERY_STRING", query),
            None,
            WAIT,
        );
        assert!(out.status.success(), "cgi-fcgi: {}", text(&out.stderr));
        text(&out.stdout)
    }
}

impl Drop for Fpm {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            // SIGTERM: the master stops its workers and exits; SIGKILL would orphan them.
            let _ = os::kill(m.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = m.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// The PHP page every pool serves: one mail() per request, tagged by the query string.
pub(crate) const MAIL_PHP: &str = r#"<?php
$tag = preg_replace('/[^a-z0-9-]/', '', $_GET['tag'] ?? 'none');
$ok = mail("rcpt-$tag@example.com", "fpm $tag", "Sent by the pool for $tag.\n");
echo $ok ? "mail-ok\n" : "mail-failed\n";
"#;

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// Two pools, two users, one installed set-uid sendmail: each pool's mail belongs to its
/// own account (in the queue and in the `Received:` trace the smarthost gets), and blocking
/// one account holds that account's mail only.
#[test]
fn fpm_pools_send_as_their_own_accounts_and_a_block_holds_only_one() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let www = inst.state.path().join("www");
    fs::create_dir(&www).expect("www");
    let script = www.join("mail.php");
    fs::write(&script, MAIL_PHP).expect("mail.php");
    let fpm = Fpm::start(&inst, &[&a, &b]);

    for (user, tag) in [(&a, "fpm-a1"), (&b, "fpm-b1")] {
        let page = fpm.request(user, &script, &format!("tag={tag}"));
        assert!(page.contains("mail-ok"), "{tag}: PHP mail() failed: {page}");
    }
    let got = sink.wait_for(2, WAIT);
    for (user, tag) in [(&a, "fpm-a1"), (&b, "fpm-b1")] {
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
        assert_eq!(
            rows[0].0, user.name,
            "{tag} attributed to the wrong account"
        );
        assert_eq!(rows[0].2, format!("{}@node1.example.net", user.name));
        let m = got
            .iter()
            .find(|m| m.header("Subject").as_deref() == Some(&format!("fpm {tag}")))
            .unwrap_or_else(|| panic!("{tag} not at the smarthost"));
        let received = m.header("Received").expect("Received header");
        assert!(
            received.contains(&format!("from userid {} account {}", user.uid, user.name)),
            "{tag}: Received: {received}"
        );
        assert_eq!(m.mail_from, format!("{}@node1.example.net", user.name));
    }

    // Block a: its next mail is held (PHP still sees success), b's still flows.
    let out = inst.ctl(&["block", TENANT_A]);
    assert_exit(&out, 0, "mailq-ctl block");
    for (user, tag) in [(&a, "fpm-a2"), (&b, "fpm-b2")] {
        let page = fpm.request(user, &script, &format!("tag={tag}"));
        assert!(page.contains("mail-ok"), "{tag}: PHP mail() failed: {page}");
    }
    let got = sink.wait_for(3, WAIT);
    assert!(
        got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-b2")),
        "b's mail must still be relayed while a is blocked"
    );
    assert_eq!(inst.messages("fpm-a2")[0].1, "held");
    assert_eq!(inst.account_state(TENANT_A).as_deref(), Some("ko"));
    assert_eq!(inst.account_state(TENANT_B).as_deref(), Some("ok"));
    assert!(
        !got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-a2")),
        "held mail reached the smarthost"
    );

    // Unblock: the held mail was kept, and now goes out.
    let out = inst.ctl(&["unblock", TENANT_A]);
    assert_exit(&out, 0, "mailq-ctl unblock");
    let got = sink.wait_for(4, WAIT);
    assert!(
        got.iter()
            .any(|m| m.header("Subject").as_deref() == Some("fpm fpm-a2"))
    );
}

/// The set-uid sendmail switches real, effective, saved and filesystem uid and gid to the
/// service user before it reads the message, holds no queue lock while it waits, and has
/// undone what the caller could lower and it can raise: soft resource limits and the idle
/// I/O class (the same wrapper leaves them lowered on an ordinary program: the control).
#[test]
fn sendmail_runs_as_the_service_user_with_every_id_switched() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, svc) = (inst.a().clone(), inst.svc().clone());
    // A first message creates the queue database.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("creds-1")),
        0,
        "first",
    );
    // The caller's soft CPU and file limits lowered, I/O class idle, two extra descriptors
    // open (7 on /etc/passwd, 8 on a file of its own); sh, prlimit and ionice exec the
    // program, so the pid stays the same.
    let start = |program: &Path, args: &[&str], wait_uid: u32| -> Guard {
        let g = Guard(Some(
            inst.as_user(&a, "/bin/sh")
                .args([
                    "-c",
                    "exec 7</etc/passwd 8>>inherited.txt; exec \"$@\"",
                    "sh",
                ])
                .args([
                    "prlimit",
                    "--cpu=100:",
                    "--nofile=64:",
                    "--",
                    "ionice",
                    "-c",
                    "3",
                ])
                .arg(program)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        ));
        let pid = g.pid();
        poll(&format!("{} to start", program.display()), || {
            let argv0 = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (argv0.starts_with(program.as_os_str().as_encoded_bytes())
                && credentials(pid)?.0 == [wait_uid; 4])
                .then_some(())
        });
        g
    };
    // Descriptors still open on what the caller opened.
    let inherited = |pid: u32| -> Vec<PathBuf> {
        let mine = [
            PathBuf::from("/etc/passwd"),
            inst.home(&a).join("inherited.txt"),
        ];
        fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fd dir")
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter(|t| mine.contains(t))
            .collect()
    };
    // soft == hard for the two limits, and the I/O class as `ionice -p` reports it.
    let inspect = |pid: u32| -> (bool, String) {
        let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let raised = ["Max cpu time", "Max open files"].iter().all(|name| {
            let line = limits.lines().find(|l| l.starts_with(name)).expect(name);
            let v: Vec<&str> = line[name.len()..].split_whitespace().collect();
            v[0] == v[1]
        });
        let io = run_timed(
            Command::new("ionice").args(["-p", &pid.to_string()]),
            None,
            WAIT,
        );
        (raised, text(&io.stdout))
    };

    let control = start(Path::new("/bin/cat"), &[], a.uid);
    let (raised, io) = inspect(control.pid());
    assert!(
        !raised && io.contains("idle"),
        "the wrapper must degrade cat: {io}"
    );
    assert_eq!(
        inherited(control.pid()).len(),
        2,
        "cat keeps the caller's descriptors"
    );
    drop(control);

    let mut g = start(&inst.sendmail, &["-t", "-i"], svc.uid);
    let (uids, gids) = credentials(g.pid()).expect("credentials");
    assert_eq!(uids, [svc.uid; 4], "Uid: real effective saved fs");
    assert_eq!(gids, [svc.gid; 4], "Gid: real effective saved fs");
    let (raised, io) = inspect(g.pid());
    assert!(raised, "soft limits must be back at the hard ones");
    assert!(!io.contains("idle"), "idle I/O class must be reset: {io}");
    assert_eq!(
        inherited(g.pid()),
        Vec::<PathBuf>::new(),
        "inherited descriptors"
    );

    // While it waits for its input it holds no lock: a writer gets in (the busy timeout
    // only covers the one-shot delivery of the first message; sendmail waits forever).
    inst.db()
        .execute_batch("BEGIN IMMEDIATE; COMMIT;")
        .expect("a sendmail waiting for input must not hold the write lock");

    let mut stdin = g.child().stdin.take().expect("stdin");
    stdin.write_all(&message("creds-2")).expect("write");
    drop(stdin);
    let out = g.finish(WAIT);
    assert_exit(&out, 0, "sendmail");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let rows = inst.messages("creds-2");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);

    // What it created in the queue belongs to the service user and nobody else.
    let m = fs::metadata(inst.queue.join("queue.db")).expect("queue.db");
    assert_eq!((m.uid(), m.mode() & 0o077), (svc.uid, 0), "queue.db");
}

/// Perl probe run as a tenant: start PROGRAM (as the tenant's child, so a Yama
/// `ptrace_scope` of 1 does not decide the outcome) reading a pipe the probe keeps open,
/// wait until it runs with all four uids = WANT_UID, then try `kill(SIGSTOP)` and
/// `PTRACE_ATTACH` and print their errno (0 = it worked). If both failed, feed the message
/// and print the program's exit status.
/// Arguments: SYS_ptrace PTRACE_ATTACH WANT_UID SUBJECT PROGRAM ARGS...
const PROBE: &str = r#"
use strict;
my ($sys_ptrace, $attach, $want, $subject, @cmd) = @ARGV;
pipe(my $r, my $w) or die "pipe: $!";
my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDIN, '<&', $r) or die "dup: $!";
    close $w;
    exec { $cmd[0] } @cmd or die "exec: $!";
}
close $r;
my $ready = 0;
for (1 .. 1000) {
    my ($st, $cl) = ('', '');
    if (open(my $f, '<', "/proc/$pid/status")) { local $/; $st = <$f> }
    if (open(my $f, '<', "/proc/$pid/cmdline")) { local $/; $cl = <$f> }
    if ($st =~ /^Uid:\s+$want\s+$want\s+$want\s+$want\s*$/m && index($cl, "$cmd[0]\0") == 0) {
        $ready = 1;
        last;
    }
    select(undef, undef, undef, 0.01);
}
die "target never ran with uid $want\n" unless $ready;
my $kill = kill('STOP', $pid) ? 0 : $! + 0;
my $trace = syscall($sys_ptrace + 0, $attach + 0, $pid + 0, 0, 0) == -1 ? $! + 0 : 0;
print "kill=$kill ptrace=$trace\n";
if ($kill == 0 || $trace == 0) {
    kill('KILL', $pid);
    waitpid($pid, 0);
    exit 0;
}
print $w "To: rcpt\@example.com\nSubject: $subject\n\nprobe\n";
close $w;
waitpid($pid, 0);
print "exit=", $? >> 8, " signal=", $? & 127, "\n";
"#;

/// A tenant can neither stop (SIGSTOP) nor trace its own running sendmail: EPERM, because
/// after the switch no uid of the process is the tenant's. The same probe against one of
/// the tenant's ordinary processes succeeds (positive control).
#[test]
fn tenant_cannot_stop_or_trace_its_own_sendmail() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    let probe = |want: u32, subject: &str, cmd: &[&str]| -> String {
        let out = run_timed(
            inst.as_user(&a, PERL)
                .args(["-e", PROBE])
                .arg(libc::SYS_ptrace.to_string())
                .arg(libc::PTRACE_ATTACH.to_string())
                .arg(want.to_string())
                .arg(subject)
                .args(cmd),
            None,
            WAIT,
        );
        assert!(
            out.status.success(),
            "probe: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    // Control: the tenant's own `cat` can be stopped and traced by the tenant.
    let control = probe(a.uid, "-", &["/bin/cat"]);
    assert!(
        control.contains("kill=0 ptrace=0"),
        "the probe must work on an unprotected process: {control}"
    );

    let eperm = libc::EPERM;
    let got = probe(
        inst.svc().uid,
        "probe-stop",
        &[inst.sendmail.to_str().expect("utf-8"), "-t", "-i"],
    );
    assert!(
        got.contains(&format!("kill={eperm} ptrace={eperm}")),
        "SIGSTOP and PTRACE_ATTACH must fail with EPERM: {got}"
    );
    // Untouched by the attempts, it finishes its job.
    assert!(got.contains("exit=0 signal=0"), "{got}");
    let rows = inst.messages("probe-stop");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);
}

/// The terminal is the one way to stop a process without permission: ^Z makes the line
/// discipline send SIGTSTP to the foreground job whatever its uid. A tenant's sendmail
/// running on the tenant's terminal, under a job-control shell, ignores it; the same ^Z
/// stops an ordinary program (positive control).
#[test]
fn tenant_cannot_stop_its_sendmail_from_its_terminal() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    // script(1) gives the shell a pty as controlling terminal; `set -m` runs the command as
    // a foreground job in its own process group, as an interactive shell would.
    let run_on_tty = |cmd: &str, wait_uid: u32| -> (Guard, std::process::ChildStdin) {
        let mut g = Guard(Some(
            inst.as_user(&a, "script")
                .args(["-q", "-e", "-c"])
                .arg(format!("bash -c 'set -m; {cmd}; echo status=$?'"))
                .arg("/dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn script"),
        ));
        let root = g.pid();
        let name = cmd.split_whitespace().next().expect("cmd");
        poll(&format!("{name} on the tty"), || {
            descendant(root, name).filter(|&p| {
                credentials(p).is_some_and(|(u, _)| u == [wait_uid; 4])
                    // The foreground process group of its terminal (pgrp == tpgid).
                    && stat(p).is_some_and(|(s, _, pgrp, _, _, tpgid)| {
                        pgrp == tpgid && s == 'S'
                    })
            })
        });
        let stdin = g.child().stdin.take().expect("stdin");
        (g, stdin)
    };

    // Control: ^Z stops `cat`; the shell reports it and goes on with status 148
    // (128 + SIGTSTP).
    let (g, mut tty) = run_on_tty("/bin/cat", a.uid);
    tty.write_all(b"\x1a").expect("^Z");
    let out = g.finish(WAIT);
    drop(tty);
    let screen = text(&out.stdout);
    assert!(
        screen.contains("Stopped") && screen.contains("status=148"),
        "^Z on the terminal must stop an ordinary program: {screen:?}"
    );

    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    let (g, mut tty) = run_on_tty(&format!("{sendmail} -t -i"), inst.svc().uid);
    tty.write_all(b"\x1a").expect("^Z");
    // Canonical mode: ^D at the start of a line is end of input.
    let mut msg = message("tty-stop");
    msg.extend_from_slice(b"\x04");
    tty.write_all(&msg).expect("message");
    let out = g.finish(WAIT);
    drop(tty);
    let screen = text(&out.stdout);
    assert!(
        screen.contains("status=0"),
        "sendmail must ignore ^Z and finish (status=148 means it was stopped): {screen:?}"
    );
    let rows = inst.messages("tty-stop");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, TENANT_A);
}

/// Perl probe: the errno of opening each path for reading (0 if it opened).
const OPEN_PROBE: &str = r#"
for my $p (@ARGV) {
    my $e = 0;
    if (-d $p) { opendir(my $d, $p) or $e = $! + 0 } else { open(my $f, '<', $p) or $e = $! + 0 }
    print "$p=$e\n";
}
"#;

/// The queue is the service user's alone: a tenant cannot open the database (or anything
/// else in the queue directory), and `mailq` shows a tenant its own mail only.
#[test]
fn tenant_cannot_read_the_queue() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b, svc) = (inst.a().clone(), inst.b().clone(), inst.svc().clone());
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("read-a")),
        0,
        "a",
    );
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("read-b")),
        0,
        "b",
    );
    inst.settle();

    let dir = fs::metadata(&inst.queue).expect("queue dir");
    assert_eq!((dir.uid(), dir.mode() & 0o777), (svc.uid, 0o700));
    let db = fs::metadata(inst.queue.join("queue.db")).expect("queue.db");
    assert_eq!((db.uid(), db.mode() & 0o077), (svc.uid, 0));

    let paths: Vec<PathBuf> = [
        "queue.db",
        "queue.db-wal",
        "queue.db-shm",
        "relayd.sock",
        "maildrop",
        "slots",
    ]
    .iter()
    .map(|n| inst.queue.join(n))
    .chain([inst.queue.clone()])
    .collect();
    // Control: root (the probe itself works) opens the database.
    let root = run_timed(
        Command::new(PERL)
            .args(["-e", OPEN_PROBE])
            .arg(inst.queue.join("queue.db")),
        None,
        WAIT,
    );
    assert!(text(&root.stdout).ends_with("queue.db=0\n"), "{root:?}");
    let out = run_timed(
        inst.as_user(&b, PERL).args(["-e", OPEN_PROBE]).args(&paths),
        None,
        WAIT,
    );
    let report = text(&out.stdout);
    for p in &paths {
        assert!(
            report.contains(&format!("{}={}\n", p.display(), libc::EACCES)),
            "{} must be EACCES for a tenant: {report}",
            p.display()
        );
    }
    // SQLite itself, as the tenant, cannot open it either.
    let out = run_timed(
        inst.as_user(&b, "sqlite3")
            .arg(inst.queue.join("queue.db"))
            .arg("SELECT count(*) FROM messages"),
        None,
        WAIT,
    );
    assert!(!out.status.success(), "sqlite3 as a tenant: {out:?}");

    // `mailq` (argv[0], through a symlink in the tenant's directory) and `-bp`: own mail only.
    let (qa, qb) = (inst.qid("read-a"), inst.qid("read-b"));
    let link = inst.home(&b).join("mailq");
    symlink(&inst.sendmail, &link).expect("mailq link");
    for out in [
        run_timed(&mut inst.as_user(&b, &link), None, WAIT),
        run_timed(inst.as_user(&b, &inst.sendmail).arg("-bp"), None, WAIT),
    ] {
        assert_exit(&out, 0, "mailq");
        let listing = text(&out.stdout);
        assert!(listing.contains(&qb), "own mail listed: {listing}");
        assert!(
            !listing.contains(&qa),
            "another account's mail listed: {listing}"
        );
    }
}

/// `mailq-ctl`, `relayd` and `bounce` refuse a tenant (77, one clear line), however it is
/// reached; root can use them.
#[test]
fn tenant_cannot_run_the_admin_commands() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let a = inst.a().clone();
    // The account exists once it has sent; root blocks it, its next mail is held.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("admin-a1")),
        0,
        "a",
    );
    assert_exit(&inst.ctl(&["block", TENANT_A]), 0, "root blocks a");
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("admin-a2")),
        0,
        "a",
    );

    let link = inst.bin.path().join("mailq-ctl");
    let config = config::DEFAULT_PATH;
    let attempts: Vec<(&str, Command)> = vec![
        ("mailq-ctl status", {
            let mut c = inst.as_user(&a, &link);
            c.arg("status");
            c
        }),
        ("mailq-ctl unblock (own account)", {
            let mut c = inst.as_user(&a, &link);
            c.args(["unblock", TENANT_A]);
            c
        }),
        ("scriptmail mailq-ctl block b", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["mailq-ctl", "block", TENANT_B]);
            c
        }),
        ("--config the real file", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["--config", config, "mailq-ctl", "purge", TENANT_A, "--yes"]);
            c
        }),
        ("SCRIPTMAIL_CONFIG the real file", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.env("SCRIPTMAIL_CONFIG", config).args([
                "mailq-ctl",
                "set",
                TENANT_A,
                "--max-per-day",
                "0",
            ]);
            c
        }),
        ("relayd", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.args(["relayd", "--once"]);
            c
        }),
        ("bounce", {
            let mut c = inst.as_user(&a, &inst.scriptmail);
            c.arg("bounce");
            c
        }),
    ];
    for (what, mut cmd) in attempts {
        let out = run_timed(&mut cmd, Some(b""), WAIT);
        assert_exit(&out, 77, what);
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err:?}");
        assert!(
            err.contains("permission denied") && err.contains(&format!("root and {SERVICE}")),
            "{what}: a clear message naming who may: {err:?}"
        );
    }
    assert_eq!(inst.account_state(TENANT_A).as_deref(), Some("ko"));
    assert_eq!(inst.messages("admin-a2")[0].1, "held");
    assert_eq!(inst.account_state(TENANT_B), None);
    // Root can (the refusals above are about the caller, not a broken command).
    assert_exit(&inst.ctl(&["status", TENANT_A]), 0, "root status");
}

/// Nothing a tenant controls picks the account: not `-f`, `--config`, `SCRIPTMAIL_CONFIG`,
/// other environment variables, an unknown `--account` option, nor argv[0].
#[test]
fn tenant_cannot_choose_its_account() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let home = inst.home(&a);
    // The tenant's own config: maps its uid to b and points at its own queue.
    let evil_queue = home.join("evil-queue");
    let evil = home.join("evil.toml");
    fs::write(
        &evil,
        format!(
            "queue.dir = \"{}\"\n[accounts.map]\n\"{}\" = \"{TENANT_B}\"\n",
            evil_queue.display(),
            a.uid
        ),
    )
    .expect("evil config");
    std::os::unix::fs::chown(&evil, Some(a.uid), Some(a.gid)).expect("chown");
    let sendmail = inst.sendmail.clone();

    let b_addr = format!("{TENANT_B}@node1.example.net");
    // (tag, command, expected exit)
    let cases: Vec<(&str, Command, i32)> = vec![
        (
            "acct-f",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.args(["-f", &b_addr, "-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-config",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.arg("--config").arg(&evil).args(["-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-env",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.env("SCRIPTMAIL_CONFIG", &evil)
                    .env("USER", TENANT_B)
                    .env("LOGNAME", TENANT_B)
                    .env("SUDO_USER", TENANT_B)
                    .env("SUDO_UID", b.uid.to_string())
                    .env("HOME", format!("/home/{TENANT_B}"))
                    .env("LD_PRELOAD", "/nonexistent/evil.so")
                    .env("SQLITE_TMPDIR", &home)
                    .args(["-t", "-i"]);
                c
            },
            0,
        ),
        (
            "acct-option",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.args(["--account", TENANT_B, "-t", "-i"]);
                c
            },
            64,
        ),
        // argv[0] = mailq-ctl: still the drop-in, still account a; "block" and b's name
        // are just recipients.
        (
            "acct-argv0",
            {
                let mut c = inst.as_user(&a, &sendmail);
                c.arg0("mailq-ctl").args(["-i", "block", TENANT_B]);
                c
            },
            0,
        ),
    ];
    for (tag, mut cmd, code) in cases {
        let out = run_timed(&mut cmd, Some(&message(tag)), WAIT);
        assert_exit(&out, code, tag);
        let rows = inst.messages(tag);
        if code == 0 {
            assert_eq!(rows.len(), 1, "{tag}: {rows:?}");
            assert_eq!(rows[0].0, TENANT_A, "{tag}: attributed to {rows:?}");
        } else {
            assert!(rows.is_empty(), "{tag}: refused but queued: {rows:?}");
        }
    }
    // -f changes the envelope sender, not the account.
    assert_eq!(inst.messages("acct-f")[0].2, b_addr);
    // A symlink named mailq-ctl to the set-uid binary is the same drop-in.
    let link = home.join("mailq-ctl");
    symlink(&sendmail, &link).expect("link");
    let out = run_timed(
        inst.as_user(&a, &link).args(["-i", "block", TENANT_B]),
        Some(&message("acct-link")),
        WAIT,
    );
    assert_exit(&out, 0, "mailq-ctl symlink");
    assert_eq!(inst.messages("acct-link")[0].0, TENANT_A);
    // A symlink named sendmail to the (not set-uid) scriptmail program runs as the tenant:
    // it cannot write the real queue at all.
    let link = home.join("sendmail");
    symlink(&inst.scriptmail, &link).expect("link");
    let out = run_timed(
        inst.as_user(&a, &link).args(["-t", "-i"]),
        Some(&message("acct-unpriv")),
        WAIT,
    );
    assert!(
        !out.status.success() && out.status.code() != Some(75),
        "unprivileged copy: {out:?}"
    );
    assert!(inst.messages("acct-unpriv").is_empty());

    // Nothing a did created or touched account b, and its own config's queue stayed empty.
    assert_eq!(inst.account_state(TENANT_B), None);
    assert!(!evil_queue.join("queue.db").exists());
}

/// The config's uid map and allow-list decide the account and who may submit; a refused
/// caller gets 77 and one clear line, and nothing is queued.
#[test]
fn uid_map_and_allow_list_decide_who_submits() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let users = {
        let _l = lock_etc();
        users()
    };
    let inst = Install::with(
        closed_port(),
        "accounts.allow = [\"shop-a\"]",
        &format!("[accounts.map]\n\"{}\" = \"shop-a\"\n", users.a.uid),
    );
    let (a, b) = (inst.a().clone(), inst.b().clone());
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("map-a")),
        0,
        "a",
    );
    let rows = inst.messages("map-a");
    assert_eq!(rows[0].0, "shop-a");
    assert_eq!(rows[0].2, "shop-a@node1.example.net");

    let out = inst.submit_as(&b, &["-t", "-i"], &message("map-b"));
    assert_exit(&out, 77, "b is not on the allow-list");
    let err = text(&out.stderr);
    assert!(
        err.starts_with("sendmail: ") && err.lines().count() == 1 && err.contains("not allowed"),
        "{err:?}"
    );
    assert!(inst.messages("map-b").is_empty());
}

/// A tenant's hostile limits and closed descriptors make its own submission fail cleanly
/// (a sysexits status, one line on stderr, nothing queued) or succeed; the queue stays
/// intact either way.
#[test]
fn hostile_limits_and_closed_descriptors_never_damage_the_queue() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("limits-base")),
        0,
        "base",
    );
    let body = |db: &rusqlite::Connection| -> Vec<u8> {
        db.query_row(
            "SELECT b.data FROM bodies b JOIN messages m ON m.id = b.message_id \
             WHERE instr(m.subject, 'limits-base') > 0",
            [],
            |r| r.get(0),
        )
        .expect("base body")
    };
    let before = body(&inst.db());
    let home = inst.home(&a);
    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    let err_file = home.join("stderr.log");

    // (tag, prlimit options, shell redirections)
    let cases: &[(&str, &[&str], &str)] = &[
        ("lim-fsize0", &["--fsize=0"], ""),
        ("lim-fsize1", &["--fsize=1"], ""),
        ("lim-fsize4k", &["--fsize=4096"], ""),
        // stderr to a file it cannot grow: the error line cannot be written.
        ("lim-fsize-errfile", &["--fsize=1"], "2>>stderr.log"),
        ("lim-nofile4", &["--nofile=4"], ""),
        ("lim-nofile5", &["--nofile=5"], ""),
        ("lim-nofile8", &["--nofile=8"], ""),
        ("fd-stdout-closed", &[], ">&-"),
        ("fd-stdout-stderr-closed", &[], ">&- 2>&-"),
        ("fd-stdin-closed", &[], "<&-"),
    ];
    for (tag, limits, redirect) in cases {
        let shell = format!("exec \"$0\" -t -i {redirect}");
        let mut cmd = if limits.is_empty() {
            inst.as_user(&a, "/bin/sh")
        } else {
            let mut c = inst.as_user(&a, "prlimit");
            c.args(*limits).args(["--", "/bin/sh"]);
            c
        };
        cmd.args(["-c", &shell, &sendmail]);
        let out = run_timed(&mut cmd, Some(&message(tag)), WAIT);
        let code = out.status.code().unwrap_or_else(|| {
            panic!(
                "{tag}: killed by signal {:?}; stderr: {}",
                out.status.signal(),
                text(&out.stderr)
            )
        });
        assert!(
            [0, 64, 65, 69, 70, 71, 72, 73, 74, 77, 78].contains(&code),
            "{tag}: exit {code} is not a clean sysexits status: {}",
            text(&out.stderr)
        );
        let rows = inst.messages(tag);
        let err = text(&out.stderr);
        if code == 0 {
            assert_eq!(rows.len(), 1, "{tag}: exit 0 but not queued");
            assert_eq!(rows[0].0, TENANT_A);
        } else {
            assert!(
                rows.is_empty(),
                "{tag}: failed ({code}) but queued: {rows:?}"
            );
            if !redirect.contains("2>") {
                assert!(
                    err.starts_with("sendmail: ") && err.lines().count() == 1,
                    "{tag}: one line on stderr: {err:?}"
                );
            }
        }
        assert!(
            out.stdout.is_empty(),
            "{tag}: stdout {:?}",
            text(&out.stdout)
        );
    }
    // The descriptors the caller closed were not reused for anything that matters.
    assert_eq!(inst.messages("fd-stdout-closed").len(), 1);
    assert_eq!(inst.messages("fd-stdout-stderr-closed").len(), 1);
    // The file stderr pointed at was not grown past its limit.
    assert!(fs::metadata(&err_file).map(|m| m.len()).unwrap_or(0) <= 1);

    assert_eq!(inst.integrity(), "ok");
    assert_eq!(body(&inst.db()), before, "earlier mail changed");
    // And the queue still takes mail.
    assert_exit(
        &inst.submit_as(&a, &["-t", "-i"], &message("limits-after")),
        0,
        "after",
    );
    assert_eq!(inst.messages("limits-after").len(), 1);
}

/// Split a `key=value key="quoted \" value" key=<angle value>` log line into pairs.
pub(crate) fn fields(line: &str) -> Vec<(String, String)> {
    let body = line.split_once("]: ").map_or(line, |(_, b)| b);
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            match chars.peek() {
                Some('"') => {
                    chars.next();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next()),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                }
                Some('<') => {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == '>' {
                            break;
                        }
                        value.push(c);
                    }
                }
                _ => {
                    while let Some(&c) = chars.peek() {
                        if c == ' ' {
                            break;
                        }
                        value.push(c);
                        chars.next();
                    }
                }
            }
        }
        out.push((key, value));
    }
}

/// Hostile strings — a working directory, a script name and a subject with CR/LF, escape
/// sequences and other control characters, an envelope sender holding fake `key=value`
/// pairs — reach syslog as one clean line per event, whose fields parse back unchanged;
/// an error message shown on the terminal is cleaned too.
#[test]
fn hostile_strings_reach_syslog_as_one_clean_line() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let a = inst.a().clone();
    let home = inst.home(&a);
    let evil_dir = home.join("x\r\nqid=FAKE status=sent\x1b[31m\x07\u{85}end");
    fs::create_dir(&evil_dir).expect("evil dir");
    std::os::unix::fs::chown(&evil_dir, Some(a.uid), Some(a.gid)).expect("chown");
    inst.log_lines();

    let sender = "\"x status=sent qid=FAKE\"@example.com";
    let msg = "To: rcpt@example.com\r\n\
               Subject: log-inject \x1b]0;owned\x07 \x7f\r\n\
               X-PHP-Originating-Script: 1001:evil\rqid=FAKE\x1b[2J.php\r\n\
               \r\n\
               body\r\n";
    let out = run_timed(
        inst.as_user(&a, &inst.sendmail)
            .current_dir(&evil_dir)
            .args(["-f", sender, "-t", "-i"]),
        Some(msg.as_bytes()),
        WAIT,
    );
    assert_exit(&out, 0, "sendmail");
    let qid = inst.qid("log-inject");
    sink.wait_for(1, WAIT);

    let mut lines = Vec::new();
    poll("the relay's log line", || {
        lines.extend(inst.log_lines());
        lines
            .iter()
            .any(|l| l.contains(&qid) && l.contains("status=sent"))
            .then_some(())
    });
    for l in &lines {
        assert!(
            !l.chars().any(char::is_control),
            "control character in a log line: {l:?}"
        );
    }
    let enqueue: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("qid={qid} ")) && l.contains("status=queued"))
        .collect();
    assert_eq!(enqueue.len(), 1, "one line for the enqueue: {lines:#?}");
    let f = fields(enqueue[0]);
    let get = |k: &str| -> Vec<&str> {
        f.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("qid"), [qid.as_str()], "{f:?}");
    assert_eq!(get("status"), ["queued"], "{f:?}");
    assert_eq!(get("account"), [TENANT_A], "{f:?}");
    assert_eq!(get("from"), ["\"x status=sent qid=FAKE\"@example.com"]);
    let cwd = get("cwd");
    assert!(
        cwd.len() == 1 && cwd[0].ends_with("x??qid=FAKE status=sent?[31m??end"),
        "cwd kept, cleaned: {cwd:?}"
    );
    let script = get("script");
    assert!(
        script.len() == 1 && script[0].contains("evil") && !script[0].contains('\r'),
        "{script:?}"
    );
    // No line anywhere starts a forged event.
    for l in &lines {
        assert!(
            fields(l).iter().all(|(k, v)| k != "qid" || v != "FAKE"),
            "forged field: {l:?}"
        );
    }

    // Terminal output: an error naming a hostile address is one cleaned line.
    let out = inst.submit_as(
        &a,
        &["-i", "bad\x1b[31m\r\nrcpt@example.com"],
        b"Subject: x\n\nbody\n",
    );
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        !err.trim_end_matches('\n').chars().any(char::is_control),
        "control characters on the terminal: {err:?}"
    );
}

/// A tenant cannot hand its degraded process to the node's delivery: a one-shot delivery run
/// inherits the caller's scheduling class and hard limits, and would hold the relay lock for
/// everyone. From a `SCHED_IDLE` or resource-starved `sendmail` the mail is queued but no
/// delivery run is started (one log line says why); the next healthy submission relays it.
#[test]
fn a_degraded_caller_does_not_start_the_delivery_run() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let sink = Sink::start();
    let inst = Install::new(sink.port());
    let (a, b) = (inst.a().clone(), inst.b().clone());
    let sendmail = inst.sendmail.to_str().expect("utf-8").to_string();
    inst.log_lines();

    let cases: [(&str, &str, Vec<&str>); 2] = [
        (
            "degraded-idle",
            "SCHED_IDLE",
            vec!["chrt", "--idle", "0", &sendmail, "-t", "-i"],
        ),
        (
            "degraded-as",
            "RLIMIT_AS",
            vec!["prlimit", "--as=200000000", "--", &sendmail, "-t", "-i"],
        ),
    ];
    for (i, (tag, why, argv)) in cases.iter().enumerate() {
        let out = run_timed(
            inst.as_user(&a, argv[0]).args(&argv[1..]),
            Some(&message(tag)),
            WAIT,
        );
        assert_exit(&out, 0, tag);
        // Accepted (in the maildrop, fsynced) and not imported: no delivery run started.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(inst.maildrop().len(), i + 1, "{tag}: waits in the maildrop");
        let lines = inst.log_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("not starting a delivery run") && l.contains(why)),
            "{tag}: no log line saying why: {lines:#?}"
        );
    }
    // A healthy submission starts a delivery run that imports and relays everything.
    assert_exit(
        &inst.submit_as(&b, &["-t", "-i"], &message("degraded-b")),
        0,
        "b",
    );
    for (tag, ..) in &cases {
        let rows = inst.messages(tag);
        assert_eq!(rows.len(), 1, "{tag}");
        assert_eq!(rows[0].0, TENANT_A);
    }
    let got = sink.wait_for(3, WAIT);
    for tag in ["degraded-idle", "degraded-as", "degraded-b"] {
        let subject = format!("Subject: {tag}");
        assert!(
            got.iter().any(|m| m.text().contains(&subject)),
            "{tag} not relayed"
        );
    }
}

/// A wrongly installed `sendmail` refuses to run privileged (78, one clear line, nothing
/// queued): set-uid root would parse every tenant's input as root, and set-gid alone would
/// leave the process the caller's to stop inside the queue lock.
#[test]
fn a_wrong_installation_refuses_to_run() {
    if !crate::as_root(NEEDS) {
        return;
    }
    let inst = Install::new(closed_port());
    let (a, svc) = (inst.a().clone(), inst.svc().clone());
    let cases = [
        ("wrong-setuid-root", 0, 0, 0o4755, "set-uid root"),
        ("wrong-setgid-only", 0, svc.gid, 0o2755, "set-gid only"),
    ];
    for (name, owner, group, mode, why) in cases {
        let path = inst.bin.path().join(name);
        fs::copy(SENDMAIL, &path).expect("copy");
        std::os::unix::fs::chown(&path, Some(owner), Some(group)).expect("chown");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let out = run_timed(
            inst.as_user(&a, &path).args(["-t", "-i"]),
            Some(&message(name)),
            WAIT,
        );
        assert_exit(&out, 78, name);
        let err = text(&out.stderr);
        assert!(
            err.starts_with("sendmail: ") && err.lines().count() == 1 && err.contains(why),
            "{name}: {err:?}"
        );
        assert!(inst.messages(name).is_empty(), "{name} queued");
    }
}
