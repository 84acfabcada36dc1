//! The SMTP client towards the smarthost, on lettre's `SmtpConnection`.
//!
//! lettre's high-level `SmtpTransport::send_raw` gives up on the first
//! rejected RCPT; a sendmail must not lose the other recipients, so this
//! drives the transaction command by command (RFC 5321 §3.3) and returns an
//! outcome per recipient. One connection is kept open and reused across
//! messages (RSET-free: a completed transaction leaves the session ready for
//! the next MAIL, RFC 5321 §4.1.1.4), and closed after a few idle seconds as
//! Postfix does.
//!
//! Classification (RFC 5321 §4.2.1): 5xx replies fail (permanently), 4xx
//! replies defer; network, TLS and protocol errors are neither and also defer
//! — a flaky network must never turn into a bounce. A failure to connect
//! marks the smarthost down for a short while, during which messages are
//! deferred without a new connection attempt: a queue of thousands must not
//! hammer a dead (or black-holed) smarthost once per message.

use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::SmtpConnection;
use lettre::transport::smtp::commands::Quit;
use lettre::transport::smtp::extension::ClientId;

use crate::config::RelayConfig;
use crate::exit::{Exit, Failure};
use crate::store::RcptOutcome;

mod connection;
mod reply;
mod transaction;

use connection::read_credentials;
use reply::whole;

/// Connections idle longer than this are closed rather than reused.
pub const IDLE_CLOSE: Duration = Duration::from_secs(5);
/// Longest time a failed connection attempt marks the smarthost down.
const DOWN_HOLD_MAX: Duration = Duration::from_secs(10);

/// Why a smarthost client cannot be set up (bad configuration).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("relay.auth_file {path}: {message}")]
    Credentials { path: String, message: String },
}

impl Failure for TransportError {
    fn exit_code(&self) -> Exit {
        Exit::Config
    }
}

/// The envelope of one outgoing message.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub body_8bit: bool,
    /// DSN parameters (RFC 3461), passed on when the smarthost offers DSN.
    /// `envid` is plain text here; lettre xtext-encodes parameter values.
    pub dsn_notify: Option<&'a str>,
    pub dsn_ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

/// What the server offered in its EHLO reply that changes our commands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offers {
    pub eight_bit: bool,
    pub dsn: bool,
    pub smtputf8: bool,
}

struct Live {
    conn: SmtpConnection,
    last_used: Instant,
    /// Opened for the next message and not used yet ([`Smarthost::connect_now`]):
    /// a failure on it is not a stale cached connection.
    fresh: bool,
    /// Whether the server advertised DSN; learnt on first need (lettre does
    /// not keep unknown EHLO keywords).
    dsn: Option<bool>,
}

/// A (re)connecting client to the configured smarthost.
pub struct Smarthost {
    cfg: RelayConfig,
    hello: ClientId,
    credentials: Option<Credentials>,
    live: Option<Live>,
    /// After a failed connection attempt: until when, and why.
    down: Option<(Instant, String)>,
    down_hold: Duration,
    /// The last connection attempt failed.
    unreachable: bool,
    /// A connection succeeded after a failed one (see [`Smarthost::take_recovered`]).
    recovered: bool,
}

/// A failure that applies to the whole message.
#[derive(Debug)]
enum Whole {
    /// 5xx: every still-open recipient fails with this text.
    Permanent(String),
    /// 4xx, network, TLS: every still-open recipient is deferred.
    Temporary(String),
}

/// Where a whole-message failure happened, for the stale-connection retry.
#[derive(Debug, PartialEq, Eq)]
enum Stage {
    /// Opening the connection (never retried at once).
    Connect,
    /// The first command on a cached connection got no usable answer, or
    /// 421 (RFC 5321 §3.8: the server is closing): nothing of this message
    /// reached the server, so one retry on a fresh connection is harmless.
    Stale,
    /// Later: the server saw part of the transaction.
    Later,
}

impl Smarthost {
    /// A client for `cfg`; reads the AUTH credentials file if configured.
    pub fn new(cfg: RelayConfig, hello_name: &str) -> Result<Smarthost, TransportError> {
        let credentials = match &cfg.auth_file {
            None => None,
            Some(path) => {
                Some(
                    read_credentials(path).map_err(|message| TransportError::Credentials {
                        path: path.display().to_string(),
                        message,
                    })?,
                )
            }
        };
        let down_hold = cfg
            .retry_initial
            .clamp(Duration::from_secs(1), DOWN_HOLD_MAX);
        Ok(Smarthost {
            cfg,
            hello: ClientId::Domain(hello_name.to_string()),
            credentials,
            live: None,
            down: None,
            down_hold,
            unreachable: false,
            recovered: false,
        })
    }

    /// "host:port" for logs.
    pub fn name(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
    }

    /// True once after a connection succeeded following a failed attempt:
    /// the smarthost is back, and what was deferred meanwhile can go now
    /// rather than at its (possibly hour-long) backoff.
    pub fn take_recovered(&mut self) -> bool {
        std::mem::take(&mut self.recovered)
    }

    /// Whether the last connection attempt failed.
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }

    /// While the smarthost is unreachable, try to connect (at most once per
    /// hold period): the way an idle relayer notices that it is back, when
    /// everything queued is deferred far into the future.
    pub fn probe(&mut self) {
        if !self.unreachable || self.live.is_some() {
            return;
        }
        if self
            .down
            .as_ref()
            .is_some_and(|(until, _)| Instant::now() < *until)
        {
            return;
        }
        self.down = None;
        // The outcome is kept in `unreachable` / `recovered`.
        let _ = self.open();
    }

    /// Open the connection now if there is none and the smarthost is not
    /// marked down, so that what follows is the transaction itself (the
    /// relay confirms its claim in between). A failure is kept as in
    /// [`Smarthost::deliver`], which then defers the message. True if a
    /// connection attempt was made (time passed).
    pub fn connect_now(&mut self) -> bool {
        if self.live.is_some()
            || self
                .down
                .as_ref()
                .is_some_and(|(until, _)| Instant::now() < *until)
        {
            return false;
        }
        self.down = None;
        let _ = self.open();
        true
    }

    /// Whether a connection is open (and should be closed when idle).
    pub fn is_open(&self) -> bool {
        self.live.is_some()
    }

    /// Close the connection if it has been idle too long.
    pub fn close_if_idle(&mut self) {
        if self
            .live
            .as_ref()
            .is_some_and(|l| l.last_used.elapsed() >= IDLE_CLOSE)
        {
            self.close();
        }
    }

    /// Say QUIT and drop the connection.
    pub fn close(&mut self) {
        if let Some(mut l) = self.live.take() {
            let _ = l.conn.command(Quit);
        }
    }

    /// Deliver one message; an outcome for every recipient.
    pub fn deliver(&mut self, env: &Outgoing<'_>, data: &[u8]) -> Vec<(String, RcptOutcome)> {
        if env.recipients.is_empty() {
            return Vec::new();
        }
        if let Some((until, why)) = &self.down {
            if Instant::now() < *until {
                return whole(env.recipients, &Whole::Temporary(why.clone()));
            }
            self.down = None;
        }
        let reused = self.live.as_ref().is_some_and(|l| !l.fresh);
        let out = match self.transaction(env, data) {
            Ok(v) => v,
            Err((Whole::Temporary(_), Stage::Stale)) if reused => {
                self.live = None;
                self.transaction(env, data)
                    .unwrap_or_else(|(w, _)| whole(env.recipients, &w))
            }
            Err((w, _)) => whole(env.recipients, &w),
        };
        if let Some(l) = self.live.as_mut() {
            l.fresh = false;
        }
        out
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env<'a>(rcpts: &'a [String]) -> Outgoing<'a> {
        Outgoing {
            sender: "web1@node1.example.net",
            recipients: rcpts,
            body_8bit: true,
            dsn_notify: Some("SUCCESS,FAILURE"),
            dsn_ret: Some("HDRS"),
            envid: Some("id 1+2=3"),
        }
    }

    #[test]
    fn deferred_without_connecting_while_marked_down() {
        let cfg = crate::config::Config::parse("", std::path::Path::new("/x.toml"))
            .unwrap()
            .relay;
        let mut h = Smarthost::new(cfg, "node").unwrap();
        h.down = Some((Instant::now() + Duration::from_secs(60), "refused".into()));
        let r = vec!["a@example.org".to_string(), "b@example.org".to_string()];
        let out = h.deliver(&env(&r), b"x\r\n");
        assert_eq!(out.len(), 2);
        assert!(
            out.iter()
                .all(|(_, o)| *o == RcptOutcome::Deferred("refused".into()))
        );
        assert!(!h.is_open());
    }
}
