//! How delivery on demand reads for people: `flush` (what was due and
//! what became of it) and `test` (the verdict on one test mail).

use std::time::Duration;

use super::view::{self, Align, Cell, Table};
use crate::config::Config;
use crate::control::{FlushDoc, TestDoc, TestVerdict, Via};
use crate::queue::MessageState;
use crate::sanitize;

/// `flush`.
pub fn flush(d: &FlushDoc, color: bool) -> String {
    let how = match d.via {
        Via::Foreground => "delivered in the foreground",
        Via::Daemon => "handed to the running relay",
        Via::None => return "nothing to flush: no queued or deferred mail\n".to_string(),
    };
    let mut s = format!(
        "flushed {} message(s) ({how}): {} sent, {} deferred, {} failed, {} still pending\n",
        d.due, d.sent, d.deferred, d.failed, d.pending
    );
    let mut t = Table::new(&[
        ("QID", Align::Left),
        ("ACCOUNT", Align::Left),
        ("STATE", Align::Left),
        ("SERVER ANSWER", Align::Left),
    ]);
    for o in d
        .messages
        .iter()
        .filter(|o| o.state != Some(MessageState::Sent))
    {
        t.row(vec![
            o.qid.as_str().into(),
            Cell::untrusted(&o.account),
            o.state.map_or("deleted", MessageState::as_str).into(),
            Cell::untrusted(&o.answer),
        ]);
    }
    if !t.is_empty() {
        s.push_str(&t.render(color));
    }
    s
}

/// `test ACCOUNT --to ADDR`.
pub fn test(d: &TestDoc, cfg: &Config, wait: Duration, color: bool) -> String {
    let head = format!(
        "test message {} from {} to {}",
        d.qid,
        sanitize::terminal(&d.account),
        sanitize::terminal(&d.to)
    );
    let answer = || sanitize::terminal(d.answer.as_deref().unwrap_or(""));
    match d.outcome {
        TestVerdict::Delivered => format!(
            "{head}: delivered (accepted by {}:{})\n",
            sanitize::terminal(&cfg.relay.host),
            cfg.relay.port
        ),
        TestVerdict::Held => format!(
            "{head}: held — the account is {} ({}); `mailq-ctl unblock {}` relays it\n",
            view::paint(d.account_state, color),
            sanitize::terminal(&d.account_reason),
            sanitize::terminal(&d.account)
        ),
        TestVerdict::Deferred => {
            format!(
                "{head}: deferred, will be retried; server answer: {}\n",
                answer()
            )
        }
        TestVerdict::Failed => format!("{head}: failed; server answer: {}\n", answer()),
        TestVerdict::Deleted => format!("{head}: deleted from the queue meanwhile\n"),
        TestVerdict::Pending => format!(
            "{head}: still in the queue after {}s (is the relay running?)\n",
            wait.as_secs()
        ),
    }
}
