//! The integration tests: one binary that runs the real programs in sealed
//! temp directories against real PHP, real Postfix smtp-sink and real users.

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
mod package;
mod relay;
mod security;
mod sendmail;
mod submission;
mod submission_security;
