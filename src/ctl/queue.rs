//! How this node's queue reads for people: `queue`, `show`, `release`,
//! `delete`, `sweep`, and the hidden `populate`.

use super::view::{self, Align, Cell, Table};
use crate::control::{MoveDoc, PopulateDoc, QueueListDoc, ShowDoc, SweepDoc};
use crate::sanitize;

/// `queue`.
pub fn list(d: &QueueListDoc, now: i64, color: bool) -> String {
    let mut t = Table::new(&[
        ("QID", Align::Left),
        ("ACCOUNT", Align::Left),
        ("STATE", Align::Left),
        ("AGE", Align::Right),
        ("SIZE", Align::Right),
        ("RCPT", Align::Right),
        ("FROM", Align::Left),
        ("SCRIPT", Align::Left),
        ("SUBJECT", Align::Left),
        ("LAST ERROR", Align::Left),
    ]);
    for m in &d.messages {
        t.row(vec![
            m.qid.as_str().into(),
            Cell::untrusted(&m.account),
            m.state.as_str().into(),
            view::age(now - m.created.ms()).into(),
            m.size.into(),
            m.nrcpt.into(),
            Cell::untrusted(if m.sender.is_empty() { "<>" } else { &m.sender }),
            // "Which script?" is the admin's first question.
            Cell::untrusted(&sanitize::truncate(
                if m.script.is_empty() { "-" } else { &m.script },
                30,
            )),
            Cell::untrusted(&sanitize::truncate(&m.subject, 40)),
            Cell::untrusted(&sanitize::truncate(&m.last_error, 60)),
        ]);
    }
    t.render_or(color, || "queue is empty\n".to_string())
}

/// `show QID`.
pub fn show(d: &ShowDoc, color: bool) -> String {
    let m = &d.message;
    let mut t = Table::pairs();
    t.row(vec!["qid".into(), m.qid.as_str().into()]);
    t.row(vec!["account".into(), Cell::untrusted(&m.account)]);
    t.row(vec!["state".into(), m.state.as_str().into()]);
    t.row(vec!["created".into(), m.created.into()]);
    if let Some(next) = m.next_attempt {
        t.row(vec!["next attempt".into(), next.into()]);
    }
    if let Some(done) = m.done_at {
        t.row(vec!["done".into(), done.into()]);
    }
    t.row(vec!["attempts".into(), m.attempts.into()]);
    t.row(vec![
        "from".into(),
        Cell::untrusted(&format!("<{}>", m.sender)),
    ]);
    for r in &d.recipients {
        t.row(vec![
            "to".into(),
            Cell::untrusted(&format!("<{}> {}", r.address, r.state)),
        ]);
    }
    t.row(vec!["size".into(), m.size.into()]);
    t.row(vec!["script".into(), Cell::untrusted(&m.script)]);
    t.row(vec!["cwd".into(), Cell::untrusted(&d.cwd)]);
    if !m.last_error.is_empty() {
        t.row(vec!["last error".into(), Cell::untrusted(&m.last_error)]);
    }
    let mut out = t.render(color);
    out.push('\n');
    match (&d.headers, &d.body) {
        (None, _) => out.push_str("(content deleted: the message is done)\n"),
        (Some(h), b) => {
            for line in h.lines() {
                out.push_str(&sanitize::terminal(line));
                out.push('\n');
            }
            if let Some(b) = b {
                out.push('\n');
                for line in b.lines() {
                    out.push_str(&sanitize::terminal(line));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// `release QID`.
pub fn released(d: &MoveDoc) -> String {
    format!(
        "{} ({}): held → queued, relayed now\n",
        d.qid,
        sanitize::terminal(&d.account)
    )
}

/// `delete QID`.
pub fn deleted(d: &MoveDoc) -> String {
    format!(
        "{} ({}): {} message deleted\n",
        d.qid,
        sanitize::terminal(&d.account),
        d.old_state
    )
}

/// `sweep`.
pub fn sweep(d: &SweepDoc) -> String {
    let mut s = String::new();
    if d.recovered > 0 {
        s.push_str(&format!(
            "requeued {} message(s) a dead relayer left in delivery\n",
            d.recovered
        ));
    }
    if d.imported > 0 {
        s.push_str(&format!(
            "imported {} message(s) from the maildrop\n",
            d.imported
        ));
    }
    s.push_str(&format!("expired {} held message(s)", d.expired));
    if !d.expired_by_account.is_empty() {
        let list: Vec<String> = d
            .expired_by_account
            .iter()
            .map(|e| format!("{} {}", sanitize::terminal(&e.account), e.expired))
            .collect();
        s.push_str(&format!(" ({})", list.join(", ")));
    }
    let h = &d.deleted;
    s.push_str(&format!(
        "\ndeleted history older than {} day(s): {} message(s), {} mail(s) in error, {} event(s), {} daily row(s), {} hourly row(s), {} leftover body(ies)\n",
        d.history_days, h.messages, h.errors, h.events, h.daily, h.hourly, h.bodies
    ));
    s
}

/// Hidden `populate`.
pub fn populated(d: &PopulateDoc) -> String {
    format!(
        "populated {} account(s), {} message(s) of history over {} day(s), {} held (acct00000) in {:.1}s\n",
        d.accounts, d.messages, d.days, d.held, d.seconds
    )
}
