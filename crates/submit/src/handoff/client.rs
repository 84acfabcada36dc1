//! `sendmail`'s end of relayd's submit socket (docs/submission.md).
//!
//! [`Client::connect`] runs while the effective uid is the caller's real
//! uid, so the kernel records the caller as the peer (`SO_PEERCRED`), and
//! never blocks (a full backlog is "no daemon"). Nothing is read or written
//! until the message is ready: relayd's greeting waits in the socket buffer
//! while `sendmail` reads its input as the service user. Every wait has the
//! `submit.timeout` bound; any failure is [`Lost`], and the caller then
//! writes the maildrop file with the same queue id — relayd may or may not
//! have committed it, and the import finds out by the queue id.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::frame::{self, Reply, Verb};
use super::listing::{self, Line, Row};
use super::parcel::Parcel;

/// Why relayd did not answer: use the maildrop.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    #[error("relayd turned the connection away: {0}")]
    TurnedAway(String),
    #[error("relayd cannot take it now: {0}")]
    Deferred(String),
    #[error("connection to relayd: {0}")]
    Io(#[from] io::Error),
    #[error("relayd's answer: {0}")]
    Protocol(#[from] frame::FrameError),
}

/// A connection to relayd.
pub struct Client {
    stream: UnixStream,
    /// Bytes read past the last line.
    pending: Vec<u8>,
    greeted: bool,
}

impl Client {
    /// Connect to the submit socket. Fails at once when there is no socket,
    /// nobody listening, a full backlog or no permission.
    pub fn connect(path: &Path, timeout: Duration) -> io::Result<Client> {
        let stream = crate::os::socket::connect_unix(path)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            stream,
            pending: Vec::new(),
            greeted: false,
        })
    }

    /// Read one line (without its LF), at most [`frame::MAX_LINE`] bytes.
    fn read_line(&mut self) -> Result<Vec<u8>, Lost> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let rest = self.pending.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.pop();
                return Ok(line);
            }
            if self.pending.len() > frame::MAX_LINE {
                return Err(frame::FrameError::LineTooLong.into());
            }
            let mut buf = [0u8; 4096];
            let n = match self.stream.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            self.pending
                .extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    }

    /// relayd's greeting, read once before the first frame.
    fn greet(&mut self) -> Result<(), Lost> {
        if self.greeted {
            return Ok(());
        }
        let line = self.read_line()?;
        if !frame::is_ready(&line) {
            let why = match Reply::parse(&line) {
                Ok(Reply::Deferred { text, .. }) => text,
                _ => crate::sanitize::line(&String::from_utf8_lossy(&line)).into_owned(),
            };
            return Err(Lost::TurnedAway(why));
        }
        self.greeted = true;
        Ok(())
    }

    /// Write `parts` whole.
    fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        while !parts.is_empty() {
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            let mut n = match self.stream.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            while let Some(first) = parts.first_mut() {
                if n < first.len() {
                    *first = first.get(n..).unwrap_or_default();
                    break;
                }
                n -= first.len();
                parts.remove(0);
            }
        }
        Ok(())
    }

    /// Hand a message over and wait for relayd's verdict: accepted
    /// (committed) or refused for good. Anything else is [`Lost`].
    pub fn hand_over(&mut self, parcel: &Parcel) -> Result<Reply, Lost> {
        self.greet()?;
        let head = parcel.head(None);
        self.write_all(&[&head, &parcel.data])?;
        match Reply::parse(&self.read_line()?)? {
            Reply::Deferred { text, .. } => Err(Lost::Deferred(text)),
            r => Ok(r),
        }
    }

    /// The caller's pending mail, as relayd lists it.
    pub fn list(&mut self) -> Result<Vec<Row>, Lost> {
        self.greet()?;
        self.write_all(&[&frame::encode_head(Verb::List, &[], 0)])?;
        let mut rows: Vec<Row> = Vec::new();
        loop {
            let line = self.read_line()?;
            match listing::parse_line(&line) {
                Ok(Line::Row(r)) => rows.push(r),
                Ok(Line::Rcpt(a)) => match rows.last_mut() {
                    Some(r) => r.recipients.push(a),
                    None => return Err(frame::FrameError::BadLine("rcpt before row".into()).into()),
                },
                Ok(Line::End(_)) => return Ok(rows),
                // A refusal instead of a listing.
                Err(e) => {
                    return Err(match Reply::parse(&line) {
                        Ok(Reply::Refused { text, .. } | Reply::Deferred { text, .. }) => {
                            Lost::Deferred(text)
                        }
                        _ => e.into(),
                    });
                }
            }
        }
    }
}
