//! The worker: claims one due message at a time, delivers it over its own
//! reused connection and records the outcome (see the module doc of `relay`,
//! "Delivering" and "Waiting").

use std::sync::Arc;
use std::time::Duration;

use super::listener::Shared;
use super::{Mode, RelayError};
use crate::clock;
use crate::config::Config;
use crate::log::{self, Level};
use crate::sanitize;
use crate::schedule::{self, Decision, Policy};
use crate::store::{Attempt, Claim, Durability, RcptOutcome, Store};
use crate::transport::{Outgoing, Smarthost};

/// Longest sleep with nothing due: a safety net for writers that change
/// the queue without waking us.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(5);

pub(super) fn worker(shared: &Shared, mode: Mode) -> Result<(), RelayError> {
    let mut cfg = shared.config();
    let mut store = Store::open(&cfg.db_path(), Durability::Normal)?;
    store.set_protection(crate::store::Protection::from(&*cfg));
    let mut host = Smarthost::new(cfg.relay.clone(), &cfg.hostname)?;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        let seen = shared.generation();
        let current = shared.config();
        if !Arc::ptr_eq(&current, &cfg) {
            cfg = current;
            store.set_protection(crate::store::Protection::from(&*cfg));
            host = Smarthost::new(cfg.relay.clone(), &cfg.hostname)?;
        }
        let Some(claim) = store.claim_next(clock::now_ms())? else {
            if mode == Mode::Once {
                return Ok(());
            }
            host.close_if_idle();
            if host.is_unreachable() && store.next_due()?.is_some() {
                host.probe();
                if after_outage(shared, &mut store, &mut host)? {
                    continue;
                }
            }
            let cap = if host.is_open() || host.is_unreachable() {
                Duration::from_secs(1)
            } else {
                MAX_IDLE_WAIT
            };
            let wait = match store.next_due()? {
                Some(t) => Duration::from_millis(
                    (t - clock::now_ms()).clamp(0, cap.as_millis() as i64) as u64,
                ),
                None => cap,
            };
            shared.wait(seen, wait);
            continue;
        };
        // Connecting can take up to connect_timeout: the account may have
        // been blocked meanwhile (see the module doc). While the smarthost
        // is marked down no attempt is made, and the message is deferred at
        // once.
        if host.connect_now() && !store.confirm_claim(&claim, clock::now_ms())? {
            log::log(
                Level::Info,
                &format!(
                    "qid={} account={} status=held stat=\"account blocked before delivery began\"",
                    sanitize::line(&claim.qid),
                    sanitize::line(&claim.account)
                ),
            );
            continue;
        }
        deliver_one(&cfg, &mut store, &mut host, claim)?;
        after_outage(shared, &mut store, &mut host)?;
    }
}

/// When the smarthost answers again after failed connection attempts, send
/// what was deferred meanwhile now, not at its backoff (which may be an
/// hour after a long outage). True if anything was rescheduled.
fn after_outage(
    shared: &Shared,
    store: &mut Store,
    host: &mut Smarthost,
) -> Result<bool, RelayError> {
    if !host.take_recovered() {
        return Ok(false);
    }
    let n = store.retry_deferred_now(clock::now_ms())?;
    if n > 0 {
        log::log(
            Level::Info,
            &format!(
                "relay={} reachable again: retrying {n} deferred message(s) now",
                host.name()
            ),
        );
        shared.wake_all();
    }
    Ok(n > 0)
}

/// Deliver one claimed message and record the outcome.
fn deliver_one(
    cfg: &Config,
    store: &mut Store,
    host: &mut Smarthost,
    claim: Claim,
) -> Result<(), RelayError> {
    let sender = envelope_sender(cfg, &claim);
    let results = match store.body(claim.id)? {
        Some(body) => host.deliver(
            &Outgoing {
                sender: &sender,
                recipients: &claim.recipients,
                body_8bit: claim.body_8bit,
                dsn_notify: claim.dsn_notify.as_deref(),
                dsn_ret: claim.dsn_ret.as_deref(),
                envid: claim.envid.as_deref(),
            },
            &body,
        ),
        // Bodies go only with a finished message; a claimed one without is
        // damaged. Record it as in error rather than retry it forever.
        None => claim
            .recipients
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    RcptOutcome::Failed("message body missing from the queue".into()),
                )
            })
            .collect(),
    };
    let now = clock::now_ms();
    let attempt = outcome(cfg, &claim, results, now, schedule::jitter());
    for (rcpt, o) in &attempt.results {
        let (status, stat) = match o {
            RcptOutcome::Sent => ("sent", "ok"),
            RcptOutcome::Failed(t) => ("bounced", t.as_str()),
            RcptOutcome::Deferred(t) if attempt.expire => ("expired", t.as_str()),
            RcptOutcome::Deferred(t) => ("deferred", t.as_str()),
        };
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} from=<{}> to=<{}> relay={} delay={:.3} tries={} status={status} stat={}",
                sanitize::line(&claim.qid),
                sanitize::line(&claim.account),
                sanitize::line(&sender),
                sanitize::line(rcpt),
                host.name(),
                (now - claim.created) as f64 / 1000.0,
                claim.attempts,
                log::quote(stat)
            ),
        );
    }
    if !store.record_attempt(&claim, &attempt, clock::now_ms())? {
        log::log(
            Level::Warning,
            &format!(
                "qid={} was removed from the queue while being delivered",
                sanitize::line(&claim.qid)
            ),
        );
    }
    let failed = attempt.expire
        || attempt
            .results
            .iter()
            .any(|(_, o)| matches!(o, RcptOutcome::Failed(_)));
    if failed {
        // Errors may have tripped the ratio rule: tell the report recipient
        // now (the notice is system mail this relayer sends next).
        if let Err(e) = crate::report::notify(cfg, store, clock::now_ms()) {
            log::log(Level::Warning, &format!("block notice not queued: {e}"));
        }
    }
    Ok(())
}

/// Turn per-recipient results into an attempt: when to retry what is left,
/// or fail it because the queue lifetime is over.
fn outcome(
    cfg: &Config,
    claim: &Claim,
    results: Vec<(String, RcptOutcome)>,
    now: i64,
    jitter: f64,
) -> Attempt {
    let policy = Policy {
        initial: cfg.relay.retry_initial,
        max: cfg.relay.retry_max,
        lifetime: cfg.queue_lifetime,
    };
    let any_deferred = results
        .iter()
        .any(|(_, o)| matches!(o, RcptOutcome::Deferred(_)));
    let decision = if any_deferred {
        policy.after_temporary_failure(claim.created, claim.attempts.max(1) as u32, now, jitter)
    } else {
        Decision::RetryAt(now)
    };
    let (retry_at, expire) = match decision {
        Decision::RetryAt(t) => (t, false),
        Decision::Expire => (now, true),
    };
    Attempt {
        results,
        retry_at,
        expire,
    }
}

/// The envelope sender on the wire: VERP-rewritten when configured, so a
/// later DSN names the message it is about (docs/bounces.md, "Turn on VERP").
pub fn envelope_sender(cfg: &Config, claim: &Claim) -> String {
    if cfg.bounce.verp && !claim.sender.is_empty() {
        format!(
            "{}+{}@{}",
            cfg.bounce.local_part, claim.qid, cfg.bounce.domain
        )
    } else {
        claim.sender.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(extra, Path::new("/t.toml")).unwrap()
    }

    fn claim(created: i64, attempts: i64) -> Claim {
        Claim {
            id: 1,
            qid: "Q1".into(),
            account: "web1".into(),
            sender: "web1@node1.example.net".into(),
            created,
            attempts,
            dsn_notify: None,
            dsn_ret: None,
            envid: None,
            body_8bit: false,
            recipients: vec!["a@x.org".into(), "b@x.org".into()],
        }
    }

    #[test]
    fn all_final_results_need_no_retry() {
        let c = cfg("");
        let a = outcome(
            &c,
            &claim(0, 1),
            vec![
                ("a@x.org".into(), RcptOutcome::Sent),
                ("b@x.org".into(), RcptOutcome::Failed("550 no".into())),
            ],
            1000,
            0.5,
        );
        assert!(!a.expire);
        assert_eq!(a.retry_at, 1000);
    }

    #[test]
    fn a_deferred_recipient_schedules_a_backoff_retry() {
        let c = cfg("[relay]\nretry_initial = \"1m\"\nretry_max = \"1h\"\n");
        let a = outcome(
            &c,
            &claim(0, 2),
            vec![
                ("a@x.org".into(), RcptOutcome::Sent),
                ("b@x.org".into(), RcptOutcome::Deferred("451 later".into())),
            ],
            1000,
            0.5,
        );
        assert!(!a.expire);
        assert_eq!(a.retry_at, 1000 + 120_000);
    }

    #[test]
    fn past_lifetime_the_pending_recipients_expire() {
        let c = cfg("[queue]\nqueue_lifetime = \"2s\"\n");
        let a = outcome(
            &c,
            &claim(0, 3),
            vec![("a@x.org".into(), RcptOutcome::Deferred("refused".into()))],
            2000,
            0.5,
        );
        assert!(a.expire);
    }

    #[test]
    fn verp_rewrites_only_real_senders() {
        let c = cfg("[bounce]\nverp = true\ndomain = \"b.example.net\"\n");
        assert_eq!(
            envelope_sender(&c, &claim(0, 1)),
            "bounces+Q1@b.example.net"
        );
        let mut null = claim(0, 1);
        null.sender = String::new();
        assert_eq!(envelope_sender(&c, &null), "");
    }
}
