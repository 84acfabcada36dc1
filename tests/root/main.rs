//! The integration tests that need root: they create Unix users, install
//! the set-uid `sendmail` and rewrite /etc/scriptmail (tenant isolation,
//! `security/`, `submission_security.rs`), run a private Postfix whose
//! pipe transport runs scriptmail as another user (`postfix.rs`), or check
//! what root itself leaves in a queue (`queue_owner.rs`).
//!
//! `.ci/run` runs them as root with `SCRIPTMAIL_ROOT_TESTS=1`. Run as
//! anybody else, each test says in one line what it leaves to CI and
//! passes, so `cargo test` works as a normal user; with
//! `SCRIPTMAIL_ROOT_TESTS=1` set and no root, each fails instead, so CI
//! cannot pass without having run them. The helpers are the `it` binary's
//! (tests/it), compiled in here too.

// Test code may unwrap (Cargo.toml denies it in the programs).
#![allow(clippy::unwrap_used)]

#[path = "../it/fake_smtp.rs"]
mod fake_smtp;
#[path = "../it/sink.rs"]
mod sink;
#[path = "../it/util.rs"]
mod util;

mod postfix;
mod queue_owner;
mod security;
mod submission_security;

pub use util::as_root;
