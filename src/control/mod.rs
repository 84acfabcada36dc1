//! The operations behind `mailq-ctl`: what an admin or a control panel
//! can ask of a node — an account's state and counters, block, unblock,
//! purge, settings, history, the queue, the held mail in part, delivery on
//! demand, the sweep, the daily report and the metrics.
//!
//! Each operation is a method of [`Control`] that takes typed arguments
//! and returns a typed document; serialised with serde, the document is
//! exactly what `mailq-ctl --json` prints (docs/mailq-ctl.md, "JSON API").
//! Nothing here parses a command line or prints: `ctl` turns clap
//! arguments into calls and documents into tables or JSON, and the panel
//! API serves the same documents. What is checked (names, notes,
//! addresses), logged (one line per change, docs/mailq-ctl.md, "Logging")
//! and woken (the relay, after a release) is done here, once for every
//! front end.
//!
//! ## The seam: [`Authority`]
//! State changes and the reads a cluster answers for all its nodes go
//! through [`Authority`]; what only this node has (its messages, their
//! delivery, its sweep) goes to the node's own [`Store`]. Today the one
//! authority is [`Local`], this node's queue; cluster mode puts a cluster
//! store in front of it without touching the operations.
//!
//! ## Accounts before their first mail
//! A panel must be able to block or configure a site before it sends
//! anything (a compromised site is pre-blocked). So `block`, `set` and
//! `status` take any name the node resolves — a Unix user (`getpwnam`), or
//! a name the configuration's `[accounts.map]` gives to uids — not only one
//! with a row in the queue: `block` and `set` create the row, `status`
//! shows a fresh `ok` account without writing anything. A name that
//! resolves to nothing is still `no such account` (67), so a typo in a
//! panel never creates an account nobody can send as. The other
//! operations need an account that exists.
//!
//! The operations, by file: `accounts.rs` (status, accounts, set),
//! `states.rs` (block, unblock, purge), `held.rs` (the held mail, released
//! or purged in part), `activity.rs` (stats, errors, history), `queue.rs`
//! (queue, show, release, delete), `upkeep.rs` (sweep, report, populate),
//! `delivery.rs` (flush, test), `metrics.rs`, `node.rs` (the node's
//! queue as a whole); `values.rs` says how times
//! and days look in the documents.

use std::path::{Path, PathBuf};

use crate::account::{Reason, State};
use crate::config::Config;
use crate::exit::{Exit, Failure};
use crate::log::{self, Level};
use crate::relay::RelayError;
use crate::report::ReportError;
use crate::sanitize;
use crate::store::{Durability, Store, StoreError};

mod accounts;
mod activity;
mod authority;
mod delivery;
mod held;
mod metrics;
mod node;
mod queue;
mod states;
mod upkeep;
mod values;

pub use accounts::{
    AccountDoc, AccountsDoc, DayDoc, LimitsDoc, OverviewDoc, OverviewRow, QueueDoc, SetDoc,
    SettingsChange, SortKey, StatusDoc,
};
pub use activity::{DayTotals, ErrorDoc, ErrorsDoc, EventDoc, HistoryDoc, StatsDoc};
pub use authority::{Authority, Local, Purged};
pub use delivery::{FlushDoc, ProgressDoc, TestDoc, TestVerdict, Via};
pub use held::{
    DomainCount, FilterDoc, HeldDoc, HeldFilter, HeldPurgeDoc, HeldReleaseDoc, ScriptCount,
    held_filter,
};
pub use metrics::{MetricsDoc, MetricsRow};
pub use node::{BucketDoc, DelayDoc, NodeDoc};
pub use queue::{MessageDoc, MoveDoc, QueueListDoc, RecipientDoc, ShowDoc};
pub use states::{ChangeDoc, PurgeDoc};
pub use upkeep::{DeletedDoc, ExpiredDoc, PopulateDoc, SweepDoc};
pub use values::{Day, Time};

/// Why an operation failed; each knows its exit status (sysexits).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Relay(#[from] RelayError),
    #[error("{0}")]
    Report(#[from] ReportError),
    /// An argument is not acceptable (64): a bad name, address or note.
    #[error("{0}")]
    Usage(String),
    /// Not allowed (77).
    #[error("{0}")]
    Refused(String),
    /// The cluster store (cluster mode, docs/cluster.md): unreachable (69),
    /// misconfigured (78).
    #[error("{0}")]
    Cluster(crate::cluster::ClusterError),
}

impl Failure for ControlError {
    fn exit_code(&self) -> Exit {
        match self {
            ControlError::Store(e) => e.exit_code(),
            ControlError::Relay(e) => e.exit_code(),
            ControlError::Report(e) => e.exit_code(),
            ControlError::Usage(_) => Exit::Usage,
            ControlError::Refused(_) => Exit::NoPerm,
            ControlError::Cluster(e) => e.exit_code(),
        }
    }
}

impl ControlError {
    /// Whether it says the account has no row (it may still resolve).
    fn is_no_account(&self) -> bool {
        matches!(self, ControlError::Store(StoreError::NoAccount(_)))
    }
}

pub type Result<T> = std::result::Result<T, ControlError>;

/// A node's control: its configuration, who is acting, and the authority
/// over account state (with this node's queue behind it).
pub struct Control {
    cfg: Config,
    /// The configuration file named explicitly, passed on to a one-shot relayer.
    config_path: Option<PathBuf>,
    /// Recorded with every state change.
    actor: String,
    authority: Box<dyn Authority + Send>,
}

impl Control {
    /// The control of this node, acting on its own queue (opened here,
    /// fsync at every commit) as `actor` (see [`check_actor`]). The caller
    /// runs as the queue owner (`privilege::become_queue_owner`).
    /// In cluster mode (`[cluster]`) the authority is the cluster store in
    /// front of this queue (docs/cluster.md), reached on first use.
    pub fn open(cfg: Config, config_path: Option<&Path>, actor: String) -> Result<Control> {
        let store = Store::open(&cfg.db_path(), Durability::Full)?;
        let authority: Box<dyn Authority + Send> = match &cfg.cluster {
            Some(cc) => Box::new(crate::cluster::ClusterAuthority::new(cc.clone(), store)),
            None => Box::new(Local::new(store)),
        };
        Ok(Control::new(cfg, config_path, actor, authority))
    }

    /// The control of this node's queue alone, even in cluster mode
    /// (`mailq-ctl --local`): state changes and reads stay on this node.
    pub fn open_local(cfg: Config, config_path: Option<&Path>, actor: String) -> Result<Control> {
        let store = Store::open(&cfg.db_path(), Durability::Full)?;
        Ok(Control::new(
            cfg,
            config_path,
            actor,
            Box::new(Local::new(store)),
        ))
    }

    /// The control over `authority`, acting as `actor`.
    pub fn new(
        cfg: Config,
        config_path: Option<&Path>,
        actor: String,
        authority: Box<dyn Authority + Send>,
    ) -> Control {
        Control {
            cfg,
            config_path: config_path.map(Path::to_path_buf),
            actor,
            authority,
        }
    }

    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// Who is acting (recorded with state changes).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Act as someone else from now on (a daemon serving several people);
    /// `actor` is checked by [`check_actor`].
    pub fn set_actor(&mut self, actor: &str) -> Result<()> {
        self.actor = check_actor(actor)?;
        Ok(())
    }

    fn store(&self) -> &Store {
        self.authority.store()
    }

    fn store_mut(&mut self) -> &mut Store {
        self.authority.store_mut()
    }

    /// Log a state change: one key=value line per event (docs/mailq-ctl.md,
    /// "Logging").
    fn log_change(&self, account: &str, old: State, new: State, reason: Reason, extra: &str) {
        log::log(
            Level::Info,
            &format!(
                "account={} old={old} new={new} reason={reason} actor={}{extra}",
                sanitize::line(account),
                log::quote(&self.actor)
            ),
        );
    }

    /// Wake the relay (start a one-shot if no daemon listens).
    fn wake_relay(&self) {
        crate::wake::relay(&self.cfg, self.config_path.as_deref());
    }

    /// Whether this node can resolve `name` to an account without a mail
    /// from it: a Unix user, or a name of `[accounts.map]` (see "Accounts
    /// before their first mail" above).
    fn resolvable(&self, name: &str) -> bool {
        self.cfg.accounts.map.iter().any(|(_, _, n)| n == name)
            || crate::os::user_by_name(name).is_some()
    }
}

/// An actor name: short, printable, one line; trimmed.
pub fn check_actor(a: &str) -> Result<String> {
    let a = a.trim();
    if a.is_empty() || a.chars().count() > 64 || a.chars().any(sanitize::is_unsafe) {
        return Err(ControlError::Usage(
            "--actor must be 1 to 64 printable characters".into(),
        ));
    }
    Ok(a.to_string())
}

/// A note kept with a state change: one line, bounded.
pub fn check_note(note: Option<&str>) -> Result<String> {
    let note = note.unwrap_or("").trim();
    if note.chars().count() > 500 {
        return Err(ControlError::Usage(
            "--note is limited to 500 characters".into(),
        ));
    }
    Ok(sanitize::line(note).into_owned())
}

/// ` note="..."` for a log line, or nothing.
fn note_field(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(" note={}", log::quote(note))
    }
}

/// An account name the panel may create: a login-name-like word.
fn check_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ControlError::Usage(format!(
            "{:?} is not a valid account name",
            sanitize::line(name)
        )))
    }
}

/// A report recipient (or a test mail's recipient): one address (a
/// display name and angle brackets are allowed and dropped) that the
/// report sender accepts — the same rule, `report::valid_recipient`, so
/// what `set` accepts always gets its reports.
fn check_address(addr: &str) -> Result<String> {
    let bad = || {
        ControlError::Usage(format!(
            "not a valid report recipient: {} (one plain local@domain address)",
            log::quote(addr)
        ))
    };
    // Control characters are refused outright: the RFC 5322 parser would
    // read "a@b\r\nBcc: c@d" as a folded group and keep only c@d.
    if addr.chars().any(char::is_control) {
        return Err(bad());
    }
    let list = crate::address::parse_list(addr).map_err(|_| bad())?;
    match list.as_slice() {
        [one] if crate::report::valid_recipient(one) => Ok(one.clone()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
