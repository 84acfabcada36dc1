//! Exit statuses: the sysexits(3) values `sendmail` and `scriptmail` return.
//!
//! Every error type implements [`Failure`]: it knows its status. Both
//! programs (`sendmail` and `scriptmail`) end through one [`report`], which
//! prints the error as one line and returns that status. `EX_TEMPFAIL` (75) is deliberately absent: PHP ≤ 8.4
//! reads it as failure and PHP 8.5 as success for the same bytes
//! (php-src PR #18764), so a message is either durably queued (0) or refused
//! with a code that means the same thing to every caller.

use std::io::Write;
use std::process::ExitCode;

/// A sysexits(3) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The message is durably committed, or the command did what it said.
    Ok = 0,
    /// Command line usage error; also "no recipients".
    Usage = 64,
    /// Malformed input data.
    DataErr = 65,
    /// A named thing (account, message id) does not exist.
    NoUser = 67,
    /// Service unavailable, or the message is too large.
    Unavailable = 69,
    /// Internal software error.
    Software = 70,
    /// Operating-system error (fork, setuid, ...).
    OsErr = 71,
    /// The queue cannot be created.
    CantCreat = 73,
    /// The queue cannot be read or written.
    IoErr = 74,
    /// Not allowed by policy.
    NoPerm = 77,
    /// Configuration error.
    Config = 78,
}

impl Exit {
    /// The numeric status.
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// An error a program can end with: it knows its sysexits status.
pub trait Failure: std::error::Error {
    /// The status the program exits with.
    fn exit_code(&self) -> Exit;
}

/// Any error that knows its status, boxed: what a program's dispatch
/// returns when its commands fail in different types.
impl<'a, E: Failure + 'a> From<E> for Box<dyn Failure + 'a> {
    fn from(e: E) -> Self {
        Box::new(e)
    }
}

/// End `prog` with `err`: one line `PROG: MESSAGE` on stderr, sanitised
/// (the message may quote the caller's input), nothing on stdout, and the
/// error's status. Not `eprintln!`: it panics when the write fails, and the
/// caller owns stderr (a closed pipe, a full disk, `RLIMIT_FSIZE`) — the
/// status must still be the sysexits code.
pub fn report(prog: &str, err: &dyn Failure) -> ExitCode {
    report_to(&mut std::io::stderr().lock(), prog, err).into()
}

fn report_to(out: &mut dyn Write, prog: &str, err: &dyn Failure) -> Exit {
    let _ = writeln!(out, "{prog}: {}", crate::sanitize::line(&err.to_string()));
    err.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad <{0}>")]
    struct Bad(&'static str);

    impl Failure for Bad {
        fn exit_code(&self) -> Exit {
            Exit::DataErr
        }
    }

    /// A writer like a stderr the caller closed or filled.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_report_is_one_clean_line_and_the_status() {
        let mut out = Vec::new();
        let e = Bad("a\nsendmail: forged\u{202e}line");
        assert_eq!(report_to(&mut out, "sendmail", &e), Exit::DataErr);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(text.starts_with("sendmail: bad <a"), "{text:?}");
        assert!(
            text.ends_with(">\n") && !text.contains('\u{202e}'),
            "{text:?}"
        );
    }

    #[test]
    fn a_failed_write_still_gives_the_status() {
        assert_eq!(
            report_to(&mut Broken, "scriptmail", &Bad("x")),
            Exit::DataErr
        );
    }

    #[test]
    fn sysexits_values() {
        assert_eq!(Exit::Ok.code(), 0);
        assert_eq!(Exit::Usage.code(), 64);
        assert_eq!(Exit::DataErr.code(), 65);
        assert_eq!(Exit::NoUser.code(), 67);
        assert_eq!(Exit::Unavailable.code(), 69);
        assert_eq!(Exit::Software.code(), 70);
        assert_eq!(Exit::OsErr.code(), 71);
        assert_eq!(Exit::CantCreat.code(), 73);
        assert_eq!(Exit::IoErr.code(), 74);
        assert_eq!(Exit::NoPerm.code(), 77);
        assert_eq!(Exit::Config.code(), 78);
    }
}
