//! The integration tests: one binary that runs the real programs in sealed
//! temp directories against real PHP, real Postfix smtp-sink and real users.

// Test code may unwrap (Cargo.toml denies it in the programs).
#![allow(clippy::unwrap_used)]

mod util;

mod apiutil;
mod fake_smtp;
mod pg;
mod sink;
mod webdriver;

mod api;
mod bounce;
mod browser;
mod cluster;
mod ctl;
mod faults;
mod relay;
mod sendmail;
mod submission;
