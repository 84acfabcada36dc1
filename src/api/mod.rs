//! `scriptmail api`: the panel API and the "E-mail scripts" page over HTTP
//! (docs/api.md). Three faces over one control layer:
//! - the control panel's own API, same paths and field names
//!   (`/hosting/web/{account}/email...`, `hosting.rs`), so a panel written
//!   for it only changes its base URL and credentials;
//! - the native JSON API (`/v1/...`, `v1.rs`): every document `mailq-ctl
//!   --json` prints, from the same [`Control`] calls, so the API and the
//!   command line cannot disagree; described by an OpenAPI document
//!   (`openapi/`, also docs/openapi.json);
//! - the page at `/` (`page.rs`, `i18n.rs`, `assets/`), plus `/metrics`
//!   and `/healthz` (`metrics.rs`).
//!
//! Who may do what: `tokens.rs` (the tokens file), `auth.rs` (bearer
//! tokens, the failed-authentication limit), `sessions.rs` (the page's
//! cookie and CSRF token). `routes.rs` is the table of every route;
//! `http.rs` the request, response and error shapes; `wire.rs` HTTP/1.1
//! on the wire; `server.rs` the listener, connections and worker pool. In cluster mode the control layer acts on
//! the whole cluster; nothing here changes.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{Config, ConfigError};
use crate::control::{Control, ControlError};
use crate::exit::{Exit, Failure};
use crate::privilege::PrivilegeError;

mod auth;
mod hosting;
mod http;
mod i18n;
mod metrics;
mod openapi;
mod page;
mod routes;
mod server;
mod sessions;
pub mod tokens;
mod v1;
mod wire;

pub use openapi::document as openapi_document;
pub use routes::{Access, ROUTES};

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Privilege(#[from] PrivilegeError),
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Stopped(String),
}

impl Failure for DaemonError {
    fn exit_code(&self) -> Exit {
        match self {
            DaemonError::Config(e) => e.exit_code(),
            DaemonError::Privilege(e) => e.exit_code(),
            DaemonError::Control(e) => e.exit_code(),
            DaemonError::Listen { .. } => Exit::OsErr,
            DaemonError::Stopped(_) => Exit::Software,
        }
    }
}

/// What every worker shares.
pub struct Shared {
    pub cfg: Config,
    pub gate: auth::Gate,
    pub tasks: Mutex<hosting::Tasks>,
}

/// One request being handled: the worker's control (its own queue
/// connection), what the workers share, who asks, and the time.
pub struct Ctx<'a> {
    pub control: &'a mut Control,
    pub shared: &'a Shared,
    pub who: Option<auth::Who>,
    /// ms since the epoch.
    pub now: i64,
    pub instant: Instant,
}

/// Run the daemon until SIGTERM or SIGINT. The caller has loaded the
/// configuration and set up logging; this becomes the queue owner (as
/// `mailq-ctl` does), opens one queue connection per worker and listens.
pub fn run(cfg: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    crate::privilege::become_queue_owner(&cfg)?;
    server::serve(cfg, config_path)
}
