//! Who may run the admin side, and as whom it touches the queue.
//!
//! `mailq-ctl`, `relayd` and `bounce` run as root or as the service user —
//! the owner of the queue directory. Run as root, they first become that
//! owner: SQLite's `-wal`/`-shm` files created by root would lock every later
//! `sendmail` (running as the service user) out of the queue (SPEC §7).

use std::os::unix::fs::MetadataExt;

use crate::config::Config;
use crate::exit::Exit;
use crate::os;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("permission denied: only root and {owner} (the owner of {dir}) may do this")]
    NotAllowed { owner: String, dir: String },
    #[error("queue directory {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("cannot switch to the service user: {0}")]
    Switch(std::io::Error),
}

impl PrivilegeError {
    pub fn exit_code(&self) -> Exit {
        match self {
            PrivilegeError::NotAllowed { .. } => Exit::NoPerm,
            PrivilegeError::Dir { .. } => Exit::CantCreat,
            PrivilegeError::Switch(_) => Exit::OsErr,
        }
    }
}

/// Make sure we run as the queue's owner: switch from root, refuse others.
/// A missing queue directory is created (mode 0700) when run as root or as
/// an unprivileged test user who would own it anyway.
pub fn become_queue_owner(cfg: &Config) -> Result<(), PrivilegeError> {
    let dir = &cfg.queue_dir;
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode_0700()
                .create(dir)
                .map_err(|source| PrivilegeError::Dir {
                    dir: dir.display().to_string(),
                    source,
                })?;
            std::fs::metadata(dir).map_err(|source| PrivilegeError::Dir {
                dir: dir.display().to_string(),
                source,
            })?
        }
        Err(source) => {
            return Err(PrivilegeError::Dir {
                dir: dir.display().to_string(),
                source,
            });
        }
    };
    let me = os::effective_uid();
    let owner = meta.uid();
    if me == owner {
        return Ok(());
    }
    if me == 0 {
        let user = os::User {
            name: String::new(),
            uid: owner,
            gid: meta.gid(),
        };
        return os::become_user(&user).map_err(PrivilegeError::Switch);
    }
    Err(PrivilegeError::NotAllowed {
        owner: os::user_by_uid(owner)
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {owner}")),
        dir: dir.display().to_string(),
    })
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
