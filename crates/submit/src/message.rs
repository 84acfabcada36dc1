//! The message as read from sendmail's standard input: line-ending normalisation, the
//! lone-dot terminator, the mbox `From ` line, the size limit, splitting into header
//! fields and body, header editing, `-t` recipient extraction and the CRLF wire form.
//!
//! Line rules follow Postfix sendmail (`sendmail_fix_line_endings = always`,
//! `cleanup_replace_stray_cr_lf = yes`); README, "The `sendmail` interface", says what
//! that means for a script.

use std::io::{BufRead, ErrorKind};

use crate::address::{self, AddressError};

/// Why a message could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The CRLF-normalised message would exceed [`ReadOptions::max_size`].
    #[error("message too large (max {max} bytes)")]
    TooLarge { max: u64 },
    /// Reading standard input failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// A recipient header used by `-t` does not parse as an address-list.
    #[error("invalid address in {header} header: {source}")]
    BadAddress {
        header: String,
        source: AddressError,
    },
    /// A recipient header used by `-t` held a bare CR. A CR is no line end here, so such
    /// input (written with CR-only line ends) runs the following lines into the field,
    /// and its words would become recipients (issue 11).
    #[error("bare CR in the {header} header (lines must end in LF or CR LF)")]
    StrayCr { header: String },
}

/// How to read the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// `-i`/`-oi`: a line holding only `.` is data instead of the end of input.
    pub ignore_dots: bool,
    /// Largest accepted size in bytes of the CRLF-normalised message as
    /// [`Message::write_wire`] writes it (headers, blank line, body).
    pub max_size: u64,
}

/// One header field exactly as it will be written: name, colon, value and any
/// continuation lines, every line ending in CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name as written (without any obsolete WSP before the colon).
    name: String,
    /// Index of the colon in `raw`.
    colon: usize,
    /// The whole field; 8-bit bytes are kept, so this is not necessarily UTF-8.
    raw: Vec<u8>,
    /// A bare CR in the input was turned into a space somewhere in this field.
    stray_cr: bool,
}

impl Header {
    /// Field name as written, e.g. `Subject`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Unfolded value after the colon (RFC 5322 §2.2.3: CRLF before WSP removed), leading
    /// WSP trimmed, decoded as lossy UTF-8.
    pub fn value(&self) -> String {
        let after = self.raw.get(self.colon + 1..).unwrap_or(&[]);
        // `raw` holds no bare CR or LF (reading and `new` ensure it), so every CR/LF is
        // part of a CRLF that is either a fold or the final terminator.
        let unfolded: Vec<u8> = after
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        let start = unfolded
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(unfolded.len());
        String::from_utf8_lossy(&unfolded[start..]).into_owned()
    }

    /// The whole field as it goes on the wire (ends with CRLF).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The same field with its bytes replaced by `raw`, for re-folding (`reencode`),
    /// which keeps the name and the colon where they are and every line in CRLF.
    pub(crate) fn refolded(&self, raw: Vec<u8>) -> Header {
        Header {
            name: self.name.clone(),
            colon: self.colon,
            raw,
            stray_cr: self.stray_cr,
        }
    }

    /// Build `Name: value\r\n`.
    ///
    /// Characters not allowed in a field name (RFC 5322 §3.6.8 ftext: printable ASCII
    /// except `:`) are removed from `name`. Line breaks in `value` become folds
    /// (CRLF + WSP, §2.2.3) and blank continuation lines are dropped, so the result is
    /// always exactly one field: a caller-supplied value (e.g. the `-F` full name) cannot
    /// inject another header or end the header section.
    pub fn new(name: &str, value: &str) -> Header {
        let name: String = name.chars().filter(|&c| is_ftext(c as u32)).collect();
        let mut raw = Vec::with_capacity(name.len() + value.len() + 4);
        raw.extend_from_slice(name.as_bytes());
        raw.push(b':');
        let colon = name.len();
        for (k, line) in value.split('\n').enumerate() {
            let line = line.trim_end_matches('\r');
            if k == 0 {
                if !line.is_empty() {
                    raw.push(b' ');
                }
            } else {
                if line.trim_matches([' ', '\t']).is_empty() {
                    continue;
                }
                raw.extend_from_slice(b"\r\n");
                if !line.starts_with([' ', '\t']) {
                    raw.push(b' ');
                }
            }
            let from = raw.len();
            raw.extend_from_slice(line.as_bytes());
            replace_stray_cr(&mut raw[from..]);
        }
        raw.extend_from_slice(b"\r\n");
        Header {
            name,
            colon,
            raw,
            stray_cr: false,
        }
    }
}

/// A message: header fields in order, then the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<Header>,
    /// CRLF-normalised; every line ends with CRLF.
    pub body: Vec<u8>,
}

/// Read a message from sendmail's standard input.
///
/// Each line ends at LF; all CRs before the LF are stripped (so `\r\n`, `\n` and `\r\r\n`
/// mix freely, line by line); a CR elsewhere is data but is replaced by a space so no
/// bare CR reaches the wire; an unterminated final line is still a line.
pub fn read(input: impl BufRead, opts: &ReadOptions) -> Result<Message, MessageError> {
    let max = opts.max_size;
    let too_large = MessageError::TooLarge { max };
    let mut lines = Lines {
        inner: input,
        stray_cr: false,
    };
    let mut msg = Message::default();
    // The blank line between header and body is always written (RFC 5322 §2.1), so it is
    // counted up front; the size then equals `wire_len()` at every step.
    let mut total: u64 = 2;
    if total > max {
        return Err(too_large);
    }
    let mut line = Vec::with_capacity(256);
    let mut first = true;
    let mut in_headers = true;

    while in_headers {
        line.clear();
        // Only the CRs of the line about to be read count for its field.
        lines.stray_cr = false;
        if !lines.next_into(&mut line, line_limit(max, total), max)? {
            return Ok(msg);
        }
        if !opts.ignore_dots && line == b"." {
            return Ok(msg);
        }
        if std::mem::take(&mut first) && is_mbox_from(&line) {
            continue;
        }
        if line.is_empty() {
            in_headers = false;
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some(last) = msg.headers.last_mut() {
                // A continuation holding only WSP adds nothing after unfolding, and some
                // parsers take it as the end of the header section (RFC 5322 §3.2.2
                // forbids generating it); drop it so every reader sees the same fields.
                if line.iter().all(|&b| b == b' ' || b == b'\t') {
                    continue;
                }
                total = add(total, line.len(), max)?;
                last.raw.extend_from_slice(&line);
                last.raw.extend_from_slice(b"\r\n");
                last.stray_cr |= std::mem::take(&mut lines.stray_cr);
                continue;
            }
        } else if let Some((name_len, colon)) = field_name(&line) {
            total = add(total, line.len(), max)?;
            let name = String::from_utf8_lossy(&line[..name_len]).into_owned();
            let mut raw = Vec::with_capacity(line.len() + 2);
            raw.extend_from_slice(&line);
            raw.extend_from_slice(b"\r\n");
            msg.headers.push(Header {
                name,
                colon,
                raw,
                stray_cr: std::mem::take(&mut lines.stray_cr),
            });
            continue;
        }
        // Neither a field nor a continuation: the header section ended without a blank
        // line and this is the first body line (Postfix cleanup does the same).
        total = add(total, line.len(), max)?;
        msg.body.extend_from_slice(&line);
        msg.body.extend_from_slice(b"\r\n");
        in_headers = false;
    }

    loop {
        // Read straight into the body: no copy on the hot path.
        let start = msg.body.len();
        if !lines.next_into(&mut msg.body, line_limit(max, total), max)? {
            break;
        }
        if !opts.ignore_dots && &msg.body[start..] == b"." {
            msg.body.truncate(start);
            break;
        }
        total = add(total, msg.body.len() - start, max)?;
        msg.body.extend_from_slice(b"\r\n");
    }
    Ok(msg)
}

/// Most content bytes the next line may have before reading stops early. One more than
/// the remaining budget so a lone `.` (never stored) still fits when the budget is spent;
/// [`add`] does the exact accounting once the line is known.
fn line_limit(max: u64, total: u64) -> u64 {
    max.saturating_sub(total).saturating_add(1)
}

/// Add a line of `len` content bytes plus its CRLF to the running size.
fn add(total: u64, len: usize, max: u64) -> Result<u64, MessageError> {
    let total = total.saturating_add(len as u64).saturating_add(2);
    if total > max {
        return Err(MessageError::TooLarge { max });
    }
    Ok(total)
}

/// An mbox separator (`From sender date`), which must not be sent as content. `From :`
/// (obsolete WSP before the colon, RFC 5322 §4.5.3) is a header field, not a separator.
fn is_mbox_from(line: &[u8]) -> bool {
    line.starts_with(b"From ") && field_name(line).is_none()
}

/// RFC 5322 §3.6.8 ftext: printable US-ASCII except colon.
fn is_ftext(c: u32) -> bool {
    (33..=126).contains(&c) && c != u32::from(b':')
}

/// If `line` starts a header field, the name length and the colon index. Obsolete WSP
/// between name and colon is accepted (RFC 5322 §4.5, Postfix `is_header`).
fn field_name(line: &[u8]) -> Option<(usize, usize)> {
    let name_len = line.iter().take_while(|&&b| is_ftext(u32::from(b))).count();
    if name_len == 0 {
        return None;
    }
    let colon = name_len
        + line[name_len..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
    (line.get(colon) == Some(&b':')).then_some((name_len, colon))
}

/// Replace CRs with spaces. Applied to line content, where any CR left is "stray": a
/// bare CR is forbidden on the wire (RFC 5322 §2.3, RFC 5321 §2.3.8) and some receivers
/// end lines at it, which is how `\r.\r\n` smuggles a second message (CVE-2023-51764).
/// Postfix `cleanup_replace_stray_cr_lf` does the same.
fn replace_stray_cr(bytes: &mut [u8]) {
    for b in bytes {
        if *b == b'\r' {
            *b = b' ';
        }
    }
}

/// Splits input into lines at LF without buffering more than one line.
struct Lines<R> {
    inner: R,
    /// A stray CR was replaced since the caller last took this.
    stray_cr: bool,
}

impl<R: BufRead> Lines<R> {
    /// Append the next line's content to `out`: LF and all CRs right before it removed,
    /// other CRs replaced by spaces. Returns false at end of input with nothing read.
    /// Fails with `TooLarge` as soon as the content exceeds `limit` bytes, before the rest
    /// of the line is read.
    fn next_into(&mut self, out: &mut Vec<u8>, limit: u64, max: u64) -> Result<bool, MessageError> {
        let start = out.len();
        let mut got_any = false;
        // CRs at the end of what has been read so far: stripped if an LF follows, data
        // otherwise. Counted, not stored, since they may be dropped.
        let mut pending_cr: usize = 0;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if avail.is_empty() {
                // An unterminated final line is a line; its trailing CRs go like any
                // line's (research §2.6).
                return Ok(got_any);
            }
            got_any = true;
            let nl = avail.iter().position(|&b| b == b'\n');
            let seg = &avail[..nl.unwrap_or(avail.len())];
            let data_len = seg.iter().rposition(|&b| b != b'\r').map_or(0, |p| p + 1);
            let crs = seg.len() - data_len;
            if data_len > 0 {
                // The pending CRs turned out to be inside the line: data.
                let len_after = (out.len() - start) as u64 + pending_cr as u64 + data_len as u64;
                if len_after > limit {
                    return Err(MessageError::TooLarge { max });
                }
                self.stray_cr |= pending_cr > 0 || seg[..data_len].contains(&b'\r');
                out.resize(out.len() + pending_cr, b' ');
                let from = out.len();
                out.extend_from_slice(&seg[..data_len]);
                replace_stray_cr(&mut out[from..]);
                pending_cr = crs;
            } else {
                pending_cr = pending_cr.saturating_add(crs);
            }
            // A run of more CRs than the whole size limit is no real line ending; refusing
            // it keeps a flood of CRs from being read to the end.
            if pending_cr as u64 > max {
                return Err(MessageError::TooLarge { max });
            }
            let used = seg.len() + usize::from(nl.is_some());
            self.inner.consume(used);
            if nl.is_some() {
                return Ok(true);
            }
        }
    }
}

impl Message {
    /// True if a field with this name exists (names compare case-insensitively,
    /// RFC 5322 §1.2.2).
    pub fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Unfolded values of every field with this name, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(Header::value)
    }

    /// Remove every field with this name; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
        before - self.headers.len()
    }

    /// Insert a field before all others (where trace fields go, RFC 5322 §3.6.7).
    pub fn prepend(&mut self, h: Header) {
        self.headers.insert(0, h);
    }

    /// Add a field after all others.
    pub fn append(&mut self, h: Header) {
        self.headers.push(h);
    }

    /// Recipients for `-t`: from To, Cc and Bcc; but if any Resent-To/Resent-Cc/
    /// Resent-Bcc is present, only from those (Postfix rule, research §2.2; RFC 5322
    /// §3.6.6). Unqualified, not deduplicated.
    pub fn extract_recipients(&self) -> Result<Vec<String>, MessageError> {
        const RESENT: [&str; 3] = ["Resent-To", "Resent-Cc", "Resent-Bcc"];
        const NORMAL: [&str; 3] = ["To", "Cc", "Bcc"];
        let names = if RESENT.iter().any(|n| self.has(n)) {
            RESENT
        } else {
            NORMAL
        };
        let mut out = Vec::new();
        for h in &self.headers {
            if names.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
                if h.stray_cr {
                    return Err(MessageError::StrayCr {
                        header: h.name.clone(),
                    });
                }
                let list =
                    address::parse_list(&h.value()).map_err(|source| MessageError::BadAddress {
                        header: h.name.clone(),
                        source,
                    })?;
                out.extend(list);
            }
        }
        Ok(out)
    }

    /// Size in bytes of [`Message::write_wire`]'s output.
    pub fn wire_len(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|h| h.raw.len()).sum();
        (headers + 2 + self.body.len()) as u64
    }

    /// Append the message in wire form: header fields, the blank line, the body
    /// (RFC 5322 §2.1). CRLF line endings only; dot-stuffing is the SMTP layer's job.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        out.reserve(usize::try_from(self.wire_len()).unwrap_or(0));
        for h in &self.headers {
            out.extend_from_slice(&h.raw);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    const BIG: u64 = 1 << 20;

    fn opts(ignore_dots: bool) -> ReadOptions {
        ReadOptions {
            ignore_dots,
            max_size: BIG,
        }
    }

    fn parse(input: &[u8], o: &ReadOptions) -> Message {
        match read(input, o) {
            Ok(m) => m,
            Err(e) => panic!("read({:?}) failed: {e}", String::from_utf8_lossy(input)),
        }
    }

    fn wire(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.write_wire(&mut out);
        out
    }

    /// The wire form must be CRLF-only: every CR followed by LF and every LF preceded by CR.
    fn assert_crlf_only(bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(bytes.get(i + 1), Some(&b'\n'), "bare CR at {i}: {bytes:?}");
            }
            if b == b'\n' {
                assert!(i > 0 && bytes[i - 1] == b'\r', "bare LF at {i}: {bytes:?}");
            }
        }
    }

    fn names(m: &Message) -> Vec<&str> {
        m.headers.iter().map(Header::name).collect()
    }

    #[test]
    fn php8_mixed_layout() {
        let input = b"To: a@b\r\nSubject: s\r\nFrom: x@y\nX-A: 1\r\n\r\nline1\nline2\r\n";
        let m = parse(input, &opts(true));
        assert_eq!(names(&m), ["To", "Subject", "From", "X-A"]);
        let values: Vec<String> = m.headers.iter().map(Header::value).collect();
        assert_eq!(values, ["a@b", "s", "x@y", "1"]);
        assert_eq!(m.headers[2].raw(), b"From: x@y\r\n");
        assert_eq!(m.body, b"line1\r\nline2\r\n");
        let w = wire(&m);
        assert_eq!(
            w,
            b"To: a@b\r\nSubject: s\r\nFrom: x@y\r\nX-A: 1\r\n\r\nline1\r\nline2\r\n"
        );
        assert_eq!(m.wire_len(), w.len() as u64);
        assert_crlf_only(&w);
    }

    /// Table: input, ignore_dots, expected wire form.
    #[test]
    fn reading_rules() {
        let cases: &[(&str, &[u8], bool, &[u8])] = &[
            (
                "lf only",
                b"A: 1\nB: 2\n\nx\ny\n",
                false,
                b"A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n",
            ),
            (
                "crlf only",
                b"A: 1\r\n\r\nx\r\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            (
                "php 7 layout",
                b"To: t\nSubject: s\nH: h\n\nM\n",
                true,
                b"To: t\r\nSubject: s\r\nH: h\r\n\r\nM\r\n",
            ),
            (
                "many CRs stripped",
                b"A: 1\r\r\r\n\r\r\nx\r\r\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            (
                "no final terminator",
                b"A: 1\n\nlast",
                false,
                b"A: 1\r\n\r\nlast\r\n",
            ),
            (
                "no final terminator, CRs",
                b"A: 1\n\nlast\r\r",
                false,
                b"A: 1\r\n\r\nlast\r\n",
            ),
            ("empty input", b"", false, b"\r\n"),
            (
                "headers only, no blank",
                b"A: 1\nB: 2",
                false,
                b"A: 1\r\nB: 2\r\n\r\n",
            ),
            (
                "headers then blank, no body",
                b"A: 1\n\n",
                false,
                b"A: 1\r\n\r\n",
            ),
            (
                "no headers, blank first",
                b"\nbody\n",
                false,
                b"\r\nbody\r\n",
            ),
            (
                "no headers at all",
                b"just text\nmore\n",
                false,
                b"\r\njust text\r\nmore\r\n",
            ),
            (
                "body without separator",
                b"A: 1\nHello world\nB: 2\n",
                false,
                b"A: 1\r\n\r\nHello world\r\nB: 2\r\n",
            ),
            (
                "8-bit header name ends headers",
                b"A: 1\n\xc3\xa4: x\n",
                false,
                b"A: 1\r\n\r\n\xc3\xa4: x\r\n",
            ),
            (
                "continuation",
                b"A: 1\n 2\n\t3\nB: 4\n\nx\n",
                false,
                b"A: 1\r\n 2\r\n\t3\r\nB: 4\r\n\r\nx\r\n",
            ),
            (
                "continuation first is body",
                b" x\nA: 1\n",
                false,
                b"\r\n x\r\nA: 1\r\n",
            ),
            (
                "blank continuation dropped",
                b"A: 1\n \n\t\r\n 2\n\nx\n",
                false,
                b"A: 1\r\n 2\r\n\r\nx\r\n",
            ),
            (
                "obsolete WSP before colon",
                b"To : a@b\nSubject\t: s\n\nx\n",
                false,
                b"To : a@b\r\nSubject\t: s\r\n\r\nx\r\n",
            ),
            ("empty value", b"A:\nB:  \n\n", false, b"A:\r\nB:  \r\n\r\n"),
            (
                "mbox From dropped",
                b"From me@x Tue Jan  1 00:00:00 2030\nA: 1\n\nx\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            (
                "mbox From dropped crlf",
                b"From x\r\n\r\nbody\r\n",
                false,
                b"\r\nbody\r\n",
            ),
            (
                "From: header kept",
                b"From: a@b\n\nx\n",
                false,
                b"From: a@b\r\n\r\nx\r\n",
            ),
            (
                "obs From : header kept",
                b"From : a@b\n\nx\n",
                false,
                b"From : a@b\r\n\r\nx\r\n",
            ),
            (
                "From_ only on first line",
                b"A: 1\nFrom x y\n\nx\n",
                false,
                b"A: 1\r\n\r\nFrom x y\r\n\r\nx\r\n",
            ),
            (
                "From_ in body kept",
                b"A: 1\n\nFrom x y\n",
                false,
                b"A: 1\r\n\r\nFrom x y\r\n",
            ),
            (
                "dot ends input",
                b"A: 1\n\nx\n.\nignored\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            (
                "dot crlf ends input",
                b"A: 1\r\n\r\nx\r\n.\r\nignored\r\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            (
                "dot CRs ends input",
                b"A: 1\n\nx\n.\r\r\nignored\n",
                false,
                b"A: 1\r\n\r\nx\r\n",
            ),
            ("dot at EOF", b"A: 1\n\nx\n.", false, b"A: 1\r\n\r\nx\r\n"),
            (
                "dot in headers ends input",
                b"A: 1\n.\nB: 2\n",
                false,
                b"A: 1\r\n\r\n",
            ),
            ("dot first line", b".\nA: 1\n", false, b"\r\n"),
            (
                "dot data with -i",
                b"A: 1\n\nx\n.\ny\n",
                true,
                b"A: 1\r\n\r\nx\r\n.\r\ny\r\n",
            ),
            (
                "dot first line with -i",
                b".\nA: 1\n",
                true,
                b"\r\n.\r\nA: 1\r\n",
            ),
            (
                "not a lone dot",
                b"A: 1\n\n..\n.x\n .\n",
                false,
                b"A: 1\r\n\r\n..\r\n.x\r\n .\r\n",
            ),
            (
                "bare CR inside is data",
                b"A: x\ry\n\nb\rc\n",
                false,
                b"A: x y\r\n\r\nb c\r\n",
            ),
            (
                "NUL passes",
                b"A: 1\n\na\0b\n",
                false,
                b"A: 1\r\n\r\na\0b\r\n",
            ),
            (
                "8-bit passes",
                b"Subject: \xe4\xf6\n\n\xff\xfe\n",
                false,
                b"Subject: \xe4\xf6\r\n\r\n\xff\xfe\r\n",
            ),
            (
                "blank lines in body kept",
                b"A: 1\n\n\n\nx\n\n",
                false,
                b"A: 1\r\n\r\n\r\n\r\nx\r\n\r\n",
            ),
        ];
        for (name, input, ignore_dots, want) in cases {
            let m = parse(input, &opts(*ignore_dots));
            let w = wire(&m);
            assert_eq!(
                String::from_utf8_lossy(&w),
                String::from_utf8_lossy(want),
                "case {name}"
            );
            assert_eq!(w, *want, "case {name}");
            assert_eq!(m.wire_len(), w.len() as u64, "case {name}");
            assert_crlf_only(&w);
        }
    }

    #[test]
    fn smuggling_shaped_input_is_normalised() {
        // Table: input, ignore_dots, expected body. In none of the outputs may a bare CR
        // or LF remain, so no receiver can see an early end of data.
        let cases: &[(&[u8], bool, &[u8])] = &[
            // LF . CRLF: a lone-dot line; ends input without -i...
            (b"A: 1\n\nx\n.\r\nMAIL FROM:<evil>\r\n", false, b"x\r\n"),
            // ...and is a plain "." data line with -i (the SMTP layer dot-stuffs it).
            (
                b"A: 1\n\nx\n.\r\nMAIL FROM:<evil>\r\n",
                true,
                b"x\r\n.\r\nMAIL FROM:<evil>\r\n",
            ),
            // CR . CRLF: the CR is stray, so the dot is not alone on a line.
            (
                b"A: 1\n\nx\r.\r\nMAIL FROM:<evil>\r\n",
                false,
                b"x .\r\nMAIL FROM:<evil>\r\n",
            ),
            (b"A: 1\n\nx\r\n\r.\r\ny\r\n", false, b"x\r\n .\r\ny\r\n"),
            // CR . CR (no LF at all)
            (b"A: 1\n\nx\r.\ry\n", false, b"x . y\r\n"),
            // CRLF . LF
            (b"A: 1\n\nx\r\n.\ny\n", false, b"x\r\n"),
            (b"A: 1\n\nx\r\n.\ny\n", true, b"x\r\n.\r\ny\r\n"),
            // bare CRs everywhere
            (b"A: 1\n\n\r\r.\r\r", true, b"  .\r\n"),
        ];
        for (input, ignore_dots, want_body) in cases {
            let m = parse(input, &opts(*ignore_dots));
            assert_eq!(
                String::from_utf8_lossy(&m.body),
                String::from_utf8_lossy(want_body),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            assert_crlf_only(&wire(&m));
        }
        // Bare CR in a header cannot start a new field.
        let m = parse(b"Subject: x\rBcc: evil@x\n\n", &opts(true));
        assert_eq!(names(&m), ["Subject"]);
        assert_eq!(m.headers[0].value(), "x Bcc: evil@x");
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        // Reading through a 1-byte buffer splits CR runs and lines at every position.
        let inputs: &[&[u8]] = &[
            b"To: a@b\r\nSubject: s\r\nFrom: x@y\nX-A: 1\r\n\r\nline1\nline2\r\n",
            b"A: 1\r\r\r\n\r\r\nx\r\ry\r\r\n.\r\r\nz",
            b"From x\r\nA: 1\n 2\r\n\t\r\n\nb\rc\r\r",
            b"A: 1\n\n\r\r.\r\r",
        ];
        for input in inputs {
            for ignore_dots in [false, true] {
                let o = opts(ignore_dots);
                let whole = parse(input, &o);
                let chunked = match read(BufReader::with_capacity(1, *input), &o) {
                    Ok(m) => m,
                    Err(e) => panic!("chunked read failed: {e}"),
                };
                assert_eq!(whole, chunked, "input {input:?}");
            }
        }
    }

    #[test]
    fn size_limit_is_exact() {
        let input = b"A: 1\n\nhello\n";
        // Wire form: "A: 1\r\n" (6) + "\r\n" (2) + "hello\r\n" (7) = 15.
        let exact = ReadOptions {
            ignore_dots: false,
            max_size: 15,
        };
        assert_eq!(parse(input, &exact).wire_len(), 15);
        let under = ReadOptions {
            ignore_dots: false,
            max_size: 14,
        };
        assert!(matches!(
            read(&input[..], &under),
            Err(MessageError::TooLarge { max: 14 })
        ));
        // Stripped CRs and the dropped mbox line do not count.
        let crs = b"From x y\nA: 1\r\r\n\r\nhello\r\r\r\n.\nmore\n";
        assert_eq!(parse(crs, &exact).wire_len(), 15);
        // Even an empty message needs its blank line.
        let tiny = ReadOptions {
            ignore_dots: false,
            max_size: 1,
        };
        assert!(matches!(
            read(&b""[..], &tiny),
            Err(MessageError::TooLarge { max: 1 })
        ));
    }

    /// A reader that counts how much was taken from it.
    struct Counting<R> {
        inner: R,
        taken: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.taken += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn size_limit_stops_reading_early() {
        let o = ReadOptions {
            ignore_dots: true,
            max_size: 10_000,
        };
        // Endless streams: one endless line, endless lines, endless CRs, endless headers.
        for (what, byte) in [("line", b'a'), ("lines", b'\n'), ("crs", b'\r')] {
            let mut src = Counting {
                inner: std::io::repeat(byte),
                taken: 0,
            };
            let r = read(BufReader::with_capacity(4096, &mut src), &o);
            assert!(
                matches!(r, Err(MessageError::TooLarge { max: 10_000 })),
                "{what}: {r:?}"
            );
            assert!(
                src.taken <= 10_000 + 8192,
                "{what}: read {} bytes",
                src.taken
            );
        }
        // Endless header fields.
        let data: Vec<u8> = b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
            .iter()
            .copied()
            .cycle()
            .take(1_000_000)
            .collect();
        let mut src = Counting {
            inner: &data[..],
            taken: 0,
        };
        let r = read(BufReader::with_capacity(4096, &mut src), &o);
        assert!(matches!(r, Err(MessageError::TooLarge { .. })), "{r:?}");
        assert!(
            src.taken <= 10_000 + 8192,
            "headers: read {} bytes",
            src.taken
        );
    }

    #[test]
    fn io_errors_propagate() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("boom"))
            }
        }
        let r = read(BufReader::new(Failing), &opts(false));
        match r {
            Err(e @ MessageError::Io(_)) => assert_eq!(e.to_string(), "read error: boom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn interrupted_reads_are_retried() {
        struct Flaky {
            data: &'static [u8],
            interrupt: bool,
        }
        impl Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.interrupt = !self.interrupt;
                if self.interrupt {
                    return Err(ErrorKind::Interrupted.into());
                }
                let n = buf.len().min(self.data.len()).min(3);
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                Ok(n)
            }
        }
        let src = Flaky {
            data: b"A: 1\n\nbody\n",
            interrupt: false,
        };
        let m = match read(BufReader::with_capacity(2, src), &opts(false)) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(wire(&m), b"A: 1\r\n\r\nbody\r\n");
    }

    #[test]
    fn header_value_unfolds() {
        let m = parse(
            b"Subject:   folded\r\n  over\n\tlines  \nX-Empty:\nTo :\ta@b\n\n",
            &opts(false),
        );
        let cases = [
            (0, "Subject", "folded  over\tlines  "),
            (1, "X-Empty", ""),
            (2, "To", "a@b"),
        ];
        for (i, name, value) in cases {
            assert_eq!(m.headers[i].name(), name);
            assert_eq!(m.headers[i].value(), value);
        }
        // 8-bit values are decoded lossily; raw bytes are untouched.
        let m = parse(b"Subject: \xe4 \xc3\xa4\n\n", &opts(false));
        assert_eq!(m.headers[0].value(), "\u{fffd} ä");
        assert_eq!(m.headers[0].raw(), b"Subject: \xe4 \xc3\xa4\r\n");
    }

    #[test]
    fn header_new() {
        let cases: &[(&str, &str, &[u8], &str)] = &[
            ("Subject", "hello", b"Subject: hello\r\n", "hello"),
            ("X-Empty", "", b"X-Empty:\r\n", ""),
            (
                "From",
                "Jörg <j@x>",
                "From: Jörg <j@x>\r\n".as_bytes(),
                "Jörg <j@x>",
            ),
            // Line breaks become folds; nothing can start a new field.
            (
                "From",
                "a\r\nBcc: evil@x",
                b"From: a\r\n Bcc: evil@x\r\n",
                "a Bcc: evil@x",
            ),
            (
                "From",
                "a\nBcc: evil@x",
                b"From: a\r\n Bcc: evil@x\r\n",
                "a Bcc: evil@x",
            ),
            ("From", "a\n\nbody", b"From: a\r\n body\r\n", "a body"),
            ("From", "a\n \r\n\tb", b"From: a\r\n\tb\r\n", "a\tb"),
            ("From", "a\rb", b"From: a b\r\n", "a b"),
            ("X-T", "a\r\n\tb", b"X-T: a\r\n\tb\r\n", "a\tb"),
            // Invalid name characters are dropped.
            ("Bad Name:\r\n", "v", b"BadName: v\r\n", "v"),
        ];
        for (name, value, raw, want_value) in cases {
            let h = Header::new(name, value);
            assert_eq!(h.raw(), *raw, "Header::new({name:?}, {value:?})");
            assert_eq!(h.value(), *want_value, "value of {name:?}, {value:?}");
            assert_crlf_only(h.raw());
        }
        assert_eq!(Header::new("Bad Name:", "v").name(), "BadName");
    }

    #[test]
    fn header_lookup_and_editing() {
        let mut m = parse(
            b"To: a@b\nbcc: x@y\nSubject: s\nBCC: z@w\nReturn-Path: <r@x>\n\nbody\n",
            &opts(false),
        );
        assert!(m.has("bcc") && m.has("TO") && !m.has("Cc"));
        let bcc: Vec<String> = m.values("Bcc").collect();
        assert_eq!(bcc, ["x@y", "z@w"]);
        assert_eq!(m.values("Cc").count(), 0);
        assert_eq!(m.remove("Bcc"), 2);
        assert_eq!(m.remove("Bcc"), 0);
        assert_eq!(m.remove("return-path"), 1);
        m.prepend(Header::new("Received", "from local"));
        m.append(Header::new("Message-ID", "<1@x>"));
        assert_eq!(names(&m), ["Received", "To", "Subject", "Message-ID"]);
        let w = wire(&m);
        assert_eq!(
            w,
            b"Received: from local\r\nTo: a@b\r\nSubject: s\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n"
        );
        assert_eq!(m.wire_len(), w.len() as u64);
    }

    #[test]
    fn recipients() {
        let cases: &[(&[u8], &[&str])] = &[
            (
                b"To: a@b\nCc: c@d, e@f\nBcc: g@h\nSubject: x\n\n",
                &["a@b", "c@d", "e@f", "g@h"],
            ),
            (b"to: a@b\nCC: c@d\nbcc: g@h\n\n", &["a@b", "c@d", "g@h"]),
            (b"To: a@b\nTo: c@d\n\n", &["a@b", "c@d"]),
            (
                b"To: \"Doe, J\" <j@x>,\r\n Friends: k@y, l@z;\n\n",
                &["j@x", "k@y", "l@z"],
            ),
            (b"To : a@b\n\n", &["a@b"]),
            (b"To: bob\n\n", &["bob"]),
            (b"To: undisclosed-recipients:;\n\n", &[]),
            (b"Subject: none\n\n", &[]),
            // Resent mode: only Resent-To/Cc/Bcc.
            (
                b"To: a@b\nResent-To: r@s\nCc: c@d\nResent-Bcc: t@u\n\n",
                &["r@s", "t@u"],
            ),
            (b"To: a@b\nresent-cc: r@s\n\n", &["r@s"]),
            // Other Resent- fields do not switch (Postfix, not Exim).
            (b"To: a@b\nResent-From: r@s\nResent-Date: x\n\n", &["a@b"]),
            // Apparently-To is not extracted (Postfix).
            (b"Apparently-To: a@b\n\n", &[]),
            // Headers after the header section are body text.
            (b"Subject: x\n\nTo: a@b\n", &[]),
        ];
        for (input, want) in cases {
            let m = parse(input, &opts(false));
            match m.extract_recipients() {
                Ok(got) => assert_eq!(got, *want, "input {:?}", String::from_utf8_lossy(input)),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn bare_cr_in_a_recipient_header_is_an_error() {
        // CR-only line ends: one header line, whose words must not become recipients.
        let m = parse(b"To: b@x.org\rSubject: cr\r\rbody\r.\rmore\r", &opts(true));
        assert_eq!(names(&m), ["To"]);
        let e = m.extract_recipients().unwrap_err();
        assert_eq!(
            e.to_string(),
            "bare CR in the To header (lines must end in LF or CR LF)"
        );
        // In a continuation line, split over reads, and in Bcc too.
        for input in [
            &b"To: a@x\n c@y\rd@z\n\n"[..],
            b"Bcc: a@x\r\r \n\n",
            b"Cc: a@x\r\rb\n\n",
        ] {
            let chunked = read(BufReader::with_capacity(1, input), &opts(true)).unwrap();
            assert!(
                matches!(
                    chunked.extract_recipients(),
                    Err(MessageError::StrayCr { .. })
                ),
                "{input:?}"
            );
        }
        // CRs that belong to the line end are not stray; other headers may have one.
        let m = parse(b"To: a@x\r\r\nSubject: a\rb\n\n", &opts(true));
        assert_eq!(m.extract_recipients().unwrap(), ["a@x"]);
        let m = parse(b"From x\ry\nTo: a@x\n\n", &opts(true));
        assert_eq!(m.extract_recipients().unwrap(), ["a@x"]);
    }

    #[test]
    fn recipient_errors_name_the_header() {
        let m = parse(b"To: a@b\nCc: \"unterminated <c@d>\n\n", &opts(false));
        match m.extract_recipients() {
            Err(e @ MessageError::BadAddress { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "invalid address in Cc header: unterminated quoted string (missing '\"')"
                );
                assert!(std::error::Error::source(&e).is_some());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn too_large_message() {
        let e = MessageError::TooLarge { max: 10 };
        assert_eq!(e.to_string(), "message too large (max 10 bytes)");
    }
}
