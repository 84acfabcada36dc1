//! The integration tests: one binary that runs the real programs in sealed
//! temp directories against real PHP, real Postfix smtp-sink and real users.

// Test code may unwrap (Cargo.toml denies it in the programs).
#![allow(clippy::unwrap_used)]

mod util;

mod fake_smtp;
mod sink;

mod bounce;
mod ctl;
mod relay;
mod sendmail;
mod submission;
