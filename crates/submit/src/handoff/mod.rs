//! The hand-off between `sendmail` and relayd (docs/submission.md): the frame
//! protocol both ends speak ([`frame`], [`parcel`]), `sendmail`'s end of the
//! submit socket ([`client`]), and the `-bp` listing both ends print
//! ([`listing`]). Linked into the privileged `sendmail`: no SQLite, no SMTP.

pub mod client;
pub mod frame;
pub mod listing;
pub mod parcel;

#[cfg(test)]
mod proptests;

pub use parcel::{Origin, Parcel};
