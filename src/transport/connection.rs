//! Opening the connection to the smarthost: resolving it, TLS (implicit or
//! STARTTLS), AUTH with the credentials file, and keeping track of whether
//! it is reachable.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};

use super::reply::server_text;
use super::{Live, Smarthost, Whole};
use crate::config::TlsMode;

impl Smarthost {
    /// Connect, keeping track of reachability.
    pub(super) fn open(&mut self) -> Result<(), Whole> {
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

/// Read the credentials file: `username password` on its first line (the
/// password is the rest of the line, so it may contain spaces). Refuse a
/// file that group or others could read, so a password never sits in a
/// world-readable file unnoticed (SECURITY.md, "Operating it safely").
pub(super) fn read_credentials(path: &std::path::Path) -> Result<Credentials, String> {
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
}
