//! A queued message's life cycle as types: the states of a message, the
//! outcome of each of its recipients, and how a mail came to be in error.
//!
//! Pure values: the store writes and reads them (`store/columns.rs`),
//! `mailq-ctl` and the relay compare them. The life cycle itself is in
//! `store/mod.rs`, "Message states"; the spelling of each value is the
//! one the queue database and `mailq-ctl --json` use (docs/mailq-ctl.md).

use std::fmt;

use crate::handoff::listing::Pending;

/// Where a message is in the queue (the `messages.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Its account is blocked: kept, not relayed, until unblock, purge or
    /// expiry.
    Held,
    /// Waiting for its first delivery attempt.
    Queued,
    /// On a relay connection now.
    Sending,
    /// Waiting for a retry at `next_attempt`.
    Deferred,
    /// Accepted by the smarthost for at least one recipient.
    Sent,
    /// Refused for every recipient, or past the queue lifetime.
    Failed,
    /// Held longer than `queue.hold_max_age`: dropped unsent by the sweep.
    Expired,
}

impl MessageState {
    /// Every state, in the order `mailq-ctl queue --state` lists them.
    pub const ALL: [MessageState; 7] = [
        MessageState::Held,
        MessageState::Queued,
        MessageState::Sending,
        MessageState::Deferred,
        MessageState::Sent,
        MessageState::Failed,
        MessageState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Held => "held",
            MessageState::Queued => "queued",
            MessageState::Sending => "sending",
            MessageState::Deferred => "deferred",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<MessageState> {
        MessageState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The state as `sendmail -bp` lists it; `None` once done.
    pub fn pending(self) -> Option<Pending> {
        match self {
            MessageState::Held => Some(Pending::Held),
            MessageState::Queued => Some(Pending::Queued),
            MessageState::Sending => Some(Pending::Sending),
            MessageState::Deferred => Some(Pending::Deferred),
            MessageState::Sent | MessageState::Failed | MessageState::Expired => None,
        }
    }

    /// Not done yet: the message still has its body and may still go out
    /// (the `messages_pending` index covers exactly these).
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            MessageState::Held
                | MessageState::Queued
                | MessageState::Deferred
                | MessageState::Sending
        )
    }

    /// Waiting for the relay: the next attempt is due at `next_attempt`.
    pub fn is_waiting(self) -> bool {
        matches!(self, MessageState::Queued | MessageState::Deferred)
    }

    /// Not yet on a connection and not done: an admin may still delete it.
    pub fn is_deletable(self) -> bool {
        self.is_pending() && self != MessageState::Sending
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: `sendmail -bp` prints it in a column.
        f.pad(self.as_str())
    }
}

/// What happened to one envelope recipient (the `recipients.state` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecipientState {
    /// Not delivered yet.
    Pending,
    /// Accepted by the smarthost.
    Sent,
    /// Refused, expired, or reported failed by a DSN.
    Failed,
}

impl RecipientState {
    pub const ALL: [RecipientState; 3] = [
        RecipientState::Pending,
        RecipientState::Sent,
        RecipientState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Sent => "sent",
            RecipientState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<RecipientState> {
        RecipientState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for RecipientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a mail came to be in error (the `errors.kind` column; see
/// docs/bounces.md, "What is a mail in error").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The smarthost refused the recipient (a 5xx answer).
    Rejected,
    /// The recipient was still pending when the queue lifetime ran out.
    Expired,
    /// A delivery status notification reported it failed later on.
    Dsn,
}

impl FailureKind {
    pub const ALL: [FailureKind; 3] = [
        FailureKind::Rejected,
        FailureKind::Expired,
        FailureKind::Dsn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Rejected => "rejected",
            FailureKind::Expired => "expired",
            FailureKind::Dsn => "dsn",
        }
    }

    pub fn parse(s: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in MessageState::ALL {
            assert_eq!(MessageState::parse(s.as_str()), Some(s));
        }
        for s in RecipientState::ALL {
            assert_eq!(RecipientState::parse(s.as_str()), Some(s));
        }
        for k in FailureKind::ALL {
            assert_eq!(FailureKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(MessageState::parse("HELD"), None);
        assert_eq!(format!("{:<9}|", MessageState::Sent), "sent     |");
    }

    #[test]
    fn state_classes() {
        use MessageState::*;
        let pending: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|s| s.is_pending())
            .collect();
        assert_eq!(pending, [Held, Queued, Sending, Deferred]);
        let waiting: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|s| s.is_waiting())
            .collect();
        assert_eq!(waiting, [Queued, Deferred]);
        let deletable: Vec<_> = MessageState::ALL
            .into_iter()
            .filter(|s| s.is_deletable())
            .collect();
        assert_eq!(deletable, [Held, Queued, Deferred]);
    }
}
