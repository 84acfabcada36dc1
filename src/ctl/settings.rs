//! An account's settings: `set` (report recipient, limits; it creates the
//! account) and `accounts` (every account with its settings).

use serde::Serialize;

use super::view::{self, Align, Cell, Table};
use super::{CtlError, Ctx, Result, check_account_name, resolvable};
use crate::account::{AppliedLimit, Limits};
use crate::address;
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::{Account, Limit, Settings};

/// The limits that apply to an account: its own, else the node's.
pub(super) fn limits(ctx: &Ctx, a: &Account) -> Limits {
    a.limits(ctx.cfg.enqueue_policy())
}

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

#[derive(Serialize)]
struct AccountJson<'a> {
    account: &'a str,
    state: &'static str,
    sends: bool,
    reason: &'a str,
    since: String,
    report_to: Option<&'a str>,
    max_per_day: u64,
    max_per_day_default: bool,
    max_per_hour: u64,
    max_per_hour_default: bool,
    first_seen: String,
}

fn account_json<'a>(ctx: &Ctx, a: &'a Account) -> AccountJson<'a> {
    let limits = limits(ctx, a);
    AccountJson {
        account: &a.name,
        state: a.state.as_str(),
        sends: a.state.is_sending(),
        reason: &a.reason,
        since: view::time(a.since),
        report_to: a.report_to.as_deref(),
        max_per_day: limits.per_day.max,
        max_per_day_default: limits.per_day.node_default,
        max_per_hour: limits.per_hour.max,
        max_per_hour_default: limits.per_hour.node_default,
        first_seen: view::time(a.first_seen),
    }
}

#[derive(Serialize)]
struct AccountsJson<'a> {
    accounts: Vec<AccountJson<'a>>,
}

/// `accounts`: every account with its settings.
pub fn list(ctx: &Ctx) -> Result<()> {
    let all = ctx.store.accounts()?;
    let json = AccountsJson {
        accounts: all.iter().map(|a| account_json(ctx, a)).collect(),
    };
    ctx.output(&json, || {
        let mut t = Table::new(&[
            ("ACCOUNT", Align::Left),
            ("STATE", Align::Left),
            ("REPORT TO", Align::Left),
            ("MAX/DAY", Align::Right),
            ("MAX/HOUR", Align::Right),
            ("FIRST SEEN", Align::Left),
        ]);
        for a in &all {
            let limits = limits(ctx, a);
            let lim = |l: AppliedLimit| {
                let v = if l.max == 0 {
                    "-".to_string()
                } else {
                    l.max.to_string()
                };
                if l.node_default { format!("{v}*") } else { v }
            };
            t.row(vec![
                Cell::untrusted(&a.name),
                Cell::colored(a.state.as_str(), Some(view::state_color(a.state))),
                Cell::untrusted(a.report_to.as_deref().unwrap_or("-")),
                lim(limits.per_day).into(),
                lim(limits.per_hour).into(),
                view::time(a.first_seen).into(),
            ]);
        }
        if t.is_empty() {
            "no accounts yet\n".to_string()
        } else {
            t.render(ctx.color) + "(* node default; - unlimited)\n"
        }
    })
}

#[derive(Serialize)]
struct SetJson<'a> {
    created: bool,
    #[serde(flatten)]
    account: AccountJson<'a>,
}

/// `set ACCOUNT ...`: report recipient and limits; creates the account.
#[allow(clippy::too_many_arguments)]
pub fn set(
    ctx: &mut Ctx,
    name: &str,
    report_to: Option<&str>,
    no_report: bool,
    max_per_day: Option<Limit>,
    max_per_hour: Option<Limit>,
    now: i64,
) -> Result<()> {
    if report_to.is_none() && !no_report && max_per_day.is_none() && max_per_hour.is_none() {
        return Err(CtlError::Usage(
            "set: say what to set: --report-to ADDR, --no-report, --max-per-day N, --max-per-hour N"
                .into(),
        ));
    }
    check_account_name(name)?;
    if !resolvable(ctx, name) {
        // Only an account that exists already (one that sent mail, or was
        // configured while it resolved) may be changed by its name alone.
        ctx.store.account(name)?;
    }
    let report_to = match (report_to, no_report) {
        (Some(addr), _) => Some(Some(check_address(addr)?)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let settings = Settings {
        report_to,
        max_per_day,
        max_per_hour,
    };
    let (a, created) = ctx.store.configure(name, &settings, now)?;
    let limits = limits(ctx, &a);
    log::log(
        Level::Info,
        &format!(
            "account={} settings changed actor={} report_to=<{}> max_per_day={} max_per_hour={}{}",
            sanitize::line(&a.name),
            log::quote(&ctx.actor),
            sanitize::line(a.report_to.as_deref().unwrap_or("")),
            limits.per_day.max,
            limits.per_hour.max,
            if created { " created=yes" } else { "" }
        ),
    );
    let json = SetJson {
        created,
        account: account_json(ctx, &a),
    };
    ctx.output(&json, || {
        format!(
            "{}{}: report to {}; {}, {}\n",
            sanitize::terminal(&a.name),
            if created { " (new account)" } else { "" },
            sanitize::terminal(a.report_to.as_deref().unwrap_or("nobody")),
            limit_text(limits.per_day, "day"),
            limit_text(limits.per_hour, "hour")
        )
    })
}

/// A report recipient from `--report-to`: one address (a display name and
/// angle brackets are allowed and dropped) that the report sender accepts —
/// the same rule, `report::valid_recipient`, so what `set` accepts always
/// gets its reports.
pub(crate) fn check_address(addr: &str) -> Result<String> {
    let bad = || {
        CtlError::Usage(format!(
            "not a valid report recipient: {} (one plain local@domain address)",
            log::quote(addr)
        ))
    };
    // Control characters are refused outright: the RFC 5322 parser would
    // read "a@b\r\nBcc: c@d" as a folded group and keep only c@d.
    if addr.chars().any(char::is_control) {
        return Err(bad());
    }
    let list = address::parse_list(addr).map_err(|_| bad())?;
    match list.as_slice() {
        [one] if crate::report::valid_recipient(one) => Ok(one.clone()),
        _ => Err(bad()),
    }
}
