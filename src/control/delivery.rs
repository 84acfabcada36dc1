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

use super::values::Time;
use super::{Control, ControlError, Result, check_account_name, check_address};
use crate::account::State;
use crate::address;
use crate::clock;
use crate::log::{self, Level};
use crate::os::{self, signals};
use crate::queue::MessageState;
use crate::relay::{self, Mode};
use crate::sanitize;
use crate::store::{NewMessage, Progress, StoreError, Tracked};

/// How the messages were relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A one-shot relayer ran in this process.
    Foreground,
    /// The running relayer (daemon or one-shot) was woken.
    Daemon,
    /// Nothing was queued or deferred: nothing to relay.
    None,
}

/// Where one message got to.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressDoc {
    pub qid: String,
    pub account: String,
    /// `None`: deleted meanwhile.
    pub state: Option<MessageState>,
    pub attempts: i64,
    pub answer: String,
    pub next_attempt: Option<Time>,
}

impl From<Progress> for ProgressDoc {
    fn from(p: Progress) -> ProgressDoc {
        ProgressDoc {
            next_attempt: p
                .state
                .is_some_and(MessageState::is_waiting)
                .then_some(Time(p.next_attempt)),
            qid: p.qid,
            account: p.account,
            state: p.state,
            attempts: p.attempts,
            answer: p.last_error,
        }
    }
}

/// `flush`: what was due and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct FlushDoc {
    pub account: Option<String>,
    pub via: Via,
    pub due: usize,
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
    /// Not settled within the wait.
    pub pending: usize,
    /// Deleted or purged meanwhile.
    pub gone: usize,
    pub messages: Vec<ProgressDoc>,
}

/// What became of a test message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestVerdict {
    Delivered,
    Held,
    Deferred,
    Failed,
    /// Deleted or purged while we waited.
    Deleted,
    /// Still in the queue when the wait was over.
    Pending,
}

/// `test ACCOUNT --to ADDR`.
#[derive(Debug, Clone, Serialize)]
pub struct TestDoc {
    pub account: String,
    pub qid: String,
    pub to: String,
    pub outcome: TestVerdict,
    pub state: Option<MessageState>,
    pub account_state: State,
    /// The server's answer (deferred, failed).
    pub answer: Option<String>,
    /// `None` when the message was held (nothing to relay).
    pub via: Option<Via>,
    /// Why the account is in its state (for the text; not in the JSON).
    #[serde(skip)]
    pub account_reason: String,
}

impl Control {
    /// Get `tracked` relayed and wait (at most `wait`) until each is settled.
    fn relay_and_wait(
        &mut self,
        tracked: &[Tracked],
        wait: Duration,
    ) -> Result<(Via, Vec<Progress>)> {
        let deadline = Instant::now() + wait;
        let mut via = Via::Daemon;
        let mut last_kick: Option<Instant> = None;
        loop {
            let progress = self.store().progress(tracked)?;
            let settled = progress.iter().zip(tracked).all(|(p, t)| p.settled(t));
            if settled || Instant::now() >= deadline || signals::stop_requested() {
                return Ok((via, progress));
            }
            if last_kick.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_kick = Some(Instant::now());
                if self.relay_here()? {
                    via = Via::Foreground;
                    // The one-shot ran until nothing was due: look again at once.
                    continue;
                }
                if !crate::wake::poke(&self.cfg.wake_socket()) {
                    self.wake_relay();
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run a one-shot relayer in this process if no relayer holds the lock.
    /// True if it ran.
    fn relay_here(&self) -> Result<bool> {
        match relay::try_lock(&self.cfg)? {
            Some(lock) => drop(lock),
            None => return Ok(false),
        }
        // The relayer takes the lock itself; if someone took it in between, it
        // returns at once and the caller wakes that one instead.
        relay::run(self.cfg.clone(), self.config_path.clone(), Mode::Once)?;
        Ok(true)
    }

    /// `flush [--account A]`: make the queued and deferred mail due now,
    /// relay it, and wait at most `wait` for each outcome.
    pub fn flush(&mut self, account: Option<&str>, wait: Duration) -> Result<FlushDoc> {
        let tracked = self.store_mut().make_due(account, clock::now_ms())?;
        log::log(
            Level::Info,
            &format!(
                "flush account={} due={} actor={}",
                sanitize::line(account.unwrap_or("*")),
                tracked.len(),
                log::quote(&self.actor)
            ),
        );
        let (via, outcomes) = if tracked.is_empty() {
            (Via::None, Vec::new())
        } else {
            self.relay_and_wait(&tracked, wait)?
        };
        let count = |s: MessageState| outcomes.iter().filter(|o| o.state == Some(s)).count();
        let (sent, deferred, failed) = (
            count(MessageState::Sent),
            count(MessageState::Deferred),
            count(MessageState::Failed),
        );
        let gone = outcomes.iter().filter(|o| o.state.is_none()).count();
        Ok(FlushDoc {
            account: account.map(str::to_string),
            via,
            due: tracked.len(),
            sent,
            deferred,
            failed,
            pending: outcomes.len() - sent - deferred - failed - gone,
            gone,
            messages: outcomes.into_iter().map(ProgressDoc::from).collect(),
        })
    }

    /// `test ACCOUNT --to ADDR`: enqueue a test mail for the account exactly
    /// as `sendmail` would (state check, limits, counters), relay it, and
    /// wait at most `wait` for the outcome.
    pub fn test(&mut self, name: &str, to: &str, wait: Duration) -> Result<TestDoc> {
        check_account_name(name)?;
        let to = check_address(to)?;
        // A known account, or a real user that could send: never create a
        // stray account from a typo.
        let user = os::user_by_name(name);
        match self.store().account(name) {
            Ok(_) => {}
            Err(StoreError::NoAccount(n)) if user.is_none() => {
                return Err(StoreError::NoAccount(n).into());
            }
            Err(StoreError::NoAccount(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // The same gate as sendmail's: an account outside `accounts.allow`
        // cannot send, so a test for it is refused the same way.
        let allow = &self.cfg.accounts.allow;
        if !allow.is_empty() && !allow.iter().any(|a| a == name) {
            return Err(ControlError::Refused(format!(
                "account {} is not allowed to submit mail (accounts.allow)",
                sanitize::line(name)
            )));
        }
        let now = clock::now_ms();
        let qid = crate::submit::new_qid(now);
        let uid = user.map_or(0, |u| u.uid);
        let sender = format!("{name}@{}", self.cfg.domain);
        if !address::is_safe_envelope(&sender) {
            return Err(ControlError::Usage(format!(
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
            host = self.cfg.hostname,
            date = clock::format_rfc5322(now),
        );
        let recipients = [to.clone()];
        let policy = crate::store::EnqueuePolicy::from(&self.cfg);
        let actor = format!(" actor={}", log::quote(&self.actor));
        let r = self.store_mut().submit(
            &NewMessage {
                subject: &subject,
                script: "mailq-ctl test",
                ..NewMessage::new(&qid, name, uid, &sender, &recipients, data.as_bytes())
            },
            policy,
            now,
            &actor,
        )?;
        let (via, outcome) = if r.held {
            (None, None)
        } else {
            let tracked = [self.store().track(&qid)?];
            let (via, mut o) = self.relay_and_wait(&tracked, wait)?;
            (Some(via), o.pop())
        };
        let account = self.store().account(name)?;
        let state = outcome
            .as_ref()
            .and_then(|o| o.state)
            .or(r.held.then_some(MessageState::Held));
        let last_error = || outcome.as_ref().map(|o| o.last_error.clone());
        let (outcome_of, answer) = match state {
            Some(MessageState::Held) => (TestVerdict::Held, None),
            Some(MessageState::Sent) => (TestVerdict::Delivered, None),
            Some(MessageState::Deferred) => (TestVerdict::Deferred, last_error()),
            Some(MessageState::Failed) => {
                let texts = self.store().error_texts(&qid)?;
                let answer = if texts.is_empty() {
                    last_error().unwrap_or_default()
                } else {
                    texts.join("; ")
                };
                (TestVerdict::Failed, Some(answer))
            }
            None if outcome.is_some() => (TestVerdict::Deleted, None),
            None | Some(MessageState::Queued | MessageState::Sending | MessageState::Expired) => {
                (TestVerdict::Pending, None)
            }
        };
        Ok(TestDoc {
            account: name.to_string(),
            qid,
            to,
            outcome: outcome_of,
            state,
            account_state: account.state,
            answer,
            via,
            account_reason: account.reason,
        })
    }
}
