//! An account's held mail in detail and in part: `held` (how many, the
//! oldest and its time left before expiry, which scripts sent it, which
//! domains it goes to), and releasing or purging only the held messages a
//! filter matches — by sending script, recipient domain or age
//! (docs/mailq-ctl.md, "held"). The account's state never changes here.

use std::time::Duration;

use serde::Serialize;

use super::values::Time;
use super::{Control, ControlError, Result, check_note, note_field};
use crate::account::State;
use crate::log::{self, Level};
use crate::sanitize;
pub use crate::store::HeldFilter;
use crate::store::HeldMoved;

/// A filter as the documents show it (`null`: not given).
#[derive(Debug, Clone, Serialize)]
pub struct FilterDoc {
    pub script: Option<String>,
    pub domain: Option<String>,
    pub older_than_s: Option<i64>,
    pub newer_than_s: Option<i64>,
}

impl From<&HeldFilter> for FilterDoc {
    fn from(f: &HeldFilter) -> FilterDoc {
        FilterDoc {
            script: f.script.clone(),
            domain: f.domain.clone(),
            older_than_s: f.older_than.map(|ms| ms / 1000),
            newer_than_s: f.newer_than.map(|ms| ms / 1000),
        }
    }
}

/// Held messages from one sending script.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptCount {
    /// As recorded (`X-PHP-Originating-Script`); `""` when none was.
    pub script: String,
    pub held: u64,
}

/// Held messages with a recipient at one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainCount {
    /// `""` for recipients without a domain.
    pub domain: String,
    pub held: u64,
}

/// `held ACCOUNT [filter]`: the held mail (the part the filter matches).
#[derive(Debug, Clone, Serialize)]
pub struct HeldDoc {
    pub account: String,
    pub state: State,
    pub sends: bool,
    pub filter: FilterDoc,
    pub held: u64,
    pub oldest: Option<Time>,
    pub oldest_age_s: Option<i64>,
    /// Until the sweep expires the oldest (`queue.hold_max_age`).
    pub expires_in_s: Option<i64>,
    pub newest: Option<Time>,
    /// Most first; at most the `limit` asked for.
    pub scripts: Vec<ScriptCount>,
    /// How many different scripts, listed or not.
    pub distinct_scripts: u64,
    /// Most first; a message to two domains counts for both.
    pub domains: Vec<DomainCount>,
    pub distinct_domains: u64,
}

/// `release ACCOUNT FILTER`: the matching held mail released for delivery.
#[derive(Debug, Clone, Serialize)]
pub struct HeldReleaseDoc {
    pub account: String,
    /// The account's state, unchanged.
    pub state: State,
    pub filter: FilterDoc,
    pub released: u64,
    /// Held messages left.
    pub held: u64,
    pub actor: String,
}

/// `purge ACCOUNT FILTER`: the matching held mail dropped.
#[derive(Debug, Clone, Serialize)]
pub struct HeldPurgeDoc {
    pub account: String,
    /// The account's state, unchanged.
    pub state: State,
    pub filter: FilterDoc,
    pub dropped: u64,
    /// Held messages left.
    pub held: u64,
    pub actor: String,
    pub note: String,
}

/// Build a filter from what an admin typed: a script as recorded or
/// without its `UID:` prefix; a domain with or without a leading `@`, any
/// case; ages.
pub fn held_filter(
    script: Option<&str>,
    domain: Option<&str>,
    older_than: Option<Duration>,
    newer_than: Option<Duration>,
) -> Result<HeldFilter> {
    let usage = |what: &str, v: &str| {
        ControlError::Usage(format!("{what} {}: not usable as a filter", log::quote(v)))
    };
    let script = match script.map(str::trim) {
        Some(s) if s.is_empty() || s.chars().count() > 200 || s.chars().any(char::is_control) => {
            return Err(usage("--script", s));
        }
        s => s.map(str::to_string),
    };
    let domain = match domain.map(|d| d.trim().trim_start_matches('@')) {
        Some(d)
            if d.is_empty()
                || d.len() > 255
                || d.contains('@')
                || d.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(usage("--domain", d));
        }
        d => d.map(str::to_ascii_lowercase),
    };
    Ok(HeldFilter {
        script,
        domain,
        older_than: older_than.map(crate::store::ms),
        newer_than: newer_than.map(crate::store::ms),
    })
}

/// The first `limit` entries of a ranked count, as documents.
fn top<T>(counts: Vec<(String, u64)>, limit: usize, doc: fn(String, u64) -> T) -> Vec<T> {
    counts
        .into_iter()
        .take(limit)
        .map(|(key, n)| doc(key, n))
        .collect()
}

/// ` script="…" domain=… older_than=…s newer_than=…s` for a log line.
fn filter_fields(f: &HeldFilter) -> String {
    let mut s = String::new();
    if let Some(script) = &f.script {
        s.push_str(&format!(" script={}", log::quote(script)));
    }
    if let Some(d) = &f.domain {
        s.push_str(&format!(" domain={}", log::quote(d)));
    }
    if let Some(ms) = f.older_than {
        s.push_str(&format!(" older_than={}s", ms / 1000));
    }
    if let Some(ms) = f.newer_than {
        s.push_str(&format!(" newer_than={}s", ms / 1000));
    }
    s
}

impl Control {
    /// Log a partial release or purge: `account=… released=N held=LEFT`
    /// (or `dropped=`), the filter, the actor (docs/mailq-ctl.md, "Logging").
    fn log_moved(&self, m: &HeldMoved, what: &str, filter: &HeldFilter, extra: &str) {
        log::log(
            Level::Info,
            &format!(
                "account={} {what}={} held={}{} actor={}{extra}",
                sanitize::line(&m.account.name),
                m.moved,
                m.left,
                filter_fields(filter),
                log::quote(&self.actor)
            ),
        );
    }

    /// `held ACCOUNT`: what it holds (the part `filter` matches), with at
    /// most `limit` scripts and `limit` domains listed.
    pub fn held(&self, name: &str, filter: &HeldFilter, limit: usize, now: i64) -> Result<HeldDoc> {
        let s = self.authority.held(name, filter, now)?;
        let hold_ms = crate::store::ms(self.cfg.hold_max_age);
        let oldest_age = s.oldest.map(|t| (now - t).max(0));
        Ok(HeldDoc {
            account: s.account.name,
            state: s.account.state,
            sends: s.account.state.is_sending(),
            filter: filter.into(),
            held: s.held,
            oldest: s.oldest.map(Time),
            oldest_age_s: oldest_age.map(|ms| ms / 1000),
            expires_in_s: oldest_age.map(|age| (hold_ms - age).max(0) / 1000),
            newest: s.newest.map(Time),
            distinct_scripts: s.scripts.len() as u64,
            scripts: top(s.scripts, limit, |script, held| ScriptCount {
                script,
                held,
            }),
            distinct_domains: s.domains.len() as u64,
            domains: top(s.domains, limit, |domain, held| DomainCount {
                domain,
                held,
            }),
        })
    }

    /// `release ACCOUNT FILTER`: the held messages `filter` matches go out
    /// now, although the account stays as it is (blocked); like `release
    /// QID`, a later block holds them again. None matching is 0, not an
    /// error.
    pub fn release_held(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        now: i64,
    ) -> Result<HeldReleaseDoc> {
        let r = self.authority.release_held(name, filter, now)?;
        self.log_moved(&r, "released", filter, "");
        if r.moved > 0 {
            self.wake_relay();
        }
        Ok(HeldReleaseDoc {
            account: r.account.name,
            state: r.account.state,
            filter: filter.into(),
            released: r.moved,
            held: r.left,
            actor: self.actor.clone(),
        })
    }

    /// `purge ACCOUNT FILTER`: drop only the held messages `filter`
    /// matches; the account's state and its other mail stay. The caller
    /// has had it confirmed.
    pub fn purge_held(
        &mut self,
        name: &str,
        filter: &HeldFilter,
        note: Option<&str>,
        now: i64,
    ) -> Result<HeldPurgeDoc> {
        let note = check_note(note)?;
        let p = self.authority.purge_held(name, filter, now)?;
        self.log_moved(&p, "dropped", filter, &note_field(&note));
        Ok(HeldPurgeDoc {
            account: p.account.name,
            state: p.account.state,
            filter: filter.into(),
            dropped: p.moved,
            held: p.left,
            actor: self.actor.clone(),
            note,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_normalised_and_checked() {
        let f = held_filter(
            Some(" 1001:contact.php "),
            Some("@Example.ORG"),
            Some(Duration::from_secs(7200)),
            None,
        )
        .unwrap();
        assert_eq!(f.script.as_deref(), Some("1001:contact.php"));
        assert_eq!(f.domain.as_deref(), Some("example.org"));
        assert_eq!((f.older_than, f.newer_than), (Some(7_200_000), None));
        let doc = FilterDoc::from(&f);
        assert_eq!(doc.older_than_s, Some(7200));
        assert!(held_filter(None, None, None, None).unwrap().is_empty());
        for (script, domain) in [
            (Some(""), None),
            (Some("a\nb"), None),
            (None, Some("")),
            (None, Some("@")),
            (None, Some("a@b.example")),
            (None, Some("exa mple.org")),
        ] {
            assert!(
                matches!(
                    held_filter(script, domain, None, None),
                    Err(ControlError::Usage(_))
                ),
                "{script:?} {domain:?}"
            );
        }
    }
}
