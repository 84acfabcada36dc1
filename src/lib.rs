//! scriptmail: the `sendmail` that PHP `mail()` calls on shared web-hosting
//! nodes. Each message is attributed to the calling account (its Unix user),
//! checked against the account's state, durably queued in SQLite, and relayed
//! at once over SMTP — or held while the account is blocked.
//!
//! This package is `scriptmail` (`src/main.rs`: `mailq-ctl`, `relayd` with
//! its `submission` server, `api`, `bounce`, and an unprivileged `sendmail`).
//! The small privileged `sendmail` is the other package of the workspace,
//! `crates/submit`, whose manifest keeps SQLite, SMTP, TLS, clap, HTTP and
//! PostgreSQL code out of it: it hands each message to relayd over a socket
//! (`handoff`) or drops it into the `maildrop`. Its modules are re-exported
//! below, so both packages name them the same way.

pub mod account;
pub mod api;
pub mod bounce;
pub mod cli;
pub mod cluster;
pub mod control;
pub mod ctl;
pub mod demo;
pub mod dsn;
pub mod generate;
pub mod privilege;
pub mod queue;
pub mod relay;
pub mod report;
pub mod schedule;
pub mod store;
pub mod submission;
pub mod transport;

#[cfg(test)]
mod lettre_agreement;

// The modules the privileged `sendmail` uses live in crates/submit; the
// paths `crate::config`, `crate::submit`, ... keep working.
pub use scriptmail_submit::{
    address, clock, config, deadline, dsn_params, encoding, envelope, exit, handoff, log, maildrop,
    message, mime, options, os, reencode, sanitize, slots, smtp_server, submit, wake,
};
