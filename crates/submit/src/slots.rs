//! A cap on one account's `sendmail` processes that are submitting at once
//! (`submit.max_per_account`; SECURITY.md, "A caller that never finishes its
//! input").
//!
//! After its switch to the service user, a submitting `sendmail` takes one
//! of the account's slots: byte N of `QUEUE_DIR/slots/ACCOUNT`, locked with
//! an open-file-description lock (`os::try_lock_byte`), held until the
//! process exits — whatever way it exits, the kernel releases it. No free
//! slot: exit 69 at once, before stdin is read. The directory is the service
//! user's (mode 0700), so a tenant can neither take its own slots nor
//! anybody else's. Cost on the normal path: one open and one fcntl.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::exit::{Exit, Failure};

/// Why no slot was taken.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error(
        "account {account} has {max} submissions running already (submit.max_per_account); try again later"
    )]
    Full { account: String, max: usize },
    #[error("submission slots {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl Failure for SlotError {
    fn exit_code(&self) -> Exit {
        match self {
            SlotError::Full { .. } => Exit::Unavailable,
            SlotError::Io { .. } => Exit::CantCreat,
        }
    }
}

/// A slot held: dropping it (or exiting) frees it.
#[derive(Debug)]
pub struct Slot {
    _file: File,
}

/// The slot file of an account: the name as it is when it is made of
/// letters, digits, `-`, `_` and inner dots, else `%XX`-escaped (a mapped
/// account name may hold `/`).
fn file_name(account: &str) -> String {
    let mut out = String::with_capacity(account.len());
    for (i, b) in account.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Take one of `account`'s `max` slots, starting at a random one so
/// concurrent takers rarely meet.
pub fn take(queue_dir: &Path, account: &str, max: usize) -> Result<Slot, SlotError> {
    let dir = queue_dir.join("slots");
    let path = dir.join(file_name(account));
    let io_err = |p: &PathBuf, source| SlotError::Io {
        path: p.display().to_string(),
        source,
    };
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
    };
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&dir, e)),
            }
            open().map_err(|e| io_err(&path, e))?
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let max = max.max(1) as u64;
    let start = crate::os::random_u64() % max;
    for i in 0..max {
        if crate::os::try_lock_byte(&file, (start + i) % max).map_err(|e| io_err(&path, e))? {
            return Ok(Slot { _file: file });
        }
    }
    Err(SlotError::Full {
        account: crate::sanitize::line(account).into_owned(),
        max: max as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_max_slots_and_a_freed_one_comes_back() {
        let q = tempfile::tempdir().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| take(q.path(), "web1", 3).unwrap()).collect();
        let e = take(q.path(), "web1", 3).unwrap_err();
        assert_eq!(e.exit_code(), Exit::Unavailable);
        assert!(e.to_string().contains("submit.max_per_account"), "{e}");
        // Another account is not affected.
        let other = take(q.path(), "web2", 3).unwrap();
        drop(held);
        let _again = take(q.path(), "web1", 3).unwrap();
        drop(other);
    }

    #[test]
    fn account_names_stay_inside_the_directory() {
        assert_eq!(file_name("web1.example_x-y"), "web1.example_x-y");
        assert_eq!(file_name("../x/y"), "%2E.%2Fx%2Fy");
        assert_eq!(file_name(".hidden"), "%2Ehidden");
    }
}
