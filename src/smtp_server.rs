//! The `sendmail -bs` SMTP dialogue on stdin/stdout: a small RFC 5321 server for one session.
//!
//! Symfony Mailer, Laravel, Drupal and SwiftMailer run `sendmail -bs` and talk SMTP over
//! pipes (sendmail-compat.md §1.10). This module only speaks the protocol and builds
//! envelopes; what happens to a finished message is the `accept` callback's business.
//! It is strict about what it records (syntax-checked paths, validated DSN parameters) and
//! forgiving about framing (bare LF line ends, a space after `FROM:`, no HELO at all), as
//! Postfix's `smtpd -S` is by default — with one exception: only `<CRLF>.<CRLF>` ends
//! DATA. A "." line next to a bare LF or CR is message text, so a second transaction
//! smuggled inside a message body (CVE-2023-51764) stays text of the first message and
//! is never accepted on its own (see `read_data`).

use std::io::{self, BufRead, Write};

use crate::dsn_params::{self, Envid, Notify, Ret};
use crate::{address, envelope};

/// What one session may do.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// Our name, in the greeting and the EHLO reply.
    pub hostname: &'a str,
    /// Largest message; larger DATA gets 552 (after reading it to its end). 0 means no
    /// limit, as `SIZE 0` does in RFC 1870 §4.
    pub max_size: u64,
    /// Most RCPT commands accepted in one transaction; past it, 452
    /// (RFC 5321 §4.5.3.1.10). §4.5.3.1.8 asks for at least 100.
    pub max_recipients: usize,
    /// Qualifies a bare local part for the check that a path can be relayed
    /// (`envelope`); the envelope handed to `accept` keeps the path as given.
    pub domain: &'a str,
}

/// RFC 5321 §4.5.3.1.4 allows 512 octets per command line; we accept four times that
/// (long quoted local parts, ORCPT, ENVID) and answer 500 past it (§4.5.3.1.4: "500 Line
/// too long").
pub const MAX_COMMAND_LINE: usize = 2048;

/// One mail transaction's envelope, as handed to `accept`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// `None` = the null reverse-path `<>`.
    pub sender: Option<String>,
    /// Forward-paths in RCPT order, without angle brackets or source routes.
    pub recipients: Vec<String>,
    /// `BODY=8BITMIME` was declared (RFC 6152), or the data turned out to contain 8-bit
    /// bytes anyway (so the relay still asks for 8BITMIME).
    pub body_8bit: bool,
    /// `RET=` (RFC 3461 §4.3).
    pub dsn_ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), xtext-decoded to plain printable ASCII.
    pub envid: Option<Envid>,
    /// `NOTIFY=` of the first RCPT that had one (RFC 3461 §4.1).
    pub dsn_notify: Option<Notify>,
}

/// What `accept` decided about a completed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Durably taken; the payload is the queue id shown to the client.
    Accepted(String),
    /// Refused: sent as the reply. `code` should be 4xx or 5xx (anything else becomes
    /// 451); an enhanced status code is prefixed to `text` when it lacks one.
    Rejected { code: u16, text: String },
}

/// Serve one session.
///
/// `accept` is called once per completed DATA with the envelope and the message bytes
/// (dot-unstuffed, every line CRLF-terminated, terminating "." line excluded).
/// Returns when the client sends QUIT or input ends. I/O errors on output (and read
/// errors on input) end the session with Err.
pub fn serve<R: BufRead, W: Write>(
    mut input: R,
    output: W,
    settings: &Settings<'_>,
    mut accept: impl FnMut(&Envelope, &[u8]) -> Verdict,
) -> io::Result<()> {
    let max_size = settings.max_size;
    let limit = if max_size == 0 { u64::MAX } else { max_size };
    let hostname = crate::sanitize::replace(settings.hostname, ' ');
    let mut out = Replies { w: output };
    // RFC 5321 §4.3.1 / §4.2: the greeting is 220 with our name first. RFC 2034 §3:
    // no enhanced status code on the greeting or on HELO/EHLO replies.
    out.send(220, &format!("{hostname} ESMTP scriptmail"))?;

    // `Some` between MAIL and the end of the transaction (RFC 5321 §3.3).
    let mut tx: Option<Envelope> = None;
    let mut line = Vec::new();
    loop {
        // +2 so that a line of exactly MAX_COMMAND_LINE bytes followed by CR is not cut.
        let read = read_line(&mut input, &mut line, MAX_COMMAND_LINE + 2);
        let Some(info) = read.map_err(|e| give_up(&mut out, &hostname, e))? else {
            return Ok(());
        };
        if info.len > MAX_COMMAND_LINE {
            out.send(500, "5.5.2 Error: line too long")?;
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            // No SMTPUTF8 offered (RFC 6531), so commands must be text; refusing beats
            // recording a mangled address.
            out.send(500, "5.5.2 Error: command is not valid UTF-8")?;
            continue;
        };
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v, a.trim_matches(' ')),
            None => (text, ""),
        };
        // RFC 5321 §2.4: verbs are case-insensitive.
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                // RFC 5321 §4.1.1.1: a domain (or address literal) is required.
                if arg.is_empty() {
                    let v = verb.to_ascii_uppercase();
                    out.send(501, &format!("Syntax: {v} hostname"))?;
                    continue;
                }
                // RFC 5321 §4.1.4: EHLO/HELO in a session resets any transaction.
                tx = None;
                if verb.eq_ignore_ascii_case("EHLO") {
                    // RFC 5321 §4.1.1.1 multi-line 250; extensions: RFC 2920 PIPELINING,
                    // RFC 6152 8BITMIME, RFC 1870 SIZE, RFC 3461 DSN, RFC 2034
                    // ENHANCEDSTATUSCODES.
                    let size = if max_size == 0 {
                        "SIZE".to_owned()
                    } else {
                        format!("SIZE {max_size}")
                    };
                    out.send_lines(
                        250,
                        &[
                            &hostname,
                            "PIPELINING",
                            "8BITMIME",
                            &size,
                            "DSN",
                            "ENHANCEDSTATUSCODES",
                        ],
                    )?;
                } else {
                    out.send(250, &hostname)?;
                }
            }
            "MAIL" => {
                // HELO is not required first (forgiving, like Postfix's default
                // smtpd_helo_required = no), but transactions do not nest (§4.1.4).
                if tx.is_some() {
                    out.send(503, "5.5.1 Error: nested MAIL command")?;
                    continue;
                }
                match parse_mail(arg, limit, settings.domain) {
                    Ok(env) => {
                        tx = Some(env);
                        out.send(250, "2.1.0 Ok")?;
                    }
                    Err(reply) => out.send(reply.code, reply.text)?,
                }
            }
            "RCPT" => {
                let Some(env) = tx.as_mut() else {
                    // RFC 5321 §3.3 / §4.1.4: RCPT needs MAIL first.
                    out.send(503, "5.5.1 Error: need MAIL command")?;
                    continue;
                };
                match parse_rcpt(arg, settings.domain) {
                    Ok(_) if env.recipients.len() >= settings.max_recipients => {
                        // RFC 5321 §4.5.3.1.10: 452 so the client sends the rest later.
                        out.send(452, "4.5.3 Error: too many recipients")?;
                    }
                    Ok((addr, notify)) => {
                        env.recipients.push(addr);
                        if env.dsn_notify.is_none() {
                            env.dsn_notify = notify;
                        }
                        out.send(250, "2.1.5 Ok")?;
                    }
                    Err(reply) => out.send(reply.code, reply.text)?,
                }
            }
            "DATA" => {
                if !arg.is_empty() {
                    out.send(501, "5.5.4 Syntax: DATA")?;
                    continue;
                }
                let Some(mut env) = tx.take() else {
                    out.send(503, "5.5.1 Error: need MAIL command")?;
                    continue;
                };
                if env.recipients.is_empty() {
                    // RFC 5321 §3.3: no valid RCPT => 503 (or 554); keep the transaction
                    // so the client can still add recipients.
                    tx = Some(env);
                    out.send(503, "5.5.1 Error: need RCPT command")?;
                    continue;
                }
                // RFC 5321 §4.1.1.4: 354, then data up to <CRLF>.<CRLF>.
                out.send(354, "End data with <CR><LF>.<CR><LF>")?;
                let data = read_data(&mut input, &mut line, limit, info.crlf);
                match data.map_err(|e| give_up(&mut out, &hostname, e))? {
                    // Input ended inside DATA: the message is incomplete, so it does not
                    // exist (§4.1.1.4: only the final "." completes a transaction).
                    Data::Eof => return Ok(()),
                    Data::TooBig => {
                        // RFC 1870 §6.3 / RFC 5321 §4.2.5: 552 after the data; the
                        // transaction is over either way.
                        out.send(552, "5.3.4 Error: message size exceeds fixed limit")?;
                    }
                    Data::Complete(body) => {
                        if !env.body_8bit && body.iter().any(|&b| b >= 0x80) {
                            env.body_8bit = true;
                        }
                        match accept(&env, &body) {
                            Verdict::Accepted(id) => {
                                let id = crate::sanitize::token(&id);
                                out.send(250, &format!("2.0.0 Ok: queued as {id}"))?;
                            }
                            Verdict::Rejected { code, text } => {
                                let (code, text) = rejection(code, &text);
                                out.send(code, &text)?;
                            }
                        }
                    }
                }
            }
            "RSET" => {
                // RFC 5321 §4.1.1.5: no parameters; aborts the transaction.
                if !arg.is_empty() {
                    out.send(501, "5.5.4 Syntax: RSET")?;
                    continue;
                }
                tx = None;
                out.send(250, "2.0.0 Ok")?;
            }
            // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
            "NOOP" => out.send(250, "2.0.0 Ok")?,
            "QUIT" => {
                // RFC 5321 §4.1.1.10: 221, then close. An open transaction is dropped.
                return out.send(221, "2.0.0 Bye");
            }
            "VRFY" => {
                if arg.is_empty() {
                    out.send(501, "5.5.4 Syntax: VRFY address")?;
                } else {
                    // RFC 5321 §3.5.3: 252 = cannot verify, will accept and try.
                    out.send(
                        252,
                        "2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
                    )?;
                }
            }
            // RFC 5321 §4.5.1 lets EXPN go unimplemented: 502 (§4.2.4).
            "EXPN" => out.send(502, "5.5.1 Error: command not implemented")?,
            "HELP" => out.send(
                214,
                "2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            )?,
            _ => out.send(500, "5.5.2 Error: command not recognized")?,
        }
    }
}

/// A read failed: say goodbye if the reason is the input deadline
/// (`deadline`: the client did not finish in time), as RFC 5321 §4.2.3 lets a
/// server that must close (421, §3.8), and pass the error on.
fn give_up<W: Write>(out: &mut Replies<W>, hostname: &str, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        // Best effort: the client may be gone; the error ends the session anyway.
        let _ = out.send(421, &format!("4.4.2 {hostname} Error: timeout exceeded"));
    }
    e
}

/// A reply chosen by a parser: code plus text with its enhanced status code.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    code: u16,
    text: &'static str,
}

const fn reply(code: u16, text: &'static str) -> Reply {
    Reply { code, text }
}

// RFC 5321 §4.2.3 / RFC 3463 codes used for parameter and path errors.
const BAD_SENDER: Reply = reply(501, "5.1.7 Error: bad sender address syntax");
const BAD_RCPT: Reply = reply(501, "5.1.3 Error: bad recipient address syntax");
const BAD_PARAM: Reply = reply(501, "5.5.4 Error: bad parameter value");
const DUP_PARAM: Reply = reply(501, "5.5.4 Error: duplicate parameter");
/// RFC 5321 §4.1.1.11 / §4.2.2: 555 for MAIL/RCPT parameters we do not implement.
const UNKNOWN_PARAM: Reply = reply(555, "5.5.4 Error: unsupported parameter");

/// Whether the relay can send `path` once qualified with `domain`: refusing it at MAIL
/// or RCPT tells the client which address is wrong, where refusing the whole message
/// after DATA would not.
fn sendable(path: &str, domain: &str) -> bool {
    envelope::check(&address::qualify(path, domain)).is_ok()
}

/// `MAIL FROM:<reverse-path> [params]` (RFC 5321 §4.1.1.2, §4.1.2).
fn parse_mail(arg: &str, limit: u64, domain: &str) -> Result<Envelope, Reply> {
    let (path, params) = split_path(arg, "FROM:").ok_or(BAD_SENDER)?;
    if !path.is_empty() && !sendable(&path, domain) {
        return Err(BAD_SENDER);
    }
    let mut env = Envelope {
        sender: (!path.is_empty()).then_some(path),
        ..Envelope::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in params {
        let key = key.to_ascii_uppercase();
        if seen.contains(&key) {
            return Err(DUP_PARAM);
        }
        match (key.as_str(), value) {
            // RFC 6152 §2: BODY=7BIT | 8BITMIME (BINARYMIME needs CHUNKING, not offered).
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => env.body_8bit = true,
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => env.body_8bit = false,
            // RFC 1870 §6: a declared size above our limit is refused at once.
            ("SIZE", Some(v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                // Too many digits to fit u64 is certainly too large.
                if v.parse::<u64>().map_or(true, |n| n > limit) {
                    return Err(reply(
                        552,
                        "5.3.4 Error: message size exceeds fixed maximum message size",
                    ));
                }
            }
            ("RET", Some(v)) => env.dsn_ret = Some(v.parse().map_err(|_| BAD_PARAM)?),
            ("ENVID", Some(v)) => env.envid = Some(Envid::from_xtext(v).map_err(|_| BAD_PARAM)?),
            ("BODY" | "SIZE" | "RET" | "ENVID", _) => return Err(BAD_PARAM),
            _ => return Err(UNKNOWN_PARAM),
        }
        seen.push(key);
    }
    Ok(env)
}

/// `RCPT TO:<forward-path> [params]` (RFC 5321 §4.1.1.3). Returns the address and the
/// NOTIFY value, if any.
fn parse_rcpt(arg: &str, domain: &str) -> Result<(String, Option<Notify>), Reply> {
    let (path, params) = split_path(arg, "TO:").ok_or(BAD_RCPT)?;
    // The null path is only a reverse-path (RFC 5321 §4.1.2).
    if path.is_empty() || !sendable(&path, domain) {
        return Err(BAD_RCPT);
    }
    let mut notify = None;
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in params {
        let key = key.to_ascii_uppercase();
        if seen.contains(&key) {
            return Err(DUP_PARAM);
        }
        match (key.as_str(), value) {
            ("NOTIFY", Some(v)) => notify = Some(v.parse().map_err(|_| BAD_PARAM)?),
            // RFC 3461 §4.2: ORCPT=addr-type;xtext. Checked, then not used: we relay with
            // the recipient as given. What it decodes to must be printable text, as it
            // would end up in headers and logs.
            ("ORCPT", Some(v)) => {
                let (kind, addr) = v.split_once(';').ok_or(BAD_PARAM)?;
                let printable = dsn_params::xtext_decode(addr)
                    .is_some_and(|a| a.iter().all(|b| (0x20..0x7f).contains(b)));
                if kind.is_empty() || addr.is_empty() || !printable {
                    return Err(BAD_PARAM);
                }
            }
            ("NOTIFY" | "ORCPT", None) => return Err(BAD_PARAM),
            _ => return Err(UNKNOWN_PARAM),
        }
        seen.push(key);
    }
    Ok((path, notify))
}

/// Split `FROM:<path> params` / `TO:<path> params` into the path (brackets and any source
/// route removed, `""` for `<>`) and the `KEY[=VALUE]` parameters. `None` on bad syntax.
fn split_path<'a>(
    arg: &'a str,
    keyword: &str,
) -> Option<(String, impl Iterator<Item = (&'a str, Option<&'a str>)>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    // "MAIL FROM: <a@b>" is common enough (and accepted by Postfix) to allow the space.
    let rest = arg.get(keyword.len()..)?.trim_start_matches(' ');
    let (path, after) = if let Some(inner) = rest.strip_prefix('<') {
        let end = closing_bracket(inner)?;
        (&inner[..end], &inner[end + 1..])
    } else {
        // No brackets: RFC 5321 requires them, but Postfix accepts a bare address unless
        // strict_rfc821_envelopes is set; so do we, up to the first space.
        let end = rest.find(' ').unwrap_or(rest.len());
        let bare = &rest[..end];
        if bare.is_empty() || bare.contains(['<', '>']) {
            return None;
        }
        (bare, &rest[end..])
    };
    // Parameters are separated from the path by a space (RFC 5321 §4.1.2 Mail-parameters).
    if !after.is_empty() && !after.starts_with(' ') {
        return None;
    }
    // RFC 5321 §4.1.1.3 / Appendix C: a source route "@a,@b:user@c" must be accepted and
    // its route ignored.
    let path = if path.starts_with('@') {
        let (_, mailbox) = path.split_once(':')?;
        if mailbox.is_empty() {
            return None;
        }
        mailbox
    } else {
        path
    };
    if !valid_mailbox_text(path) {
        return None;
    }
    let params = after
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        });
    Some((path.to_owned(), params))
}

/// Index of the `>` that closes a path, skipping quoted strings and quoted-pairs
/// (RFC 5321 §4.1.2 Quoted-string), so `<"a>b"@c>` works.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if c == '>' && !in_quote {
            return Some(i);
        }
    }
    None
}

/// Loose mailbox check: what we record must not break a later SMTP command or log line.
/// No control characters anywhere, and no unquoted space or angle bracket.
fn valid_mailbox_text(s: &str) -> bool {
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if c.is_control() {
            return false;
        }
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quote = !in_quote;
        } else if !in_quote && matches!(c, ' ' | '<' | '>') {
            return false;
        }
    }
    !in_quote && !escaped
}

/// Turn the callback's rejection into a valid reply: a 4xx/5xx code, one line of text,
/// and (RFC 2034 §3, since we advertise ENHANCEDSTATUSCODES) an enhanced status code of
/// the same class.
fn rejection(code: u16, text: &str) -> (u16, String) {
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
struct Replies<W: Write> {
    w: W,
}

impl<W: Write> Replies<W> {
    fn send(&mut self, code: u16, text: &str) -> io::Result<()> {
        self.w.write_all(format!("{code} {text}\r\n").as_bytes())?;
        self.w.flush()
    }

    fn send_lines(&mut self, code: u16, lines: &[&str]) -> io::Result<()> {
        let mut buf = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            buf.push_str(&format!("{code}{sep}{line}\r\n"));
        }
        self.w.write_all(buf.as_bytes())?;
        self.w.flush()
    }
}

/// One input line, as seen by [`read_line`].
struct LineInfo {
    /// Full length of the line without its LF and trailing CRs, even if not all was kept.
    len: usize,
    /// It ended in exactly CR LF (not a bare LF, not CR CR LF, not end of input).
    crlf: bool,
}

/// Read one line into `out`, keeping at most `keep` bytes (the rest is read and dropped,
/// so memory stays bounded whatever the client sends). The line ends at LF or at end of
/// input; the LF and any CRs before it are removed, so CRLF and bare LF both work (a bare
/// CR elsewhere is data). `None` at end of input with nothing read.
fn read_line<R: BufRead>(
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

enum Data {
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
fn read_data<R: BufRead>(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a session over `script`; return the replies as text and every accepted call.
    fn run_with(
        script: &[u8],
        max: u64,
        mut verdict: impl FnMut(usize) -> Verdict,
    ) -> (String, Vec<(Envelope, Vec<u8>)>) {
        let mut out = Vec::new();
        let mut got = Vec::new();
        let settings = Settings {
            hostname: "mx.test",
            max_size: max,
            max_recipients: MAX_RECIPIENTS,
            domain: "mx.test",
        };
        serve(script, &mut out, &settings, |env, body| {
            got.push((env.clone(), body.to_vec()));
            verdict(got.len())
        })
        .expect("session");
        (String::from_utf8(out).expect("utf8 replies"), got)
    }

    fn run(script: &[u8], max: u64) -> (String, Vec<(Envelope, Vec<u8>)>) {
        run_with(script, max, |n| Verdict::Accepted(format!("Q{n}")))
    }

    fn replies(out: &str) -> Vec<&str> {
        out.split_terminator("\r\n").collect()
    }

    fn codes(out: &str) -> Vec<&str> {
        // Only final lines of multi-line replies count.
        replies(out)
            .into_iter()
            .filter(|l| l.as_bytes().get(3) != Some(&b'-'))
            .map(|l| &l[..3])
            .collect()
    }

    const MAX_RECIPIENTS: usize = 1000;

    #[test]
    fn symfony_dialogue() {
        // What Symfony Mailer's SmtpTransport writes to `sendmail -bs` (it says HELO;
        // SwiftMailer and EsmtpTransport say EHLO — both are covered).
        let script = b"HELO [127.0.0.1]\r\n\
            MAIL FROM:<app@site.example>\r\n\
            RCPT TO:<a@x.example>\r\n\
            RCPT TO:<b@y.example>\r\n\
            DATA\r\n\
            From: app@site.example\r\n\
            Subject: hi\r\n\
            \r\n\
            ..leading dot\r\n\
            ...two\r\n\
            end\r\n\
            .\r\n\
            QUIT\r\n";
        let (out, got) = run(script, 1_000_000);
        assert_eq!(
            replies(&out),
            vec![
                "220 mx.test ESMTP scriptmail",
                "250 mx.test",
                "250 2.1.0 Ok",
                "250 2.1.5 Ok",
                "250 2.1.5 Ok",
                "354 End data with <CR><LF>.<CR><LF>",
                "250 2.0.0 Ok: queued as Q1",
                "221 2.0.0 Bye",
            ]
        );
        assert_eq!(got.len(), 1);
        let (env, body) = &got[0];
        assert_eq!(
            env,
            &Envelope {
                sender: Some("app@site.example".into()),
                recipients: vec!["a@x.example".into(), "b@y.example".into()],
                ..Envelope::default()
            }
        );
        assert_eq!(
            body.as_slice(),
            b"From: app@site.example\r\nSubject: hi\r\n\r\n.leading dot\r\n..two\r\nend\r\n"
        );
    }

    #[test]
    fn ehlo_lists_extensions() {
        let (out, _) = run(b"EHLO client.example\r\nQUIT\r\n", 10_000_000);
        assert_eq!(
            replies(&out),
            vec![
                "220 mx.test ESMTP scriptmail",
                "250-mx.test",
                "250-PIPELINING",
                "250-8BITMIME",
                "250-SIZE 10000000",
                "250-DSN",
                "250 ENHANCEDSTATUSCODES",
                "221 2.0.0 Bye",
            ]
        );
    }

    #[test]
    fn pipelined_transaction_with_dsn_parameters() {
        // All commands arrive in one write, as a PIPELINING client sends them (RFC 2920).
        let script = b"ehlo c\r\n\
            mail from: <s@x> BODY=8BITMIME SIZE=100 RET=hdrs ENVID=ab+2Bc\r\n\
            rcpt to:<r1@y> NOTIFY=success,failure ORCPT=rfc822;r1+40y\r\n\
            RCPT TO:<r2@y> NOTIFY=NEVER\r\n\
            data\r\n\
            x\r\n\
            .\r\n\
            quit\r\n";
        let (out, got) = run(script, 1000);
        assert_eq!(
            codes(&out),
            vec!["220", "250", "250", "250", "250", "354", "250", "221"]
        );
        let (env, body) = &got[0];
        assert_eq!(
            env,
            &Envelope {
                sender: Some("s@x".into()),
                recipients: vec!["r1@y".into(), "r2@y".into()],
                body_8bit: true,
                dsn_ret: Some(Ret::Hdrs),
                envid: Envid::new(b"ab+c").ok(),
                dsn_notify: "success,failure".parse().ok(),
            }
        );
        assert_eq!(body.as_slice(), b"x\r\n");
    }

    #[test]
    fn two_messages_rset_and_null_sender() {
        let script = b"EHLO c\r\n\
            MAIL FROM:<a@x>\r\n\
            RCPT TO:<r@y>\r\n\
            RSET\r\n\
            MAIL FROM:<>\r\n\
            RCPT TO:<r2@y>\r\n\
            DATA\r\n\
            one\r\n\
            .\r\n\
            MAIL FROM:<b@x>\r\n\
            RCPT TO:<r3@y>\r\n\
            DATA\r\n\
            two\r\n\
            .\r\n\
            QUIT\r\n";
        let (out, got) = run(script, 1000);
        assert_eq!(
            codes(&out),
            vec![
                "220", "250", "250", "250", "250", "250", "250", "354", "250", "250", "250", "354",
                "250", "221"
            ]
        );
        assert!(out.contains("queued as Q1\r\n") && out.contains("queued as Q2\r\n"));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.sender, None);
        assert_eq!(got[0].0.recipients, vec!["r2@y".to_string()]);
        assert_eq!(got[0].1, b"one\r\n");
        assert_eq!(got[1].0.sender.as_deref(), Some("b@x"));
        assert_eq!(got[1].0.recipients, vec!["r3@y".to_string()]);
        assert_eq!(got[1].1, b"two\r\n");
    }

    #[test]
    fn lf_only_input_and_stray_crs() {
        // Commands and data lines may end in a bare LF; only <CRLF>.<CRLF> ends DATA.
        let script = b"HELO c\nMAIL FROM:<a@x>\nRCPT TO:<r@y>\nDATA\r\n\
            l1\nbare\rcr\nl3\r\r\n..\r\n.\r\nQUIT\n";
        let (out, got) = run(script, 1000);
        assert_eq!(
            codes(&out),
            vec!["220", "250", "250", "250", "354", "250", "221"]
        );
        assert_eq!(got[0].1, b"l1\r\nbare\rcr\r\nl3\r\n.\r\n");
    }

    /// SMTP smuggling (CVE-2023-51764): a "." line that is not exactly
    /// <CRLF>.<CRLF> is message text, so a second transaction written inside a
    /// message body never becomes a message of its own.
    #[test]
    fn only_crlf_dot_crlf_ends_data() {
        let smuggled = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@z>\r\nDATA\r\nspoofed\r\n";
        for (name, end, kept) in [
            ("LF . LF", &b"\n.\n"[..], &b"\r\n.\r\n"[..]),
            ("LF . CRLF", b"\n.\r\n", b"\r\n.\r\n"),
            ("CRLF . LF", b"\r\n.\n", b"\r\n.\r\n"),
            ("CR . CRLF", b"\r.\r\n", b"\r.\r\n"),
            ("CRLF . CR CRLF", b"\r\n.\r\r\n", b"\r\n.\r\n"),
            ("CR CRLF . CRLF", b"\r\r\n.\r\n", b"\r\n.\r\n"),
        ] {
            let mut script =
                b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nhello".to_vec();
            script.extend_from_slice(end);
            script.extend_from_slice(smuggled);
            script.extend_from_slice(b".\r\nQUIT\r\n");
            let (out, got) = run(&script, 1000);
            assert_eq!(got.len(), 1, "{name}: {out}");
            assert_eq!(got[0].0.recipients, ["r@y"], "{name}");
            let mut want = b"hello".to_vec();
            want.extend_from_slice(kept);
            want.extend_from_slice(smuggled);
            assert_eq!(
                String::from_utf8_lossy(&got[0].1),
                String::from_utf8_lossy(&want),
                "{name}"
            );
            assert_eq!(
                replies(&out)
                    .iter()
                    .filter(|r| r.starts_with("354"))
                    .count(),
                1,
                "{name}: {out}"
            );
        }
        // The DATA command's own line end counts as the CRLF before an empty message's dot.
        let (_, got) = run(
            b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n.\r\nQUIT\r\n",
            1000,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"");
        let (_, got) = run(
            b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\n.\r\n.\r\n",
            1000,
        );
        assert_eq!(got[0].1, b".\r\n");
    }

    #[test]
    fn sequence_errors() {
        let script = b"RCPT TO:<r@y>\r\n\
            DATA\r\n\
            MAIL FROM:<a@x>\r\n\
            MAIL FROM:<b@x>\r\n\
            DATA\r\n\
            RCPT TO:<r@y>\r\n\
            DATA\r\n\
            .\r\n\
            QUIT\r\n";
        let (out, got) = run(script, 1000);
        assert_eq!(
            replies(&out)[1..5],
            [
                "503 5.5.1 Error: need MAIL command",
                "503 5.5.1 Error: need MAIL command",
                "250 2.1.0 Ok",
                "503 5.5.1 Error: nested MAIL command",
            ]
        );
        // DATA without RCPT keeps the transaction, so a later RCPT completes it.
        assert_eq!(replies(&out)[5], "503 5.5.1 Error: need RCPT command");
        assert_eq!(codes(&out)[6..], ["250", "354", "250", "221"]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.sender.as_deref(), Some("a@x"));
        assert_eq!(got[0].1, b"");
    }

    #[test]
    fn syntax_errors_and_other_commands() {
        let cases: &[(&str, &str)] = &[
            ("FOO", "500 5.5.2 Error: command not recognized"),
            ("", "500 5.5.2 Error: command not recognized"),
            ("EHLO", "501 Syntax: EHLO hostname"),
            ("HELO", "501 Syntax: HELO hostname"),
            ("MAIL", "501 5.1.7 Error: bad sender address syntax"),
            (
                "MAIL TO:<a@b>",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@b",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "MAIL FROM:<a b@c>",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@b>x",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "MAIL FROM:<a@b> BODY=BINARYMIME",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "MAIL FROM:<a@b> SIZE=12k",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "MAIL FROM:<a@b> RET=ALL",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "MAIL FROM:<a@b> ENVID=a=b",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "MAIL FROM:<a@b> ENVID=a+0A",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "MAIL FROM:<a@b> BODY=7BIT BODY=7BIT",
                "501 5.5.4 Error: duplicate parameter",
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8",
                "555 5.5.4 Error: unsupported parameter",
            ),
            (
                "MAIL FROM:<a@b> AUTH=<>",
                "555 5.5.4 Error: unsupported parameter",
            ),
            ("VRFY", "501 5.5.4 Syntax: VRFY address"),
            (
                "VRFY root",
                "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            ("EXPN list", "502 5.5.1 Error: command not implemented"),
            (
                "HELP",
                "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            ),
            ("NOOP anything", "250 2.0.0 Ok"),
            ("RSET x", "501 5.5.4 Syntax: RSET"),
            ("DATA x", "501 5.5.4 Syntax: DATA"),
            ("BDAT 10 LAST", "500 5.5.2 Error: command not recognized"),
        ];
        for (cmd, want) in cases {
            let script = format!("{cmd}\r\nQUIT\r\n");
            let (out, got) = run(script.as_bytes(), 1000);
            assert_eq!(replies(&out)[1], *want, "command {cmd:?}");
            assert!(got.is_empty());
        }
    }

    #[test]
    fn rcpt_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "RCPT TO:<>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
            (
                "RCPT FROM:<a@b>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
            (
                "RCPT TO:<a@b> NOTIFY=sometimes",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "RCPT TO:<a@b> NOTIFY=NEVER,DELAY",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "RCPT TO:<a@b> ORCPT=rfc822",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "RCPT TO:<a@b> NOTIFY",
                "501 5.5.4 Error: bad parameter value",
            ),
            (
                "RCPT TO:<a@b> FOO=1",
                "555 5.5.4 Error: unsupported parameter",
            ),
        ];
        for (cmd, want) in cases {
            let script = format!("MAIL FROM:<s@x>\r\n{cmd}\r\nQUIT\r\n");
            let (out, _) = run(script.as_bytes(), 1000);
            assert_eq!(replies(&out)[2], *want, "command {cmd:?}");
        }
    }

    #[test]
    fn address_forms() {
        let script = b"MAIL FROM:bare@x\r\n\
            RCPT TO:<@relay.example,@r2.example:user@y>\r\n\
            RCPT TO:<\"john doe\"@y>\r\n\
            RCPT TO:<Postmaster>\r\n\
            DATA\r\n\
            .\r\n\
            QUIT\r\n";
        let (out, got) = run(script, 1000);
        assert_eq!(
            codes(&out),
            vec!["220", "250", "250", "250", "250", "354", "250", "221"]
        );
        assert_eq!(got[0].0.sender.as_deref(), Some("bare@x"));
        assert_eq!(
            got[0].0.recipients,
            vec![
                "user@y".to_string(),
                "\"john doe\"@y".to_string(),
                "Postmaster".to_string()
            ]
        );
    }

    /// A path the relay could not send is refused at MAIL or RCPT, where the
    /// client learns which address is wrong (`envelope`).
    #[test]
    fn unsendable_paths_are_refused_at_once() {
        for (cmd, want) in [
            (
                "MAIL FROM:<a..b@x>",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "MAIL FROM:<\"a>b\"@x>",
                "501 5.1.7 Error: bad sender address syntax",
            ),
            (
                "RCPT TO:<a@x..y>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
            (
                "RCPT TO:<\"john doe>\"@y>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
            (
                "RCPT TO:<a@[1.2.3]>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
            (
                "RCPT TO:<a\u{fffd}@x>",
                "501 5.1.3 Error: bad recipient address syntax",
            ),
        ] {
            let script = if cmd.starts_with("MAIL") {
                format!("{cmd}\r\nQUIT\r\n")
            } else {
                format!("MAIL FROM:<s@x>\r\n{cmd}\r\nQUIT\r\n")
            };
            let (out, _) = run(script.as_bytes(), 1000);
            let r = replies(&out);
            assert!(r.contains(&want), "{cmd}: {r:?}");
        }
    }

    #[test]
    fn size_limits() {
        // Declared SIZE above the limit: refused at MAIL (RFC 1870).
        let (out, _) = run(b"MAIL FROM:<a@x> SIZE=1001\r\nQUIT\r\n", 1000);
        assert_eq!(
            replies(&out)[1],
            "552 5.3.4 Error: message size exceeds fixed maximum message size"
        );
        let (out, _) = run(
            b"MAIL FROM:<a@x> SIZE=99999999999999999999999\r\nQUIT\r\n",
            1000,
        );
        assert!(replies(&out)[1].starts_with("552 "));
        let (out, _) = run(b"MAIL FROM:<a@x> SIZE=1000\r\nQUIT\r\n", 1000);
        assert_eq!(replies(&out)[1], "250 2.1.0 Ok");

        // Data over the limit: read to the end, 552, nothing accepted, session goes on.
        let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
        for _ in 0..20 {
            script.extend_from_slice(b"0123456789\r\n");
        }
        script.extend_from_slice(
            b"..\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n",
        );
        let (out, got) = run(&script, 100);
        assert_eq!(
            replies(&out)[4],
            "552 5.3.4 Error: message size exceeds fixed limit"
        );
        assert_eq!(codes(&out)[5..], ["250", "250", "354", "250", "221"]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"small\r\n");

        // Exactly at the limit is fine: 10 lines of 8 + CRLF = 100 bytes.
        let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
        for _ in 0..10 {
            script.extend_from_slice(b"01234567\r\n");
        }
        script.extend_from_slice(b".\r\n");
        let (_, got) = run(&script, 100);
        assert_eq!(got[0].1.len(), 100);

        // One huge line without any line break is discarded, not buffered.
        let mut script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n".to_vec();
        script.extend(std::iter::repeat_n(b'x', 100_000));
        script.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let (out, got) = run(&script, 1000);
        assert!(out.contains("\r\n552 5.3.4 "));
        assert!(got.is_empty());
    }

    #[test]
    fn zero_max_size_means_unlimited() {
        let (out, got) = run(
            b"EHLO c\r\nMAIL FROM:<a@x> SIZE=123456789\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n",
            0,
        );
        assert!(out.contains("\r\n250-SIZE\r\n"));
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn too_many_recipients() {
        let mut script = b"MAIL FROM:<a@x>\r\n".to_vec();
        for n in 0..=MAX_RECIPIENTS {
            script.extend_from_slice(format!("RCPT TO:<r{n}@y>\r\n").as_bytes());
        }
        script.extend_from_slice(b"DATA\r\nhi\r\n.\r\nQUIT\r\n");
        let (out, got) = run(&script, 1000);
        let r = replies(&out);
        assert_eq!(r[MAX_RECIPIENTS + 1], "250 2.1.5 Ok");
        assert_eq!(
            r[MAX_RECIPIENTS + 2],
            "452 4.5.3 Error: too many recipients"
        );
        assert_eq!(got[0].0.recipients.len(), MAX_RECIPIENTS);
    }

    #[test]
    fn long_command_line() {
        let mut script = b"NOOP ".to_vec();
        script.extend(std::iter::repeat_n(b'a', MAX_COMMAND_LINE));
        script.extend_from_slice(b"\r\nNOOP\r\n");
        // Exactly at the limit (with CRLF) is still a command.
        script.extend_from_slice(b"NOOP ");
        script.extend(std::iter::repeat_n(b'b', MAX_COMMAND_LINE - 5));
        script.extend_from_slice(b"\r\nQUIT\r\n");
        let (out, _) = run(&script, 1000);
        assert_eq!(
            replies(&out),
            vec![
                "220 mx.test ESMTP scriptmail",
                "500 5.5.2 Error: line too long",
                "250 2.0.0 Ok",
                "250 2.0.0 Ok",
                "221 2.0.0 Bye",
            ]
        );
    }

    #[test]
    fn rejected_verdicts() {
        let script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
            MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
            MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\n\
            MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
        let (out, got) = run_with(script, 1000, |n| match n {
            1 => Verdict::Rejected {
                code: 451,
                text: "4.3.0 queue unavailable".into(),
            },
            2 => Verdict::Rejected {
                code: 552,
                text: "too big\r\nfor us".into(),
            },
            3 => Verdict::Rejected {
                code: 250,
                text: String::new(),
            },
            _ => Verdict::Accepted("id with\r\nspace".into()),
        });
        let finals: Vec<&str> = replies(&out)
            .into_iter()
            .filter(|l| {
                ["451 ", "552 ", "250 2.0.0 Ok: queued"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .collect();
        assert_eq!(
            finals,
            vec![
                "451 4.3.0 queue unavailable",
                "552 5.0.0 too big  for us",
                "451 4.0.0 Error: message not accepted",
                "250 2.0.0 Ok: queued as id?with??space",
            ]
        );
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn end_of_input() {
        // No QUIT: the session just ends.
        let (out, got) = run(b"HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\n", 1000);
        assert_eq!(codes(&out), vec!["220", "250", "250", "250"]);
        assert!(got.is_empty());
        // Input ends inside DATA: the message never completed, so it is not accepted.
        let (out, got) = run(
            b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\npartial\r\n",
            1000,
        );
        assert_eq!(codes(&out), vec!["220", "250", "250", "354"]);
        assert!(got.is_empty());
        // A last command without its line end still counts.
        let (out, _) = run(b"QUIT", 1000);
        assert_eq!(codes(&out), vec!["220", "221"]);
        // Commands after QUIT are not read.
        let (out, _) = run(b"QUIT\r\nNOOP\r\n", 1000);
        assert_eq!(codes(&out), vec!["220", "221"]);
        let (out, _) = run(b"", 1000);
        assert_eq!(codes(&out), vec!["220"]);
    }

    #[test]
    fn eight_bit_data_and_invalid_utf8_commands() {
        let script = b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nDATA\r\ncaf\xc3\xa9 \xff\r\n.\r\nMAIL FROM:<\xff@x>\r\nQUIT\r\n";
        let (out, got) = run(script, 1000);
        assert_eq!(got[0].1, b"caf\xc3\xa9 \xff\r\n");
        assert!(got[0].0.body_8bit);
        assert!(out.contains("500 5.5.2 Error: command is not valid UTF-8\r\n"));
        // UTF-8 addresses are recorded as given.
        let (_, got) = run(
            "MAIL FROM:<jörg@x>\r\nRCPT TO:<r@ÿ.example>\r\nDATA\r\n.\r\n".as_bytes(),
            1000,
        );
        assert_eq!(got[0].0.sender.as_deref(), Some("jörg@x"));
    }

    #[test]
    fn ehlo_resets_transaction() {
        let (out, got) = run(
            b"MAIL FROM:<a@x>\r\nRCPT TO:<r@y>\r\nEHLO c\r\nDATA\r\nQUIT\r\n",
            1000,
        );
        assert!(out.contains("503 5.5.1 Error: need MAIL command"));
        assert!(got.is_empty());
    }

    #[test]
    fn output_error_ends_session() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::BrokenPipe))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let settings = Settings {
            hostname: "h",
            max_size: 10,
            max_recipients: 10,
            domain: "h",
        };
        let r = serve(&b"QUIT\r\n"[..], Broken, &settings, |_, _| {
            Verdict::Accepted("x".into())
        });
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
    }
}
