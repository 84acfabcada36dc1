//! Account states and the rules for moving between them (docs/mailq-ctl.md,
//! "Account states"), with the reasons and limits that move them.
//!
//! The rules are pure functions so they can be tested exhaustively; the
//! `Store` applies them inside the same transaction that moves the mail,
//! and stores the values as their names (`store/columns.rs`).

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
        f.pad(self.as_str())
    }
}

/// The actor recorded for the changes scriptmail makes itself (a tripped
/// limit, the error ratio); only those are announced by a block notice.
pub const SYSTEM_ACTOR: &str = "scriptmail";

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

/// Why an account's state changed, as recorded with the change (the
/// `reason` of `status` and `history`). Reasons are read back as the text
/// stored — an older build or another writer may have stored others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A block (`block --reason`, or a tripped limit).
    Block(BlockReason),
    /// `unblock`.
    Unblock,
    /// `unblock --force`.
    Force,
    /// `purge`, at its start and at its end.
    Purge,
    /// The error-ratio rule.
    Bounce,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Block(b) => b.as_str(),
            Reason::Unblock => "unblock",
            Reason::Force => "force",
            Reason::Purge => "purge",
            Reason::Bounce => "bounce",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "unblock" => Some(Reason::Unblock),
            "force" => Some(Reason::Force),
            "purge" => Some(Reason::Purge),
            "bounce" => Some(Reason::Bounce),
            other => BlockReason::parse(other).map(Reason::Block),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A submission limit of an account (`[limits]`, or its own from `set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    PerDay,
    PerHour,
}

impl RateLimit {
    /// Its name as a configuration key and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimit::PerDay => "max_per_day",
            RateLimit::PerHour => "max_per_hour",
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One submission limit as it applies to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedLimit {
    /// Mails allowed in the period; 0 is unlimited.
    pub max: u64,
    /// Whether this is the node default (`[limits]`) rather than the
    /// account's own (`mailq-ctl set`).
    pub node_default: bool,
}

impl AppliedLimit {
    /// The account's own limit if it has one (a negative value reads as 0,
    /// unlimited), else the node default.
    pub fn resolve(own: Option<i64>, node: u64) -> AppliedLimit {
        match own {
            Some(v) => AppliedLimit {
                max: v.max(0) as u64,
                node_default: false,
            },
            None => AppliedLimit {
                max: node,
                node_default: true,
            },
        }
    }

    /// Whether `count` submissions in the period go over it.
    pub fn is_exceeded_by(self, count: u64) -> bool {
        self.max > 0 && count > self.max
    }
}

/// An account's submission limits as they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub per_day: AppliedLimit,
    pub per_hour: AppliedLimit,
}

impl Limits {
    /// The limit a submission goes over, counting it (`today` and
    /// `this_hour` include it); the daily one first.
    pub fn exceeded(&self, today: u64, this_hour: u64) -> Option<RateLimit> {
        if self.per_day.is_exceeded_by(today) {
            Some(RateLimit::PerDay)
        } else if self.per_hour.is_exceeded_by(this_hour) {
            Some(RateLimit::PerHour)
        } else {
            None
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
        for r in [
            Reason::Block(BlockReason::Manual),
            Reason::Block(BlockReason::Spam),
            Reason::Block(BlockReason::Limit),
            Reason::Unblock,
            Reason::Force,
            Reason::Purge,
            Reason::Bounce,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("test"), None);
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
    fn limits_apply_the_account_s_own_or_the_node_default() {
        let own = AppliedLimit::resolve(Some(5), 100);
        assert_eq!((own.max, own.node_default), (5, false));
        let node = AppliedLimit::resolve(None, 100);
        assert_eq!((node.max, node.node_default), (100, true));
        assert_eq!(AppliedLimit::resolve(Some(-3), 100).max, 0);
        let limits = Limits {
            per_day: own,
            per_hour: AppliedLimit::resolve(Some(2), 0),
        };
        assert_eq!(limits.exceeded(5, 2), None, "at the limit is allowed");
        assert_eq!(limits.exceeded(6, 1), Some(RateLimit::PerDay));
        assert_eq!(limits.exceeded(6, 3), Some(RateLimit::PerDay), "day first");
        assert_eq!(limits.exceeded(1, 3), Some(RateLimit::PerHour));
        let unlimited = Limits {
            per_day: AppliedLimit::resolve(Some(0), 100),
            per_hour: AppliedLimit::resolve(None, 0),
        };
        assert_eq!(unlimited.exceeded(u64::MAX, u64::MAX), None);
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
