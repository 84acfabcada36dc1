//! The integration tests: one binary that runs the real programs in sealed
//! temp directories against real PHP, real Postfix smtp-sink and real users.

mod util;

mod fake_smtp;
mod sink;

mod bounce;
mod ctl;
mod faults;
mod package;
mod relay;
mod security;
mod sendmail;
mod submission;
mod submission_security;
