//! The bare `sendmail` binary on its own: its refusals, each one line on
//! stderr with its sysexits status, nothing on stdout, nothing dropped.
//! No relayd and no `scriptmail` here (the scriptmail package's tests run
//! the whole path); these need only a config file and a queue directory.
//! Having an integration test is also what makes a plain `cargo test` build
//! `target/debug/sendmail` before any test runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const SENDMAIL: &str = env!("CARGO_BIN_EXE_sendmail");

/// A config and a queue directory in a temporary directory.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    queue: PathBuf,
}

impl Env {
    /// `top` goes before the generated keys (dotted keys).
    fn new(top: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let queue = dir.path().join("queue");
        std::fs::create_dir(&queue).expect("queue dir");
        let config = dir.path().join("scriptmail.toml");
        let text = format!(
            "{top}\n\
             node.domain = \"node1.example.net\"\n\
             queue.dir = \"{}\"\n\
             relay.host = \"127.0.0.1\"\n\
             relay.program = \"/bin/false\"\n\
             log.socket = \"{}\"\n\
             submit.socket = \"{}\"\n",
            queue.display(),
            dir.path().join("no-syslog.sock").display(),
            dir.path().join("no-relayd.sock").display(),
        );
        std::fs::write(&config, text).expect("write config");
        Env { dir, config, queue }
    }

    fn submit(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(SENDMAIL)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("SCRIPTMAIL_CONFIG", &self.config)
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sendmail");
        // A refusal may come before stdin is read: a broken pipe is fine.
        let _ = child.stdin.take().expect("stdin").write_all(input);
        child.wait_with_output().expect("wait for sendmail")
    }

    /// Nothing was dropped for relayd to pick up, and no database made.
    fn nothing_queued(&self) -> bool {
        let dropped = std::fs::read_dir(self.queue.join("maildrop"))
            .map(|d| d.count())
            .unwrap_or(0);
        dropped == 0 && !self.queue.join("queue.db").exists()
    }
}

fn message(to: &str, subject: &str) -> Vec<u8> {
    format!("To: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n").into_bytes()
}

/// One line on stderr prefixed `sendmail: `, nothing on stdout, `code`.
fn refused(out: &Output, code: i32, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}: stdout {:?}", out.stdout);
    assert_eq!(err.lines().count(), 1, "{what}: {err:?}");
    assert!(err.starts_with("sendmail: "), "{what}: {err:?}");
    err
}

/// Every error path of the command line and the input: its exit code, one
/// line on stderr, nothing on stdout, nothing queued.
#[test]
fn error_paths_exit_with_sysexits_and_queue_nothing() {
    let env = Env::new("queue.max_message_size = 2000");
    let msg = message("a@example.com", "s");
    let mut big = message("a@example.com", "big");
    big.extend(std::iter::repeat_n(b'x', 3000));
    let cases: Vec<(&str, Vec<&str>, Vec<u8>, i32)> = vec![
        (
            "unknown option",
            vec!["-Z", "a@example.com"],
            msg.clone(),
            64,
        ),
        ("-X log file", vec!["-X/tmp/log", "-t"], msg.clone(), 64),
        ("-C config", vec!["-C/etc/x.cf", "-t"], msg.clone(), 64),
        ("-be expansion", vec!["-be"], msg.clone(), 64),
        (
            "no recipients",
            vec!["-t", "-i"],
            b"Subject: none\r\n\r\nx\r\n".to_vec(),
            64,
        ),
        ("no recipients at all", vec!["-i"], msg.clone(), 64),
        (
            "malformed recipient",
            vec!["-i", "\"unterminated@example.com"],
            msg.clone(),
            65,
        ),
        (
            "control char in address",
            vec!["-i", "a\u{1}b@example.com"],
            msg.clone(),
            65,
        ),
        ("too large", vec!["-t", "-i"], big, 69),
    ];
    for (what, args, input, code) in cases {
        refused(&env.submit(&args, &input), code, what);
    }
    assert!(env.nothing_queued());
}

#[test]
fn config_and_queue_errors() {
    let msg = message("a@example.com", "s");
    // A typo in the config: 78, naming the file and the key.
    let env = Env::new("queue.hold_max_agee = \"1h\"");
    let err = refused(&env.submit(&["-t"], &msg), 78, "typo");
    assert!(err.contains("hold_max_agee") && err.contains("scriptmail.toml"));

    // A caller the policy refuses: 77.
    let env = Env::new("accounts.allow = [\"somebody-else\"]");
    refused(&env.submit(&["-t"], &msg), 77, "not allowed");

    // The queue cannot be created: 73.
    let env = Env::new("");
    std::fs::remove_dir(&env.queue).unwrap();
    std::fs::write(&env.queue, b"not a directory").unwrap();
    refused(&env.submit(&["-t"], &msg), 73, "queue is a file");

    // A queue from a newer scriptmail is refused, not touched: 78. Its
    // version is SQLite's user_version, a big-endian u32 at offset 60.
    let env = Env::new("");
    let mut header = b"SQLite format 3\0".to_vec();
    header.resize(100, 0);
    header[60..64].copy_from_slice(&999u32.to_be_bytes());
    std::fs::write(env.queue.join("queue.db"), &header).unwrap();
    let err = refused(&env.submit(&["-t"], &msg), 78, "newer queue");
    assert!(err.contains("newer"), "{err}");
    assert_eq!(std::fs::read(env.queue.join("queue.db")).unwrap(), header);
}
