//! Account states (SPEC §3) and the rules for moving between them.
//!
//! The rules are pure functions so they can be tested exhaustively; the
//! `Store` applies them inside the same transaction that moves the mail.

use std::fmt;

/// The control panel's states, spelled exactly as its API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending (green).
    Ok,
    /// Blocked: new mail is held (manual block or a tripped limit).
    Ko,
    /// Blocked because the error ratio passed its threshold.
    Bounce,
    /// Blocked by abuse handling.
    Spam,
    /// Sending, unblocked from `bounce` with the allowed error ratio doubled.
    Force,
    /// A purge is in progress; ends in `ok`.
    Purging,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Ok,
        State::Ko,
        State::Bounce,
        State::Spam,
        State::Force,
        State::Purging,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Ko => "ko",
            State::Bounce => "bounce",
            State::Spam => "spam",
            State::Force => "force",
            State::Purging => "purging",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether mail of an account in this state is relayed (green) or held (red).
    pub fn is_sending(self) -> bool {
        matches!(self, State::Ok | State::Force)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an account is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    Manual,
    Spam,
    Limit,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Manual => "manual",
            BlockReason::Spam => "spam",
            BlockReason::Limit => "limit",
        }
    }

    pub fn parse(s: &str) -> Option<BlockReason> {
        match s {
            "manual" => Some(BlockReason::Manual),
            "spam" => Some(BlockReason::Spam),
            "limit" => Some(BlockReason::Limit),
            _ => None,
        }
    }

    /// The state a block with this reason leads to.
    pub fn target(self) -> State {
        match self {
            BlockReason::Spam => State::Spam,
            BlockReason::Manual | BlockReason::Limit => State::Ko,
        }
    }
}

/// Why a state change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "account is blocked ({state}) with {held} held message(s): purge them first (mailq-ctl purge), or unblock --force"
    )]
    NeedsPurge { state: State, held: u64 },
    #[error("a purge is in progress")]
    Purging,
    #[error("account is already blocked ({0})")]
    AlreadyBlocked(State),
}

/// The state `block` leads to from `current`. Blocking a blocked account
/// with a stronger reason (spam) upgrades it; anything else is refused so a
/// panel click does not rewrite the reason an abuse desk set.
pub fn block_target(current: State, reason: BlockReason) -> Result<State, Refusal> {
    match current {
        State::Purging => Err(Refusal::Purging),
        State::Ok | State::Force => Ok(reason.target()),
        State::Ko if reason == BlockReason::Spam => Ok(State::Spam),
        other => Err(Refusal::AlreadyBlocked(other)),
    }
}

/// The state `unblock` leads to from `current`, given how much mail the
/// account holds. From `spam` and `bounce` a plain unblock is allowed only
/// when nothing is held (it was purged); `--force` from `bounce` leads to
/// `force` (allowed error ratio doubled), from anything else to `ok`.
/// Unblocking a sending account is a no-op, so the panel can retry safely.
pub fn unblock_target(current: State, force: bool, held: u64) -> Result<State, Refusal> {
    match current {
        State::Ok | State::Force => Ok(current),
        State::Purging => Err(Refusal::Purging),
        State::Ko => Ok(State::Ok),
        State::Bounce if force => Ok(State::Force),
        State::Spam if force => Ok(State::Ok),
        State::Bounce | State::Spam if held == 0 => Ok(State::Ok),
        state => Err(Refusal::NeedsPurge { state, held }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("OK"), None);
        let green: Vec<_> = State::ALL.into_iter().filter(|s| s.is_sending()).collect();
        assert_eq!(green, [State::Ok, State::Force]);
    }

    #[test]
    fn block_rules() {
        assert_eq!(block_target(State::Ok, BlockReason::Manual), Ok(State::Ko));
        assert_eq!(
            block_target(State::Force, BlockReason::Limit),
            Ok(State::Ko)
        );
        assert_eq!(block_target(State::Ok, BlockReason::Spam), Ok(State::Spam));
        assert_eq!(block_target(State::Ko, BlockReason::Spam), Ok(State::Spam));
        assert_eq!(
            block_target(State::Ko, BlockReason::Manual),
            Err(Refusal::AlreadyBlocked(State::Ko))
        );
        assert_eq!(
            block_target(State::Spam, BlockReason::Manual),
            Err(Refusal::AlreadyBlocked(State::Spam))
        );
        assert_eq!(
            block_target(State::Purging, BlockReason::Manual),
            Err(Refusal::Purging)
        );
    }

    #[test]
    fn unblock_rules() {
        assert_eq!(unblock_target(State::Ko, false, 10), Ok(State::Ok));
        assert_eq!(unblock_target(State::Ok, false, 0), Ok(State::Ok));
        assert_eq!(unblock_target(State::Force, false, 0), Ok(State::Force));
        assert_eq!(
            unblock_target(State::Spam, false, 3),
            Err(Refusal::NeedsPurge {
                state: State::Spam,
                held: 3
            })
        );
        assert_eq!(unblock_target(State::Spam, false, 0), Ok(State::Ok));
        assert_eq!(unblock_target(State::Spam, true, 3), Ok(State::Ok));
        assert!(unblock_target(State::Bounce, false, 1).is_err());
        assert_eq!(unblock_target(State::Bounce, false, 0), Ok(State::Ok));
        assert_eq!(unblock_target(State::Bounce, true, 5), Ok(State::Force));
        assert_eq!(
            unblock_target(State::Purging, true, 0),
            Err(Refusal::Purging)
        );
    }
}
