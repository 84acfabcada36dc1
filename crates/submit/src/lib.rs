//! scriptmail-submit: the privileged `sendmail` (`src/main.rs`) and every
//! module it uses, which the rest of scriptmail shares.

pub mod address;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod dsn_params;
pub mod encoding;
pub mod envelope;
pub mod exit;
pub mod handoff;
pub mod log;
pub mod maildrop;
pub mod message;
pub mod mime;
pub mod options;
pub mod os;
pub mod reencode;
pub mod sanitize;
pub mod slots;
pub mod smtp_server;
pub mod submit;
pub mod wake;

#[cfg(test)]
mod proptests;
