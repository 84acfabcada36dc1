//! Fault injection into the real programs (issue 11); the table of what a caller sees and
//! what becomes of the mail is docs/faults.md, each row naming its test here.
//!
//! The faults:
//! - **System calls that fail**: `fault_shim.c`, compiled here with `cc` and loaded with
//!   `LD_PRELOAD` into `sendmail`, relayd and the one-shot delivery (through a wrapper
//!   script as `relay.program`, since `sendmail` starts it with a cleared environment).
//!   A control file switches the fault on and off while the programs run, and the shim
//!   records every fault it injected, so no test passes without its fault happening.
//! - **A full queue file system**: a small tmpfs mounted on the queue directory and
//!   filled up (needs root, as CI runs: [`NEEDS_MOUNT`]).
//! - **The database locked past the busy timeout**: the test holds the write lock
//!   (`BEGIN EXCLUSIVE`); the shim makes the relayers' millisecond sleeps return at once,
//!   so their busy handler's tries (about 30 s of them) run out in a moment.
//! - **relayd or the one-shot killed** (`kill -9`) at random points, repeatedly: during a
//!   maildrop import, during slow deliveries, during a burst without a daemon.
//! - **The smarthost cutting the connection mid-DATA** under load (`fake_smtp.rs`).
//!
//! For each: the caller's exit status (never 75) with exactly one `sendmail: ` line on
//! stderr and nothing on stdout; nothing half-queued (a sound database, no message
//! without its body or recipients, only whole files in the maildrop, no temporary file
//! left); and relayd carrying on once the fault clears — run as systemd runs it,
//! restarted when it exits with a failure (`Restart=on-failure`, [`Relayd`]).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::fake_smtp::{Action, FakeSmtp};
use crate::sink::Sink;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// The shim's source; compiled into each test's directory.
const SHIM_C: &str = include_str!("fault_shim.c");

/// What the full-disk tests need; as another user they say so and pass
/// ([`as_root`]), unless the run must cover them (CI).
const NEEDS_MOUNT: &str = "mounts a tmpfs on the queue directory";

// ---------------------------------------------------------------------------------------
// The shim
// ---------------------------------------------------------------------------------------

/// The fault shim of one environment: built, and wired into every relayer it starts.
struct Faults {
    shim: PathBuf,
    ctl: PathBuf,
}

impl Faults {
    /// Build the shim into `env`'s directory and make `relay.program` (the one-shot
    /// delivery `sendmail` starts) run under it.
    fn install(env: &Env) -> Faults {
        let dir = env.path();
        let src = dir.join("fault_shim.c");
        let shim = dir.join("fault_shim.so");
        fs::write(&src, SHIM_C).expect("write fault_shim.c");
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&shim)
            .arg(&src)
            .output()
            .expect("run cc (Debian: gcc, libc6-dev)");
        assert!(out.status.success(), "cc: {}", stderr(&out));
        let ctl = dir.join("faults");
        let wrapper = dir.join("scriptmail-under-faults");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nLD_PRELOAD='{}' FAULT_CTL='{}' exec '{SCRIPTMAIL}' \"$@\"\n",
                shim.display(),
                ctl.display()
            ),
        )
        .expect("write wrapper");
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");
        set_relay_program(env, &wrapper);
        Faults { shim, ctl }
    }

    /// `cmd` with the shim loaded.
    fn under<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("LD_PRELOAD", &self.shim)
            .env("FAULT_CTL", &self.ctl)
    }

    /// Switch the fault on: `rules` as `fault_shim.c` reads them (one file, renamed into
    /// place, so no program reads half of it).
    fn set(&self, rules: &str) {
        let tmp = self.ctl.with_extension("new");
        fs::write(&tmp, rules).expect("write fault rules");
        fs::rename(&tmp, &self.ctl).expect("rename fault rules");
    }

    fn clear(&self) {
        let _ = fs::remove_file(&self.ctl);
    }

    /// The faults injected so far, one `OP PATH` line each.
    fn hits(&self) -> Vec<String> {
        fs::read_to_string(self.ctl.with_extension("hits"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Point the environment's `relay.program` at `program`.
fn set_relay_program(env: &Env, program: &Path) {
    let text = fs::read_to_string(&env.config).expect("read config");
    let line = format!("relay.program = \"{SCRIPTMAIL}\"");
    assert!(text.contains(&line), "{text}");
    let new = text.replace(&line, &format!("relay.program = \"{}\"", program.display()));
    fs::write(&env.config, new).expect("write config");
}

// ---------------------------------------------------------------------------------------
// relayd under a supervisor
// ---------------------------------------------------------------------------------------

/// How long the supervisor waits before restarting relayd (systemd: `RestartSec=5s`).
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// relayd run as the package's unit runs it: restarted when it exits with a failure or
/// is killed (`Restart=on-failure`), not after a clean exit. Stopped when dropped.
struct Relayd {
    child: Arc<Mutex<Option<Child>>>,
    exits: Arc<Mutex<Vec<ExitStatus>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relayd {
    /// Start relayd (under the shim when `faults` is given) and keep it running.
    fn start(env: &Env, faults: Option<&Faults>) -> Relayd {
        let mut cmd = env.scriptmail();
        cmd.arg("relayd").stdin(Stdio::null()).stdout(Stdio::null());
        if let Some(f) = faults {
            f.under(&mut cmd);
        }
        let log = env.path().join("relayd.stderr");
        let child: Arc<Mutex<Option<Child>>> = Arc::default();
        let exits: Arc<Mutex<Vec<ExitStatus>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (child, exits, stop) = (Arc::clone(&child), Arc::clone(&exits), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let err = fs::File::options()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .expect("relayd stderr file");
                    *child.lock().expect("child") =
                        Some(cmd.stderr(err).spawn().expect("start relayd"));
                    let status = loop {
                        std::thread::sleep(Duration::from_millis(10));
                        let mut c = child.lock().expect("child");
                        let Some(running) = c.as_mut() else { return };
                        if let Ok(Some(st)) = running.try_wait() {
                            *c = None;
                            break st;
                        }
                        if stop.load(Ordering::SeqCst) {
                            let _ = running.kill();
                            let _ = running.wait();
                            *c = None;
                            return;
                        }
                    };
                    exits.lock().expect("exits").push(status);
                    if status.success() {
                        return;
                    }
                    std::thread::sleep(RESTART_DELAY);
                }
            })
        };
        let r = Relayd {
            child,
            exits,
            stop,
            thread: Some(thread),
        };
        r.wait_ready(env);
        r
    }

    fn pid(&self) -> Option<u32> {
        self.child.lock().expect("child").as_ref().map(Child::id)
    }

    /// Ready: the running relayd holds its pid file and listens on the submit socket
    /// (after a kill -9, the dead one's socket file is still there).
    fn wait_ready(&self, env: &Env) {
        wait_until(WAIT, || {
            let Some(pid) = self.pid() else { return false };
            let ours = fs::read_to_string(env.queue.join("relayd.pid"))
                .is_ok_and(|p| p.trim() == pid.to_string());
            ours && listening(&env.submit_socket())
        });
    }

    /// kill -9 the running relayd and wait until its supervisor has seen it die (a
    /// killed process still listens until the kernel has torn it down); false if none
    /// ran. The supervisor then starts another.
    fn kill9(&self) -> bool {
        let killed = {
            let mut c = self.child.lock().expect("child");
            let Some(c) = c.as_mut() else { return false };
            if c.kill().is_err() {
                return false;
            }
            c.id()
        };
        wait_until(WAIT, || self.pid() != Some(killed));
        true
    }

    /// How relayd exited so far (kills included).
    fn exits(&self) -> Vec<ExitStatus> {
        self.exits.lock().expect("exits").clone()
    }

    fn running(&self) -> bool {
        self.pid().is_some()
    }
}

impl Drop for Relayd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut c) = self.child.lock().map(|mut c| c.take()).ok().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// What the caller sees, and what is in the queue
// ---------------------------------------------------------------------------------------

/// `sendmail -t -i` of a message with `subject`, under the shim when given.
fn send(env: &Env, faults: Option<&Faults>, subject: &str) -> Output {
    let mut cmd = env.sendmail();
    if let Some(f) = faults {
        f.under(&mut cmd);
    }
    run_with_input(
        cmd.args(["-t", "-i"]),
        &simple_message("fault@example.org", subject),
    )
}

/// Exit 0, and nothing on stdout or stderr.
#[track_caller]
fn assert_accepted(out: &Output) {
    assert!(
        out.status.code() == Some(0) && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
}

/// Exit `exit` (never 75: docs/design.md), exactly one line on stderr, prefixed
/// `sendmail: ` and saying `says`, nothing on stdout.
#[track_caller]
fn assert_refused(out: &Output, exit: i32, says: &str) {
    let err = stderr(out);
    assert_ne!(out.status.code(), Some(75), "{out:?}");
    assert_eq!(out.status.code(), Some(exit), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        err.starts_with("sendmail: ") && err.ends_with('\n') && err.lines().count() == 1,
        "one stderr line: {err:?}"
    );
    assert!(err.contains(says), "{err:?} should say {says:?}");
}

/// `senders` concurrent loops of `each` submissions; the subjects that did not exit 0
/// (with their status and stderr), and the outputs that broke the caller contract.
fn burst(env: &Env, senders: usize, each: usize, tag: &str) -> Vec<String> {
    burst_with(senders, each, tag, |subject| {
        let out = send(env, None, subject);
        (out.status.code() != Some(0) || !out.stderr.is_empty())
            .then(|| format!("{subject}: {out:?}"))
    })
}

/// A read-only look at the queue now (without waiting for the maildrop, unlike
/// `Env::db`); `None` before the database exists.
fn queue_db(env: &Env) -> Option<rusqlite::Connection> {
    let path = env.queue.join("queue.db");
    if !path.exists() {
        return None;
    }
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open queue db");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    Some(db)
}

fn scalar(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Queue rows whose subject starts with `prefix`.
fn rows_like(env: &Env, prefix: &str) -> i64 {
    queue_db(env).map_or(0, |db| {
        db.query_row(
            "SELECT count(*) FROM messages WHERE substr(subject, 1, length(?1)) = ?1",
            [prefix],
            |r| r.get(0),
        )
        .expect("count")
    })
}

/// Nothing half-queued: the database passes its integrity check; every message not yet
/// done has its body; every message has its recipients; no body or recipient row
/// belongs to no message; every file in the maildrop is whole (its frame head, then
/// exactly the data length it announces); no writer's temporary file is left.
#[track_caller]
fn assert_nothing_half_queued(env: &Env) {
    assert_queue_sound(env);
    assert_maildrop_whole(env);
}

/// The database half of [`assert_nothing_half_queued`].
#[track_caller]
fn assert_queue_sound(env: &Env) {
    if let Some(db) = queue_db(env) {
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok");
        for (what, sql) in [
            (
                "pending message without a body",
                "SELECT count(*) FROM messages m WHERE m.state IN ('held', 'queued', 'deferred', 'sending')
                 AND NOT EXISTS (SELECT 1 FROM bodies b WHERE b.message_id = m.id)",
            ),
            (
                "message without recipients",
                "SELECT count(*) FROM messages m
                 WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id)",
            ),
            (
                "body without a message",
                "SELECT count(*) FROM bodies b
                 WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = b.message_id)",
            ),
            (
                "recipient without a message",
                "SELECT count(*) FROM recipients r
                 WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id)",
            ),
        ] {
            assert_eq!(scalar(&db, sql), 0, "{what}");
        }
    }
}

/// The maildrop half of [`assert_nothing_half_queued`].
#[track_caller]
fn assert_maildrop_whole(env: &Env) {
    let dir = scriptmail::maildrop::dir(&env.queue);
    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp"),
            "a writer's temporary file is left: {name}"
        );
        if scriptmail::maildrop::is_entry(&name) {
            let bytes = fs::read(entry.path()).unwrap_or_default();
            assert!(
                whole_maildrop_file(&bytes),
                "maildrop file {name} is not whole: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

/// A `MAILDROP 1` frame: head lines up to `data N`, then exactly N bytes
/// (docs/submission.md, "The protocol").
fn whole_maildrop_file(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"MAILDROP 1\n") {
        return false;
    }
    let mut at = 0;
    for line in bytes.split(|&b| b == b'\n') {
        at += line.len() + 1;
        if let Some(n) = line.strip_prefix(b"data ") {
            let n: usize = String::from_utf8_lossy(n).parse().unwrap_or(usize::MAX);
            return bytes.len().checked_sub(at) == Some(n);
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// A fault of the queue's storage, for both submission paths
// ---------------------------------------------------------------------------------------

/// Where a caller's message goes (docs/submission.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// relayd runs: the submit socket, group commit.
    Relayd,
    /// No relayd: the maildrop, imported by the one-shot delivery `sendmail` starts.
    Maildrop,
}

/// What goes wrong with the queue.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// System calls fail: rules for `fault_shim.c`, in force for every program.
    Syscalls(&'static str),
    /// The test holds the database's write lock past the relayers' busy timeout.
    Locked,
    /// The queue directory is a small file system, filled up.
    FullDisk,
}

/// What each caller sees while the fault lasts.
#[derive(Clone, Copy, Debug)]
enum Seen {
    /// Exit 0: the message waits, whole, in the maildrop until the fault clears.
    Accepted,
    /// This exit status and one stderr line saying this; the message is nowhere.
    Refused { exit: i32, says: &'static str },
}

/// One fault, one path: the table's row in docs/faults.md.
struct Case {
    route: Route,
    fault: Fault,
    seen: Seen,
    /// kill -9 relayd once the fault clears: a crash before its next commit.
    crash_after: bool,
    /// Parts of a line the fault makes relayd or the one-shot log.
    logged: &'static [&'static str],
    /// relayd exits by itself during the fault with this status (and its supervisor
    /// starts it again); `None`: it keeps running.
    relayd_stops: Option<i32>,
}

/// The fault while it is in force; cleared when dropped.
enum Active {
    Shim,
    Lock(rusqlite::Connection),
    Filler(PathBuf),
}

/// A tmpfs on `at`, unmounted (lazily: a one-shot may still hold it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Fill it up; the filler file.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = fs::File::create(&path).expect("create filler");
        for chunk in [1 << 16, 512, 1] {
            let bytes = vec![0u8; chunk];
            while f.write_all(&bytes).is_ok() {}
        }
        let free = Command::new("stat")
            .args(["-f", "-c", "%a"])
            .arg(&self.0)
            .output()
            .expect("stat -f");
        assert_eq!(stdout(&free).trim(), "0", "the file system is full");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Run `case`: a message before the fault, three during it, one after it clears; check
/// what each caller saw, that nothing is half-queued, and what reached the smarthost.
fn run_case(case: Case) {
    let sink = Sink::start();
    let env = Env::with_config(sink.port(), "submit.timeout = \"3s\"");
    let mount = matches!(case.fault, Fault::FullDisk).then(|| Tmpfs::mount(&env.queue, "4m"));
    let faults = Faults::install(&env);
    let tap = LogTap::start(&env);
    let relayd = (case.route == Route::Relayd).then(|| Relayd::start(&env, Some(&faults)));

    assert_accepted(&send(&env, Some(&faults), "before"));
    sink.wait_for(1, WAIT);
    // Recorded as sent, so no write of its delivery meets the fault; and its one-shot
    // gone, so nothing frees space or takes a lock once the fault is set.
    wait_until(WAIT, || {
        queue_db(&env).is_some_and(|db| {
            scalar(&db, "SELECT count(*) FROM messages WHERE state = 'sent'") == 1
        })
    });
    wait_until(WAIT, || one_shots(&env).is_empty());

    let active = match case.fault {
        Fault::Syscalls(rules) => {
            faults.set(rules);
            Active::Shim
        }
        Fault::Locked => {
            let db = rusqlite::Connection::open(env.queue.join("queue.db")).expect("open");
            db.execute_batch("BEGIN EXCLUSIVE")
                .expect("take the write lock");
            faults.set("sleep fast -\n");
            Active::Lock(db)
        }
        Fault::FullDisk => Active::Filler(mount.as_ref().expect("tmpfs").fill()),
    };
    let during: Vec<String> = (0..3).map(|i| format!("during {i}")).collect();
    for subject in &during {
        let out = send(&env, Some(&faults), subject);
        match case.seen {
            Seen::Accepted => assert_accepted(&out),
            Seen::Refused { exit, says } => assert_refused(&out, exit, says),
        }
    }
    // The fault did happen, and was met where the case says.
    // (Without relayd the one-shots meet it after their sendmail has exited.)
    if let Fault::Syscalls(_) = case.fault {
        wait_until(WAIT, || !faults.hits().is_empty());
    }
    if !case.logged.is_empty() {
        let start = std::time::Instant::now();
        while tap.count(case.logged) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nothing logged with {:?}: {:#?}",
                case.logged,
                tap.lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // On a full disk the test cannot read the database either (SQLite has no room for
    // its shared-memory file once the last connection closed it): checked after.
    let readable = !matches!(case.fault, Fault::FullDisk);
    if readable {
        assert_queue_sound(&env);
    }
    assert_maildrop_whole(&env);
    match case.seen {
        Seen::Accepted => assert_eq!(env.maildrop().len(), 3, "waiting in the maildrop"),
        Seen::Refused { .. } => {
            assert!(env.maildrop().is_empty(), "{:?}", env.maildrop());
            if readable {
                assert_eq!(rows_like(&env, "during"), 0, "a refused message was queued");
            }
        }
    }

    // relayd stopped by itself during the fault, if it does (and is not still on its
    // way out when it is waited for below).
    if let (Some(r), Some(exit)) = (&relayd, case.relayd_stops) {
        wait_until(WAIT, || r.exits().iter().any(|st| st.code() == Some(exit)));
    }

    // The fault clears.
    match active {
        Active::Shim => faults.clear(),
        Active::Lock(db) => {
            db.execute_batch("COMMIT").expect("let go of the lock");
            faults.clear();
        }
        Active::Filler(path) => fs::remove_file(path).expect("remove filler"),
    }
    if let Some(r) = &relayd {
        if case.crash_after {
            assert!(r.kill9(), "relayd was running");
        }
        r.wait_ready(&env);
    }
    let via_socket = tap.count(&["status=queued", "via=socket"]);
    assert_accepted(&send(&env, Some(&faults), "after"));
    if relayd.is_some() {
        // relayd itself took it, over the socket.
        wait_until(WAIT, || {
            tap.count(&["status=queued", "via=socket"]) > via_socket
        });
    }
    let mut want = vec!["before".to_string(), "after".to_string()];
    if matches!(case.seen, Seen::Accepted) {
        want.extend(during.iter().cloned());
    }
    sink.wait_for(want.len(), WAIT);
    env.settle();
    wait_until(WAIT, || env.count("state <> 'sent'") == 0);
    // Give a refused message that would come back the time to show up.
    std::thread::sleep(Duration::from_millis(500));
    let seen = subjects(&sink);
    for s in &want {
        assert_eq!(seen.get(s), Some(&1), "{s:?} delivered once: {seen:?}");
    }
    assert_eq!(seen.len(), want.len(), "nothing else arrived: {seen:?}");
    assert_eq!(env.count("1"), want.len() as i64, "one row per message");
    assert_nothing_half_queued(&env);
    if let Some(r) = &relayd {
        assert!(r.running(), "relayd runs");
        // Exits by itself, not counting our kill -9.
        let codes: Vec<Option<i32>> = r
            .exits()
            .iter()
            .filter(|st| st.code().is_some())
            .map(ExitStatus::code)
            .collect();
        match case.relayd_stops {
            None => assert!(codes.is_empty(), "relayd exited: {codes:?}"),
            Some(exit) => assert!(
                !codes.is_empty() && codes.iter().all(|&c| c == Some(exit)),
                "relayd should exit {exit} and be restarted: {codes:?}"
            ),
        }
    }
}

// fsync(2) fails with EIO.

/// relayd's commit fails at the fsync: it answers 451, sendmail writes the maildrop and
/// exits 0; the import fails too while the fault lasts, and succeeds after.
#[test]
fn fsync_eio_on_the_database_with_relayd_the_maildrop_takes_it() {
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::Syscalls("fsync EIO /queue/queue.db\n"),
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["via=socket", "disk I/O error"],
        relayd_stops: None,
    });
}

/// The one-shot's import fails at the fsync: the files wait in the maildrop, and the
/// next one-shot (after the fault) imports them.
#[test]
fn fsync_eio_on_the_database_without_relayd_the_maildrop_keeps_it() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Syscalls("fsync EIO /queue/queue.db\n"),
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["via=maildrop", "disk I/O error"],
        relayd_stops: None,
    });
}

/// Every fsync of the queue fails: relayd cannot commit, sendmail cannot fsync the
/// maildrop file: 74. And the commit that failed at its fsync does not come back when
/// relayd restarts (SQLite's WAL recovery would find its frames whole).
#[test]
fn fsync_eio_on_the_whole_queue_with_relayd_is_74_and_stays_refused() {
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::Syscalls("fsync EIO /queue/\n"),
        seen: Seen::Refused {
            exit: 74,
            says: "Input/output error",
        },
        crash_after: true,
        logged: &["via=socket", "disk I/O error"],
        relayd_stops: None,
    });
}

/// The maildrop file's fsync fails: 74, no file left.
#[test]
fn fsync_eio_on_the_maildrop_file_is_74() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Syscalls("fsync EIO /maildrop/.\n"),
        seen: Seen::Refused {
            exit: 74,
            says: "Input/output error",
        },
        crash_after: false,
        logged: &[],
        relayd_stops: None,
    });
}

/// The maildrop directory's fsync (after the rename) fails: 74, and the file named by
/// the rename is taken back.
#[test]
fn fsync_eio_on_the_maildrop_directory_is_74() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Syscalls("fsync EIO /queue/maildrop$\n"),
        seen: Seen::Refused {
            exit: 74,
            says: "Input/output error",
        },
        crash_after: false,
        logged: &[],
        relayd_stops: None,
    });
}

// write(2) fails with ENOSPC.

/// relayd cannot write its WAL: 451, the maildrop takes the message, exit 0.
#[test]
fn enospc_on_the_database_with_relayd_the_maildrop_takes_it() {
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::Syscalls("write ENOSPC /queue/queue.db\n"),
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["via=socket", "database or disk is full"],
        relayd_stops: None,
    });
}

/// The one-shot cannot write the WAL: the files wait in the maildrop.
#[test]
fn enospc_on_the_database_without_relayd_the_maildrop_keeps_it() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Syscalls("write ENOSPC /queue/queue.db\n"),
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["delivery run stopped: cannot open queue", "disk I/O error"],
        relayd_stops: None,
    });
}

/// No write to the queue succeeds: 74 with relayd (its commit and then the maildrop
/// fail); nothing comes back after a crash.
#[test]
fn enospc_on_the_whole_queue_with_relayd_is_74() {
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::Syscalls("write ENOSPC /queue/\n"),
        seen: Seen::Refused {
            exit: 74,
            says: "No space left on device",
        },
        crash_after: true,
        logged: &["via=socket", "database or disk is full"],
        relayd_stops: None,
    });
}

/// The maildrop file cannot be written: 74, no file left.
#[test]
fn enospc_on_the_maildrop_is_74() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Syscalls("write ENOSPC /maildrop/\n"),
        seen: Seen::Refused {
            exit: 74,
            says: "No space left on device",
        },
        crash_after: false,
        logged: &[],
        relayd_stops: None,
    });
}

// A genuinely full file system.

/// The queue's file system is full: relayd's commit fails (451), so does the maildrop
/// file: 74. Space back, relayd carries on.
#[test]
fn full_queue_file_system_with_relayd_is_74() {
    if !as_root(NEEDS_MOUNT) {
        return;
    }
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::FullDisk,
        seen: Seen::Refused {
            exit: 74,
            says: "No space left on device",
        },
        crash_after: false,
        logged: &["via=socket", "database or disk is full"],
        relayd_stops: None,
    });
}

/// The queue's file system is full, no relayd: the maildrop file cannot be written: 74.
#[test]
fn full_queue_file_system_without_relayd_is_74() {
    if !as_root(NEEDS_MOUNT) {
        return;
    }
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::FullDisk,
        seen: Seen::Refused {
            exit: 74,
            says: "No space left on device",
        },
        crash_after: false,
        logged: &[],
        relayd_stops: None,
    });
}

// The database locked past the busy timeout.

/// relayd's committer gives up on the lock (451): the maildrop takes the message, exit
/// 0. Its relay workers give up too and relayd exits 74; its supervisor restarts it, and
/// once the lock is free it imports the maildrop.
#[test]
fn database_locked_with_relayd_the_maildrop_takes_it() {
    run_case(Case {
        route: Route::Relayd,
        fault: Fault::Locked,
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["relay worker stopped", "database is locked"],
        relayd_stops: Some(74),
    });
}

/// The one-shot gives up on the lock: the files wait in the maildrop for the next one.
#[test]
fn database_locked_without_relayd_the_maildrop_keeps_it() {
    run_case(Case {
        route: Route::Maildrop,
        fault: Fault::Locked,
        seen: Seen::Accepted,
        crash_after: false,
        logged: &["delivery run stopped", "database is locked"],
        relayd_stops: None,
    });
}

// ---------------------------------------------------------------------------------------
// relayd and the one-shot killed, repeatedly
// ---------------------------------------------------------------------------------------

/// A random whole number in `lo..hi` (milliseconds, for pauses and kill points).
fn random_ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + scriptmail::os::random_u64() % (hi - lo))
}

/// `scriptmail relayd` with `env`'s config, not waited for; killed when dropped.
fn spawn_relayd(env: &Env) -> Daemon {
    let log = env.path().join("relayd.stderr");
    let err = fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .expect("relayd stderr file");
    let child = env
        .scriptmail()
        .arg("relayd")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start relayd");
    Daemon {
        child: Some(child),
        stderr: Some(log),
    }
}

/// Every accepted message arrived, and at most `max_duplicates` arrived twice; the queue
/// ends with each message sent, nothing in the maildrop and nothing half-queued.
#[track_caller]
fn assert_all_sent_once_but(
    env: &Env,
    seen: &HashMap<String, usize>,
    n: usize,
    max_duplicates: usize,
) {
    let total: usize = seen.values().sum();
    assert_eq!(seen.len(), n, "every accepted message arrived: {seen:?}");
    assert!(
        total - n <= max_duplicates,
        "{} duplicates, at most {max_duplicates} allowed: {seen:?}",
        total - n
    );
    eprintln!(
        "{} duplicate(s), at most {max_duplicates} allowed",
        total - n
    );
    let start = std::time::Instant::now();
    while env.count("state = 'sent'") != n as i64 {
        if start.elapsed() > WAIT {
            let db = env.db();
            let mut st = db
                .prepare(
                    "SELECT qid, state, attempts, last_error FROM messages WHERE state <> 'sent'",
                )
                .expect("prepare");
            let rows: Vec<(String, String, i64, String)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .map(|r| r.expect("row"))
                .collect();
            panic!("not all recorded as sent: {rows:#?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(env.maildrop().is_empty());
    assert_nothing_half_queued(env);
}

/// relayd killed (`kill -9`) while it imports the maildrop, in four rounds: the files
/// were written by `sendmail` while no relayd ran (exit 0 each; no one-shot), then
/// relayd starts and is killed a random moment after its first import. Every message
/// arrives: a file goes only after its commit, and a queue id already committed is not
/// taken twice; duplicates come only from a delivery on the wire at a kill (at most
/// `relay.connections`, 2, per kill).
#[test]
fn kill_9_of_relayd_during_maildrop_imports_loses_nothing() {
    const ROUNDS: usize = 4;
    const EACH: usize = 30;
    let sink = Sink::start();
    let env = Env::new(sink.port());
    set_relay_program(&env, Path::new("/bin/true"));
    let tap = LogTap::start(&env);
    let mut mid_import = 0;
    for round in 0..ROUNDS {
        let failed = burst(&env, 4, EACH, &format!("import r{round}"));
        assert!(failed.is_empty(), "{failed:?}");
        assert!(env.maildrop().len() >= 4 * EACH);
        let imported = tap.count(&["via=maildrop"]);
        let d = spawn_relayd(&env);
        wait_until(WAIT, || tap.count(&["via=maildrop"]) > imported);
        std::thread::sleep(random_ms(0, 10));
        d.kill9();
        mid_import += usize::from(!env.maildrop().is_empty());
    }
    assert!(mid_import > 0, "no kill landed in the middle of an import");
    let _d = env.relayd();
    let n = ROUNDS * 4 * EACH;
    // Every subject, not n messages: a duplicate must not stand in for a late one.
    wait_until(WAIT, || subjects(&sink).len() >= n);
    eprintln!("{mid_import} of {ROUNDS} kills in the middle of an import");
    assert_all_sent_once_but(&env, &subjects(&sink), n, ROUNDS * 2);
}

/// The subject of a message the fake smarthost took.
fn subject_of(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.trim_end_matches('\r').is_empty())
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string()
}

fn delivered_subjects(smtp: &FakeSmtp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for d in smtp.delivered() {
        *seen.entry(subject_of(&d.text())).or_default() += 1;
    }
    seen
}

/// relayd killed five times while it delivers to a slow smarthost (150 ms before each
/// `250`), restarted by its supervisor each time: the messages that were on the wire
/// are put back at the restart and sent again; every message arrives, duplicates only
/// from the at-least-once window (a kill between the smarthost's `250` and the record).
#[test]
fn kill_9_of_relayd_during_slow_deliveries_loses_nothing() {
    const N: usize = 40;
    const KILLS: usize = 5;
    let smtp = FakeSmtp::start();
    smtp.on(
        "DOT",
        None,
        None,
        Action::delay(Duration::from_millis(150), Action::Pass),
    );
    let env = Env::new(smtp.port());
    let relayd = Relayd::start(&env, None);
    let failed = burst(&env, 4, N / 4, "slow");
    assert!(failed.is_empty(), "{failed:?}");
    let mut on_wire = 0;
    for _ in 0..KILLS {
        std::thread::sleep(random_ms(100, 500));
        on_wire += queue_db(&env).map_or(0, |db| {
            scalar(&db, "SELECT count(*) FROM messages WHERE state = 'sending'")
        });
        assert!(relayd.kill9(), "relayd was running");
        relayd.wait_ready(&env);
    }
    assert!(on_wire > 0, "no kill found a message on the wire");
    wait_until(WAIT, || delivered_subjects(&smtp).len() >= N);
    assert_all_sent_once_but(&env, &delivered_subjects(&smtp), N, KILLS * 2);
    assert_eq!(env.count("state = 'sending'"), 0);
}

/// The one-shot deliveries `sendmail` starts when no relayd runs, in `env`.
fn one_shots(env: &Env) -> Vec<i32> {
    let config = env.config.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let ours = args.iter().any(|a| a == "--once") && args.contains(&config);
            ours.then_some(pid)
        })
        .collect()
}

/// No relayd: the one-shot deliveries of a 4×30 burst are killed (`kill -9`) at random
/// points, again and again. What a killed one-shot left — maildrop files, its claim in
/// `sending` — is taken by the next run (a later `sendmail`, or `sendmail -q` here as the
/// sweep timer would): every message arrives, duplicates at most one per kill.
#[test]
fn kill_9_of_one_shot_deliveries_at_random_points_loses_nothing() {
    const N: usize = 120;
    let smtp = FakeSmtp::start();
    smtp.on(
        "DOT",
        None,
        None,
        Action::delay(Duration::from_millis(20), Action::Pass),
    );
    let env = Env::new(smtp.port());
    let stop = AtomicBool::new(false);
    let kills = AtomicUsize::new(0);
    let failed = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(random_ms(20, 200));
                for pid in one_shots(&env) {
                    if scriptmail::os::kill(pid, libc::SIGKILL).is_ok() {
                        kills.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        let failed = burst(&env, 4, N / 4, "one-shot");
        stop.store(true, Ordering::SeqCst);
        failed
    });
    assert!(failed.is_empty(), "{failed:?}");
    let kills = kills.into_inner();
    assert!(kills > 0, "no one-shot was killed");
    wait_until(WAIT, || {
        if delivered_subjects(&smtp).len() < N {
            assert_ok(&env.submit(&["-q"], b""));
            std::thread::sleep(Duration::from_millis(300));
            return false;
        }
        true
    });
    eprintln!("{kills} one-shot(s) killed");
    assert_all_sent_once_but(&env, &delivered_subjects(&smtp), N, kills);
}

// ---------------------------------------------------------------------------------------
// The smarthost cutting the connection mid-DATA
// ---------------------------------------------------------------------------------------

/// Under a 4×30 burst, the smarthost cuts every third of the first 60 transactions after
/// the first line of data. Each cut message is deferred and sent again; as the smarthost
/// never said `250` for a cut one, every message arrives exactly once.
fn mid_data_cuts(route: Route) {
    const N: usize = 120;
    const CUTS: usize = 20;
    let smtp = FakeSmtp::start();
    for _ in 0..CUTS {
        smtp.on("DATA", None, Some(2), Action::Pass);
        smtp.on("DATA", None, Some(1), Action::DropMidData);
    }
    let env = Env::new(smtp.port());
    let relayd = (route == Route::Relayd).then(|| Relayd::start(&env, None));
    let failed = burst(&env, 4, N / 4, "cut");
    assert!(failed.is_empty(), "{failed:?}");
    wait_until(WAIT, || {
        if delivered_subjects(&smtp).len() < N {
            // Without relayd, deferred mail goes with the next run (a later sendmail,
            // the sweep timer): `sendmail -q` stands in for them.
            if route == Route::Maildrop {
                assert_ok(&env.submit(&["-q"], b""));
            }
            std::thread::sleep(Duration::from_millis(300));
            return false;
        }
        true
    });
    let datas = smtp
        .transcript()
        .iter()
        .filter(|(_, l)| l.eq_ignore_ascii_case("DATA"))
        .count();
    assert!(
        datas >= N + CUTS,
        "every cut happened: {datas} DATA commands"
    );
    assert_all_sent_once_but(&env, &delivered_subjects(&smtp), N, 0);
    if let Some(r) = relayd {
        assert!(
            r.exits().is_empty(),
            "relayd never stopped: {:?}",
            r.exits()
        );
    }
}

#[test]
fn smarthost_cutting_mid_data_under_load_with_relayd_loses_nothing() {
    mid_data_cuts(Route::Relayd);
}

#[test]
fn smarthost_cutting_mid_data_under_load_without_relayd_loses_nothing() {
    mid_data_cuts(Route::Maildrop);
}
