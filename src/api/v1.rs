//! The native API, `/v1/...` (docs/api.md, "The native API"): every
//! document `mailq-ctl --json` prints, from the same [`Control`] call, so
//! the JSON is identical — status, accounts, block, unblock, purge (all or
//! the held mail a filter matches), held, release, stats, errors,
//! history, test, queue, show, release and delete of one message, flush,
//! sweep, report, metrics — plus the node's gauges and the OpenAPI
//! document.
//!
//! An account token acts on its own account only: another account, or a
//! message of another account, is "not found", exactly as if it did not
//! exist. What would let an account escape its own block or limits —
//! setting limits, a block reason other than `manual`, `unblock` with
//! `force`, releasing held mail — and what spans the node (the account
//! list, sweep, report, metrics) needs an admin token (403).

use std::time::Duration;

use serde::Deserialize;

use super::Ctx;
use super::http::{ApiError, Req, Resp};
use super::routes::Params;
use crate::account::BlockReason;
use crate::control::{self, HeldFilter, SettingsChange, SortKey};
use crate::queue::MessageState;
use crate::store::Limit;

/// The longest `flush` or `test` waits for the outcome (a worker waits).
const MAX_WAIT_S: u32 = 60;

pub fn openapi(_: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    Ok(Resp::text(
        200,
        "application/json",
        super::openapi::document(),
    ))
}

pub fn accounts(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    ctx.who()?.admin("the account list")?;
    let search = req.param("search").unwrap_or("").to_lowercase();
    let limit = req.number("limit", 100_000, 1..=100_000)? as usize;
    let mut doc = ctx.control.accounts()?;
    doc.accounts
        .retain(|a| a.account.to_lowercase().contains(&search));
    doc.accounts.truncate(limit);
    Ok(Resp::json(&doc))
}

pub fn overview(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    ctx.who()?.admin("the status of every account")?;
    let sort = match req.param("sort") {
        None => SortKey::Name,
        Some(s) => SortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "sort: {s:?} is not one of name, state, sent, held, errors"
                ))
            })?,
    };
    Ok(Resp::json(&ctx.control.overview(sort, ctx.now)?))
}

pub fn status(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    Ok(Resp::json(&ctx.control.status(account, ctx.now)?))
}

/// A limit in a body: a number (0: unlimited) or `"default"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum LimitValue {
    Number(u64),
    Word(String),
}

impl LimitValue {
    fn limit(self, key: &str) -> Result<Limit, ApiError> {
        match self {
            LimitValue::Number(n) => Ok(Limit::Value(n)),
            LimitValue::Word(w) if w == "default" => Ok(Limit::Default),
            LimitValue::Word(w) => Err(ApiError::bad_request(format!(
                "{key}: {w:?} is neither a number nor \"default\""
            ))),
        }
    }
}

/// `null` and absent differ for `report_to`: null removes the recipient.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    #[serde(default, deserialize_with = "present")]
    report_to: Option<Option<String>>,
    max_per_day: Option<LimitValue>,
    max_per_hour: Option<LimitValue>,
}

pub fn set(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: SetBody = req.json()?;
    if body.max_per_day.is_some() || body.max_per_hour.is_some() {
        ctx.who()?.admin("changing limits")?;
    }
    let change = SettingsChange {
        report_to: body.report_to.as_ref().map(Option::as_deref),
        max_per_day: body
            .max_per_day
            .map(|l| l.limit("max_per_day"))
            .transpose()?,
        max_per_hour: body
            .max_per_hour
            .map(|l| l.limit("max_per_hour"))
            .transpose()?,
    };
    Ok(Resp::json(&ctx.control.set(account, &change, ctx.now)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockBody {
    reason: Option<String>,
    note: Option<String>,
}

pub fn block(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: BlockBody = req.json()?;
    let reason = match body.reason.as_deref() {
        None => BlockReason::Manual,
        Some(r) => BlockReason::parse(r).ok_or_else(|| {
            ApiError::bad_request(format!("reason: {r:?} is not one of manual, spam, limit"))
        })?,
    };
    if reason != BlockReason::Manual {
        ctx.who()?
            .admin("a block with another reason than manual")?;
    }
    let doc = ctx
        .control
        .block(account, reason, body.note.as_deref(), ctx.now)?;
    Ok(Resp::json(&doc))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnblockBody {
    #[serde(default)]
    force: bool,
    note: Option<String>,
}

pub fn unblock(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: UnblockBody = req.json()?;
    if body.force {
        ctx.who()?.admin("unblock with force")?;
    }
    let doc = ctx
        .control
        .unblock(account, body.force, body.note.as_deref(), ctx.now)?;
    Ok(Resp::json(&doc))
}

/// A held-mail filter, in a body or a query: the `filter` document's keys.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    script: Option<String>,
    domain: Option<String>,
    older_than_s: Option<u64>,
    newer_than_s: Option<u64>,
    /// Only in `purge`.
    note: Option<String>,
}

impl FilterBody {
    fn filter(&self) -> Result<HeldFilter, ApiError> {
        Ok(control::held_filter(
            self.script.as_deref(),
            self.domain.as_deref(),
            self.older_than_s.map(Duration::from_secs),
            self.newer_than_s.map(Duration::from_secs),
        )?)
    }

    fn from_query(req: &Req) -> Result<FilterBody, ApiError> {
        let secs = |k: &str| -> Result<Option<u64>, ApiError> {
            req.param(k)
                .map(|v| {
                    v.parse().map_err(|_| {
                        ApiError::bad_request(format!("{k}: {v:?} is not a number of seconds"))
                    })
                })
                .transpose()
        };
        Ok(FilterBody {
            script: req.param("script").map(str::to_string),
            domain: req.param("domain").map(str::to_string),
            older_than_s: secs("older_than_s")?,
            newer_than_s: secs("newer_than_s")?,
            note: None,
        })
    }
}

pub fn purge(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: FilterBody = req.json()?;
    let filter = body.filter()?;
    if filter.is_empty() {
        Ok(Resp::json(&ctx.control.purge(
            account,
            body.note.as_deref(),
            ctx.now,
        )?))
    } else {
        let doc = ctx
            .control
            .purge_held(account, &filter, body.note.as_deref(), ctx.now)?;
        Ok(Resp::json(&doc))
    }
}

pub fn held(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let filter = FilterBody::from_query(req)?.filter()?;
    let limit = req.number("limit", 20, 1..=1000)? as usize;
    Ok(Resp::json(
        &ctx.control.held(account, &filter, limit, ctx.now)?,
    ))
}

pub fn release_held(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    ctx.who()?.admin("releasing held mail")?;
    let body: FilterBody = req.json()?;
    let filter = body.filter()?;
    if body.note.is_some() {
        return Err(ApiError::bad_request("release takes no note"));
    }
    if filter.is_empty() {
        return Err(ApiError::bad_request(
            "say which held mail: script, domain, older_than_s or newer_than_s (all of it: unblock)",
        ));
    }
    Ok(Resp::json(
        &ctx.control.release_held(account, &filter, ctx.now)?,
    ))
}

pub fn stats(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let days = req.number("days", 30, 1..=3660)?;
    Ok(Resp::json(&ctx.control.stats(account, days, ctx.now)?))
}

pub fn errors(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let limit = req.number("limit", 50, 1..=10_000)?;
    Ok(Resp::json(&ctx.control.errors(account, limit)?))
}

pub fn history(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let limit = req.number("limit", 100, 1..=10_000)?;
    Ok(Resp::json(&ctx.control.history(account, limit)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    to: String,
    wait_s: Option<u32>,
}

fn wait(wait_s: Option<u32>, default: u32) -> Result<Duration, ApiError> {
    match wait_s.unwrap_or(default) {
        s if s <= MAX_WAIT_S => Ok(Duration::from_secs(u64::from(s))),
        s => Err(ApiError::bad_request(format!(
            "wait_s: {s} is more than {MAX_WAIT_S}"
        ))),
    }
}

pub fn test(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let account = ctx.account(p)?;
    let body: TestBody = req.json()?;
    let wait = wait(body.wait_s, 30)?;
    Ok(Resp::json(&ctx.control.test(account, &body.to, wait)?))
}

pub fn queue(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let who = ctx.who()?;
    let account = match (&who.scope, req.param("account")) {
        (super::tokens::Scope::Account(own), None) => Some(own.as_str()),
        (_, Some(a)) => Some(who.account(a)?),
        (_, None) => None,
    };
    let state = match req.param("state") {
        None => None,
        Some(s) => Some(
            MessageState::ALL
                .into_iter()
                .find(|m| m.as_str() == s)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("state: {s:?} is not a message state"))
                })?,
        ),
    };
    let limit = req.number("limit", 100, 1..=10_000)?;
    match account {
        // An account token's own account before its first mail: no mail.
        Some(a) if !who.is_admin() => {
            let a = a.to_string();
            let empty = || control::QueueListDoc {
                messages: Vec::new(),
            };
            let doc = super::hosting::seen(ctx, &a, |c| c.queue(Some(&a), state, limit), empty)?;
            Ok(Resp::json(&doc))
        }
        _ => Ok(Resp::json(&ctx.control.queue(account, state, limit)?)),
    }
}

/// The message `{qid}` if the caller sees its account (else "not found").
fn message_of(ctx: &mut Ctx<'_>, p: &Params, body: bool) -> Result<control::ShowDoc, ApiError> {
    let qid = p.get("qid");
    let who = ctx.who()?.clone();
    let doc = ctx.control.show(qid, body)?;
    if !who.scope.sees(&doc.message.account) {
        return Err(ApiError::no_message(qid));
    }
    ctx.control.set_actor(&who.actor())?;
    Ok(doc)
}

pub fn show(ctx: &mut Ctx<'_>, req: &Req, p: &Params) -> Result<Resp, ApiError> {
    let body = req.flag("body")?;
    Ok(Resp::json(&message_of(ctx, p, body)?))
}

pub fn release(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    message_of(ctx, p, false)?;
    ctx.who()?.admin("releasing held mail")?;
    Ok(Resp::json(&ctx.control.release(p.get("qid"), ctx.now)?))
}

pub fn delete(ctx: &mut Ctx<'_>, _: &Req, p: &Params) -> Result<Resp, ApiError> {
    message_of(ctx, p, false)?;
    Ok(Resp::json(&ctx.control.delete(p.get("qid"))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlushBody {
    account: Option<String>,
    wait_s: Option<u32>,
}

pub fn flush(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let body: FlushBody = req.json()?;
    let who = ctx.who()?.clone();
    let account = match (&who.scope, body.account.as_deref()) {
        (super::tokens::Scope::Account(own), None) => Some(own.as_str()),
        (_, Some(a)) => Some(who.account(a)?),
        (_, None) => None,
    };
    let wait = wait(body.wait_s, 10)?;
    ctx.control.set_actor(&who.actor())?;
    Ok(Resp::json(&ctx.control.flush(account, wait)?))
}

pub fn sweep(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    let who = ctx.who()?.clone();
    who.admin("sweep")?;
    ctx.control.set_actor(&who.actor())?;
    Ok(Resp::json(&ctx.control.sweep(ctx.now)?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReportBody {
    account: Option<String>,
    day: Option<String>,
}

fn report_run(ctx: &mut Ctx<'_>, body: &ReportBody, send: bool) -> Result<Resp, ApiError> {
    let who = ctx.who()?.clone();
    who.admin("the daily report")?;
    ctx.control.set_actor(&who.actor())?;
    let day = match body.day.as_deref() {
        None => None,
        Some(d) => Some(
            crate::clock::parse_day(d)
                .ok_or_else(|| ApiError::bad_request(format!("day: {d:?} is not YYYY-MM-DD")))?,
        ),
    };
    let opts = crate::report::Options {
        account: body.account.as_deref(),
        send,
        day,
    };
    Ok(Resp::json(&ctx.control.report(&opts, ctx.now)?.json))
}

pub fn report(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let body = ReportBody {
        account: req.param("account").map(str::to_string),
        day: req.param("day").map(str::to_string),
    };
    report_run(ctx, &body, false)
}

pub fn send_report(ctx: &mut Ctx<'_>, req: &Req, _: &Params) -> Result<Resp, ApiError> {
    let body: ReportBody = req.json()?;
    report_run(ctx, &body, true)
}

pub fn metrics(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    ctx.who()?.admin("the metrics of every account")?;
    Ok(Resp::json(&ctx.control.metrics(ctx.now)?))
}

pub fn node(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    ctx.who()?.admin("the node's gauges")?;
    Ok(Resp::json(&ctx.control.node(ctx.now)?))
}
