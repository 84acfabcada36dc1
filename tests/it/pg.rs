//! A real PostgreSQL for the cluster tests: Debian's postgresql-15, started
//! by the harness in a temporary directory on a free port (`initdb` and
//! `pg_ctl` as an unprivileged user: `nobody` when the tests run as root,
//! since PostgreSQL refuses to run as root), with fsync off.
//!
//! [`Pg::shared`] is one server for the whole test binary, stopped when the
//! binary exits; each test takes its own database from it
//! ([`Pg::database`]). A test that stops and restarts the server takes a
//! [`Pg::private`] one, stopped when dropped.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where Debian's postgresql-15 installs its programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged user the server runs as under root.
const NOBODY: u32 = 65534;

/// A running PostgreSQL server.
pub struct Pg {
    /// Kept alive with the server (its data directory and socket).
    dir: tempfile::TempDir,
    pub port: u16,
}

static SHARED: OnceLock<Pg> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_shared() {
    if let Some(pg) = SHARED.get() {
        let _ = pg.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(pg.dir.path());
    }
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is postgresql-15 installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pg {
    /// The binary's shared server (started on first use).
    pub fn shared() -> &'static Pg {
        SHARED.get_or_init(|| {
            let pg = Pg::start();
            // SAFETY-free: atexit takes a plain extern "C" function.
            unsafe { libc::atexit(stop_shared) };
            pg
        })
    }

    /// A server of its own (stopped when dropped).
    pub fn private() -> Pg {
        Pg::start()
    }

    fn start() -> Pg {
        let dir = tempfile::Builder::new()
            .prefix("scriptmail-pg.")
            .tempdir()
            .expect("tempdir");
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown");
        }
        run(as_server_user(
            Command::new(Path::new(BIN).join("initdb"))
                .args(["-D"])
                .arg(dir.path().join("data"))
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]),
        ));
        let port = crate::fake_smtp::free_port();
        let pg = Pg { dir, port };
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        as_server_user(
            Command::new(Path::new(BIN).join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(args),
        )
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl")
    }

    fn start_server(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().expect("utf-8 path"),
            "-o",
            &options,
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stop the server (a fast shutdown: connections are closed).
    pub fn stop(&self) {
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    /// Start it again on the same port.
    pub fn restart(&self) {
        self.start_server();
    }

    /// A fresh database; its connection URL.
    pub fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = self.client("postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(&name)
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db`.
    pub fn client(&self, db: &str) -> postgres::Client {
        let mut last = None;
        for _ in 0..50 {
            match postgres::Client::connect(&self.url(db), postgres::NoTls) {
                Ok(c) => return c,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("connect to {db}: {last:?}");
    }

    /// A connection to the database of `url` (from [`Pg::database`]).
    pub fn connect(url: &str) -> postgres::Client {
        postgres::Client::connect(url, postgres::NoTls).expect("connect")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
    }
}
