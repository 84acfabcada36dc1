//! One account's pending mail for `sendmail -bp` / `mailq`: what the queue
//! holds for it, and what waits in the maildrop for import (state
//! `maildrop`). relayd's committer answers a `LIST` frame with it; without
//! relayd, `sendmail` runs the hidden `scriptmail internal-mailq UID` verb,
//! which prints the same table ([`print_for_uid`]).

use std::io::BufReader;

use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::handoff::frame;
use crate::handoff::listing::{self, Pending, Row};
use crate::handoff::parcel;
use crate::maildrop;
use crate::store::{Durability, Store, StoreError};
use crate::submit::SubmitError;

/// Why `internal-mailq` could not list the mail.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error("{0}")]
    Caller(#[from] SubmitError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Write(#[from] std::io::Error),
}

impl Failure for ListingError {
    fn exit_code(&self) -> Exit {
        match self {
            ListingError::Caller(e) => e.exit_code(),
            ListingError::Store(e) => e.exit_code(),
            ListingError::Write(_) => Exit::IoErr,
        }
    }
}

/// The pending mail of `account`: maildrop files first read, then the
/// queue, so a file imported in between shows once (from the queue).
pub fn rows(cfg: &Config, store: &Store, account: &str) -> Result<Vec<Row>, StoreError> {
    let dropped = dropped_of(cfg, account);
    let mut rows: Vec<Row> = store
        .pending_of(account)?
        .into_iter()
        .filter_map(|p| {
            Some(Row {
                state: p.state.pending()?,
                qid: p.qid,
                size: p.size,
                created: p.created,
                sender: p.sender,
                recipients: p.recipients,
            })
        })
        .collect();
    for d in dropped {
        if !rows.iter().any(|r| r.qid == d.qid) {
            rows.push(d);
        }
    }
    rows.sort_by_key(|r| r.created);
    Ok(rows)
}

/// The maildrop files of `account` (their heads only).
fn dropped_of(cfg: &Config, account: &str) -> Vec<Row> {
    let limits = super::limits(cfg);
    let mut out = Vec::new();
    for path in maildrop::entries(&cfg.queue_dir).unwrap_or_default() {
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        let head = frame::read_head(&mut BufReader::new(f), &limits.caps());
        let Ok(Some(head)) = head else { continue };
        let Ok(env) = parcel::envelope(&head, &limits, true) else {
            continue;
        };
        let Some(origin) = env.origin else { continue };
        let owner = crate::submit::identify(cfg, origin.uid).map(|c| c.account);
        if !owner.is_ok_and(|o| o == account) {
            continue;
        }
        out.push(Row {
            qid: env.parcel.qid,
            size: i64::try_from(env.data_len).unwrap_or(i64::MAX),
            created: origin.time,
            state: Pending::Maildrop,
            sender: env.parcel.sender,
            recipients: env.parcel.recipients,
        });
    }
    out
}

/// `scriptmail internal-mailq UID`: what `sendmail -bp` execs when relayd
/// does not answer. Runs as the queue owner (`sendmail` switched before the
/// exec; anybody else is refused by `privilege`), for the uid `sendmail`
/// recorded. It stands in for `sendmail`, so its errors are reported as
/// `sendmail`'s.
pub fn print_for_uid(cfg: &Config, uid: u32) -> Result<(), ListingError> {
    let caller = crate::submit::identify(cfg, uid)?;
    let store = Store::open(&cfg.db_path(), Durability::Normal)?;
    let rows = rows(cfg, &store, &caller.account)?;
    listing::print(&mut std::io::stdout().lock(), &rows)?;
    Ok(())
}
