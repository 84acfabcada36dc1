//! `/metrics` and `/healthz` (docs/api.md, "Metrics"). `/metrics` is the
//! Prometheus text format: every account's counters (the same families as
//! `mailq-ctl metrics`) and this node's gauges (`control::NodeDoc`).
//! `/healthz` answers 200 once the queue could be read, 503 otherwise.
//! Neither needs a token unless `api.open_metrics` is off.

use serde::Serialize;

use super::Ctx;
use super::http::{ApiError, Req, Resp};
use super::routes::Params;

/// `/healthz`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    held: i64,
    queued: i64,
    deferred: i64,
}

pub fn healthz(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    match ctx.control.node(ctx.now) {
        Ok(n) => Ok(Resp::json(&Health {
            status: "ok",
            held: n.held,
            queued: n.queued,
            deferred: n.deferred,
        })),
        Err(e) => Err(ApiError::new(503, format!("the queue cannot be read: {e}"))),
    }
}

pub fn prometheus(ctx: &mut Ctx<'_>, _: &Req, _: &Params) -> Result<Resp, ApiError> {
    let mut text = ctx.control.metrics(ctx.now)?.prometheus();
    text.push_str(&ctx.control.node(ctx.now)?.prometheus());
    Ok(Resp::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}
