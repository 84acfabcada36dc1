//! `metrics`: every account's counters, as a document and in the
//! Prometheus text exposition format (version 0.0.4), for node_exporter's
//! textfile collector, a scrape wrapper or the API's `/metrics`
//! (docs/mailq-ctl.md, "metrics").

use serde::Serialize;

use super::{Control, Result};
use crate::account::State;
use crate::sanitize;

/// One account's counters. The keys are in alphabetical order, as this
/// document has always been printed.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsRow {
    pub account: String,
    pub deferred: i64,
    pub errors_total: i64,
    pub held: i64,
    pub queued: i64,
    pub sent_today: i64,
    pub sent_total: i64,
    pub state: State,
    /// Age of the oldest held message, 0 if none (the text format only).
    #[serde(skip)]
    pub oldest_held_age_s: i64,
}

/// `metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsDoc {
    pub accounts: Vec<MetricsRow>,
}

impl Control {
    /// `metrics`: every account's counters on this node, by name. In
    /// cluster mode too: each node exports its own figures, so the fleet's
    /// Prometheus sums them (by account) without counting one twice, and a
    /// node answers its scrape while the cluster store is down
    /// (docs/cluster.md, "Monitoring the fleet").
    pub fn metrics(&self, now: i64) -> Result<MetricsDoc> {
        let rows = self.store().overview(now)?;
        Ok(MetricsDoc {
            accounts: rows
                .into_iter()
                .map(|o| MetricsRow {
                    account: o.account.name,
                    deferred: o.queue.deferred,
                    errors_total: o.account.error_total,
                    held: o.queue.held,
                    queued: o.queue.queued,
                    sent_today: o.sent_today,
                    sent_total: o.account.sent_total,
                    state: o.account.state,
                    oldest_held_age_s: o.queue.oldest_held.map_or(0, |t| (now - t).max(0) / 1000),
                })
                .collect(),
        })
    }
}

/// One metric family: name, type, help, and the value of an account.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MetricsRow) -> i64,
);

const FAMILIES: [Family; 8] = [
    (
        "scriptmail_sent_total",
        "counter",
        "Mails relayed since the account was first seen.",
        |r| r.sent_total,
    ),
    (
        "scriptmail_errors_total",
        "counter",
        "Mails in error since the account was first seen.",
        |r| r.errors_total,
    ),
    (
        "scriptmail_sent_today",
        "gauge",
        "Mails relayed during the current UTC day.",
        |r| r.sent_today,
    ),
    (
        "scriptmail_held",
        "gauge",
        "Messages held because the account is blocked.",
        |r| r.held,
    ),
    (
        "scriptmail_queued",
        "gauge",
        "Messages waiting for their first delivery attempt.",
        |r| r.queued,
    ),
    (
        "scriptmail_deferred",
        "gauge",
        "Messages waiting for a retry.",
        |r| r.deferred,
    ),
    (
        "scriptmail_sending",
        "gauge",
        "1 if the account's mail is relayed (ok, force), 0 if it is held.",
        |r| i64::from(r.state.is_sending()),
    ),
    (
        "scriptmail_oldest_held_age_seconds",
        "gauge",
        "Age of the oldest held message, 0 if none.",
        |r| r.oldest_held_age_s,
    ),
];

impl MetricsDoc {
    /// The Prometheus text format. Series are labelled by account only, so
    /// a state change starts no new counter series; the state is its own
    /// info-style series. Account names are label values, escaped per the
    /// format (`\`, `"`, LF).
    pub fn prometheus(&self) -> String {
        let label = |name: &str| {
            sanitize::line(name)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        };
        let mut out = String::new();
        for (name, kind, help, value) in FAMILIES {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for r in &self.accounts {
                out.push_str(&format!(
                    "{name}{{account=\"{}\"}} {}\n",
                    label(&r.account),
                    value(r)
                ));
            }
        }
        out.push_str("# HELP scriptmail_state The account's state (value 1), as the control panel names it.\n# TYPE scriptmail_state gauge\n");
        for r in &self.accounts {
            out.push_str(&format!(
                "scriptmail_state{{account=\"{}\",state=\"{}\"}} 1\n",
                label(&r.account),
                r.state
            ));
        }
        out
    }
}
