//! Accounts as they are now: `status` of one account or all of them,
//! `accounts` (every account with its settings) and `set` (report
//! recipient and limits; it creates the account).

use serde::Serialize;

use super::values::{Day, Time};
use super::{Control, ControlError, Result, check_account_name, check_address};
use crate::account::{AppliedLimit, Limits, State};
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::{Account, AccountStatus, DayCounts, Limit, QueueCounts, Settings};

/// An account's not-yet-done mail, by state.
#[derive(Debug, Clone, Serialize)]
pub struct QueueDoc {
    pub held: i64,
    pub queued: i64,
    pub deferred: i64,
    pub sending: i64,
}

impl From<&QueueCounts> for QueueDoc {
    fn from(q: &QueueCounts) -> QueueDoc {
        QueueDoc {
            held: q.held,
            queued: q.queued,
            deferred: q.deferred,
            sending: q.sending,
        }
    }
}

/// One UTC day of an account's counters.
#[derive(Debug, Clone, Serialize)]
pub struct DayDoc {
    pub day: Day,
    pub submitted: i64,
    pub sent: i64,
    pub errors: i64,
    pub held: i64,
    pub expired: i64,
}

impl From<&DayCounts> for DayDoc {
    fn from(d: &DayCounts) -> DayDoc {
        DayDoc {
            day: Day(d.day),
            submitted: d.submitted,
            sent: d.sent,
            errors: d.errors,
            held: d.held,
            expired: d.expired,
        }
    }
}

/// The limits in force, as four keys (0 = unlimited; `*_default` when the
/// node's `[limits]` apply).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LimitsDoc {
    pub max_per_day: u64,
    pub max_per_day_default: bool,
    pub max_per_hour: u64,
    pub max_per_hour_default: bool,
}

impl From<Limits> for LimitsDoc {
    fn from(l: Limits) -> LimitsDoc {
        LimitsDoc {
            max_per_day: l.per_day.max,
            max_per_day_default: l.per_day.node_default,
            max_per_hour: l.per_hour.max,
            max_per_hour_default: l.per_hour.node_default,
        }
    }
}

impl LimitsDoc {
    pub fn limits(&self) -> Limits {
        Limits {
            per_day: AppliedLimit {
                max: self.max_per_day,
                node_default: self.max_per_day_default,
            },
            per_hour: AppliedLimit {
                max: self.max_per_hour,
                node_default: self.max_per_hour_default,
            },
        }
    }
}

/// `status ACCOUNT`: the state (why, since when, by whom), settings,
/// counters and the queue.
#[derive(Debug, Clone, Serialize)]
pub struct StatusDoc {
    pub account: String,
    pub state: State,
    pub sends: bool,
    pub reason: String,
    pub since: Time,
    /// The actor and the note of the newest state change.
    pub changed_by: Option<String>,
    pub note: Option<String>,
    pub report_to: Option<String>,
    #[serde(flatten)]
    pub limits: LimitsDoc,
    pub sent_total: i64,
    pub sent_today: i64,
    pub error_total: i64,
    pub today: DayDoc,
    pub queue: QueueDoc,
    pub oldest_held: Option<Time>,
    pub oldest_held_age_s: Option<i64>,
    /// Until the sweep expires the oldest held message.
    pub expires_in_s: Option<i64>,
    pub first_seen: Time,
    /// Cluster mode: the nodes that have not yet carried out the account's
    /// latest change (a block, a purge); empty on a node alone.
    pub pending_nodes: Vec<String>,
}

/// One line of `status` without an account.
#[derive(Debug, Clone, Serialize)]
pub struct OverviewRow {
    pub account: String,
    pub state: State,
    pub sends: bool,
    pub reason: String,
    pub since: Time,
    pub sent_total: i64,
    pub sent_today: i64,
    pub error_total: i64,
    pub queue: QueueDoc,
    pub oldest_held: Option<Time>,
}

/// `status` without an account.
#[derive(Debug, Clone, Serialize)]
pub struct OverviewDoc {
    pub accounts: Vec<OverviewRow>,
}

/// How `status` orders every account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// By account name.
    Name,
    /// Blocked accounts first.
    State,
    /// Most sent first (total).
    Sent,
    /// Most held first.
    Held,
    /// Most mails in error first (total).
    Errors,
}

impl SortKey {
    pub const ALL: [SortKey; 5] = [
        SortKey::Name,
        SortKey::State,
        SortKey::Sent,
        SortKey::Held,
        SortKey::Errors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::State => "state",
            SortKey::Sent => "sent",
            SortKey::Held => "held",
            SortKey::Errors => "errors",
        }
    }
}

/// An account with its settings (`accounts`, `set`).
#[derive(Debug, Clone, Serialize)]
pub struct AccountDoc {
    pub account: String,
    pub state: State,
    pub sends: bool,
    pub reason: String,
    pub since: Time,
    pub report_to: Option<String>,
    #[serde(flatten)]
    pub limits: LimitsDoc,
    pub first_seen: Time,
}

/// `accounts`.
#[derive(Debug, Clone, Serialize)]
pub struct AccountsDoc {
    pub accounts: Vec<AccountDoc>,
}

/// `set`: the account as it is now, and whether `set` created it.
#[derive(Debug, Clone, Serialize)]
pub struct SetDoc {
    pub created: bool,
    #[serde(flatten)]
    pub account: AccountDoc,
}

/// What `set` changes; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange<'a> {
    /// `Some(None)`: no report recipient any more.
    pub report_to: Option<Option<&'a str>>,
    pub max_per_day: Option<Limit>,
    pub max_per_hour: Option<Limit>,
}

impl Control {
    /// The limits that apply to an account: its own, else the node's.
    fn limits(&self, a: &Account) -> LimitsDoc {
        a.limits(crate::store::EnqueuePolicy::from(&self.cfg))
            .into()
    }

    fn account_doc(&self, a: &Account) -> AccountDoc {
        AccountDoc {
            account: a.name.clone(),
            state: a.state,
            sends: a.state.is_sending(),
            reason: a.reason.clone(),
            since: Time(a.since),
            report_to: a.report_to.clone(),
            limits: self.limits(a),
            first_seen: Time(a.first_seen),
        }
    }

    /// `status ACCOUNT`; a name the node resolves but that has no row yet
    /// is a fresh `ok` account (nothing is written).
    pub fn status(&self, name: &str, now: i64) -> Result<StatusDoc> {
        let s = match self.authority.account_status(name, now) {
            Err(e) if e.is_no_account() && self.resolvable(name) => unseen(name, now),
            other => other?,
        };
        let a = &s.account;
        let hold_ms = crate::store::ms(self.cfg.hold_max_age);
        let oldest_age = s.queue.oldest_held.map(|t| (now - t).max(0));
        let expires_in = oldest_age.map(|age| (hold_ms - age).max(0));
        Ok(StatusDoc {
            account: a.name.clone(),
            state: a.state,
            sends: a.state.is_sending(),
            reason: a.reason.clone(),
            since: Time(a.since),
            changed_by: s.last_event.as_ref().map(|e| e.actor.clone()),
            note: s
                .last_event
                .as_ref()
                .map(|e| e.note.clone())
                .filter(|n| !n.is_empty()),
            report_to: a.report_to.clone(),
            limits: self.limits(a),
            sent_total: a.sent_total,
            sent_today: s.today.sent,
            error_total: a.error_total,
            today: (&s.today).into(),
            queue: (&s.queue).into(),
            oldest_held: s.queue.oldest_held.map(Time),
            oldest_held_age_s: oldest_age.map(|ms| ms / 1000),
            expires_in_s: expires_in.map(|ms| ms / 1000),
            first_seen: Time(a.first_seen),
            pending_nodes: s.pending_nodes.clone(),
        })
    }

    /// The account's not-yet-done mail by state (what a purge would
    /// drop); unlike `status`, the account must have a row.
    pub fn queue_counts(&self, name: &str, now: i64) -> Result<QueueDoc> {
        Ok((&self.authority.account_status(name, now)?.queue).into())
    }

    /// `status` of every account, in `sort` order (ties by name).
    pub fn overview(&self, sort: SortKey, now: i64) -> Result<OverviewDoc> {
        let mut rows = self.authority.overview(now)?;
        match sort {
            SortKey::Name => {}
            SortKey::State => rows.sort_by_key(|o| o.account.state.is_sending()),
            SortKey::Sent => rows.sort_by_key(|o| std::cmp::Reverse(o.account.sent_total)),
            SortKey::Held => rows.sort_by_key(|o| std::cmp::Reverse(o.queue.held)),
            SortKey::Errors => rows.sort_by_key(|o| std::cmp::Reverse(o.account.error_total)),
        }
        let accounts = rows
            .into_iter()
            .map(|o| OverviewRow {
                sends: o.account.state.is_sending(),
                state: o.account.state,
                since: Time(o.account.since),
                sent_total: o.account.sent_total,
                error_total: o.account.error_total,
                sent_today: o.sent_today,
                queue: (&o.queue).into(),
                oldest_held: o.queue.oldest_held.map(Time),
                account: o.account.name,
                reason: o.account.reason,
            })
            .collect();
        Ok(OverviewDoc { accounts })
    }

    /// `accounts`: every account with its settings, by name.
    pub fn accounts(&self) -> Result<AccountsDoc> {
        let all = self.authority.accounts()?;
        Ok(AccountsDoc {
            accounts: all.iter().map(|a| self.account_doc(a)).collect(),
        })
    }

    /// `set ACCOUNT ...`: report recipient and limits; creates the account
    /// when the name resolves (see "Accounts before their first mail").
    pub fn set(&mut self, name: &str, change: &SettingsChange<'_>, now: i64) -> Result<SetDoc> {
        if change.report_to.is_none()
            && change.max_per_day.is_none()
            && change.max_per_hour.is_none()
        {
            return Err(ControlError::Usage(
                "set: say what to set: --report-to ADDR, --no-report, --max-per-day N, --max-per-hour N"
                    .into(),
            ));
        }
        check_account_name(name)?;
        if !self.resolvable(name) {
            // Only an account that exists already (one that sent mail, or was
            // configured while it resolved) may be changed by its name alone.
            self.authority.account(name)?;
        }
        let report_to = match change.report_to {
            Some(Some(addr)) => Some(Some(check_address(addr)?)),
            Some(None) => Some(None),
            None => None,
        };
        let settings = Settings {
            report_to,
            max_per_day: change.max_per_day,
            max_per_hour: change.max_per_hour,
        };
        let (a, created) = self.authority.configure(name, &settings, now)?;
        let doc = SetDoc {
            created,
            account: self.account_doc(&a),
        };
        log::log(
            Level::Info,
            &format!(
                "account={} settings changed actor={} report_to=<{}> max_per_day={} max_per_hour={}{}",
                sanitize::line(&a.name),
                log::quote(&self.actor),
                sanitize::line(a.report_to.as_deref().unwrap_or("")),
                doc.account.limits.max_per_day,
                doc.account.limits.max_per_hour,
                if created { " created=yes" } else { "" }
            ),
        );
        Ok(doc)
    }
}

/// What `status` shows of a resolvable account with no row yet: `ok`,
/// nothing sent, nothing queued; "since" and "first seen" are now.
fn unseen(name: &str, now: i64) -> AccountStatus {
    AccountStatus {
        account: Account {
            id: 0,
            name: name.to_string(),
            state: State::Ok,
            reason: String::new(),
            since: now,
            report_to: None,
            max_per_day: None,
            max_per_hour: None,
            sent_total: 0,
            error_total: 0,
            first_seen: now,
        },
        today: DayCounts {
            day: crate::clock::day_of(now),
            ..DayCounts::default()
        },
        queue: QueueCounts::default(),
        last_event: None,
        pending_nodes: Vec::new(),
    }
}
