//! The SMTP client towards the smarthost, on lettre's `SmtpConnection`.
//!
//! lettre's high-level `SmtpTransport::send_raw` gives up on the first
//! rejected RCPT; a sendmail must not lose the other recipients, so this
//! drives the transaction command by command (RFC 5321 §3.3) and returns an
//! outcome per recipient. One connection is kept open and reused across
//! messages, and closed after a few idle seconds as Postfix does.
//!
//! Classification (RFC 5321 §4.2.1): 5xx replies fail (permanently), 4xx
//! replies defer; network, TLS and protocol errors are neither and also defer
//! — a flaky network must never turn into a bounce.

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
use crate::store::RcptOutcome;

/// Connections idle longer than this are closed rather than reused.
const IDLE_CLOSE: Duration = Duration::from_secs(5);

/// The envelope of one outgoing message.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub body_8bit: bool,
    /// DSN parameters (RFC 3461), passed on when the smarthost offers DSN.
    pub dsn_notify: Option<&'a str>,
    pub dsn_ret: Option<&'a str>,
    pub envid: Option<&'a str>,
}

struct Live {
    conn: SmtpConnection,
    last_used: Instant,
    /// Whether the server advertised DSN; learnt on first need.
    dsn: Option<bool>,
}

/// A (re)connecting client to the configured smarthost.
pub struct Smarthost {
    cfg: RelayConfig,
    hello: ClientId,
    credentials: Option<Credentials>,
    live: Option<Live>,
}

/// A failure that applies to the whole message.
enum Whole {
    /// 5xx: every still-open recipient fails with this text.
    Permanent(String),
    /// 4xx, network, TLS: every still-open recipient is deferred.
    Temporary(String),
}

impl Smarthost {
    pub fn new(cfg: RelayConfig, hello_name: &str) -> Result<Smarthost, String> {
        let credentials = match &cfg.auth_file {
            None => None,
            Some(path) => Some(read_credentials(path)?),
        };
        Ok(Smarthost {
            cfg,
            hello: ClientId::Domain(hello_name.to_string()),
            credentials,
            live: None,
        })
    }

    /// "host:port" for logs.
    pub fn name(&self) -> String {
        format!("{}:{}", self.cfg.host, self.cfg.port)
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
        let reused = self.live.is_some();
        match self.transaction(env, data) {
            Ok(v) => v,
            // A cached connection the server closed meanwhile: one fresh try.
            Err((Whole::Temporary(_), false)) if reused => {
                self.live = None;
                self.transaction(env, data)
                    .unwrap_or_else(|(w, _)| whole(env.recipients, &w))
            }
            Err((w, _)) => whole(env.recipients, &w),
        }
    }

    /// One SMTP transaction. On a whole-message failure, the bool says
    /// whether any command of this message was answered (then a retry on a
    /// new connection would not be safe to assume harmless).
    fn transaction(
        &mut self,
        env: &Outgoing<'_>,
        data: &[u8],
    ) -> Result<Vec<(String, RcptOutcome)>, (Whole, bool)> {
        if self.live.is_none() {
            self.live = Some(self.connect().map_err(|w| (w, true))?);
        }
        let wants_dsn = env.dsn_notify.is_some() || env.dsn_ret.is_some() || env.envid.is_some();
        let hello = self.hello.clone();
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("no connection".into()), true));
        };
        if wants_dsn && live.dsn.is_none() {
            // lettre does not record DSN among the EHLO keywords; ask again
            // (a second EHLO is allowed and resets nothing we hold).
            live.dsn = Some(match live.conn.command(Ehlo::new(hello)) {
                Ok(r) => r
                    .message()
                    .any(|l| l.split_whitespace().next() == Some("DSN")),
                Err(_) => false,
            });
        }
        let dsn = wants_dsn && live.dsn == Some(true);
        let conn = &mut live.conn;

        // MAIL FROM (RFC 5321 §4.1.1.2), with BODY= (RFC 6152) and DSN
        // RET=/ENVID= (RFC 3461 §4.3, §4.4) when offered.
        let sender = if env.sender.is_empty() {
            None
        } else {
            match env.sender.parse::<Address>() {
                Ok(a) => Some(a),
                Err(e) => {
                    return Err((
                        Whole::Permanent(format!("sender <{}> not usable: {e}", env.sender)),
                        false,
                    ));
                }
            }
        };
        let mut params = Vec::new();
        if env.body_8bit && conn.server_info().supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if dsn {
            if let Some(ret) = env.dsn_ret {
                params.push(MailParameter::Other {
                    keyword: "RET".into(),
                    value: Some(ret.into()),
                });
            }
            if let Some(id) = env.envid {
                params.push(MailParameter::Other {
                    keyword: "ENVID".into(),
                    value: Some(id.into()),
                });
            }
        }
        let first_answer = conn.command(Mail::new(sender, params));
        let first_answered =
            !matches!(&first_answer, Err(e) if !e.is_permanent() && !e.is_transient());
        if let Err(e) = first_answer {
            return Err((self.fail(e), first_answered));
        }

        // RCPT TO, one by one: a 5xx for one recipient does not lose the others.
        let mut results: Vec<(String, RcptOutcome)> = Vec::with_capacity(env.recipients.len());
        let mut accepted = Vec::new();
        for rcpt in env.recipients {
            let Ok(addr) = rcpt.parse::<Address>() else {
                results.push((
                    rcpt.clone(),
                    RcptOutcome::Failed(format!("recipient <{rcpt}> is not a valid address")),
                ));
                continue;
            };
            let mut rparams = Vec::new();
            if let (true, Some(n)) = (dsn, env.dsn_notify) {
                rparams.push(RcptParameter::Other {
                    keyword: "NOTIFY".into(),
                    value: Some(n.into()),
                });
            }
            let Some(live) = self.live.as_mut() else {
                return Err((Whole::Temporary("connection lost".into()), true));
            };
            match live.conn.command(Rcpt::new(addr, rparams)) {
                Ok(_) => accepted.push(rcpt.clone()),
                Err(e) if e.is_permanent() => {
                    results.push((rcpt.clone(), RcptOutcome::Failed(server_text(&e))))
                }
                Err(e) if e.is_transient() => {
                    results.push((rcpt.clone(), RcptOutcome::Deferred(server_text(&e))))
                }
                Err(e) => return Err((self.fail(e), true)),
            }
        }
        let Some(live) = self.live.as_mut() else {
            return Err((Whole::Temporary("connection lost".into()), true));
        };
        if accepted.is_empty() {
            if live.conn.command(Rset).is_err() {
                self.live = None;
            }
            return Ok(results);
        }

        // DATA (RFC 5321 §4.1.1.4): lettre dot-stuffs and appends CRLF.CRLF,
        // whose leading CRLF ends our last line.
        let outcome = live.conn.command(Data).and_then(|_| {
            live.conn
                .message(data.strip_suffix(b"\r\n").unwrap_or(data))
        });
        match outcome {
            Ok(_) => {
                live.last_used = Instant::now();
                results.extend(accepted.into_iter().map(|r| (r, RcptOutcome::Sent)));
            }
            Err(e) => {
                let o = match &e {
                    e if e.is_permanent() => RcptOutcome::Failed(server_text(e)),
                    e => RcptOutcome::Deferred(server_text(e)),
                };
                if !e.is_permanent() && !e.is_transient() {
                    // Dropped mid-DATA: the connection is unusable.
                    self.live = None;
                }
                results.extend(accepted.into_iter().map(|r| (r, o.clone())));
            }
        }
        Ok(results)
    }

    fn fail(&mut self, e: lettre::transport::smtp::Error) -> Whole {
        if e.is_permanent() {
            if let Some(l) = self.live.as_mut() {
                if l.conn.command(Rset).is_err() {
                    self.live = None;
                }
            }
            Whole::Permanent(server_text(&e))
        } else {
            if !e.is_transient() {
                self.live = None;
            } else if let Some(l) = self.live.as_mut() {
                if l.conn.command(Rset).is_err() {
                    self.live = None;
                }
            }
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
        crate::os::set_nodelay_towards(&addr);
        conn.set_timeout(Some(cfg.command_timeout))
            .map_err(|e| Whole::Temporary(format!("socket: {e}")))?;
        if cfg.tls == TlsMode::Starttls {
            if let Some(p) = &tls {
                conn.starttls(p, &self.hello)
                    .map_err(|e| Whole::Temporary(format!("STARTTLS: {}", server_text(&e))))?;
            }
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .map_err(|e| Whole::Temporary(format!("AUTH: {}", server_text(&e))))?;
        }
        Ok(Live {
            conn,
            last_used: Instant::now(),
            dsn: None,
        })
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        self.close();
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
        None if source.is_empty() => e.to_string(),
        None => format!("{e}"),
    };
    crate::log::clean(text.trim()).into_owned()
}

/// Read `username password` (first line, whitespace separated) from the
/// credentials file, refusing a file others can read.
fn read_credentials(path: &std::path::Path) -> Result<Credentials, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{}: must not be readable by group or others (chmod 600)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(u), Some(p)) => Ok(Credentials::new(u.to_string(), p.to_string())),
        _ => Err(format!("{}: expected `username password`", path.display())),
    }
}
