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

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Quit, Rcpt, Rset};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, RcptParameter,
};

use crate::config::{RelayConfig, TlsMode};
use crate::exit::{Exit, Failure};
use crate::store::RcptOutcome;

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

    /// One SMTP transaction.
    fn transaction(
        &mut self,
        env: &Outgoing<'_>,
        data: &[u8],
    ) -> Result<Vec<(String, RcptOutcome)>, (Whole, Stage)> {
        if self.live.is_none() {
            self.open().map_err(|w| (w, Stage::Connect))?;
        }
        let wants_dsn = env.dsn_notify.is_some() || env.dsn_ret.is_some() || env.envid.is_some();
        let hello = self.hello.clone();
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("no connection".into()), Stage::Connect));
        };
        if wants_dsn && live.dsn.is_none() {
            // A second EHLO is allowed at any time outside a transaction and
            // only resets the (empty) transaction state (RFC 5321 §4.1.4).
            live.dsn = Some(match live.conn.command(Ehlo::new(hello)) {
                Ok(r) => ehlo_offers_dsn(r.message()),
                Err(_) => false,
            });
        }
        let info = live.conn.server_info();
        let offers = Offers {
            eight_bit: info.supports_feature(Extension::EightBitMime),
            smtputf8: info.supports_feature(Extension::SmtpUtfEight),
            dsn: live.dsn == Some(true),
        };
        let needs_utf8 = !env.sender.is_ascii() || env.recipients.iter().any(|r| !r.is_ascii());
        if needs_utf8 && !offers.smtputf8 {
            // RFC 6531 §3.4: without SMTPUTF8 such an envelope cannot be
            // sent at all; retrying will not change that.
            return Err((
                Whole::Permanent(
                    "non-ASCII address but the smarthost does not offer SMTPUTF8".into(),
                ),
                Stage::Later,
            ));
        }

        let mail = match mail_command(env, offers, needs_utf8) {
            Ok(m) => m,
            Err(text) => return Err((Whole::Permanent(text), Stage::Later)),
        };
        if let Err(e) = live.conn.command(mail) {
            let stage = if is_connection_failure(&e) || is_closing(&e) {
                Stage::Stale
            } else {
                Stage::Later
            };
            return Err((self.fail(e), stage));
        }

        // RCPT TO, one by one: a 5xx for one recipient does not lose the others.
        let mut results: Vec<(String, RcptOutcome)> = Vec::with_capacity(env.recipients.len());
        let mut accepted = Vec::new();
        for rcpt in env.recipients {
            let Ok(addr) = rcpt.parse::<Address>() else {
                results.push((
                    rcpt.clone(),
                    RcptOutcome::Failed(format!(
                        "recipient <{}> is not a valid address",
                        crate::sanitize::line(rcpt)
                    )),
                ));
                continue;
            };
            let Some(live) = self.live.as_mut() else {
                return Err((Whole::Temporary("connection lost".into()), Stage::Later));
            };
            match live.conn.command(rcpt_command(addr, env, offers)) {
                Ok(_) => accepted.push(rcpt.clone()),
                Err(e) if is_closing(&e) => return Err((self.fail(e), Stage::Later)),
                // RFC 5321 §4.5.3.1.10: 552 to RCPT means "too many
                // recipients" and the client should treat it as temporary.
                Err(e) if e.status().is_some_and(|c| c.to_string() == "552") => {
                    results.push((rcpt.clone(), RcptOutcome::Deferred(server_text(&e))))
                }
                Err(e) if e.is_permanent() => {
                    results.push((rcpt.clone(), RcptOutcome::Failed(server_text(&e))))
                }
                Err(e) if e.is_transient() => {
                    results.push((rcpt.clone(), RcptOutcome::Deferred(server_text(&e))))
                }
                Err(e) => return Err((self.fail(e), Stage::Later)),
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("connection lost".into()), Stage::Later));
        };
        if accepted.is_empty() {
            // End the transaction the server still holds (RFC 5321 §4.1.1.5).
            self.reset();
            return Ok(results);
        }

        // DATA (RFC 5321 §4.1.1.4). A refusal of DATA itself leaves the
        // transaction open on the server: reset it before the next MAIL.
        if let Err(e) = live.conn.command(Data) {
            let o = outcome_of(&e);
            if is_connection_failure(&e) || is_closing(&e) {
                self.live = None;
            } else {
                self.reset();
            }
            results.extend(accepted.into_iter().map(|r| (r, o.clone())));
            return Ok(results);
        }
        // lettre dot-stuffs and appends CRLF.CRLF, whose leading CRLF ends
        // our last line.
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("connection lost".into()), Stage::Later));
        };
        match live
            .conn
            .message(data.strip_suffix(b"\r\n").unwrap_or(data))
        {
            Ok(_) => {
                live.last_used = Instant::now();
                results.extend(accepted.into_iter().map(|r| (r, RcptOutcome::Sent)));
            }
            Err(e) => {
                // After the final dot the transaction is over either way
                // (§4.1.1.4); only a lost connection needs a new one.
                if is_connection_failure(&e) || is_closing(&e) {
                    self.live = None;
                } else {
                    live.last_used = Instant::now();
                }
                let o = outcome_of(&e);
                results.extend(accepted.into_iter().map(|r| (r, o.clone())));
            }
        }
        Ok(results)
    }

    /// Connect, keeping track of reachability.
    fn open(&mut self) -> Result<(), Whole> {
        match self.connect() {
            Ok(l) => {
                self.live = Some(l);
                self.recovered |= std::mem::take(&mut self.unreachable);
                Ok(())
            }
            Err(w) => {
                if let Whole::Temporary(why) = &w {
                    self.down = Some((Instant::now() + self.down_hold, why.clone()));
                }
                self.unreachable = true;
                Err(w)
            }
        }
    }

    /// RSET, dropping the connection if that fails.
    fn reset(&mut self) {
        if let Some(l) = self.live.as_mut() {
            match l.conn.command(Rset) {
                Ok(_) => l.last_used = Instant::now(),
                Err(_) => self.live = None,
            }
        }
    }

    /// Classify a whole-message failure and leave the session clean.
    fn fail(&mut self, e: lettre::transport::smtp::Error) -> Whole {
        if is_connection_failure(&e) || is_closing(&e) {
            self.live = None;
        } else {
            self.reset();
        }
        if e.is_permanent() {
            Whole::Permanent(server_text(&e))
        } else {
            Whole::Temporary(server_text(&e))
        }
    }

    fn connect(&mut self) -> Result<Live, Whole> {
        let cfg = &self.cfg;
        let addr: SocketAddr = (cfg.host.as_str(), cfg.port)
            .to_socket_addrs()
            .map_err(|e| Whole::Temporary(format!("cannot resolve {}: {e}", cfg.host)))?
            .next()
            .ok_or_else(|| Whole::Temporary(format!("{} has no address", cfg.host)))?;
        let tls = match cfg.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => Some(
                TlsParameters::builder(cfg.host.clone())
                    .dangerous_accept_invalid_certs(!cfg.verify_certificate)
                    .dangerous_accept_invalid_hostnames(!cfg.verify_certificate)
                    .build_rustls()
                    .map_err(|e| Whole::Temporary(format!("TLS setup: {e}")))?,
            ),
        };
        let implicit = if cfg.tls == TlsMode::Tls {
            tls.as_ref()
        } else {
            None
        };
        let mut conn =
            SmtpConnection::connect(addr, Some(cfg.connect_timeout), &self.hello, implicit, None)
                .map_err(|e| Whole::Temporary(format!("connect to {addr}: {}", server_text(&e))))?;
        // lettre writes the end-of-data marker as its own small segment;
        // without TCP_NODELAY it waits for the server's delayed ACK.
        crate::os::set_nodelay_towards(&addr);
        conn.set_timeout(Some(cfg.command_timeout))
            .map_err(|e| Whole::Temporary(format!("socket: {e}")))?;
        if cfg.tls == TlsMode::Starttls
            && let Some(p) = &tls
        {
            // RFC 3207 §4: a client configured for TLS must not fall back to
            // plain text when STARTTLS is not offered or fails.
            conn.starttls(p, &self.hello)
                .map_err(|e| Whole::Temporary(format!("STARTTLS: {}", server_text(&e))))?;
        }
        if let Some(c) = &self.credentials {
            // A wrong password is the admin's mistake, not the sender's:
            // defer (and log) rather than bounce every message.
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .map_err(|e| Whole::Temporary(format!("AUTH: {}", server_text(&e))))?;
        }
        Ok(Live {
            conn,
            last_used: Instant::now(),
            fresh: true,
            dsn: None,
        })
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        self.close();
    }
}

/// The MAIL FROM command (RFC 5321 §4.1.1.2) with BODY= (RFC 6152),
/// SMTPUTF8 (RFC 6531) and DSN RET=/ENVID= (RFC 3461 §4.3, §4.4) when offered.
fn mail_command(env: &Outgoing<'_>, offers: Offers, utf8: bool) -> Result<Mail, String> {
    let sender = if env.sender.is_empty() {
        None
    } else {
        Some(env.sender.parse::<Address>().map_err(|e| {
            format!(
                "sender <{}> not usable: {e}",
                crate::sanitize::line(env.sender)
            )
        })?)
    };
    let mut params = Vec::new();
    if env.body_8bit && offers.eight_bit {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if utf8 && offers.smtputf8 {
        params.push(MailParameter::SmtpUtfEight);
    }
    if offers.dsn {
        if let Some(ret) = env.dsn_ret {
            params.push(MailParameter::Other {
                keyword: "RET".into(),
                value: Some(ret.into()),
            });
        }
        if let Some(id) = env.envid {
            // lettre xtext-encodes the value (RFC 3461 §4).
            params.push(MailParameter::Other {
                keyword: "ENVID".into(),
                value: Some(id.into()),
            });
        }
    }
    Ok(Mail::new(sender, params))
}

/// RCPT TO with NOTIFY= (RFC 3461 §4.1) when DSN is offered.
fn rcpt_command(addr: Address, env: &Outgoing<'_>, offers: Offers) -> Rcpt {
    let mut params = Vec::new();
    if let (true, Some(n)) = (offers.dsn, env.dsn_notify) {
        params.push(RcptParameter::Other {
            keyword: "NOTIFY".into(),
            value: Some(n.into()),
        });
    }
    Rcpt::new(addr, params)
}

/// Whether an EHLO reply's lines (after the greeting) include the DSN keyword.
fn ehlo_offers_dsn<'a>(lines: impl Iterator<Item = &'a str>) -> bool {
    lines.skip(1).any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("DSN"))
    })
}

/// Neither a 4xx nor a 5xx: the connection broke (I/O error, timeout,
/// EOF, garbage, TLS) and cannot be used any more.
fn is_connection_failure(e: &lettre::transport::smtp::Error) -> bool {
    !e.is_permanent() && !e.is_transient()
}

/// 421: the server is closing the channel (RFC 5321 §3.8).
fn is_closing(e: &lettre::transport::smtp::Error) -> bool {
    e.status().is_some_and(|c| c.to_string() == "421")
}

fn outcome_of(e: &lettre::transport::smtp::Error) -> RcptOutcome {
    if e.is_permanent() {
        RcptOutcome::Failed(server_text(e))
    } else {
        RcptOutcome::Deferred(server_text(e))
    }
}

fn whole(recipients: &[String], w: &Whole) -> Vec<(String, RcptOutcome)> {
    recipients
        .iter()
        .map(|r| {
            let o = match w {
                Whole::Permanent(t) => RcptOutcome::Failed(t.clone()),
                Whole::Temporary(t) => RcptOutcome::Deferred(t.clone()),
            };
            (r.clone(), o)
        })
        .collect()
}

/// The server's answer as "550 5.1.1 text", or the error for non-SMTP failures.
fn server_text(e: &lettre::transport::smtp::Error) -> String {
    let source = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let text = match e.status() {
        Some(code) => format!("{code} {source}"),
        None => format!("{e}"),
    };
    crate::sanitize::line(text.trim()).into_owned()
}

/// Read the credentials file: `username password` on its first line (the
/// password is the rest of the line, so it may contain spaces). Refuse a
/// file that group or others could read, so a password never sits in a
/// world-readable file unnoticed (SECURITY.md, "Operating it safely").
fn read_credentials(path: &std::path::Path) -> Result<Credentials, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets others read it; it must be 0600 or 0400"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_credentials(&text).ok_or_else(|| "expected `username password` on the first line".into())
}

fn parse_credentials(text: &str) -> Option<Credentials> {
    let line = text.lines().next()?.trim();
    let (user, pass) = line.split_once(char::is_whitespace)?;
    let pass = pass.trim();
    if user.is_empty() || pass.is_empty() {
        return None;
    }
    Some(Credentials::new(user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env<'a>(rcpts: &'a [String]) -> Outgoing<'a> {
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
    fn mail_passes_body_and_dsn_only_when_offered() {
        let r = vec!["a@example.org".to_string()];
        let e = env(&r);
        let none = mail_command(&e, Offers::default(), false).unwrap();
        assert_eq!(none.to_string(), "MAIL FROM:<web1@node1.example.net>\r\n");
        let all = Offers {
            eight_bit: true,
            dsn: true,
            smtputf8: true,
        };
        // ENVID is stored decoded; on the wire it is xtext (RFC 3461 §4).
        assert_eq!(
            mail_command(&e, all, false).unwrap().to_string(),
            "MAIL FROM:<web1@node1.example.net> BODY=8BITMIME RET=HDRS ENVID=id+201+2B2+3D3\r\n"
        );
        let rcpt = rcpt_command("a@example.org".parse().unwrap(), &e, all);
        assert_eq!(
            rcpt.to_string(),
            "RCPT TO:<a@example.org> NOTIFY=SUCCESS,FAILURE\r\n"
        );
        let rcpt = rcpt_command("a@example.org".parse().unwrap(), &e, Offers::default());
        assert_eq!(rcpt.to_string(), "RCPT TO:<a@example.org>\r\n");
    }

    #[test]
    fn null_sender_and_7bit() {
        let r = vec!["a@example.org".to_string()];
        let mut e = env(&r);
        e.sender = "";
        e.body_8bit = false;
        let offers = Offers {
            eight_bit: true,
            dsn: false,
            smtputf8: false,
        };
        assert_eq!(
            mail_command(&e, offers, false).unwrap().to_string(),
            "MAIL FROM:<>\r\n"
        );
    }

    #[test]
    fn bad_sender_is_a_permanent_failure_text() {
        let r = vec!["a@example.org".to_string()];
        let mut e = env(&r);
        e.sender = "no at sign";
        let err = mail_command(&e, Offers::default(), false).unwrap_err();
        assert!(err.contains("not usable"), "{err}");
    }

    #[test]
    fn dsn_keyword_found_case_insensitively_after_greeting() {
        let lines = ["mx.example.org Hello", "PIPELINING", "dsn", "8BITMIME"];
        assert!(ehlo_offers_dsn(lines.into_iter()));
        let lines = ["DSN.example.org greets you", "PIPELINING", "DSNX"];
        assert!(!ehlo_offers_dsn(lines.into_iter()));
    }

    #[test]
    fn credentials_file_format() {
        let c = parse_credentials("relayuser  secret with spaces \nignored\n").unwrap();
        let want = Credentials::new("relayuser".into(), "secret with spaces".into());
        assert!(c == want);
        assert!(parse_credentials("onlyuser\n").is_none());
        assert!(parse_credentials("").is_none());
    }

    #[test]
    fn credentials_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("auth");
        std::fs::write(&p, "u p\n").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_credentials(&p).is_ok(), ok, "mode {mode:o}");
        }
        let err = read_credentials(&dir.path().join("missing")).unwrap_err();
        assert!(!err.is_empty());
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
