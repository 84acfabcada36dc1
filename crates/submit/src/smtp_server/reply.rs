//! What the server writes: replies in RFC 5321 §4.2 form, and the `accept` callback's
//! refusal turned into a valid one.

use std::io::{self, Write};

/// Turn the callback's rejection into a valid reply: a 4xx/5xx code, one line of text,
/// and (RFC 2034 §3, since we advertise ENHANCEDSTATUSCODES) an enhanced status code of
/// the same class.
pub(super) fn rejection(code: u16, text: &str) -> (u16, String) {
    let code = if (400..600).contains(&code) {
        code
    } else {
        451
    };
    let class = code / 100;
    let text = crate::sanitize::replace(text, ' ');
    let text = text.trim();
    let has_enhanced = text
        .split(' ')
        .next()
        .map(|t| {
            let mut parts = t.split('.');
            parts.next() == Some(&class.to_string())
                && parts.clone().count() == 2
                && parts
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .unwrap_or(false);
    let text = match (has_enhanced, text.is_empty()) {
        (true, _) => text.to_owned(),
        (false, true) => format!("{class}.0.0 Error: message not accepted"),
        (false, false) => format!("{class}.0.0 {text}"),
    };
    (code, text)
}

/// Writes replies (RFC 5321 §4.2: `code SP text CRLF`, continuation lines `code-text`).
///
/// Every reply is flushed at once. With PIPELINING (RFC 2920 §3.2) a server may hold
/// replies until its input runs dry, but a generic `BufRead` cannot tell us that without
/// blocking; flushing each reply is always correct and can never leave a client that
/// waits for an answer stuck behind our buffer.
pub(super) struct Replies<W: Write> {
    pub(super) w: W,
}

impl<W: Write> Replies<W> {
    pub(super) fn send(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.w.write_all(format!("{code} {text}\r\n").as_bytes())?;
        self.w.flush()
    }

    pub(super) fn send_lines(&mut self, code: u16, lines: &[&str]) -> io::Result<()> {
        let mut buf = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            buf.push_str(&format!("{code}{sep}{line}\r\n"));
        }
        self.w.write_all(buf.as_bytes())?;
        self.w.flush()
    }
}
