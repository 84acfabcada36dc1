//! relayd's side of the hand-off (docs/submission.md): the submit socket
//! ([`Server`]: a thread per connection, caps, deadlines, identity from the
//! kernel), the one committer that group-commits what the connections and
//! the maildrop import bring ([`commit`]), the maildrop import itself
//! ([`import`]) and the `-bp` listing ([`listing`]).
//!
//! Whatever the path, relayd decides what the caller cannot be trusted
//! with: the account (from the peer uid, or the uid a trusted maildrop file
//! carries), the arrival time, and the `Received:` trace on top of the
//! message ([`received`]).

pub mod commit;
pub mod import;
pub mod listing;
mod server;

pub use server::Server;

use crate::clock;
use crate::config::Config;
use crate::handoff::parcel::{Envelope, Limits};
use crate::store::Intake;

/// How a message reached the committer (logged as `via=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Socket,
    Maildrop,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Socket => "socket",
            Via::Maildrop => "maildrop",
        }
    }
}

/// The caps a received message frame must fit.
pub fn limits(cfg: &Config) -> Limits {
    Limits {
        max_recipients: cfg.max_recipients,
        max_data: Limits::max_data_for(cfg.max_message_size),
    }
}

/// The trace field relayd puts on top of every message (RFC 5321 §4.4):
/// the account and queue id take an abuse desk from a complaint to the
/// account in one step. relayd writes it, not `sendmail`, so a tenant that
/// writes frames by hand cannot forge another account's (any `Received:`
/// it writes itself comes below this one).
pub fn received(cfg: &Config, uid: u32, account: &str, qid: &str, time: i64) -> Vec<u8> {
    format!(
        "Received: by {} (scriptmail, from userid {uid} account {account})\r\n\tid {qid}; {}\r\n",
        cfg.hostname,
        clock::format_rfc5322(time)
    )
    .into_bytes()
}

/// The committer's job for a checked envelope and its data (trace included).
pub fn intake(env: Envelope, account: &str, uid: u32, time: i64, data: Vec<u8>) -> Intake {
    let mut parcel = env.parcel;
    // Over the socket the client's flag is a claim; the bytes are the truth.
    parcel.body_8bit |= !data.is_ascii();
    parcel.data = data;
    Intake {
        parcel,
        account: account.to_owned(),
        uid,
        time,
    }
}
