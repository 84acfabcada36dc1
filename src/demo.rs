//! `scriptmail demo`: the whole path on this machine with nothing else
//! installed — a temporary queue, a built-in SMTP sink on loopback as the
//! smarthost, a message submitted through the real `sendmail` binary, relayed
//! by a one-shot `relayd`, and shown as the sink received it.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::exit::{Exit, Failure};
use crate::smtp_server::{self, Verdict};

/// Why the demo did not get its message through.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// This program's path, a loopback port or a process.
    #[error("{0}")]
    Os(std::io::Error),
    /// The temporary queue or its configuration.
    #[error("{0}")]
    Create(std::io::Error),
    #[error("cannot find the sendmail binary (build it: cargo build)")]
    NoSendmail,
    #[error("{}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sendmail failed")]
    Sendmail,
    #[error("nothing delivered within 10 s; queue left in {}", dir.display())]
    NotDelivered { dir: PathBuf },
}

impl Failure for DemoError {
    fn exit_code(&self) -> Exit {
        match self {
            DemoError::Os(_) => Exit::OsErr,
            DemoError::Create(_) => Exit::CantCreat,
            DemoError::NoSendmail | DemoError::Spawn { .. } | DemoError::NotDelivered { .. } => {
                Exit::Unavailable
            }
            DemoError::Sendmail => Exit::Software,
        }
    }
}

/// Run the demo; prints what happens at each step.
pub fn run() -> Result<(), DemoError> {
    let me = std::env::current_exe().map_err(DemoError::Os)?;
    let sendmail = find_sendmail(&me)?;
    let dir = std::env::temp_dir().join(format!("scriptmail-demo.{}", std::process::id()));
    std::fs::create_dir_all(dir.join("queue")).map_err(DemoError::Create)?;

    // The smarthost: our own SMTP server code on a loopback port.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(DemoError::Os)?;
    let port = listener.local_addr().map_err(DemoError::Os)?.port();
    let (tx, rx) = mpsc::channel::<(String, Vec<String>, Vec<u8>)>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let Ok(read) = stream.try_clone() else { return };
                let mut n = 0;
                let _ = smtp_server::serve(
                    BufReader::new(read),
                    stream,
                    &smtp_server::Settings {
                        hostname: "demo-sink",
                        max_size: 0,
                        max_recipients: 1000,
                        domain: "demo-sink",
                    },
                    |env, data| {
                        n += 1;
                        let _ = tx.send((
                            env.sender.clone().unwrap_or_default(),
                            env.recipients.clone(),
                            data.to_vec(),
                        ));
                        Verdict::Accepted(format!("SINK{n}"))
                    },
                );
            });
        }
    });

    let config = dir.join("scriptmail.toml");
    let text = format!(
        "[node]\ndomain = \"demo.example.net\"\n[queue]\ndir = \"{}\"\n[relay]\nhost = \"127.0.0.1\"\nport = {port}\nprogram = \"{}\"\n[log]\nsocket = \"{}\"\n[submit]\nsocket = \"{}\"\n",
        dir.join("queue").display(),
        me.display(),
        dir.join("no-syslog").display(),
        // Not the node's relayd: the demo's queue is its own.
        dir.join("submit.sock").display()
    );
    std::fs::write(&config, text).map_err(DemoError::Create)?;
    println!("queue:      {}", dir.join("queue").display());
    println!("smarthost:  built-in SMTP sink on 127.0.0.1:{port}");
    println!(
        "submitting: {} -t -i  (as PHP mail() would)",
        sendmail.display()
    );

    let message = "To: Jane Doe <jane@example.org>\r\nSubject: Hello from scriptmail\r\nFrom: contact-form@example.com\n\nThis message went through sendmail, the SQLite queue and the relay.\n";
    let started = Instant::now();
    let mut child = Command::new(&sendmail)
        .args(["-t", "-i"])
        .env("SCRIPTMAIL_CONFIG", &config)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|source| DemoError::Spawn {
            path: sendmail.clone(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(message.as_bytes());
    }
    let status = child.wait().map_err(DemoError::Os)?;
    println!(
        "sendmail:   exit {} after {:.1} ms",
        status.code().unwrap_or(-1),
        started.elapsed().as_secs_f64() * 1000.0
    );
    if !status.success() {
        return Err(DemoError::Sendmail);
    }
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok((from, to, data)) => {
            println!(
                "delivered:  {:.1} ms after submission, MAIL FROM:<{from}> RCPT TO:<{}>",
                started.elapsed().as_secs_f64() * 1000.0,
                to.join(">, <")
            );
            println!("---- message as the smarthost received it ----");
            print!(
                "{}",
                crate::sanitize::multiline(&String::from_utf8_lossy(&data))
            );
            println!("----------------------------------------------");
            let _ = std::fs::remove_dir_all(&dir);
            Ok(())
        }
        Err(_) => Err(DemoError::NotDelivered { dir }),
    }
}

/// The drop-in: next to this program (a build tree), else the installed one.
fn find_sendmail(me: &std::path::Path) -> Result<PathBuf, DemoError> {
    let candidates = [
        me.with_file_name("sendmail"),
        PathBuf::from("/usr/lib/scriptmail/sendmail"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or(DemoError::NoSendmail)
}
