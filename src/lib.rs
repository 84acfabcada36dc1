//! scriptmail: the `sendmail` that PHP `mail()` calls on shared web-hosting
//! nodes. Each message is attributed to the calling account (its Unix user),
//! checked against the account's state, durably queued in SQLite, and relayed
//! at once over SMTP — or held while the account is blocked.
//!
//! Two programs share this library: the small privileged `sendmail`
//! (`src/bin/sendmail.rs`, which uses only `submit` and what it needs: no
//! SQLite, SMTP, TLS, HTTP or clap code is linked into it — it hands each
//! message to relayd over a socket, `handoff`, or drops it into the
//! `maildrop`) and `scriptmail` (`src/main.rs`: `mailq-ctl`, `relayd` with its
//! `submission` server, `bounce`, `api`, and an unprivileged `sendmail`).

pub mod account;
pub mod address;
pub mod api;
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
pub mod handoff;
pub mod log;
pub mod maildrop;
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
pub mod slots;
pub mod smtp_server;
pub mod store;
pub mod submission;
pub mod submit;
pub mod transport;
pub mod wake;

#[cfg(test)]
mod proptests;
