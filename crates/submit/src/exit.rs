//! Exit statuses: the sysexits(3) values `sendmail` and `scriptmail` return.
//!
//! Every error type in the crate maps itself to one of these through an
//! `exit_code()` method; the binaries turn that into the process status in
//! exactly one place. `EX_TEMPFAIL` (75) is deliberately absent: PHP ≤ 8.4
//! reads it as failure and PHP 8.5 as success for the same bytes
//! (php-src PR #18764), so a message is either durably queued (0) or refused
//! with a code that means the same thing to every caller.

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

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

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
