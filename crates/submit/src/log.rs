//! Logging: one `key=value` line per event to syslog, facility `mail`.
//!
//! A small RFC 3164 client over the local datagram socket instead of a
//! logging framework: the privileged `sendmail` must stay small, and the
//! socket path must be configurable so tests can read what was logged. The
//! socket is non-blocking: a stalled syslog daemon must never stall a
//! submission, nor may logging ever fail one (docs/design.md, "Logging").
//! Without a socket, daemons log to stderr and `sendmail` stays silent.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::OnceLock;

use crate::sanitize;

/// LOG_MAIL (2) << 3.
const FACILITY_MAIL: u8 = 2 << 3;

/// Severity of a line.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Info = 6,
}

struct Logger {
    socket: Option<UnixDatagram>,
    ident: &'static str,
    stderr_fallback: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set up logging once per process. `stderr_fallback`: write to stderr when
/// there is no syslog socket (daemons and admin commands; not `sendmail`).
pub fn init(socket: &Path, ident: &'static str, stderr_fallback: bool) {
    let socket = UnixDatagram::unbound().ok().and_then(|s| {
        s.connect(socket).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    });
    let _ = LOGGER.set(Logger {
        socket,
        ident,
        stderr_fallback,
    });
}

/// Log one line. Untrusted parts must already be passed through
/// [`sanitize::line`] or [`quote`]; the whole line goes through the
/// sanitiser again here, so one event stays one line whatever a caller
/// forgot.
pub fn log(level: Level, line: &str) {
    let Some(l) = LOGGER.get() else { return };
    let line = sanitize::line(line);
    if let Some(s) = &l.socket {
        let msg = format!(
            "<{}>{}[{}]: {}",
            FACILITY_MAIL | level as u8,
            l.ident,
            std::process::id(),
            line
        );
        match s.send(msg.as_bytes()) {
            Ok(_) => return,
            // The syslog daemon is behind: drop the line rather than wait
            // (or flood stderr, which may be a pipe nobody reads).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {}
        }
    }
    if l.stderr_fallback {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "{}: {}", l.ident, line);
    }
}

/// Quote a value for a `key="value"` field: sanitised, with `"` and `\`
/// escaped.
pub fn quote(s: &str) -> String {
    let c = sanitize::line(s);
    let mut out = String::with_capacity(c.len() + 2);
    out.push('"');
    for ch in c.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_sanitises_and_escapes() {
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"?\"");
        assert_eq!(quote("a\\b\u{202e}c"), "\"a\\\\b?c\"");
    }
}
