//! Delivery on demand: `flush` (relay what is queued now and report the
//! outcome) and `test` (a test mail through the full path — the first
//! troubleshooting step).
//!
//! Both make their messages due now, then get them relayed: when no relayer
//! holds the queue's relay lock we run a one-shot relayer in this process
//! (the same code as `relayd --once`, so the outcome is recorded exactly as
//! the daemon would record it); otherwise we wake the daemon. Then we watch
//! the messages, for a bounded time, until each is settled: sent, failed,
//! deferred after a new attempt, or held.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::view::{self, Align, Cell, Table};
use super::{CtlError, Ctx, Result};
use crate::address;
use crate::clock;
use crate::log::{self, Level};
use crate::os::{self, signals};
use crate::queue::MessageState;
use crate::relay::{self, Mode};
use crate::sanitize;
use crate::store::{NewMessage, StoreError};
use crate::store::{Progress, Tracked};

/// How the messages were relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Via {
    /// A one-shot relayer ran in this process.
    Foreground,
    /// The running relayer (daemon or one-shot) was woken.
    Daemon,
    /// Nothing was queued or deferred: nothing to relay.
    None,
}

/// Get `tracked` relayed and wait (at most `wait`) until each is settled.
fn relay_and_wait(
    ctx: &mut Ctx,
    tracked: &[Tracked],
    wait: Duration,
) -> Result<(Via, Vec<Progress>)> {
    let deadline = Instant::now() + wait;
    let mut via = Via::Daemon;
    let mut last_kick: Option<Instant> = None;
    loop {
        let progress = ctx.store.progress(tracked)?;
        let settled = progress.iter().zip(tracked).all(|(p, t)| p.settled(t));
        if settled || Instant::now() >= deadline || signals::stop_requested() {
            return Ok((via, progress));
        }
        if last_kick.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_kick = Some(Instant::now());
            if relay_here(ctx)? {
                via = Via::Foreground;
                // The one-shot ran until nothing was due: look again at once.
                continue;
            }
            if !crate::wake::poke(&ctx.cfg.wake_socket()) {
                ctx.wake_relay();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a one-shot relayer in this process if no relayer holds the lock.
/// True if it ran.
fn relay_here(ctx: &Ctx) -> Result<bool> {
    match relay::try_lock(&ctx.cfg)? {
        Some(lock) => drop(lock),
        None => return Ok(false),
    }
    // The relayer takes the lock itself; if someone took it in between, it
    // returns at once and the caller wakes that one instead.
    relay::run(ctx.cfg.clone(), ctx.config_path.clone(), Mode::Once)?;
    Ok(true)
}

#[derive(Serialize)]
struct ProgressJson<'a> {
    qid: &'a str,
    account: &'a str,
    state: Option<&'static str>,
    attempts: i64,
    answer: &'a str,
    next_attempt: Option<String>,
}

fn progress_json(p: &Progress) -> ProgressJson<'_> {
    ProgressJson {
        qid: &p.qid,
        account: &p.account,
        state: p.state.map(MessageState::as_str),
        attempts: p.attempts,
        answer: &p.last_error,
        next_attempt: p
            .state
            .is_some_and(MessageState::is_waiting)
            .then(|| view::time(p.next_attempt)),
    }
}

#[derive(Serialize)]
struct FlushJson<'a> {
    account: Option<&'a str>,
    via: Via,
    due: usize,
    sent: usize,
    deferred: usize,
    failed: usize,
    pending: usize,
    gone: usize,
    messages: Vec<ProgressJson<'a>>,
}

/// `flush [--account A]`.
pub fn flush(ctx: &mut Ctx, account: Option<&str>, wait: Duration) -> Result<()> {
    let tracked = ctx.store.make_due(account, clock::now_ms())?;
    log::log(
        Level::Info,
        &format!(
            "flush account={} due={} actor={}",
            sanitize::line(account.unwrap_or("*")),
            tracked.len(),
            log::quote(&ctx.actor)
        ),
    );
    let (via, outcomes) = if tracked.is_empty() {
        (Via::None, Vec::new())
    } else {
        relay_and_wait(ctx, &tracked, wait)?
    };
    let count = |s: MessageState| outcomes.iter().filter(|o| o.state == Some(s)).count();
    let (sent, deferred, failed) = (
        count(MessageState::Sent),
        count(MessageState::Deferred),
        count(MessageState::Failed),
    );
    let gone = outcomes.iter().filter(|o| o.state.is_none()).count();
    let pending = outcomes.len() - sent - deferred - failed - gone;
    let json = FlushJson {
        account,
        via,
        due: tracked.len(),
        sent,
        deferred,
        failed,
        pending,
        gone,
        messages: outcomes.iter().map(progress_json).collect(),
    };
    ctx.output(&json, || {
        let how = match via {
            Via::Foreground => "delivered in the foreground",
            Via::Daemon => "handed to the running relay",
            Via::None => return "nothing to flush: no queued or deferred mail\n".to_string(),
        };
        let mut s = format!(
            "flushed {} message(s) ({how}): {sent} sent, {deferred} deferred, {failed} failed, {pending} still pending\n",
            tracked.len(),
        );
        let mut t = Table::new(&[
            ("QID", Align::Left),
            ("ACCOUNT", Align::Left),
            ("STATE", Align::Left),
            ("SERVER ANSWER", Align::Left),
        ]);
        for o in outcomes
            .iter()
            .filter(|o| o.state != Some(MessageState::Sent))
        {
            t.row(vec![
                o.qid.as_str().into(),
                Cell::untrusted(&o.account),
                o.state.map_or("deleted", MessageState::as_str).into(),
                Cell::untrusted(&o.last_error),
            ]);
        }
        if !t.is_empty() {
            s.push_str(&t.render(ctx.color));
        }
        s
    })
}

/// What became of a test message, as `test` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum TestVerdict {
    Delivered,
    Held,
    Deferred,
    Failed,
    /// Deleted or purged while we waited.
    Deleted,
    /// Still in the queue when the wait was over.
    Pending,
}

#[derive(Serialize)]
struct TestJson<'a> {
    account: &'a str,
    qid: &'a str,
    to: &'a str,
    outcome: TestVerdict,
    state: Option<&'static str>,
    account_state: &'static str,
    answer: Option<&'a str>,
    via: Option<Via>,
}

/// `test ACCOUNT --to ADDR`: enqueue a test mail for the account exactly as
/// `sendmail` would (state check, limits, counters), relay it, report.
pub fn test(ctx: &mut Ctx, name: &str, to: &str, wait: Duration) -> Result<()> {
    super::check_account_name(name)?;
    let to = super::settings::check_address(to)?;
    // A known account, or a real user that could send: never create a
    // stray account from a typo.
    let user = os::user_by_name(name);
    match ctx.store.account(name) {
        Ok(_) => {}
        Err(StoreError::NoAccount(n)) if user.is_none() => {
            return Err(StoreError::NoAccount(n).into());
        }
        Err(StoreError::NoAccount(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // The same gate as sendmail's: an account outside `accounts.allow`
    // cannot send, so a test for it is refused the same way.
    let allow = &ctx.cfg.accounts.allow;
    if !allow.is_empty() && !allow.iter().any(|a| a == name) {
        return Err(CtlError::Refused(format!(
            "account {} is not allowed to submit mail (accounts.allow)",
            sanitize::line(name)
        )));
    }
    let cfg = &ctx.cfg;
    let now = clock::now_ms();
    let qid = crate::submit::new_qid(now);
    let uid = user.map_or(0, |u| u.uid);
    let sender = format!("{name}@{}", cfg.domain);
    if !address::is_safe_envelope(&sender) {
        return Err(CtlError::Usage(format!(
            "{} cannot be an envelope sender",
            log::quote(&sender)
        )));
    }
    let subject = format!("scriptmail test message for account {name}");
    let data = format!(
        "Received: by {host} (scriptmail, from userid {uid} account {name})\r\n\tid {qid}; {date}\r\n\
         From: {sender}\r\n\
         To: {to}\r\n\
         Subject: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{now}.{qid}@{host}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         X-Mailer: scriptmail mailq-ctl test\r\n\
         \r\n\
         This is a test message sent with `mailq-ctl test` on {host}\r\n\
         for account {name}, through the same queue and relay as PHP mail().\r\n\
         If you can read it, mail from this account's scripts can be delivered.\r\n",
        host = cfg.hostname,
        date = clock::format_rfc5322(now),
    );
    let recipients = [to.clone()];
    let r = ctx.store.submit(
        &NewMessage {
            subject: &subject,
            script: "mailq-ctl test",
            ..NewMessage::new(&qid, name, uid, &sender, &recipients, data.as_bytes())
        },
        cfg.enqueue_policy(),
        now,
        &format!(" actor={}", log::quote(&ctx.actor)),
    )?;
    let (via, outcome) = if r.held {
        (None, None)
    } else {
        let tracked = [ctx.store.track(&qid)?];
        let (via, mut o) = relay_and_wait(ctx, &tracked, wait)?;
        (Some(via), o.pop())
    };
    let account = ctx.store.account(name)?;
    let state = outcome
        .as_ref()
        .and_then(|o| o.state)
        .or(r.held.then_some(MessageState::Held));
    let (verdict, answer): (TestVerdict, Option<String>) = match state {
        Some(MessageState::Held) => (TestVerdict::Held, None),
        Some(MessageState::Sent) => (TestVerdict::Delivered, None),
        Some(MessageState::Deferred) => (
            TestVerdict::Deferred,
            outcome.as_ref().map(|o| o.last_error.clone()),
        ),
        Some(MessageState::Failed) => {
            let texts = ctx.store.error_texts(&qid)?;
            (
                TestVerdict::Failed,
                Some(if texts.is_empty() {
                    outcome
                        .as_ref()
                        .map(|o| o.last_error.clone())
                        .unwrap_or_default()
                } else {
                    texts.join("; ")
                }),
            )
        }
        None if outcome.is_some() => (TestVerdict::Deleted, None),
        None | Some(MessageState::Queued | MessageState::Sending | MessageState::Expired) => {
            (TestVerdict::Pending, None)
        }
    };
    let json = TestJson {
        account: name,
        qid: &qid,
        to: &to,
        outcome: verdict,
        state: state.map(MessageState::as_str),
        account_state: account.state.as_str(),
        answer: answer.as_deref(),
        via,
    };
    ctx.output(&json, || {
        let head = format!(
            "test message {qid} from {} to {}",
            sanitize::terminal(name),
            sanitize::terminal(&to)
        );
        match verdict {
            TestVerdict::Delivered => format!(
                "{head}: delivered (accepted by {}:{})\n",
                sanitize::terminal(&ctx.cfg.relay.host),
                ctx.cfg.relay.port
            ),
            TestVerdict::Held => format!(
                "{head}: held — the account is {} ({}); `mailq-ctl unblock {}` relays it\n",
                view::paint(account.state, ctx.color),
                sanitize::terminal(&account.reason),
                sanitize::terminal(name)
            ),
            TestVerdict::Deferred => format!(
                "{head}: deferred, will be retried; server answer: {}\n",
                sanitize::terminal(answer.as_deref().unwrap_or(""))
            ),
            TestVerdict::Failed => format!(
                "{head}: failed; server answer: {}\n",
                sanitize::terminal(answer.as_deref().unwrap_or(""))
            ),
            TestVerdict::Deleted => format!("{head}: deleted from the queue meanwhile\n"),
            TestVerdict::Pending => format!(
                "{head}: still in the queue after {}s (is the relay running?)\n",
                wait.as_secs()
            ),
        }
    })
}
