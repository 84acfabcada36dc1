//! Cluster mode (docs/cluster.md): one account across many web nodes, with
//! PostgreSQL as the authority for account state, history, limits, report
//! recipient, counters, mails in error and commands, while each node keeps
//! its own SQLite queue and a local copy of every account's state and
//! limits (so `sendmail` never waits on the network).
//!
//! By concern:
//! - `client.rs`: connecting (URL, `password_file`, TLS), and what a
//!   failure means (unreachable: exit 69);
//! - `schema.rs`: the tables, as append-only migrations on a version table;
//! - `log.rs`: the change log every node replays (state, settings and the
//!   commands), written under one lock so revisions commit in order;
//! - `commands.rs`: a node carrying out a change and acknowledging it;
//! - `sync.rs`: relayd's sync thread (LISTEN, catch-up by revision, pushes);
//! - `counters.rs`: what a node pushes (figures, mails in error, held mail,
//!   automatic blocks) and the error-ratio rule over every node;
//! - `limits.rs`: the limits' allowances in the store (`allowance.rs` has
//!   the pure rules and the bound);
//! - `authority.rs` and `reads.rs`: the control layer's [`Authority`] in
//!   cluster mode (state changes as one transaction, reads as sums);
//! - `report.rs`: the daily report, once per account and day for the cluster;
//! - `ctl.rs`: `mailq-ctl cluster` (nodes, lag, pending commands, retire, init);
//! - `populate.rs`: the benchmark's synthetic store.
//!
//! [`Authority`]: crate::control::Authority

use std::time::Duration;

use crate::config::ClusterConfig;
use crate::exit::{Exit, Failure};
use crate::store::StoreError;

pub mod allowance;
mod authority;
mod client;
mod commands;
mod counters;
pub mod ctl;
mod limits;
mod log;
mod populate;
mod reads;
mod report;
mod schema;
mod sync;

pub use authority::ClusterAuthority;
pub use sync::{SyncThread, start};

/// Why the cluster store could not be used; each knows its exit status.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No connection: the store is down, or the network is (69).
    #[error("cluster store unreachable: {0}")]
    Unreachable(String),
    /// The store answered with an error (69).
    #[error("cluster store error: {0}")]
    Db(String),
    /// `[cluster]` cannot be used as it is (78).
    #[error("{0}")]
    Config(String),
    #[error(
        "cluster store has schema version {found}, newer than this scriptmail supports ({supported}); upgrade scriptmail"
    )]
    TooNew { found: i64, supported: i64 },
    #[error(
        "cluster store has schema version {found}, this scriptmail needs {needed} and cannot migrate it ({why}): run `mailq-ctl cluster init` as the schema's owner"
    )]
    Outdated {
        found: i64,
        needed: i64,
        why: String,
    },
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl Failure for ClusterError {
    fn exit_code(&self) -> Exit {
        match self {
            ClusterError::Unreachable(_) | ClusterError::Db(_) => Exit::Unavailable,
            ClusterError::Config(_)
            | ClusterError::TooNew { .. }
            | ClusterError::Outdated { .. } => Exit::Config,
            ClusterError::Store(e) => e.exit_code(),
        }
    }
}

impl From<postgres::Error> for ClusterError {
    fn from(e: postgres::Error) -> ClusterError {
        match e.as_db_error() {
            Some(db) if !e.is_closed() => ClusterError::Db(db.message().to_string()),
            _ => ClusterError::Unreachable(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, ClusterError>;

/// How long a node's allowances hold without a sync, and how long the
/// others count it as active after its last one (twice this): ten sync
/// intervals, at least two seconds.
pub fn lease(c: &ClusterConfig) -> Duration {
    (c.sync_interval * 10).max(Duration::from_secs(2))
}

/// Milliseconds in a duration, for the store's bigint columns.
fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// A count from the store (bigint) as a count.
fn count(v: i64) -> u64 {
    v.max(0) as u64
}

/// A count as a bigint.
fn big(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}
