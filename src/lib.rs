//! scriptmail: the `sendmail` that PHP `mail()` calls on shared web-hosting
//! nodes. Each message is attributed to the calling account (its Unix user),
//! checked against the account's state, durably queued in SQLite, and relayed
//! at once over SMTP — or held while the account is blocked.
//!
//! Two programs share this library: the small privileged `sendmail`
//! (`src/bin/sendmail.rs`, which uses only `submit` and what it needs: no
//! SMTP, TLS or clap code is linked into it) and `scriptmail` (`src/main.rs`:
//! `mailq-ctl`, `relayd`, `bounce`, and an unprivileged `sendmail`).

pub mod account;
pub mod address;
pub mod bounce;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod control;
pub mod ctl;
pub mod deadline;
pub mod demo;
pub mod dsn;
pub mod dsn_params;
pub mod encoding;
pub mod envelope;
pub mod exit;
pub mod generate;
pub mod log;
pub mod message;
pub mod mime;
pub mod options;
pub mod os;
pub mod privilege;
pub mod queue;
pub mod reencode;
pub mod relay;
pub mod report;
pub mod sanitize;
pub mod schedule;
pub mod smtp_server;
pub mod store;
pub mod submit;
pub mod transport;
pub mod wake;

#[cfg(test)]
mod proptests;
