//! How an account's settings read for people: `accounts` (every account
//! with its settings) and `set`.

use super::view::{self, Align, Cell, Table};
use crate::account::AppliedLimit;
use crate::control::{AccountsDoc, SetDoc};
use crate::sanitize;

/// A limit as a phrase: `500/day`, `unlimited/hour (node default)`.
pub(super) fn limit_text(l: AppliedLimit, unit: &str) -> String {
    let v = if l.max == 0 {
        format!("unlimited/{unit}")
    } else {
        format!("{}/{unit}", l.max)
    };
    if l.node_default {
        format!("{v} (node default)")
    } else {
        v
    }
}

/// `accounts`.
pub fn accounts(d: &AccountsDoc, color: bool) -> String {
    let mut t = Table::new(&[
        ("ACCOUNT", Align::Left),
        ("STATE", Align::Left),
        ("REPORT TO", Align::Left),
        ("MAX/DAY", Align::Right),
        ("MAX/HOUR", Align::Right),
        ("FIRST SEEN", Align::Left),
    ]);
    let lim = |l: AppliedLimit| {
        let v = if l.max == 0 {
            "-".to_string()
        } else {
            l.max.to_string()
        };
        if l.node_default { format!("{v}*") } else { v }
    };
    for a in &d.accounts {
        let limits = a.limits.limits();
        t.row(vec![
            Cell::untrusted(&a.account),
            view::state_cell(a.state),
            Cell::untrusted(a.report_to.as_deref().unwrap_or("-")),
            lim(limits.per_day).into(),
            lim(limits.per_hour).into(),
            a.first_seen.into(),
        ]);
    }
    if t.is_empty() {
        "no accounts yet\n".to_string()
    } else {
        t.render(color) + "(* node default; - unlimited)\n"
    }
}

/// `set ACCOUNT ...`.
pub fn set(d: &SetDoc) -> String {
    let a = &d.account;
    let limits = a.limits.limits();
    format!(
        "{}{}: report to {}; {}, {}\n",
        sanitize::terminal(&a.account),
        if d.created { " (new account)" } else { "" },
        sanitize::terminal(a.report_to.as_deref().unwrap_or("nobody")),
        limit_text(limits.per_day, "day"),
        limit_text(limits.per_hour, "hour")
    )
}
