//! Reading the caller's standard input against a deadline (`queue.read_timeout`).
//!
//! `sendmail` runs as the service user, so a caller that starts a message and
//! never finishes it (the pipe held open) would otherwise keep a process of
//! the service user alive for ever; enough of them stop every account's mail
//! (SECURITY.md). Every read waits with poll(2) for what is left of the time
//! and fails with [`io::ErrorKind::TimedOut`] once it is spent. The time is
//! counted for the whole message, not per read: trickling a byte now and then
//! does not extend it. A `-bs` session restarts it after each accepted
//! message (see `submit`), so a long-lived client that keeps sending is not
//! cut off, while one that idles or trickles is.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::os;

/// When reading must be over; shared by the reader and whoever restarts it.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Rc<Cell<Instant>>,
    timeout: Duration,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn start(timeout: Duration) -> Deadline {
        Deadline {
            at: Rc::new(Cell::new(Instant::now() + timeout)),
            timeout,
        }
    }

    /// Count `timeout` afresh from now.
    pub fn restart(&self) {
        self.at.set(Instant::now() + self.timeout);
    }

    /// The configured length.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn remaining(&self) -> Duration {
        self.at.get().saturating_duration_since(Instant::now())
    }
}

/// Standard input, read directly (no buffer of its own: wrap it in a
/// `BufReader`), failing with `TimedOut` once the deadline has passed.
#[derive(Debug)]
pub struct TimedStdin {
    deadline: Deadline,
}

impl TimedStdin {
    pub fn new(deadline: Deadline) -> TimedStdin {
        TimedStdin { deadline }
    }
}

impl Read for TimedStdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let left = self.deadline.remaining();
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "input not finished in time",
                ));
            }
            if os::stdin_readable_within(left)? {
                match os::read_stdin(buf) {
                    // A caller may hand over a non-blocking pipe: wait again.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            }
        }
    }
}

/// Whether an I/O error is the deadline passing.
pub fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_moves_the_deadline() {
        let d = Deadline::start(Duration::from_secs(100));
        let shared = d.clone();
        shared.at.set(Instant::now());
        assert!(d.remaining().is_zero());
        shared.restart();
        assert!(d.remaining() > Duration::from_secs(99));
        assert_eq!(d.timeout(), Duration::from_secs(100));
    }
}
