//! This node's messages: `queue` (a listing), `show` (one message), and
//! `release` and `delete` of one message by queue id.

use serde::Serialize;

use super::values::Time;
use super::{Control, Result};
use crate::log::{self, Level};
use crate::queue::{MessageState, RecipientState};
use crate::sanitize;
use crate::store::{MessageRow, QueueFilter};

/// One message, without its content.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDoc {
    pub qid: String,
    pub account: String,
    pub state: MessageState,
    pub created: Time,
    /// Only while it waits (queued, deferred).
    pub next_attempt: Option<Time>,
    pub attempts: i64,
    /// `""` is the null sender.
    pub sender: String,
    pub nrcpt: i64,
    pub size: i64,
    pub subject: String,
    pub script: String,
    pub last_error: String,
    pub done_at: Option<Time>,
}

impl From<MessageRow> for MessageDoc {
    fn from(m: MessageRow) -> MessageDoc {
        MessageDoc {
            next_attempt: m.state.is_waiting().then_some(Time(m.next_attempt)),
            qid: m.qid,
            account: m.account,
            state: m.state,
            created: Time(m.created),
            attempts: m.attempts,
            sender: m.sender,
            nrcpt: m.nrcpt,
            size: m.size,
            subject: m.subject,
            script: m.script,
            last_error: m.last_error,
            done_at: m.done_at.map(Time),
        }
    }
}

/// `queue`: not-yet-done mail oldest first, or one state newest first.
#[derive(Debug, Clone, Serialize)]
pub struct QueueListDoc {
    pub messages: Vec<MessageDoc>,
}

/// One envelope recipient and its outcome so far.
#[derive(Debug, Clone, Serialize)]
pub struct RecipientDoc {
    pub address: String,
    pub state: RecipientState,
}

/// `show QID`: the message, where it came from, and its content while it
/// has one.
#[derive(Debug, Clone, Serialize)]
pub struct ShowDoc {
    #[serde(flatten)]
    pub message: MessageDoc,
    pub cwd: String,
    pub uid: i64,
    pub recipients: Vec<RecipientDoc>,
    /// `None` once the content is deleted (the message is done).
    pub headers: Option<String>,
    /// Only when asked for.
    pub body: Option<String>,
}

/// `release QID`, `delete QID`: where the message was and went.
#[derive(Debug, Clone, Serialize)]
pub struct MoveDoc {
    pub qid: String,
    pub account: String,
    pub old_state: MessageState,
    /// `None`: deleted.
    pub new_state: Option<MessageState>,
}

impl Control {
    /// `queue`: this node's messages — of one account or all, the
    /// not-yet-done ones (`state` `None`) or one state — at most `limit`.
    pub fn queue(
        &self,
        account: Option<&str>,
        state: Option<MessageState>,
        limit: u32,
    ) -> Result<QueueListDoc> {
        let rows = self.store().messages(&QueueFilter {
            account: account.map(str::to_string),
            state,
            limit: i64::from(limit),
        })?;
        Ok(QueueListDoc {
            messages: rows.into_iter().map(MessageDoc::from).collect(),
        })
    }

    /// `show QID`: envelope, recipients, headers; the body if `with_body`.
    pub fn show(&self, qid: &str, with_body: bool) -> Result<ShowDoc> {
        let d = self.store().message(qid, true)?;
        let (headers, body) = match &d.data {
            Some(data) => {
                let split = find(data, b"\r\n\r\n").map_or(data.len(), |i| i + 2);
                let (h, b) = data.split_at(split);
                let b = b.strip_prefix(b"\r\n").unwrap_or(b);
                (
                    Some(String::from_utf8_lossy(h).into_owned()),
                    with_body.then(|| String::from_utf8_lossy(b).into_owned()),
                )
            }
            None => (None, None),
        };
        Ok(ShowDoc {
            cwd: d.row.cwd.clone(),
            uid: d.row.uid,
            message: d.row.into(),
            recipients: d
                .recipients
                .into_iter()
                .map(|(address, state)| RecipientDoc { address, state })
                .collect(),
            headers,
            body,
        })
    }

    /// `release QID`: one held message to `queued`, relayed now even from a
    /// blocked account.
    pub fn release(&mut self, qid: &str, now: i64) -> Result<MoveDoc> {
        let m = self.authority.release_message(qid, now)?;
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} released actor={}",
                sanitize::line(&m.qid),
                sanitize::line(&m.account),
                log::quote(&self.actor)
            ),
        );
        self.wake_relay();
        Ok(MoveDoc {
            qid: m.qid,
            account: m.account,
            old_state: MessageState::Held,
            new_state: Some(MessageState::Queued),
        })
    }

    /// `delete QID`: drop one held, queued or deferred message.
    pub fn delete(&mut self, qid: &str) -> Result<MoveDoc> {
        let m = self.authority.delete_message(qid)?;
        log::log(
            Level::Info,
            &format!(
                "qid={} account={} deleted state={} actor={}",
                sanitize::line(&m.qid),
                sanitize::line(&m.account),
                m.state,
                log::quote(&self.actor)
            ),
        );
        Ok(MoveDoc {
            qid: m.qid,
            account: m.account,
            old_state: m.state,
            new_state: None,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
