//! How an account's held mail reads for people: `held` (counts, the
//! oldest, by script and by recipient domain) and what a partial
//! `release` or `purge` did.

use super::view::{self, Align, Cell, Table};
use crate::account::State;
use crate::control::{FilterDoc, HeldDoc, HeldPurgeDoc, HeldReleaseDoc};
use crate::sanitize;

/// The filter as a phrase: `script contact.php, domain example.org,
/// older than 2h00m`, or `all held mail`.
pub fn filter_text(f: &FilterDoc) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &f.script {
        parts.push(format!("script {}", sanitize::terminal(s)));
    }
    if let Some(d) = &f.domain {
        parts.push(format!("domain {}", sanitize::terminal(d)));
    }
    if let Some(s) = f.older_than_s {
        parts.push(format!("older than {}", view::age(s * 1000)));
    }
    if let Some(s) = f.newer_than_s {
        parts.push(format!("newer than {}", view::age(s * 1000)));
    }
    if parts.is_empty() {
        "all held mail".to_string()
    } else {
        parts.join(", ")
    }
}

/// `held ACCOUNT`.
pub fn summary(d: &HeldDoc) -> String {
    let mut s = format!(
        "{}: {} held message(s) ({}); the account is {}\n",
        sanitize::terminal(&d.account),
        d.held,
        filter_text(&d.filter),
        d.state
    );
    if let (Some(oldest), Some(age), Some(left)) = (d.oldest, d.oldest_age_s, d.expires_in_s) {
        s.push_str(&format!(
            "oldest {oldest} ({} old, expires in {})\n",
            view::age(age * 1000),
            view::age(left * 1000)
        ));
    }
    if d.held == 0 {
        return s;
    }
    let counts = |title: &'static str, rows: Vec<(&str, u64)>, distinct: u64| {
        let mut t = Table::new(&[(title, Align::Left), ("HELD", Align::Right)]);
        for (name, n) in &rows {
            t.row(vec![
                Cell::untrusted(if name.is_empty() { "-" } else { name }),
                (*n).into(),
            ]);
        }
        let mut out = t.render(false);
        if distinct > rows.len() as u64 {
            out.push_str(&format!("(and {} more)\n", distinct - rows.len() as u64));
        }
        out
    };
    s.push('\n');
    s.push_str(&counts(
        "SCRIPT",
        d.scripts
            .iter()
            .map(|c| (c.script.as_str(), c.held))
            .collect(),
        d.distinct_scripts,
    ));
    s.push('\n');
    s.push_str(&counts(
        "RECIPIENT DOMAIN",
        d.domains
            .iter()
            .map(|c| (c.domain.as_str(), c.held))
            .collect(),
        d.distinct_domains,
    ));
    s
}

/// `release ACCOUNT FILTER`.
pub fn released(d: &HeldReleaseDoc) -> String {
    let done = format!("released {} held message(s)", d.released);
    moved(
        &d.account,
        &done,
        &d.filter,
        " for delivery",
        d.held,
        d.state,
    )
}

/// `purge ACCOUNT FILTER`.
pub fn purged(d: &HeldPurgeDoc) -> String {
    let done = format!("dropped {} held message(s)", d.dropped);
    moved(&d.account, &done, &d.filter, "", d.held, d.state)
}

/// `ACCOUNT: DONE (FILTER)AFTER; N still held, the account stays STATE`.
fn moved(account: &str, done: &str, f: &FilterDoc, after: &str, held: u64, state: State) -> String {
    format!(
        "{}: {done} ({}){after}; {held} still held, the account stays {state}\n",
        sanitize::terminal(account),
        filter_text(f),
    )
}
