//! Who may run the admin side, and as whom it touches the queue.
//!
//! `mailq-ctl`, `relayd` and `bounce` run as root or as the service user —
//! the owner of the queue directory. Run as root, they first become that
//! owner: SQLite's `-wal`/`-shm` files created by root would lock every later
//! `sendmail` (running as the service user) out of the queue (SECURITY.md).
//!
//! ## Root never leaves a queue file the service user cannot write (issue 11)
//! - **A missing queue directory is refused, not created, by root.** Root
//!   cannot know which user the set-uid `sendmail` runs as (the package
//!   names it `scriptmail`, a site may differ), and a directory root made
//!   would be root's: every later `sendmail` would fail with 73. The error
//!   says how to create it for the service user (the package's postinst
//!   does). A non-root caller still creates it: it will own it, and it is
//!   the only user that can use it.
//! - **Files in the directory must be its owner's.** A queue file owned by
//!   someone else (a `queue.db` an older build created as root) is named
//!   with the `chown` that repairs it, instead of failing later with a
//!   "readonly database" from deep inside SQLite.
//!
//! Everything else is created after the switch, as the owner.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::os;

/// The files scriptmail keeps in the queue directory.
const QUEUE_FILES: &[&str] = &[
    "queue.db",
    "queue.db-wal",
    "queue.db-shm",
    "queue.db-journal",
    "relayd.lock",
    "relayd.pid",
    "relayd.sock",
    "maildrop",
    "slots",
];

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("permission denied: only root and {owner} (the owner of {dir}) may do this")]
    NotAllowed { owner: String, dir: String },
    #[error(
        "queue directory {dir} does not exist; root does not create it (the service user could not write it): create it for the service user, e.g. `install -d -o scriptmail -g scriptmail -m 0700 {dir}` (the package does)"
    )]
    NoDir { dir: String },
    #[error(
        "{path} is owned by {found}, not by {owner} (the owner of the queue), who could not write it: `chown {owner}: {path}`"
    )]
    Foreign {
        path: String,
        found: String,
        owner: String,
    },
    #[error("queue directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("cannot switch to the service user: {0}")]
    Switch(std::io::Error),
}

impl Failure for PrivilegeError {
    fn exit_code(&self) -> Exit {
        match self {
            PrivilegeError::NotAllowed { .. } => Exit::NoPerm,
            PrivilegeError::NoDir { .. }
            | PrivilegeError::Foreign { .. }
            | PrivilegeError::Dir { .. } => Exit::CantCreat,
            PrivilegeError::Switch(_) => Exit::OsErr,
        }
    }
}

/// A uid as people read it: the login name, or `uid N`.
fn user_name(uid: u32) -> String {
    os::user_by_uid(uid).map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// Make sure we run as the queue's owner: switch from root, refuse others.
/// A missing queue directory is refused when run as root and created (mode
/// 0700) by anyone else, who then owns it (see the module doc).
pub fn become_queue_owner(cfg: &Config) -> Result<(), PrivilegeError> {
    let dir = &cfg.queue_dir;
    let me = os::effective_uid();
    let dir_err = |source| PrivilegeError::Dir {
        dir: dir.display().to_string(),
        source,
    };
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && me == 0 => {
            return Err(PrivilegeError::NoDir {
                dir: dir.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode_0700()
                .create(dir)
                .map_err(dir_err)?;
            std::fs::metadata(dir).map_err(dir_err)?
        }
        Err(source) => return Err(dir_err(source)),
    };
    let owner = meta.uid();
    if me != owner && me != 0 {
        return Err(PrivilegeError::NotAllowed {
            owner: user_name(owner),
            dir: dir.display().to_string(),
        });
    }
    check_files(dir, owner)?;
    if me == owner {
        return Ok(());
    }
    let user = os::User {
        name: String::new(),
        uid: owner,
        gid: meta.gid(),
    };
    os::become_user(&user).map_err(PrivilegeError::Switch)
}

/// Every queue file that exists must belong to the directory's owner.
fn check_files(dir: &Path, owner: u32) -> Result<(), PrivilegeError> {
    for name in QUEUE_FILES {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.uid() != owner => {
                return Err(PrivilegeError::Foreign {
                    path: path.display().to_string(),
                    found: user_name(m.uid()),
                    owner: user_name(owner),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(PrivilegeError::Dir {
                    dir: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(())
}

trait Mode0700 {
    fn mode_0700(&mut self) -> &mut Self;
}

impl Mode0700 for std::fs::DirBuilder {
    fn mode_0700(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt;
        self.mode(0o700)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_queue_files_are_named_with_the_repair() {
        let dir = tempfile::tempdir().unwrap();
        let me = os::effective_uid();
        assert!(check_files(dir.path(), me).is_ok(), "nothing there yet");
        std::fs::write(dir.path().join("queue.db-shm"), b"").unwrap();
        assert!(check_files(dir.path(), me).is_ok());
        // As if the directory belonged to another user.
        let other = me.wrapping_add(4242);
        let e = check_files(dir.path(), other).unwrap_err();
        assert_eq!(e.exit_code(), Exit::CantCreat);
        let text = e.to_string();
        assert!(
            text.contains("queue.db-shm") && text.contains("chown"),
            "{text}"
        );
    }
}
