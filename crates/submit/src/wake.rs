//! Waking the relay after a commit, without ever waiting for it.
//!
//! `sendmail` sends one datagram to the daemon's socket; the send is
//! non-blocking, so a stuck daemon cannot stall a PHP worker. When no daemon
//! listens, it starts a detached one-shot `scriptmail relayd --once` with
//! stdio on /dev/null in its own process group: PHP's `pclose()` returns as
//! soon as `sendmail` exits, and the delivery goes on without it (docs/design.md, "Relaying").

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::config::Config;

/// Wake the relay daemon, or start a one-shot delivery when none listens.
/// `config_path` is passed on to the one-shot when one was given explicitly.
pub fn relay(cfg: &Config, config_path: Option<&Path>) {
    if poke(&cfg.wake_socket()) {
        return;
    }
    let mut cmd = Command::new(&cfg.relay.program);
    cmd.arg("relayd").arg("--once");
    if let Some(p) = config_path {
        cmd.arg("--config").arg(p);
    }
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Not the tenant's working directory: the one-shot must hold no
        // reference into a site's tree (which may be unmounted or deleted).
        .current_dir("/")
        .process_group(0);
    // Not waited for: it is reparented to init when we exit. A failure to
    // start is not a failure of the submission — the mail is committed and
    // the next wake-up, the daemon or the sweep timer will send it.
    if let Err(e) = cmd.spawn() {
        crate::log::log(
            crate::log::Level::Warning,
            &format!(
                "cannot start {} for delivery: {e}",
                cfg.relay.program.display()
            ),
        );
    }
}

/// Send a wake-up datagram; true if a daemon received it.
pub fn poke(socket: &Path) -> bool {
    let Ok(s) = UnixDatagram::unbound() else {
        return false;
    };
    let _ = s.set_nonblocking(true);
    match s.send_to(b"!", socket) {
        Ok(_) => true,
        // The daemon's buffer is full: it has plenty of wake-ups pending.
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}
