//! How `block`, `unblock` and `purge` read for people, and the question
//! `purge` asks on a terminal before it drops mail.

use std::io::BufRead;
use std::time::Duration;

use super::{CtlError, Out, Result, held, view};
use crate::control::{ChangeDoc, Control, HeldFilter, PurgeDoc};
use crate::sanitize;

/// `block ACCOUNT`.
pub fn block(d: &ChangeDoc, hold_max_age: Duration, color: bool) -> String {
    let mut s = format!(
        "{}: {} → {} ({}); new mail is held for at most {}\n",
        sanitize::terminal(&d.account),
        view::paint(d.old_state, color),
        view::paint(d.new_state, color),
        d.reason,
        view::age(crate::store::ms(hold_max_age))
    );
    if d.held > 0 {
        s.push_str(&format!(
            "{} queued or deferred message(s) not yet sent are held too\n",
            d.held
        ));
    }
    s
}

/// `unblock ACCOUNT`.
pub fn unblock(d: &ChangeDoc, color: bool) -> String {
    if d.changed {
        format!(
            "{}: {} → {}; {} held message(s) released for delivery\n",
            sanitize::terminal(&d.account),
            view::paint(d.old_state, color),
            view::paint(d.new_state, color),
            d.released
        )
    } else {
        format!(
            "{}: already {} (sending); {} held message(s) released\n",
            sanitize::terminal(&d.account),
            view::paint(d.new_state, color),
            d.released
        )
    }
}

/// `purge ACCOUNT [FILTER]`: asked on a terminal unless `--yes`; a whole
/// purge without a filter, else only the held mail the filter matches.
pub fn purge(
    c: &mut Control,
    out: Out,
    name: &str,
    yes: bool,
    note: Option<&str>,
    filter: &HeldFilter,
    now: i64,
) -> Result<()> {
    // Asked only once the command line is known to be right.
    crate::control::check_note(note)?;
    if filter.is_empty() {
        if !yes {
            let q = c.queue_counts(name, now)?;
            confirm(&format!(
                "Drop {} held and {} queued/deferred message(s) of {} and unblock it?",
                q.held,
                q.queued + q.deferred,
                sanitize::terminal(name)
            ))?;
        }
        let d = c.purge(name, note, now)?;
        return out.print(&d, || purged(&d, out.color));
    }
    if !yes {
        let h = c.held(name, filter, 0, now)?;
        confirm(&format!(
            "Drop {} held message(s) of {} ({})?",
            h.held,
            sanitize::terminal(name),
            held::filter_text(&h.filter)
        ))?;
    }
    let d = c.purge_held(name, filter, note, now)?;
    out.print(&d, || held::purged(&d))
}

/// Ask `question [y/N]` on the terminal; refused unless the answer is yes.
fn confirm(question: &str) -> Result<()> {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(CtlError::Usage(
            "purge drops mail: confirm with --yes (stdin is not a terminal)".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(CtlError::Refused("purge cancelled".into()))
    }
}

fn purged(d: &PurgeDoc, color: bool) -> String {
    let mut s = format!(
        "{}: dropped {} message(s) ({} held, {} queued/deferred); {} → {}\n",
        sanitize::terminal(&d.account),
        d.dropped,
        d.dropped_held,
        d.dropped_queued,
        view::paint(d.old_state, color),
        view::paint(d.new_state, color)
    );
    if d.released > 0 {
        s.push_str(&format!(
            "{} message(s) submitted during the purge released for delivery\n",
            d.released
        ));
    }
    s
}
