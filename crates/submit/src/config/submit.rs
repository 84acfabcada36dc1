//! The `[submit]` table: submission through relayd's socket (docs/submission.md).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubmit {
    pub socket: Option<PathBuf>,
    pub timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_uid: Option<usize>,
    pub max_per_account: Option<usize>,
}

/// Submission through relayd's socket (docs/submission.md).
#[derive(Debug, Clone)]
pub struct SubmitConfig {
    /// The stream socket relayd takes submissions on (mode 0666: the kernel
    /// names the caller, so anyone may connect).
    pub socket: PathBuf,
    /// How long `sendmail` waits for relayd's greeting, and then for its
    /// answer, before it writes the message to the maildrop instead.
    pub timeout: Duration,
    /// How long relayd waits for the next frame on a connection (counted
    /// afresh after each answer) before it closes it.
    pub read_timeout: Duration,
    /// Connections relayd serves at once; past it new ones are turned away
    /// (and their `sendmail` uses the maildrop).
    pub max_connections: usize,
    /// Connections of one uid relayd serves at once.
    pub max_connections_per_uid: usize,
    /// `sendmail` processes of one account that may be submitting at once;
    /// past it a new one exits 69 at once.
    pub max_per_account: usize,
}

/// Longest path a Unix socket address can hold (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The `[submit]` table, validated (defaults: docs/submission.md and
/// conf/scriptmail.toml).
pub(super) fn parse(
    raw: RawSubmit,
    queue_read_timeout: Duration,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    dur: &dyn Fn(&'static str, Option<String>, Duration) -> Result<Duration, ConfigError>,
) -> Result<SubmitConfig, ConfigError> {
    let socket = raw
        .socket
        .unwrap_or_else(|| PathBuf::from("/run/scriptmail/submit.sock"));
    if !socket.is_absolute() || socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(invalid(
            "submit.socket",
            format!("must be an absolute path of at most {MAX_SOCKET_PATH} bytes"),
        ));
    }
    // Long enough for a loaded relayd to greet and group-commit; short enough
    // that a stopped one costs a PHP request seconds, not minutes (the
    // maildrop then takes the message).
    let timeout = dur("submit.timeout", raw.timeout, Duration::from_secs(5))?;
    if timeout.is_zero() || timeout > Duration::from_secs(600) {
        return Err(invalid("submit.timeout", "must be 1s..10m".into()));
    }
    // sendmail connects before it reads its input (for up to
    // queue.read_timeout), then fixes the message up: the default leaves it
    // that and half a minute. Shorter only cuts slow senders over to the
    // maildrop.
    let read_timeout = dur(
        "submit.read_timeout",
        raw.read_timeout,
        queue_read_timeout.saturating_add(Duration::from_secs(30)),
    )?;
    if read_timeout.is_zero() || read_timeout > Duration::from_secs(2 * 86400) {
        return Err(invalid("submit.read_timeout", "must be 1s..2d".into()));
    }
    // A connection is a thread of relayd that sleeps in read(2); 512 of them
    // cost little memory, and past the cap submissions still succeed through
    // the maildrop.
    let max_connections = raw.max_connections.unwrap_or(512);
    if !(1..=65536).contains(&max_connections) {
        return Err(invalid("submit.max_connections", "must be 1..65536".into()));
    }
    // As many as one account's sendmail processes (max_per_account), so an
    // honest pool never meets this cap first.
    let max_connections_per_uid = raw.max_connections_per_uid.unwrap_or(64);
    if !(1..=max_connections).contains(&max_connections_per_uid) {
        return Err(invalid(
            "submit.max_connections_per_uid",
            "must be 1..max_connections".into(),
        ));
    }
    // A PHP-FPM pool runs at most pm.max_children mail() calls at once (each
    // worker waits for its sendmail), and pools rarely go past 50: 64 leaves
    // room for an honest pool and stops a tenant from piling up stalled
    // processes of the service user (SECURITY.md).
    let max_per_account = raw.max_per_account.unwrap_or(64);
    if !(1..=4096).contains(&max_per_account) {
        return Err(invalid("submit.max_per_account", "must be 1..4096".into()));
    }
    Ok(SubmitConfig {
        socket,
        timeout,
        read_timeout,
        max_connections,
        max_connections_per_uid,
        max_per_account,
    })
}
