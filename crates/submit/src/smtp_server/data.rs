//! Reading the client's input: command lines of bounded length, and the message after
//! DATA up to the one end-of-data sequence that counts (RFC 5321 §4.1.1.4).

use std::io::{self, BufRead};

/// One input line, as seen by [`read_line`].
pub(super) struct LineInfo {
    /// Full length of the line without its LF and trailing CRs, even if not all was kept.
    pub(super) len: usize,
    /// It ended in exactly CR LF (not a bare LF, not CR CR LF, not end of input).
    pub(super) crlf: bool,
}

/// Read one line into `out`, keeping at most `keep` bytes (the rest is read and dropped,
/// so memory stays bounded whatever the client sends). The line ends at LF or at end of
/// input; the LF and any CRs before it are removed, so CRLF and bare LF both work (a bare
/// CR elsewhere is data). `None` at end of input with nothing read.
pub(super) fn read_line<R: BufRead>(
    input: &mut R,
    out: &mut Vec<u8>,
    keep: usize,
) -> io::Result<Option<LineInfo>> {
    out.clear();
    let mut raw_len = 0usize;
    let mut trailing_cr = 0usize;
    let mut got_any = false;
    let mut ended_by_lf = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !got_any {
                return Ok(None);
            }
            break;
        }
        got_any = true;
        let (chunk, found_lf) = match buf.iter().position(|&b| b == b'\n') {
            Some(n) => (&buf[..n], true),
            None => (buf, false),
        };
        let room = keep.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let crs = chunk.iter().rev().take_while(|&&b| b == b'\r').count();
        trailing_cr = if crs == chunk.len() {
            trailing_cr + crs
        } else {
            crs
        };
        raw_len += chunk.len();
        let used = chunk.len() + usize::from(found_lf);
        input.consume(used);
        if found_lf {
            ended_by_lf = true;
            break;
        }
    }
    let len = raw_len - trailing_cr;
    out.truncate(len);
    Ok(Some(LineInfo {
        len,
        crlf: ended_by_lf && trailing_cr == 1,
    }))
}

pub(super) enum Data {
    Complete(Vec<u8>),
    TooBig,
    Eof,
}

/// Read message data after 354 up to <CRLF>.<CRLF> (RFC 5321 §4.1.1.4), removing one
/// leading dot from other dot-lines (§4.5.2 transparency) and ending every line in CRLF.
///
/// Only a "." line that ends in exactly CR LF, after a line (or the DATA command) that
/// did too, ends the data. Any other lone "." — after or before a bare LF, a bare CR,
/// CR CR LF — is message text, kept as a "." line (the relay dot-stuffs it): that is
/// how SMTP smuggling (CVE-2023-51764) hides a second transaction in a message, and a
/// server that ends DATA there relays the smuggled mail. Postfix's
/// `smtpd_forbid_bare_newline = normalize` makes the same choice; refusing such
/// messages outright would also refuse honest ones whose text holds a bare LF.
/// `after_crlf`: whether the DATA command's line ended in CR LF.
pub(super) fn read_data<R: BufRead>(
    input: &mut R,
    line: &mut Vec<u8>,
    limit: u64,
    after_crlf: bool,
) -> io::Result<Data> {
    let mut body = Vec::new();
    let mut too_big = false;
    let mut prev_crlf = after_crlf;
    loop {
        // Keep just enough of each line to store it if it fits, and always 2 bytes so a
        // "." or ".." line is still recognised while discarding an oversize message.
        let room = limit.saturating_sub(body.len() as u64);
        let keep = if too_big {
            2
        } else {
            usize::try_from(room)
                .unwrap_or(usize::MAX)
                .saturating_add(2)
        };
        let Some(info) = read_line(input, line, keep)? else {
            return Ok(Data::Eof);
        };
        let lone_dot = info.len == 1 && line.first() == Some(&b'.');
        if lone_dot && prev_crlf && info.crlf {
            return Ok(if too_big {
                Data::TooBig
            } else {
                Data::Complete(body)
            });
        }
        prev_crlf = info.crlf;
        if too_big {
            continue;
        }
        // A lone "." that did not end the data is text, not a stuffed empty line.
        let skip = usize::from(line.first() == Some(&b'.') && !lone_dot);
        let stored = (info.len - skip) as u64 + 2;
        if stored > room {
            // Free the memory now; keep reading only to find the end of the data.
            too_big = true;
            body = Vec::new();
            continue;
        }
        body.extend_from_slice(&line[skip..]);
        body.extend_from_slice(b"\r\n");
    }
}
