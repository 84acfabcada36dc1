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
//!
//! This module holds the shared harness (the /etc/scriptmail lock, the users, running
//! things with a time limit); `install` holds [`Install`] and the PHP-FPM pools. The tests
//! are grouped by concern: `identity` (whose account a message is, who may submit),
//! `stalls` (a tenant cannot stop its `sendmail` or stall delivery), `queue` (a tenant
//! cannot read the queue, run the admin commands or damage the queue) and `logging`
//! (hostile strings in syslog).

mod identity;
mod install;
mod logging;
mod queue;
mod stalls;

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

pub(crate) use install::{Fpm, Install, MAIL_PHP, message};

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
