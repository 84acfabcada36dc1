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
    /// Extra server options (TLS).
    options: String,
}

/// The certificates of a TLS server ([`Pg::private_tls`]).
pub struct Certs {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing of this server's.
    pub other_ca: PathBuf,
}

static SHARED: OnceLock<Pg> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// Whether the tests run as root (the server then runs as `nobody`).
fn as_root() -> bool {
    scriptmail::os::effective_uid() == 0
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    if as_root() {
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
            pg.stop_after(std::process::id());
            pg
        })
    }

    /// A server of its own (stopped when dropped).
    pub fn private() -> Pg {
        Pg::start()
    }

    fn start() -> Pg {
        let pg = Pg::init();
        pg.start_server();
        pg
    }

    /// A server of its own that takes TCP connections over TLS only
    /// (`hostssl`): `postgres` without a password, other roles with one
    /// (SCRAM); its certificate for `localhost` and 127.0.0.1 is signed by
    /// a test CA. The harness itself connects over the Unix socket.
    pub fn private_tls() -> (Pg, Certs) {
        let mut pg = Pg::init();
        let dir = pg.dir.path().to_path_buf();
        let openssl = |args: &[&str]| {
            run(Command::new("openssl").args(args).current_dir(&dir));
        };
        for ca in ["ca", "other"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=scriptmail test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ]);
        for f in ["server.key", "server.crt"] {
            let path = dir.join(f);
            if as_root() {
                std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).expect("chown");
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let hba = pg.data().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\n\
             hostssl all postgres 127.0.0.1/32 trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
        pg.options = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            dir.join("server.crt").display(),
            dir.join("server.key").display()
        );
        pg.start_server();
        let certs = Certs {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other.crt"),
        };
        (pg, certs)
    }

    /// Where the server keeps its files (certificates go here too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn init() -> Pg {
        let dir = tempfile::Builder::new()
            .prefix("scriptmail-pg.")
            .tempdir()
            .expect("tempdir");
        if as_root() {
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
        Pg {
            dir,
            port,
            options: String::new(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stop this server and remove its files once process `pid` (this
    /// test binary) is gone: a statics' destructor never runs at exit, so a
    /// detached watcher does it.
    fn stop_after(&self, pid: u32) {
        // pg_ctl refuses to run as root: as the server's user, then.
        let runas = if as_root() {
            "runuser -u nobody -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {runas}{bin}/pg_ctl -D '{data}' stop -m immediate -w >/dev/null 2>&1; rm -rf '{dir}'",
            bin = BIN,
            data = self.data().display(),
            dir = self.dir.path().display()
        );
        let mut cmd = Command::new("/bin/sh");
        // The watcher runs in the background of a shell that exits at once,
        // so it outlives this process and leaves no child to wait for.
        cmd.args(["-c", &format!("({script}) &")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let status = cmd.status().expect("start the server's watcher");
        assert!(status.success(), "the server's watcher: {status}");
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
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 {}",
            self.port,
            self.dir.path().display(),
            self.options
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

    /// The name of the database of `url` (from [`Pg::database`]).
    pub fn db_name(url: &str) -> &str {
        url.rsplit('/').next().unwrap_or(url)
    }

    /// The URL of database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db`, as the superuser over the Unix
    /// socket (whatever the server asks of TCP connections).
    pub fn client(&self, db: &str) -> postgres::Client {
        let params = format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.path().display(),
            self.port
        );
        let mut last = None;
        for _ in 0..50 {
            match postgres::Client::connect(&params, postgres::NoTls) {
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
