//! This node's upkeep, run by timers: `sweep` (expiry of held mail,
//! recovery of a dead relayer's claims, housekeeping), `report` (the daily
//! error report, `report/`), and the hidden `populate` that builds the
//! benchmark's queue.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Control, ControlError, Result};
use crate::clock;
use crate::log::{self, Level};
use crate::report::{self, ReportRun};
use crate::sanitize;
use crate::store::{Housekeeping, PopulateSpec};

/// Rows per sweep transaction: short enough that `sendmail` never waits
/// long for the lock.
const SWEEP_CHUNK: usize = 5000;

/// Held mail one account had expired.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiredDoc {
    pub account: String,
    pub expired: u64,
}

/// History the sweep deleted.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedDoc {
    pub messages: u64,
    pub bodies: u64,
    pub errors: u64,
    pub events: u64,
    pub daily: u64,
    pub hourly: u64,
}

/// `sweep`.
#[derive(Debug, Clone, Serialize)]
pub struct SweepDoc {
    /// Claims of a dead relayer put back.
    pub recovered: u64,
    /// Messages taken from the maildrop (no relayer was running).
    pub imported: u64,
    pub expired: u64,
    /// By account name.
    pub expired_by_account: Vec<ExpiredDoc>,
    pub deleted: DeletedDoc,
    pub hold_max_age_s: u64,
    pub history_days: u32,
}

/// Hidden `populate`. Keys in alphabetical order, as this document has
/// always been printed.
#[derive(Debug, Clone, Serialize)]
pub struct PopulateDoc {
    pub accounts: u64,
    pub days: i64,
    pub held: u64,
    pub messages: u64,
    pub seconds: f64,
}

impl Control {
    /// `sweep`: expire held mail past `hold_max_age` (counted per account
    /// and day), then delete history older than `history_days`.
    pub fn sweep(&mut self, now: i64) -> Result<SweepDoc> {
        // A relayer killed mid-delivery while no daemon runs leaves its
        // claim in `sending`; when no relayer holds the lock, it comes back
        // here at the latest (`relay::recover_orphans`; relayd and the next
        // one-shot do the same when they start).
        let recovered = crate::relay::recover_orphans(&self.cfg)?.unwrap_or(0) as u64;
        // Mail a sendmail left in the maildrop while no relayer ran, or whose
        // caller could not start one (docs/submission.md, "Maildrop").
        let imported = crate::submission::import::drain_if_idle(&self.cfg)?.unwrap_or(0) as u64;
        let hold_ms = crate::store::ms(self.cfg.hold_max_age);
        let cutoff = now - hold_ms;
        let mut per_account: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            let chunk = self.store_mut().expire_held(cutoff, now, SWEEP_CHUNK)?;
            let n: u64 = chunk.iter().map(|(_, n)| n).sum();
            for (name, k) in chunk {
                *per_account.entry(name).or_default() += k;
            }
            if (n as usize) < SWEEP_CHUNK {
                break;
            }
        }
        for (name, n) in &per_account {
            log::log(
                Level::Info,
                &format!(
                    "account={} expired={n} status=expired stat=\"held longer than {}\"",
                    sanitize::line(name),
                    clock::format_age(hold_ms)
                ),
            );
        }
        // Blocks tripped by a limit (in sendmail) or by rejections (in the
        // relay) are announced to the report recipient here at the latest.
        // Without a daemon, deferred mail is retried only when something
        // wakes a relayer: the hourly sweep is that something.
        let due = recovered > 0
            || imported > 0
            || self
                .store()
                .next_due()?
                .is_some_and(|t| t <= clock::now_ms());
        if report::notify(&self.cfg, self.authority.store_mut(), now)? > 0 || due {
            self.wake_relay();
        }
        let history_cutoff = crate::store::day_start(now, i64::from(self.cfg.history_days));
        let h: Housekeeping =
            self.store_mut()
                .housekeep(history_cutoff, clock::hour_of(now) - 1, SWEEP_CHUNK)?;
        let expired: u64 = per_account.values().sum();
        log::log(
            Level::Info,
            &format!(
                "sweep recovered={recovered} imported={imported} expired={expired} deleted_messages={} deleted_errors={} deleted_events={} deleted_daily={} deleted_hourly={} deleted_bodies={}",
                h.messages, h.errors, h.events, h.daily, h.hourly, h.bodies
            ),
        );
        Ok(SweepDoc {
            recovered,
            imported,
            expired,
            expired_by_account: per_account
                .into_iter()
                .map(|(account, expired)| ExpiredDoc { account, expired })
                .collect(),
            deleted: DeletedDoc {
                messages: h.messages,
                bodies: h.bodies,
                errors: h.errors,
                events: h.events,
                daily: h.daily,
                hourly: h.hourly,
            },
            hold_max_age_s: self.cfg.hold_max_age.as_secs(),
            history_days: self.cfg.history_days,
        })
    }

    /// `report`: the daily error reports of one UTC day, made (and with
    /// `opts.send` queued, then the relay woken) by the report module.
    pub fn report(&mut self, opts: &report::Options<'_>, now: i64) -> Result<ReportRun> {
        let run = report::execute(&self.cfg, self.authority.ledger(), opts, now)?;
        if run.queued > 0 {
            self.wake_relay();
        }
        Ok(run)
    }

    /// Hidden `populate`: the benchmark's synthetic queue, in one transaction.
    pub fn populate(&mut self, spec: &PopulateSpec, now: i64) -> Result<PopulateDoc> {
        if spec.accounts == 0 || spec.accounts > 100_000 {
            return Err(ControlError::Usage("--accounts must be 1..100000".into()));
        }
        let started = std::time::Instant::now();
        self.store_mut().populate(spec, now)?;
        Ok(PopulateDoc {
            accounts: spec.accounts,
            days: spec.days,
            held: spec.held,
            messages: spec.messages,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
