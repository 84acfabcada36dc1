//! The control panel's own API, same paths and field names (docs/api.md,
//! "The control panel's API"), so a panel written for it only changes its base URL and
//! credentials:
//! - `GET /hosting/web/{account}/email` → `{state, email, sent,
//!   sentToday, bounce, maxPerDay}`; `PUT` with `{"email": ADDR}` sets the
//!   error-report recipient;
//! - `POST …/email/request` with `{"action": "BLOCK"|"UNBLOCK"|"PURGE"}` →
//!   a task id (a JSON string); `GET /v1/tasks/{id}` shows the task;
//! - `GET …/email/bounces?limit=N` → `[{date, to, message}]`, the mails in
//!   error, newest first;
//! - `GET …/email/volumes` → `[{date, volume}]`, mail sent per UTC day,
//!   oldest first.
//!
//! A task is carried out before the answer (block and unblock are one
//! transaction; a purge drops 100,000 messages in about two seconds), so
//! its status is always `done`; an action the state rules refuse is a 409
//! and no task. Tasks are kept in memory, the newest [`MAX_TASKS`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::Ctx;
use super::auth::lock;
use super::http::{ApiError, Req, Resp};
use super::routes::Params;
use crate::account::{BlockReason, State};
use crate::control::{Control, ControlError, DayTotals, ErrorsDoc, SettingsChange, StatsDoc, Time};
use crate::store::StoreError;

/// Tasks remembered.
pub const MAX_TASKS: usize = 10_000;

/// `GET /hosting/web/{account}/email`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailDoc {
    pub state: State,
    /// The error-report recipient.
    pub email: Option<String>,
    pub sent: i64,
    pub sent_today: i64,
    /// The mails in error, in all.
    pub bounce: i64,
    /// 0: unlimited.
    pub max_per_day: u64,
}

/// One mail in error.
#[derive(Debug, Serialize)]
pub struct BounceDoc {
    pub date: Time,
    pub to: String,
    pub message: String,
}

/// Mail sent on one UTC day (`date` its first instant).
#[derive(Debug, Serialize)]
pub struct VolumeDoc {
    pub date: Time,
    pub volume: i64,
}

/// The control panel's actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Block,
    Unblock,
    Purge,
}

/// A task: an action carried out, and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct TaskDoc {
    pub id: String,
    pub account: String,
    pub action: Action,
    /// Always `done`: the action is carried out before the answer.
    pub status: &'static str,
    pub created: Time,
    pub done: Time,
    pub actor: String,
    /// The document of the change (`block`, `unblock` or `purge`).
    pub result: serde_json::Value,
}

/// The newest tasks.
#[derive(Default)]
pub struct Tasks {
    list: VecDeque<TaskDoc>,
}

impl Tasks {
    fn push(&mut self, t: TaskDoc) {
        if self.list.len() >= MAX_TASKS {
            self.list.pop_front();
        }
        self.list.push_back(t);
    }

    fn get(&self, id: &str) -> Option<&TaskDoc> {
        self.list.iter().find(|t| t.id == id)
    }
}

fn email_doc(ctx: &Ctx<'_>, account: &str) -> Result<EmailDoc, ApiError> {
    let s = ctx.control.status(account, ctx.now)?;
    Ok(EmailDoc {
        state: s.state,
        email: s.report_to,
        sent: s.sent_total,
        sent_today: s.sent_today,
        bounce: s.error_total,
        max_per_day: s.limits.max_per_day,
    })
}

pub fn get_email(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    Ok(Resp::json(&email_doc(ctx, account)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    /// `null` removes the recipient (no report).
    email: Option<String>,
}

pub fn put_email(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: EmailBody = req.json()?;
    let change = SettingsChange {
        report_to: Some(body.email.as_deref()),
        ..SettingsChange::default()
    };
    ctx.control.set(account, &change, ctx.now)?;
    Ok(Resp::json(&email_doc(ctx, account)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    action: String,
}

pub fn request(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: RequestBody = req.json()?;
    let action = match body.action.as_str() {
        "BLOCK" => Action::Block,
        "UNBLOCK" => Action::Unblock,
        "PURGE" => Action::Purge,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown action {:?}: one of BLOCK, UNBLOCK, PURGE",
                crate::sanitize::truncate(other, 40)
            )));
        }
    };
    let created = ctx.now;
    let result = match action {
        Action::Block => {
            to_value(
                &ctx.control
                    .block(account, BlockReason::Manual, None, ctx.now)?,
            )
        }
        Action::Unblock => to_value(&ctx.control.unblock(account, false, None, ctx.now)?),
        Action::Purge => to_value(&ctx.control.purge(account, None, ctx.now)?),
    };
    let id = super::sessions::random_id()
        .map_err(|e| ApiError::new(500, format!("no random source: {e}")))?
        .split_off(48);
    let task = TaskDoc {
        id: id.clone(),
        account: account.to_string(),
        action,
        status: "done",
        created: Time(created),
        done: Time(crate::clock::now_ms()),
        actor: ctx.control.actor().to_string(),
        result,
    };
    lock(&ctx.shared.tasks).push(task);
    Ok(Resp::json(&id))
}

/// Run a read that needs the account's row; for an account the node
/// resolves but that has none yet (it has sent nothing: `status` shows it
/// fresh), the read's document for an account with no activity.
pub fn seen<T>(
    ctx: &mut Ctx<'_>,
    account: &str,
    read: impl FnOnce(&Control) -> crate::control::Result<T>,
    empty: impl FnOnce() -> T,
) -> Result<T, ApiError> {
    match read(ctx.control) {
        Err(ControlError::Store(StoreError::NoAccount(_)))
            if ctx.control.status(account, ctx.now).is_ok() =>
        {
            Ok(empty())
        }
        other => Ok(other?),
    }
}

/// The mails in error of an account that has sent nothing.
pub fn no_errors(account: &str) -> ErrorsDoc {
    ErrorsDoc {
        account: account.to_string(),
        errors: Vec::new(),
    }
}

/// The counters of an account that has sent nothing.
pub fn no_stats(account: &str) -> StatsDoc {
    StatsDoc {
        account: account.to_string(),
        days: Vec::new(),
        total: DayTotals::default(),
    }
}

fn to_value<T: Serialize>(doc: &T) -> serde_json::Value {
    serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
}

/// `GET /v1/tasks/{id}`: a task of an account the caller sees.
pub fn task(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    let who = ctx.who()?;
    let id = p.get("id");
    let tasks = lock(&ctx.shared.tasks);
    match tasks.get(id) {
        Some(t) if who.scope.sees(&t.account) => Ok(Resp::json(t)),
        _ => Err(ApiError::new(404, format!("no such task: {id}"))),
    }
}

pub fn bounces(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let limit = req.number("limit", 50, 1..=1000)?;
    let doc = seen(
        ctx,
        account,
        |c| c.errors(account, limit),
        || no_errors(account),
    )?;
    let list: Vec<BounceDoc> = doc
        .errors
        .into_iter()
        .map(|e| BounceDoc {
            date: e.at,
            to: e.recipient,
            message: e.answer,
        })
        .collect();
    Ok(Resp::json(&list))
}

pub fn volumes(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let days = req.number("days", 30, 1..=3660)?;
    let now = ctx.now;
    let doc = seen(
        ctx,
        account,
        |c| c.stats(account, days, now),
        || no_stats(account),
    )?;
    let list: Vec<VolumeDoc> = doc
        .days
        .iter()
        .map(|d| VolumeDoc {
            date: Time(d.day.0 * crate::clock::DAY_MS),
            volume: d.sent,
        })
        .collect();
    Ok(Resp::json(&list))
}
