//! `sendmail -bp` / `mailq`: one account's pending mail, as relayd sends it
//! over the socket and as `sendmail` prints it (the same table whichever
//! process read the queue).

use std::io::{self, Write};

use super::frame::{self, FrameError};
use crate::{clock, sanitize};

/// Where a pending message is: its queue state, or the maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Held,
    Queued,
    Deferred,
    Sending,
    /// Accepted, not yet imported into the queue.
    Maildrop,
}

impl Pending {
    /// The name in the listing and on the wire (the queue state's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Pending::Held => "held",
            Pending::Queued => "queued",
            Pending::Deferred => "deferred",
            Pending::Sending => "sending",
            Pending::Maildrop => "maildrop",
        }
    }

    fn parse(s: &str) -> Option<Pending> {
        [
            Pending::Held,
            Pending::Queued,
            Pending::Deferred,
            Pending::Sending,
            Pending::Maildrop,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// One pending message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub qid: String,
    pub size: i64,
    /// ms since the epoch.
    pub created: i64,
    pub state: Pending,
    pub sender: String,
    pub recipients: Vec<String>,
}

/// Print the listing the way `sendmail -bp` always has.
pub fn print(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "Mail queue is empty");
    }
    writeln!(
        out,
        "{:<17} {:>8} {:<20} {:<9} Sender/Recipients",
        "Queue ID", "Size", "Arrival", "State"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<17} {:>8} {:<20} {:<9} <{}>",
            sanitize::line(&r.qid),
            r.size,
            clock::format_rfc3339(r.created),
            r.state.as_str(),
            sanitize::line(&r.sender)
        )?;
        for rcpt in &r.recipients {
            writeln!(out, "{:<57} <{}>", "", sanitize::line(rcpt))?;
        }
    }
    Ok(())
}

/// The answer to a `LIST` frame: `row QID SIZE CREATED STATE SENDER` lines,
/// each followed by its `rcpt ADDR` lines, then `250 COUNT`.
pub fn encode(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        out.extend_from_slice(b"row ");
        for (i, v) in [
            r.qid.as_str(),
            &r.size.to_string(),
            &r.created.to_string(),
            r.state.as_str(),
            &r.sender,
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                out.push(b' ');
            }
            // An empty sender (the null sender) must still be a field.
            if v.is_empty() {
                out.extend_from_slice(b"%00");
                continue;
            }
            frame::escape_into(v, &mut out);
        }
        out.push(b'\n');
        for rc in &r.recipients {
            out.extend_from_slice(b"rcpt ");
            frame::escape_into(rc, &mut out);
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("250 {}\n", rows.len()).as_bytes());
    out
}

/// What one line of a `LIST` answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Row(Row),
    Rcpt(String),
    End(u64),
}

/// Parse one line of a `LIST` answer (without its LF).
pub fn parse_line(line: &[u8]) -> Result<Line, FrameError> {
    let bad = || FrameError::BadLine(sanitize::line(&String::from_utf8_lossy(line)).into_owned());
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let field = |s: &str| -> Result<String, FrameError> {
        let v = frame::unescape(s.as_bytes()).ok_or_else(bad)?;
        Ok(if v == "\0" { String::new() } else { v })
    };
    if let Some(n) = text.strip_prefix("250 ") {
        return frame::number(n).map(Line::End).ok_or_else(bad);
    }
    if let Some(a) = text.strip_prefix("rcpt ") {
        return Ok(Line::Rcpt(field(a)?));
    }
    let rest = text.strip_prefix("row ").ok_or_else(bad)?;
    let f: Vec<&str> = rest.split(' ').collect();
    let [qid, size, created, state, sender] = f.as_slice() else {
        return Err(bad());
    };
    let int = |s: &str| -> Result<i64, FrameError> {
        frame::number(s)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(bad)
    };
    Ok(Line::Row(Row {
        qid: field(qid)?,
        size: int(size)?,
        created: int(created)?,
        state: Pending::parse(state).ok_or_else(bad)?,
        sender: field(sender)?,
        recipients: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_answer() {
        let rows = vec![
            Row {
                qid: "6A1F0C2B9D3E4F5A6B7C".into(),
                size: 1234,
                created: 1_700_000_000_000,
                state: Pending::Held,
                sender: String::new(),
                recipients: vec!["a@x.org".into(), "b c@x.org".into()],
            },
            Row {
                qid: "6A1F0C2B9D3E4F5A6B7D".into(),
                size: 1,
                created: 0,
                state: Pending::Maildrop,
                sender: "s@x.org".into(),
                recipients: vec![],
            },
        ];
        let bytes = encode(&rows);
        let mut got: Vec<Row> = Vec::new();
        let mut end = None;
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match parse_line(line).unwrap() {
                Line::Row(r) => got.push(r),
                Line::Rcpt(a) => got.last_mut().unwrap().recipients.push(a),
                Line::End(n) => end = Some(n),
            }
        }
        assert_eq!(got, rows);
        assert_eq!(end, Some(2));
        let mut out = Vec::new();
        print(&mut out, &[]).unwrap();
        assert_eq!(out, b"Mail queue is empty\n");
    }
}
