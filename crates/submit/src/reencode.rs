//! Keeps every line of a message within 998 octets (RFC 5321 §4.5.3.1.6, RFC 5322
//! §2.1.1) so that the reader still sees the same text.
//!
//! PHP pages often send a whole HTML body as one line, and many smarthosts refuse or
//! split longer lines. Nothing is ever truncated or refused for it:
//! - a header field is folded (RFC 5322 §2.2.3) before white space; a run with no white
//!   space in 998 octets gets a fold inside it (after unfolding, the reader sees one
//!   extra space there: nothing better keeps such a field deliverable), and a run of
//!   more than [`MAX_WSP_RUN`] blanks becomes one blank first, so no continuation line
//!   is blank (some readers end the header section there). A field whose *name* does not
//!   fit on a line cannot be written at all and is dropped.
//! - a body with a long line is re-encoded as MIME allows (RFC 2045 §6): only the leaf
//!   parts that have one, inside `multipart/*` and `message/rfc822` (RFC 2046 §5),
//!   everything else byte for byte as it was. A `7bit`/`8bit`/`binary` text part becomes
//!   quoted-printable (or base64, if that is shorter, as for 8-bit-heavy text); any other
//!   type becomes base64; a base64 part is re-wrapped at 76 characters; a
//!   quoted-printable part gets soft line breaks. A message with no `Content-Type` gets
//!   `MIME-Version: 1.0` and `text/plain` with the charset its bytes show (`us-ascii`,
//!   `utf-8`, else `unknown-8bit`, RFC 1428) so that the decoded text is read as before.
//! - where MIME allows no re-encoding (an unknown transfer encoding, `message/partial`,
//!   a multipart whose boundary is missing) the long lines are broken as they are: a
//!   line break is added, nothing is lost. Preamble and epilogue lines, which no reader
//!   shows, are folded with CRLF + space, so no new line can look like a boundary.

use crate::encoding::{
    base64_encode, base64_len, qp_encode, rewrap_base64, soft_break_qp, split_crlf,
};
use crate::message::{Header, Message};
use crate::mime;

/// RFC 5321 §4.5.3.1.6: 1000 octets per line including CRLF.
pub const MAX_LINE: usize = 998;
/// Nesting of multiparts and messages descended into; deeper ones are broken as they are.
const MAX_DEPTH: usize = 16;
/// A longer run of blanks in an over-long header line is collapsed to one (module doc).
pub const MAX_WSP_RUN: usize = 256;

/// What [`refit`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Refit {
    /// Header fields folded (top level and inside parts).
    pub folded: usize,
    /// Header fields dropped because their name does not fit on a line.
    pub dropped: usize,
    /// Bodies and parts re-encoded or re-wrapped, text unchanged.
    pub reencoded: usize,
    /// Bodies and parts whose long lines were broken as they are.
    pub broken: usize,
}

impl Refit {
    pub fn changed(&self) -> bool {
        *self != Refit::default()
    }
}

/// Bring every line of `msg` within [`MAX_LINE`] octets (module doc).
pub fn refit(msg: &mut Message) -> Refit {
    let mut r = Refit::default();
    if has_long_line(&msg.body) {
        let body = std::mem::take(&mut msg.body);
        let mut top = TopFields { msg };
        let new = refit_entity(&mut top, &body, 0, &mut r);
        msg.body = new.unwrap_or(body);
    }
    let mut kept = Vec::with_capacity(msg.headers.len());
    for h in std::mem::take(&mut msg.headers) {
        match fold_field(h.raw()) {
            Fold::Same => kept.push(h),
            Fold::New(raw) => {
                r.folded += 1;
                kept.push(h.refolded(raw));
            }
            Fold::Unwritable => r.dropped += 1,
        }
    }
    msg.headers = kept;
    r
}

/// Whether any line (without its CRLF) is longer than [`MAX_LINE`].
pub fn has_long_line(bytes: &[u8]) -> bool {
    bytes
        .split(|&b| b == b'\n')
        .any(|l| l.strip_suffix(b"\r").unwrap_or(l).len() > MAX_LINE)
}

// ---------------------------------------------------------------------------
// Header fields.

enum Fold {
    Same,
    New(Vec<u8>),
    /// The name and colon alone do not fit on a line.
    Unwritable,
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Fold a whole field (its bytes, every line ending in CRLF).
fn fold_field(raw: &[u8]) -> Fold {
    if !has_long_line(raw) {
        return Fold::Same;
    }
    // Field names hold no colon (RFC 5322 §3.6.8), so the first one ends the name.
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return Fold::Unwritable;
    };
    if colon + 1 >= MAX_LINE {
        return Fold::Unwritable;
    }
    let body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64 + 8);
    for (k, line) in split_crlf(body).enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\r\n");
        }
        if line.len() <= MAX_LINE {
            out.extend_from_slice(line);
        } else {
            // A continuation line starts with its blank: never break before it.
            let first = if k == 0 { colon + 1 } else { 1 };
            fold_line(&collapse_blanks(line, first), first, &mut out);
        }
    }
    out.extend_from_slice(b"\r\n");
    Fold::New(out)
}

/// `line` with every run of more than [`MAX_WSP_RUN`] blanks after `from` made one blank.
fn collapse_blanks(line: &[u8], from: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut run = 0;
    for (i, &b) in line.iter().enumerate() {
        if i >= from && is_wsp(b) {
            run += 1;
            continue;
        }
        flush_blanks(&line[i - run..i], &mut out);
        run = 0;
        out.push(b);
    }
    flush_blanks(&line[line.len() - run..], &mut out);
    out
}

fn flush_blanks(run: &[u8], out: &mut Vec<u8>) {
    if run.len() > MAX_WSP_RUN {
        out.push(b' ');
    } else {
        out.extend_from_slice(run);
    }
}

/// Append `line` to `out` with CRLF inserted so no piece is longer than [`MAX_LINE`]:
/// before a blank that follows a non-blank (so every piece holds text), after `first`;
/// or, with no such blank in reach, as CRLF + space inside the run, at a character
/// boundary.
fn fold_line(line: &[u8], first: usize, out: &mut Vec<u8>) {
    let mut start = 0;
    // The current piece starts with a space we inserted (not part of `line`).
    let mut inserted = 0;
    let mut lo = first;
    while inserted + line.len() - start > MAX_LINE {
        let end = start + MAX_LINE - inserted;
        let blank = (lo.max(start + 1)..=end)
            .rev()
            .find(|&p| is_wsp(line[p]) && !is_wsp(line[p - 1]));
        let cut = match blank {
            Some(p) => {
                out.extend_from_slice(&line[start..p]);
                out.extend_from_slice(b"\r\n");
                inserted = 0;
                p
            }
            None => {
                // Leave at least one octet of text on this piece, and cut at a UTF-8
                // character boundary (a continuation byte is 10xxxxxx).
                let floor = lo.max(start + 1);
                let mut q = end;
                while q > floor && line[q] & 0xC0 == 0x80 {
                    q -= 1;
                }
                out.extend_from_slice(&line[start..q]);
                out.extend_from_slice(b"\r\n ");
                inserted = 1;
                q
            }
        };
        start = cut;
        lo = 0;
    }
    out.extend_from_slice(&line[start..]);
}

// ---------------------------------------------------------------------------
// MIME entities (RFC 2045, RFC 2046).

/// The header fields of an entity: the message's, or a part's.
trait Fields {
    /// Unfolded value of the first field with this name.
    fn get(&self, name: &str) -> Option<String>;
    /// Replace every field with this name by one with `value`.
    fn set(&mut self, name: &str, value: &str);
    /// Whether this is the header of a message (where `MIME-Version` goes): the
    /// message's own, or that of a `message/rfc822` part.
    fn is_message(&self) -> bool;
}

struct TopFields<'a> {
    msg: &'a mut Message,
}

impl Fields for TopFields<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.msg.values(name).next()
    }
    fn set(&mut self, name: &str, value: &str) {
        self.msg.remove(name);
        self.msg.append(Header::new(name, value));
    }
    fn is_message(&self) -> bool {
        true
    }
}

/// A part's header block: each field's bytes, every line ending in CRLF.
struct PartFields {
    fields: Vec<Vec<u8>>,
    /// The header of an embedded message, not of a body part.
    message: bool,
}

impl PartFields {
    fn parse(block: &[u8]) -> PartFields {
        let mut fields: Vec<Vec<u8>> = Vec::new();
        for line in split_crlf(block.strip_suffix(b"\r\n").unwrap_or(block)) {
            match fields.last_mut() {
                Some(f) if line.first().is_some_and(|&b| is_wsp(b)) => {
                    f.extend_from_slice(line);
                    f.extend_from_slice(b"\r\n");
                }
                _ => {
                    let mut f = line.to_vec();
                    f.extend_from_slice(b"\r\n");
                    fields.push(f);
                }
            }
        }
        PartFields {
            fields,
            message: false,
        }
    }

    fn is_named(field: &[u8], name: &str) -> bool {
        let n = field
            .iter()
            .take_while(|&&b| b != b':' && !is_wsp(b))
            .count();
        field
            .get(..n)
            .is_some_and(|f| f.eq_ignore_ascii_case(name.as_bytes()))
            && field[n..].iter().find(|&&b| !is_wsp(b)) == Some(&b':')
    }

    /// Fold every field; drop those that cannot be written.
    fn fold(&mut self, r: &mut Refit) {
        let mut kept = Vec::with_capacity(self.fields.len());
        for f in std::mem::take(&mut self.fields) {
            match fold_field(&f) {
                Fold::Same => kept.push(f),
                Fold::New(raw) => {
                    r.folded += 1;
                    kept.push(raw);
                }
                Fold::Unwritable => r.dropped += 1,
            }
        }
        self.fields = kept;
    }

    fn write(&self, out: &mut Vec<u8>) {
        for f in &self.fields {
            out.extend_from_slice(f);
        }
    }
}

impl Fields for PartFields {
    fn get(&self, name: &str) -> Option<String> {
        let f = self.fields.iter().find(|f| PartFields::is_named(f, name))?;
        let colon = f.iter().position(|&b| b == b':')?;
        let value: Vec<u8> = f[colon + 1..]
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        Some(String::from_utf8_lossy(&value).trim().to_string())
    }
    fn set(&mut self, name: &str, value: &str) {
        self.fields.retain(|f| !PartFields::is_named(f, name));
        self.fields
            .push(format!("{name}: {value}\r\n").into_bytes());
    }
    fn is_message(&self) -> bool {
        self.message
    }
}

/// A part or embedded message: its header block (if any) and its body.
struct Entity<'a> {
    fields: PartFields,
    /// Whether a blank line separated the header block from a body.
    has_body: bool,
    body: &'a [u8],
}

impl<'a> Entity<'a> {
    /// RFC 2046 §5.1.1 body-part: header fields, then CRLF and the body; a part that
    /// starts with CRLF has no fields, one with no blank line has no body.
    fn split(part: &'a [u8]) -> Entity<'a> {
        if let Some(body) = part.strip_prefix(b"\r\n") {
            return Entity {
                fields: PartFields {
                    fields: Vec::new(),
                    message: false,
                },
                has_body: true,
                body,
            };
        }
        match part.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => Entity {
                fields: PartFields::parse(&part[..i + 2]),
                has_body: true,
                body: &part[i + 4..],
            },
            None => Entity {
                fields: PartFields::parse(part),
                has_body: false,
                body: &[],
            },
        }
    }

    /// Refit fields and body; `None` if nothing needed it.
    fn refit(mut self, depth: usize, r: &mut Refit) -> Option<Vec<u8>> {
        let before = *r;
        self.fields.fold(r);
        let body = refit_entity(&mut self.fields, self.body, depth, r);
        if body.is_none() && *r == before {
            return None;
        }
        let body = body.as_deref().unwrap_or(self.body);
        let mut out = Vec::with_capacity(body.len() + 256);
        self.fields.write(&mut out);
        if self.has_body {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
        Some(out)
    }
}

/// The new content of an entity whose content has a long line, or `None` if it has none.
fn refit_entity(
    fields: &mut impl Fields,
    content: &[u8],
    depth: usize,
    r: &mut Refit,
) -> Option<Vec<u8>> {
    if !has_long_line(content) {
        return None;
    }
    let declared = fields.get("Content-Type");
    let (media, params) = mime::content_type(declared.as_deref());
    if media.starts_with("multipart/") {
        if let Some(boundary) = mime::param(&params, "boundary")
            && depth < MAX_DEPTH
            && let Some(new) = refit_multipart(content, boundary, depth, r)
        {
            return Some(new);
        }
        r.broken += 1;
        return Some(break_lines(content));
    }
    if media == "message/rfc822" || media == "message/global" {
        if depth < MAX_DEPTH {
            let mut inner = Entity::split(content);
            inner.fields.message = true;
            return inner.refit(depth + 1, r);
        }
        r.broken += 1;
        return Some(break_lines(content));
    }
    if media.starts_with("message/") {
        // RFC 2046 §5.2.2, §5.2.3: partial and external-body must stay 7bit.
        r.broken += 1;
        return Some(break_lines(content));
    }
    let cte = fields
        .get("Content-Transfer-Encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let (encoded, name) = match cte.as_str() {
        "base64" => (rewrap_base64(content), None),
        "quoted-printable" => (soft_break_qp(content), None),
        "" | "7bit" | "8bit" | "binary" => {
            if media.starts_with("text/") {
                let qp = qp_encode(content);
                if qp.len() <= base64_len(content.len()) {
                    (qp, Some("quoted-printable"))
                } else {
                    (base64_encode(content), Some("base64"))
                }
            } else {
                (base64_encode(content), Some("base64"))
            }
        }
        _ => {
            r.broken += 1;
            return Some(break_lines(content));
        }
    };
    if let Some(name) = name {
        fields.set("Content-Transfer-Encoding", name);
        if declared.is_none() {
            let charset = if content.is_ascii() {
                "us-ascii"
            } else if std::str::from_utf8(content).is_ok() {
                "utf-8"
            } else {
                "unknown-8bit"
            };
            fields.set("Content-Type", &format!("text/plain; charset={charset}"));
        }
        // RFC 2045 §4: without it, no reader applies the transfer encoding.
        if fields.is_message() && fields.get("MIME-Version").is_none() {
            fields.set("MIME-Version", "1.0");
        }
    }
    r.reencoded += 1;
    Some(encoded)
}

/// One delimiter line of a multipart body (RFC 2046 §5.1.1).
struct Delimiter {
    /// Where the line starts and where the next one does (after its CRLF).
    start: usize,
    end: usize,
    closing: bool,
}

/// Refit the parts of a multipart body with boundary `boundary`; `None` if no delimiter
/// line is found (the caller breaks lines as they are).
fn refit_multipart(content: &[u8], boundary: &str, depth: usize, r: &mut Refit) -> Option<Vec<u8>> {
    let dash = format!("--{boundary}");
    let mut delims = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let end = content[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| pos + i + 1);
        let line = &content[pos..end];
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(dash.as_bytes()) {
            let (closing, pad) = match rest.strip_prefix(b"--") {
                Some(p) => (true, p),
                None => (false, rest),
            };
            // Transport padding (RFC 2046 §5.1.1) is blanks only.
            if pad.iter().all(|&b| is_wsp(b)) {
                delims.push(Delimiter {
                    start: pos,
                    end,
                    closing,
                });
                if closing {
                    break;
                }
            }
        }
        pos = end;
    }
    let first = delims.first()?;
    let mut out = Vec::with_capacity(content.len() + content.len() / 32 + 64);
    wrap_invisible(&content[..first.start], &mut out, r);
    for (k, d) in delims.iter().enumerate() {
        // A delimiter line made long by its padding loses the padding.
        let line = &content[d.start..d.end];
        if line.len() > MAX_LINE + 2 {
            out.extend_from_slice(dash.as_bytes());
            if d.closing {
                out.extend_from_slice(b"--");
            }
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(line);
        }
        if d.closing {
            wrap_invisible(&content[d.end..], &mut out, r);
            return Some(out);
        }
        // The part runs to the CRLF before the next delimiter, or to the end of a
        // truncated body.
        let next = delims.get(k + 1).map_or(content.len(), |n| n.start);
        let seg = &content[d.end.min(next)..next];
        let (part, crlf) = match seg.strip_suffix(b"\r\n") {
            Some(p) => (p, true),
            None => (seg, false),
        };
        match Entity::split(part).refit(depth + 1, r) {
            Some(new) => out.extend_from_slice(&new),
            None => out.extend_from_slice(part),
        }
        if crlf {
            out.extend_from_slice(b"\r\n");
        }
    }
    Some(out)
}

/// Preamble or epilogue text: shown by no reader, so long lines are folded with
/// CRLF + space (a line starting with a space is never a boundary).
fn wrap_invisible(text: &[u8], out: &mut Vec<u8>, r: &mut Refit) {
    if !has_long_line(text) {
        out.extend_from_slice(text);
        return;
    }
    r.broken += 1;
    let mut lines = text.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let (line, cr) = match line.strip_suffix(b"\r") {
            Some(l) => (l, true),
            None => (line, false),
        };
        let mut chunks = line.chunks(MAX_LINE - 1);
        out.extend_from_slice(chunks.next().unwrap_or(&[]));
        for c in chunks {
            out.extend_from_slice(b"\r\n ");
            out.extend_from_slice(c);
        }
        if cr {
            out.push(b'\r');
        }
        if lines.peek().is_some() {
            out.push(b'\n');
        }
    }
}

/// The last resort: long lines broken into pieces of [`MAX_LINE`] octets, at UTF-8
/// character boundaries.
fn break_lines(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 256 + 8);
    for (k, line) in split_crlf(content).enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut rest = line;
        while rest.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while cut > 1 && rest[cut] & 0xC0 == 0x80 {
                cut -= 1;
            }
            out.extend_from_slice(&rest[..cut]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[cut..];
        }
        out.extend_from_slice(rest);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::message::{self, ReadOptions};

    /// A strict quoted-printable decoder (RFC 2045 §6.7), independent of the encoder.
    pub(crate) fn qp_decode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < s.len() {
            match s[i] {
                b'=' if s[i + 1..].starts_with(b"\r\n") => i += 3,
                // A soft break at the very end of the text.
                b'=' if i + 1 == s.len() => i += 1,
                b'=' => {
                    let hex = std::str::from_utf8(&s[i + 1..i + 3]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("escape"));
                    i += 3;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        out
    }

    /// Decode base64 (RFC 2045 §6.8), skipping line breaks, up to the first `=`.
    pub(crate) fn b64_decode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0);
        for &b in s {
            let v = match b {
                b'A'..=b'Z' => b - b'A',
                b'a'..=b'z' => b - b'a' + 26,
                b'0'..=b'9' => b - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => break,
                _ => continue,
            };
            acc = (acc << 6) | u32::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }

    /// No line of `bytes` is longer than 998 octets, and CR and LF only come as CRLF.
    pub(crate) fn assert_fits(bytes: &[u8]) {
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(line.len() <= MAX_LINE, "line {n} has {} octets", line.len());
            assert!(!line.contains(&b'\r'), "bare CR in line {n}");
        }
    }

    fn parse(input: &[u8]) -> Message {
        message::read(
            input,
            &ReadOptions {
                ignore_dots: true,
                max_size: 1 << 24,
            },
        )
        .expect("read")
    }

    fn wire(m: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        m.write_wire(&mut out);
        out
    }

    /// One line of HTML as PHP pages send it: mostly ASCII, some accents.
    pub(crate) fn long_text(n: usize) -> String {
        let mut s = String::new();
        let mut k = 0;
        while s.len() < n {
            s.push_str(&format!(
                "<p class=\"n\">Bonjour, voici la lettre n\u{b0}{k} du caf\u{e9}.</p> "
            ));
            k += 1;
        }
        s
    }

    #[test]
    fn plain_message_becomes_mime_quoted_printable() {
        let body = format!("Hello\r\n{}\r\nbye\r\n", long_text(5000));
        let input = format!("To: a@x\r\nSubject: s\r\n\r\n{body}");
        let mut m = parse(input.as_bytes());
        let r = refit(&mut m);
        assert_eq!(r.reencoded, 1, "{r:?}");
        let w = wire(&m);
        assert_fits(&w);
        assert_eq!(m.values("MIME-Version").collect::<Vec<_>>(), ["1.0"]);
        assert_eq!(
            m.values("Content-Type").collect::<Vec<_>>(),
            ["text/plain; charset=utf-8"]
        );
        assert_eq!(
            m.values("Content-Transfer-Encoding").collect::<Vec<_>>(),
            ["quoted-printable"]
        );
        assert_eq!(qp_decode(&m.body), body.as_bytes());
        // 8-bit that is not UTF-8 is labelled as such, ASCII as ASCII.
        for (text, charset) in [(&b"caf\xe9 "[..], "unknown-8bit"), (b"plain ", "us-ascii")] {
            let mut input = b"To: a@x\r\n\r\n".to_vec();
            input.extend(text.iter().cycle().take(3000));
            input.extend_from_slice(b"\r\n");
            let mut m = parse(&input);
            refit(&mut m);
            let ct = m.values("Content-Type").next().unwrap();
            assert_eq!(ct, format!("text/plain; charset={charset}"));
        }
    }

    #[test]
    fn declared_types_keep_their_content_type() {
        let html = long_text(4000);
        let input = format!(
            "MIME-Version: 1.0\r\nContent-type: text/html; charset=UTF-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\n{html}\r\n"
        );
        let mut m = parse(input.as_bytes());
        refit(&mut m);
        assert_fits(&wire(&m));
        assert_eq!(
            m.values("Content-Type").collect::<Vec<_>>(),
            ["text/html; charset=UTF-8"]
        );
        assert_eq!(
            m.values("Content-Transfer-Encoding").collect::<Vec<_>>(),
            ["quoted-printable"]
        );
        assert_eq!(m.values("MIME-Version").count(), 1);
        assert_eq!(qp_decode(&m.body), format!("{html}\r\n").as_bytes());
        // Non-text goes to base64; 8-bit-heavy text too, where it is shorter.
        for (ct, content) in [
            ("application/octet-stream", vec![b'a'; 3000]),
            ("text/plain; charset=koi8-r", vec![0xC1; 3000]),
        ] {
            let mut input = format!("Content-Type: {ct}\r\n\r\n").into_bytes();
            input.extend_from_slice(&content);
            input.extend_from_slice(b"\r\n");
            let mut m = parse(&input);
            refit(&mut m);
            assert_fits(&wire(&m));
            assert_eq!(
                m.values("Content-Transfer-Encoding").next().unwrap(),
                "base64"
            );
            let mut want = content.clone();
            want.extend_from_slice(b"\r\n");
            assert_eq!(b64_decode(&m.body), want);
        }
    }

    #[test]
    fn only_the_leaf_with_a_long_line_is_reencoded() {
        let html = long_text(3000);
        let b64_one_line = String::from_utf8(
            base64_encode(&[7u8; 2000])
                .into_iter()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect(),
        )
        .unwrap();
        let text_part = "Content-Type: text/plain; charset=utf-8\r\n\r\nshort text\r\n";
        let input = format!(
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
             preamble {pre}\r\n\
             --outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
             --inner\r\n{text_part}\
             --inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n\
             --inner--\r\n\
             --outer\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64_one_line}\r\n\
             --outer\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n{html}\r\n\
             --outer--  \r\nepilogue\r\n",
            pre = "p".repeat(1500),
        );
        let mut m = parse(input.as_bytes());
        let r = refit(&mut m);
        let w = wire(&m);
        assert_fits(&w);
        assert_eq!(r.reencoded, 3, "{r:?}");
        let body = String::from_utf8(m.body.clone()).unwrap();
        // The short text part is byte for byte the same.
        assert!(
            body.contains(&format!("--inner\r\n{text_part}--inner\r\n")),
            "{body}"
        );
        // The HTML part is quoted-printable and decodes to the same text.
        let html_part = body
            .split("--inner\r\n")
            .nth(2)
            .unwrap()
            .split("\r\n--inner--")
            .next()
            .unwrap();
        let (head, enc) = html_part.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Content-Transfer-Encoding: quoted-printable"),
            "{head}"
        );
        assert_eq!(qp_decode(enc.as_bytes()), html.as_bytes());
        // The attachment is re-wrapped base64 of the same bytes.
        let pdf = body.split("--outer\r\n").nth(2).unwrap();
        let (_, enc) = pdf.split_once("\r\n\r\n").unwrap();
        assert_eq!(b64_decode(enc.as_bytes()), vec![7u8; 2000]);
        // The embedded message's body became MIME of its own.
        let inner = body.split("--outer\r\n").nth(3).unwrap();
        assert!(
            inner.starts_with(
                "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\
             Content-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\r\n"
            ),
            "{inner}"
        );
        assert!(body.ends_with("--outer--  \r\nepilogue\r\n"), "{body}");
    }

    #[test]
    fn what_cannot_be_reencoded_is_broken_not_lost() {
        for input in [
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n",
            "Content-Type: multipart/mixed\r\n\r\n",
            "Content-Type: multipart/mixed; boundary=zz\r\n\r\n",
            "Content-Type: message/partial; id=1\r\n\r\n",
        ] {
            let text = format!("{input}{}\r\n", "é".repeat(1500));
            let mut m = parse(text.as_bytes());
            let r = refit(&mut m);
            assert_eq!(r.broken, 1, "{input}");
            assert_fits(&wire(&m));
            let joined: Vec<u8> = m
                .body
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect();
            assert_eq!(joined, "é".repeat(1500).into_bytes(), "{input}");
        }
    }

    #[test]
    fn header_fields_are_folded_at_white_space() {
        let words: Vec<String> = (0..400).map(|k| format!("word{k}")).collect();
        let subject = words.join(" ");
        let token = "x".repeat(2500);
        let input = format!(
            "Subject: {subject}\r\nX-Token: {token}\r\nX-Blank: a{}b\r\n{}: v\r\nTo: a@x\r\n\r\nbody\r\n",
            " ".repeat(3000),
            "N".repeat(1200)
        );
        let mut m = parse(input.as_bytes());
        let r = refit(&mut m);
        assert_eq!((r.folded, r.dropped, r.reencoded), (3, 1, 0), "{r:?}");
        assert_fits(&wire(&m));
        assert_eq!(m.values("Subject").next().unwrap(), subject);
        let got = m.values("X-Token").next().unwrap();
        assert_eq!(got.replace(' ', ""), token);
        assert_eq!(m.values("X-Blank").next().unwrap(), "a b");
        assert_eq!(m.values("To").next().unwrap(), "a@x");
        // Every continuation line holds text.
        for h in &m.headers {
            for line in h.raw().split(|&b| b == b'\n').skip(1) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                assert!(line.is_empty() || line.iter().any(|&b| !is_wsp(b)));
            }
        }
        // A long UTF-8 run is cut between characters.
        let mut m = parse(format!("Subject: {}\r\n\r\n", "é".repeat(800)).as_bytes());
        refit(&mut m);
        assert!(std::str::from_utf8(m.headers[0].raw()).is_ok());
        assert_fits(&wire(&m));
    }

    #[test]
    fn short_lines_change_nothing() {
        let input = b"To: a@x\r\nSubject: s\r\n\r\nline\r\n";
        let mut m = parse(input);
        let before = m.clone();
        assert!(!refit(&mut m).changed());
        assert_eq!(m, before);
    }
}
