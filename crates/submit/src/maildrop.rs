//! The maildrop: where `sendmail` leaves a message when relayd cannot take
//! it (no socket, turned away, connection lost, no answer in time). One file
//! per message, `QUEUE_DIR/maildrop/QID`, holding a `MAILDROP` frame (the
//! hand-off frame plus the caller's uid and the time), written as Postfix's
//! postdrop does: a private temporary file, fsync, rename, fsync of the
//! directory — so exit 0 still means the message survives a power cut.
//! relayd, the one-shot delivery and the sweep import the files into the
//! queue (`submission::import`), unlinking each only after its commit.
//!
//! The directory belongs to the service user (mode 0700, inside the queue
//! directory): only `sendmail` after its uid switch and the queue's own
//! programs write it, so the uid in a file is trusted (docs/submission.md).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::exit::{Exit, Failure};
use crate::handoff::{Origin, Parcel};

/// Why a message could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum MaildropError {
    #[error("cannot create {path}: {source}")]
    Create { path: String, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
    #[error(
        "queue database has schema version {found}, newer than this scriptmail supports ({supported}); upgrade scriptmail"
    )]
    TooNew { found: i64, supported: i64 },
}

impl Failure for MaildropError {
    fn exit_code(&self) -> Exit {
        match self {
            MaildropError::Create { .. } => Exit::CantCreat,
            MaildropError::Write { .. } => Exit::IoErr,
            MaildropError::TooNew { .. } => Exit::Config,
        }
    }
}

/// The maildrop directory of a queue directory.
pub fn dir(queue_dir: &Path) -> PathBuf {
    queue_dir.join("maildrop")
}

/// Create the maildrop directory (mode 0700) unless it exists.
pub fn ensure_dir(queue_dir: &Path) -> io::Result<PathBuf> {
    let d = dir(queue_dir);
    match fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => Ok(d),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(d),
        Err(e) => Err(e),
    }
}

/// Durably write `parcel` as `maildrop/QID`.
pub fn write(queue_dir: &Path, origin: Origin, parcel: &Parcel) -> Result<(), MaildropError> {
    let create = |path: &Path, source| MaildropError::Create {
        path: path.display().to_string(),
        source,
    };
    let d = ensure_dir(queue_dir).map_err(|e| create(&dir(queue_dir), e))?;
    // Opened first: once the file has its name an importer may take it, so
    // nothing may fail after the rename for want of a descriptor.
    let dir_fd = File::open(&d).map_err(|e| create(&d, e))?;
    let tmp = d.join(format!(".{}.tmp", parcel.qid));
    let dest = d.join(&parcel.qid);
    let written = (|| -> Result<(), MaildropError> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| create(&tmp, e))?;
        let write_err = |source| MaildropError::Write {
            path: tmp.display().to_string(),
            source,
        };
        let mut bytes = parcel.head(Some(origin));
        bytes.extend_from_slice(&parcel.data);
        f.write_all(&bytes).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(write_err)?;
        dir_fd.sync_all().map_err(|source| {
            // Not known to be on disk: take it back (an importer that was
            // quicker has committed it — then it is queued, which is no loss).
            let _ = fs::remove_file(&dest);
            MaildropError::Write {
                path: d.display().to_string(),
                source,
            }
        })
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Whether `name` is a maildrop file's name: a queue id (20 upper-case hex).
pub fn is_entry(name: &str) -> bool {
    name.len() == 20
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The maildrop files waiting for import, roughly in the order they were
/// written (file times are coarse; the import orders each chunk by the time
/// inside the files). A missing directory has none.
pub fn entries(queue_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir(queue_dir)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<(Option<std::time::SystemTime>, PathBuf)> = rd
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(is_entry))
        .map(|e| (e.metadata().and_then(|m| m.modified()).ok(), e.path()))
        .collect();
    out.sort();
    Ok(out.into_iter().map(|(_, p)| p).collect())
}

/// Whether any file waits for import.
pub fn has_entries(queue_dir: &Path) -> bool {
    entries(queue_dir).is_ok_and(|e| !e.is_empty())
}

/// Temporary files older than this are a crashed `sendmail`'s (it writes
/// one in well under a second) and are removed by the import.
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove temporary files left by writers that died before their rename.
pub fn remove_stale_tmp(queue_dir: &Path) {
    let Ok(rd) = fs::read_dir(dir(queue_dir)) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if name.starts_with('.') && name.ends_with(".tmp") && old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// The queue schema version this build reads and writes (SQLite's
/// `user_version`). The store's migrations are in the scriptmail package,
/// which this crate cannot depend on; `store/migrations.rs` checks at
/// compile time that it has exactly this many.
pub const QUEUE_SCHEMA_VERSION: i64 = 5;

/// Refuse (78) a queue database a newer scriptmail has migrated, as opening
/// it would: read from the database file's header (`user_version`, a
/// big-endian u32 at offset 60 of the SQLite header), without SQLite.
/// Best effort — a version still only in the write-ahead log is not seen,
/// and the import then refuses the database and leaves the file in the
/// maildrop — but it keeps the fallback from accepting mail into a queue
/// this build can no longer read.
pub fn check_queue_version(queue_dir: &Path) -> Result<(), MaildropError> {
    let mut header = [0u8; 64];
    let read = File::open(queue_dir.join("queue.db")).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || !header.starts_with(b"SQLite format 3\0") {
        return Ok(());
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(header.get(60..64).unwrap_or(&[0; 4]));
    let found = i64::from(u32::from_be_bytes(v));
    let supported = QUEUE_SCHEMA_VERSION;
    if found > supported {
        return Err(MaildropError::TooNew { found, supported });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::frame;

    #[test]
    fn a_dropped_message_is_one_complete_file_named_by_its_qid() {
        let q = tempfile::tempdir().unwrap();
        let p = Parcel {
            qid: "6A1F0C2B9D3E4F5A6B7C".into(),
            sender: "a@x.org".into(),
            recipients: vec!["b@x.org".into()],
            data: b"Subject: s\r\n\r\nbody\r\n".to_vec(),
            ..Parcel::default()
        };
        let origin = Origin {
            uid: 1001,
            time: 1_700_000_000_000,
        };
        write(q.path(), origin, &p).unwrap();
        let files = entries(q.path()).unwrap();
        assert_eq!(files, [dir(q.path()).join(&p.qid)]);
        let bytes = fs::read(&files[0]).unwrap();
        let caps = frame::Caps {
            max_fields: 100,
            max_data: 1000,
        };
        let mut r = &bytes[..];
        let h = frame::read_head(&mut r, &caps).unwrap().unwrap();
        assert_eq!(h.verb, frame::Verb::Maildrop);
        assert_eq!(r, &p.data[..]);
        // Nothing else is left behind, and the directory is private.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::read_dir(dir(q.path())).unwrap().count(), 1);
        let mode = fs::metadata(dir(q.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(!is_entry(".6A1F0C2B9D3E4F5A6B7C.tmp"));
    }

    #[test]
    fn a_newer_queue_is_refused_from_its_header() {
        let q = tempfile::tempdir().unwrap();
        assert!(check_queue_version(q.path()).is_ok(), "no database yet");
        let mut header = b"SQLite format 3\0".to_vec();
        header.resize(100, 0);
        header[60..64].copy_from_slice(&999u32.to_be_bytes());
        fs::write(q.path().join("queue.db"), &header).unwrap();
        let e = check_queue_version(q.path()).unwrap_err();
        assert_eq!(e.exit_code(), Exit::Config);
        header[60..64].copy_from_slice(&1u32.to_be_bytes());
        fs::write(q.path().join("queue.db"), &header).unwrap();
        assert!(check_queue_version(q.path()).is_ok());
    }
}
