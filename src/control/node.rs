//! `node`: this node's queue as a whole — its not-yet-done mail by state,
//! the oldest waiting and held message, the retries behind the deferred
//! mail, the relay's outcomes so far, and how long the mail relayed in the
//! last hour took from acceptance to the smarthost — as a document and in
//! the Prometheus text format (the node gauges of the API's `/metrics`,
//! docs/api.md, "Metrics"). Node-local: it reads this node's queue, also
//! in cluster mode.

use serde::Serialize;

use super::{Control, Result};

/// The window of the delivery-delay histogram.
pub const DELAY_WINDOW_S: i64 = 3600;

/// Upper bounds of the delay buckets, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0, 3600.0,
];

/// Messages at most `le` seconds from acceptance to the smarthost.
#[derive(Debug, Clone, Serialize)]
pub struct BucketDoc {
    /// `null`: the `+Inf` bucket (every message).
    pub le: Option<f64>,
    pub count: u64,
}

/// How long the mail relayed in the last `window_s` seconds took.
#[derive(Debug, Clone, Serialize)]
pub struct DelayDoc {
    pub window_s: i64,
    pub count: u64,
    pub sum_s: f64,
    /// Cumulative, as Prometheus histograms are.
    pub buckets: Vec<BucketDoc>,
}

/// `node`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDoc {
    pub held: i64,
    pub queued: i64,
    pub deferred: i64,
    pub sending: i64,
    /// Age of the oldest queued or deferred message, 0 if none.
    pub oldest_waiting_age_s: i64,
    pub oldest_held_age_s: i64,
    /// Delivery attempts the deferred mail has had so far.
    pub deferred_attempts: i64,
    pub sent_total: i64,
    pub errors_total: i64,
    pub accounts: i64,
    /// Accounts whose mail is held (not `ok` or `force`).
    pub accounts_blocked: i64,
    pub delivery_delay: DelayDoc,
}

impl Control {
    /// `node`: this node's queue now.
    pub fn node(&self, now: i64) -> Result<NodeDoc> {
        let g = self.store().node_gauges(now - DELAY_WINDOW_S * 1000)?;
        let age = |t: Option<i64>| t.map_or(0, |t| (now - t).max(0) / 1000);
        Ok(NodeDoc {
            held: g.held,
            queued: g.queued,
            deferred: g.deferred,
            sending: g.sending,
            oldest_waiting_age_s: age(g.oldest_waiting),
            oldest_held_age_s: age(g.oldest_held),
            deferred_attempts: g.deferred_attempts,
            sent_total: g.sent_total,
            errors_total: g.errors_total,
            accounts: g.accounts,
            accounts_blocked: g.accounts_blocked,
            delivery_delay: histogram(&g.delays_ms),
        })
    }
}

/// The cumulative histogram of `delays_ms`.
fn histogram(delays_ms: &[i64]) -> DelayDoc {
    let secs: Vec<f64> = delays_ms
        .iter()
        .map(|&ms| ms.max(0) as f64 / 1000.0)
        .collect();
    let mut buckets: Vec<BucketDoc> = BUCKETS_S
        .iter()
        .map(|&le| BucketDoc {
            le: Some(le),
            count: secs.iter().filter(|&&s| s <= le).count() as u64,
        })
        .collect();
    buckets.push(BucketDoc {
        le: None,
        count: secs.len() as u64,
    });
    DelayDoc {
        window_s: DELAY_WINDOW_S,
        count: secs.len() as u64,
        sum_s: secs.iter().sum(),
        buckets,
    }
}

impl NodeDoc {
    /// The Prometheus text format (version 0.0.4). The delay histogram is
    /// of a sliding window, so its series are gauges (they go down), with
    /// the `le` labels `histogram_quantile` reads.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: &[(String, String)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        let one = |v: i64| vec![(String::new(), v.to_string())];
        family(
            "scriptmail_node_messages",
            "gauge",
            "This node's not-yet-done messages, by state.",
            &[
                ("held", self.held),
                ("queued", self.queued),
                ("deferred", self.deferred),
                ("sending", self.sending),
            ]
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), n.to_string())),
        );
        family(
            "scriptmail_node_oldest_waiting_age_seconds",
            "gauge",
            "Age of the oldest queued or deferred message, 0 if none.",
            &one(self.oldest_waiting_age_s),
        );
        family(
            "scriptmail_node_oldest_held_age_seconds",
            "gauge",
            "Age of the oldest held message on this node, 0 if none.",
            &one(self.oldest_held_age_s),
        );
        family(
            "scriptmail_node_deferred_attempts",
            "gauge",
            "Delivery attempts the deferred messages have had (each one a deferral).",
            &one(self.deferred_attempts),
        );
        family(
            "scriptmail_node_sent_total",
            "counter",
            "Mails relayed, all accounts.",
            &one(self.sent_total),
        );
        family(
            "scriptmail_node_errors_total",
            "counter",
            "Mails in error (rejected, expired, bounced), all accounts.",
            &one(self.errors_total),
        );
        family(
            "scriptmail_node_accounts",
            "gauge",
            "Accounts known to this node, and those whose mail is held.",
            &[
                (String::new(), self.accounts.to_string()),
                (
                    "{blocked=\"true\"}".to_string(),
                    self.accounts_blocked.to_string(),
                ),
            ],
        );
        let d = &self.delivery_delay;
        let name = "scriptmail_node_delivery_delay_last_hour_seconds";
        family(
            &format!("{name}_bucket"),
            "gauge",
            "Mails relayed in the last hour by seconds from acceptance to the smarthost's 250 (cumulative).",
            &d.buckets
                .iter()
                .map(|b| {
                    let le = b.le.map_or("+Inf".to_string(), |l| l.to_string());
                    (format!("{{le=\"{le}\"}}"), b.count.to_string())
                })
                .collect::<Vec<_>>(),
        );
        family(
            &format!("{name}_count"),
            "gauge",
            "Mails relayed in the last hour.",
            &[(String::new(), d.count.to_string())],
        );
        family(
            &format!("{name}_sum"),
            "gauge",
            "Seconds from acceptance to the smarthost, added up over the mails relayed in the last hour.",
            &[(String::new(), format!("{:.3}", d.sum_s))],
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_renders_le_labels() {
        let d = histogram(&[3, 40, 40, 700, 9_000_000]);
        assert_eq!(d.count, 5);
        let at = |le: f64| d.buckets.iter().find(|b| b.le == Some(le)).unwrap().count;
        assert_eq!((at(0.005), at(0.05), at(1.0), at(3600.0)), (1, 3, 4, 4));
        assert_eq!(d.buckets.last().unwrap().count, 5);
        assert!((d.sum_s - 9000.783).abs() < 1e-6);
        let doc = NodeDoc {
            held: 1,
            queued: 2,
            deferred: 3,
            sending: 0,
            oldest_waiting_age_s: 9,
            oldest_held_age_s: 8,
            deferred_attempts: 7,
            sent_total: 6,
            errors_total: 5,
            accounts: 4,
            accounts_blocked: 1,
            delivery_delay: d,
        };
        let text = doc.prometheus();
        for line in [
            "scriptmail_node_messages{state=\"deferred\"} 3",
            "scriptmail_node_delivery_delay_last_hour_seconds_bucket{le=\"0.005\"} 1",
            "scriptmail_node_delivery_delay_last_hour_seconds_bucket{le=\"+Inf\"} 5",
            "scriptmail_node_delivery_delay_last_hour_seconds_count 5",
            "scriptmail_node_accounts{blocked=\"true\"} 1",
            "# TYPE scriptmail_node_sent_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}
