//! The installation under test ([`Install`]: set-uid `sendmail`, config, queue, syslog
//! socket) and the PHP-FPM pools that submit through it.

use super::*;

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

    /// The queue's messages, the maildrop and the scriptmail processes: what
    /// a test prints when delivery did not come (with the log lines it read).
    pub(crate) fn diagnose(&self) -> String {
        let rows: Vec<String> = self
            .db()
            .prepare("SELECT qid, state, attempts, next_attempt FROM messages")
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok(format!(
                        "{} {} attempts={} next={}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?
                    ))
                })?
                .collect()
            })
            .unwrap_or_else(|e| vec![format!("cannot read the queue: {e}")]);
        let ps = Command::new("ps")
            .args(["-eo", "pid,pgid,user,stat,args"])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| l.contains("scriptmail") || l.contains("sendmail"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        format!(
            "delivery did not come: messages {rows:?}; maildrop {:?}; processes:\n{ps}",
            self.maildrop()
        )
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
        // As the Store does: never delete the -wal and -shm files on close,
        // or the next root connection creates them as root (see Store::open).
        c.file_control(
            rusqlite::DEFAULT_NAME,
            rusqlite::FileControl::PersistWal(&mut 1),
        )
        .expect("persistent WAL");
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

    pub(super) fn integrity(&self) -> String {
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
