//! Sending reports: gathering one account's report for a UTC day from the
//! store, `mailq-ctl report` (print, or queue once per account and day),
//! and the block notices; each goes through the queue as system mail.

use std::fmt::Write as _;

use serde_json::json;

use super::render::{compose, render, render_notice, report_json, shown, subject};
use super::{MAX_ITEMS, MAX_VALUE, Report, ReportError, valid_recipient};
use crate::clock::{self, DAY_MS};
use crate::config::Config;
use crate::log::{self, Level};
use crate::sanitize;
use crate::store::{EnqueuePolicy, NewMessage, ReportAccount, ReportQueued, Store, StoreError};

/// Gather an account's report for `day` from the store.
pub fn collect(
    store: &Store,
    account_id: i64,
    account: &str,
    report_to: Option<&str>,
    day: i64,
) -> Result<Report, StoreError> {
    let (from, to) = (day * DAY_MS, (day + 1) * DAY_MS);
    let (errors, errors_total) = store.report_errors(account_id, from, to, MAX_ITEMS)?;
    let (expired, expired_total) = store.report_expired(account_id, from, to, MAX_ITEMS)?;
    let events = store.report_events(account_id, from, to)?;
    Ok(Report {
        account: account.to_string(),
        report_to: report_to.map(str::to_string),
        day,
        errors,
        errors_total,
        expired,
        expired_total,
        events,
    })
}

/// A report or notice about to be queued.
struct Outgoing<'a> {
    account: &'a str,
    to: &'a str,
    subject: &'a str,
    /// `daily` or `notice` (the `X-Scriptmail-Report` field).
    kind: &'a str,
    body: &'a str,
}

/// Enqueue one report or notice as system mail for its account; its qid.
/// A daily report (`daily: Some((account, day))`) is queued by the ledger
/// only if none was for that account and day ([`Ledger::queue_report`]);
/// `Ok(Err(qid))` names the earlier one. A notice goes to `store`.
fn enqueue(
    cfg: &Config,
    to_queue: Queue<'_, '_>,
    o: &Outgoing<'_>,
    now: i64,
) -> Result<Result<String, String>, ReportError> {
    let Outgoing {
        account,
        to,
        subject,
        kind,
        body,
    } = *o;
    if !valid_recipient(&cfg.report_from) {
        return Err(ReportError::BadFrom(cfg.report_from.clone()));
    }
    let qid = crate::submit::new_qid(now);
    let data = compose(cfg, to, subject, kind, body, &qid, now);
    let recipients = [to.to_string()];
    let m = NewMessage {
        subject,
        system: true,
        ..NewMessage::new(&qid, account, 0, &cfg.report_from, &recipients, &data)
    };
    match to_queue {
        Queue::Daily(ledger, a, day) => Ok(ledger.queue_report(&m, a, day, now)?.map(|()| qid)),
        Queue::Notice(store) => {
            store.enqueue(&m, EnqueuePolicy::default(), now)?;
            Ok(Ok(qid))
        }
    }
}

/// Where [`enqueue`] puts a mail.
enum Queue<'a, 'b> {
    /// A daily report, once per account and day.
    Daily(&'a mut dyn Ledger, &'b ReportAccount, i64),
    /// A block notice, in this node's queue.
    Notice(&'a mut Store),
}

/// Where the daily reports come from and how each is queued once: this
/// node's queue ([`Store`]), or in cluster mode the cluster store, whose
/// reports cover every node and go out once for the cluster
/// (docs/cluster.md, "The daily report").
pub trait Ledger {
    /// The accounts with a report recipient; with `only`, that account
    /// (its `report_to` empty when it has none).
    fn report_accounts(&mut self, only: Option<&str>) -> Result<Vec<ReportAccount>, ReportError>;
    /// One account's report of the UTC day `day`.
    fn report_of(&mut self, a: &ReportAccount, day: i64) -> Result<Report, ReportError>;
    /// Queue `m` as `a`'s report of `day`, unless one was: then
    /// `Ok(Err(qid))` names the earlier one.
    fn queue_report(
        &mut self,
        m: &NewMessage<'_>,
        a: &ReportAccount,
        day: i64,
        now: i64,
    ) -> Result<Result<(), String>, ReportError>;
}

impl Ledger for Store {
    fn report_accounts(&mut self, only: Option<&str>) -> Result<Vec<ReportAccount>, ReportError> {
        Ok(match only {
            None => Store::report_accounts(self, None)?,
            Some(name) => {
                let a = self.account(name)?;
                vec![ReportAccount {
                    id: a.id,
                    name: a.name,
                    report_to: a.report_to.unwrap_or_default(),
                }]
            }
        })
    }

    fn report_of(&mut self, a: &ReportAccount, day: i64) -> Result<Report, ReportError> {
        let to = (!a.report_to.is_empty()).then_some(a.report_to.as_str());
        Ok(collect(self, a.id, &a.name, to, day)?)
    }

    fn queue_report(
        &mut self,
        m: &NewMessage<'_>,
        a: &ReportAccount,
        day: i64,
        now: i64,
    ) -> Result<Result<(), String>, ReportError> {
        Ok(match self.enqueue_report(m, a.id, day, now)? {
            ReportQueued::Queued => Ok(()),
            ReportQueued::Already(earlier) => Err(earlier),
        })
    }
}

/// Queue a notice for every automatic block not yet announced (limit or
/// error ratio) of an account with a report recipient. Returns how many
/// were queued; the caller wakes the relay. Called by `scriptmail bounce`
/// after it records errors, and meant for the relay and the sweep too.
pub fn notify(cfg: &Config, store: &mut Store, now: i64) -> Result<usize, ReportError> {
    let mut queued = 0;
    for n in store.take_block_notices()? {
        if !valid_recipient(&n.report_to) {
            log::log(
                Level::Warning,
                &format!(
                    "account={} status=skipped stat={}",
                    sanitize::line(&n.account),
                    log::quote(&format!(
                        "block notice not sent: invalid report recipient {}",
                        n.report_to
                    ))
                ),
            );
            continue;
        }
        let (subject, body) = render_notice(&n, cfg);
        let Ok(qid) = enqueue(
            cfg,
            Queue::Notice(store),
            &Outgoing {
                account: &n.account,
                to: &n.report_to,
                subject: &subject,
                kind: "notice",
                body: &body,
            },
            now,
        )?
        else {
            continue;
        };
        log::log(
            Level::Info,
            &format!(
                "qid={qid} account={} to=<{}> status=queued stat=\"block notice ({})\"",
                sanitize::line(&n.account),
                sanitize::line(&n.report_to),
                n.event.new
            ),
        );
        queued += 1;
    }
    Ok(queued)
}

/// What `mailq-ctl report` is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Only this account (it may lack a recipient when only previewing).
    pub account: Option<&'a str>,
    /// Queue the reports instead of printing them.
    pub send: bool,
    /// UTC day number; default: yesterday.
    pub day: Option<i64>,
}

/// What `execute` did: the JSON document and the human text to print, and
/// how many mails it queued (the caller wakes the relay when > 0).
#[derive(Debug, Clone)]
pub struct ReportRun {
    pub json: serde_json::Value,
    pub text: String,
    pub queued: usize,
}

/// Make the reports of one day; print them or, with `send`, queue them
/// (once per account and day: a re-run of the timer sends nothing twice).
pub fn execute(
    cfg: &Config,
    ledger: &mut dyn Ledger,
    opts: &Options<'_>,
    now: i64,
) -> Result<ReportRun, ReportError> {
    let day = opts.day.unwrap_or(clock::day_of(now) - 1);
    let mut accounts = ledger.report_accounts(opts.account)?;
    if let (Some(_), true) = (opts.account, opts.send) {
        // Sending needs a recipient; a preview does not.
        if let Some(a) = accounts.iter().find(|a| a.report_to.is_empty()) {
            return Err(ReportError::NoRecipient(a.name.clone()));
        }
    }
    accounts.retain(|a| opts.account.is_some() || !a.report_to.is_empty());
    let mut items = Vec::new();
    let mut text = String::new();
    let mut queued = 0;
    for a in &accounts {
        let to = (!a.report_to.is_empty()).then_some(a.report_to.as_str());
        let r = ledger.report_of(a, day)?;
        if r.is_empty() {
            continue;
        }
        let subject = subject(&r, &cfg.hostname);
        let body = render(&r, &cfg.hostname);
        let mut status = "printed";
        let mut qid = None;
        if opts.send {
            match to {
                Some(to) if !valid_recipient(to) => {
                    status = "invalid-recipient";
                    let _ = writeln!(
                        text,
                        "{}: not sent, the report recipient {} is not a valid address",
                        shown(&a.name, 64),
                        shown(to, MAX_VALUE)
                    );
                    log::log(
                        Level::Warning,
                        &format!(
                            "account={} status=skipped stat={}",
                            sanitize::line(&a.name),
                            log::quote(&format!("report not sent: invalid recipient {to}"))
                        ),
                    );
                }
                Some(to) => match enqueue(
                    cfg,
                    Queue::Daily(&mut *ledger, a, day),
                    &Outgoing {
                        account: &a.name,
                        to,
                        subject: &subject,
                        kind: "daily",
                        body: &body,
                    },
                    now,
                )? {
                    Err(earlier) => {
                        status = "already-sent";
                        let _ = writeln!(
                            text,
                            "{}: report for {} already sent (queue id {earlier})",
                            shown(&a.name, 64),
                            clock::format_day(day)
                        );
                        qid = Some(earlier);
                    }
                    Ok(q) => {
                        log::log(
                            Level::Info,
                            &format!(
                                "qid={q} account={} to=<{}> status=queued stat=\"daily report {} errors={} expired={} events={}\"",
                                sanitize::line(&a.name),
                                sanitize::line(to),
                                clock::format_day(day),
                                r.errors_total,
                                r.expired_total,
                                r.events.len()
                            ),
                        );
                        let _ = writeln!(
                            text,
                            "{}: report for {} queued to {} (queue id {q})",
                            shown(&a.name, 64),
                            clock::format_day(day),
                            shown(to, MAX_VALUE)
                        );
                        status = "queued";
                        qid = Some(q);
                        queued += 1;
                    }
                },
                None => {
                    status = "no-recipient";
                    let _ = writeln!(text, "{}: no report recipient", shown(&a.name, 64));
                }
            }
        } else {
            let _ = writeln!(
                text,
                "To: {}\nSubject: {}\n\n{}",
                to.map_or_else(
                    || "(no report recipient)".to_string(),
                    |t| shown(t, MAX_VALUE)
                ),
                subject,
                body
            );
        }
        items.push(report_json(&r, status, qid.as_deref()));
    }
    if items.is_empty() {
        let _ = writeln!(text, "Nothing to report for {}.", clock::format_day(day));
    }
    Ok(ReportRun {
        json: json!({
            "day": clock::format_day(day),
            "reports": items,
        }),
        text,
        queued,
    })
}
