//! How values look in the documents: an instant as an RFC 3339 UTC string
//! (`2026-11-22T13:53:31Z`), a UTC day as `YYYY-MM-DD`, a state, reason or
//! kind as its name (docs/mailq-ctl.md, "JSON API"). The documents keep
//! the typed values, so a front end can still compute an age or pick a
//! colour from them.

use serde::{Serialize, Serializer};

use crate::account::{BlockReason, Reason, State};
use crate::clock;
use crate::queue::{FailureKind, MessageState, RecipientState};

/// An instant (ms since the epoch), serialised as RFC 3339, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i64);

/// A UTC day number, serialised as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Time {
    /// Milliseconds since the epoch.
    pub fn ms(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&clock::format_rfc3339(self.0))
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&clock::format_day(self.0))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `Serialize` as its name (`as_str`), the spelling the queue database
/// uses too.
macro_rules! serialize_as_name {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}

serialize_as_name!(
    State,
    BlockReason,
    Reason,
    MessageState,
    RecipientState,
    FailureKind
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_days_serialise_as_the_documents_spell_them() {
        let t = Time(1_795_353_858_000);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-11-22T13:24:18Z\""
        );
        assert_eq!(
            serde_json::to_string(&Day(clock::day_of(t.ms()))).unwrap(),
            "\"2026-11-22\""
        );
    }
}
