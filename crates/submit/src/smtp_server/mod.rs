//! The `sendmail -bs` SMTP dialogue on stdin/stdout: a small RFC 5321 server for one session.
//!
//! Symfony Mailer, Laravel, Drupal and SwiftMailer run `sendmail -bs` and talk SMTP over
//! pipes (README, "The `sendmail` interface"). This module only speaks the protocol and
//! builds envelopes; what happens to a finished message is the `accept` callback's
//! business. It is strict about what it records (syntax-checked paths, validated DSN
//! parameters) and forgiving about framing (bare LF line ends, a space after `FROM:`, no
//! HELO at all), as Postfix's `smtpd -S` is by default — with one exception: only
//! `<CRLF>.<CRLF>` ends DATA. A "." line next to a bare LF or CR is message text, so a
//! second transaction smuggled inside a message body (CVE-2023-51764) stays text of the
//! first message and is never accepted on its own (see `data::read_data`).
//!
//! Hand-written: the SMTP server crates are asynchronous network daemons, while this is
//! one session on a pipe inside the privileged `sendmail`, which links as little as it
//! can, and whose end-of-data rule must be exactly the one above.
//!
//! `command.rs` reads the arguments of MAIL and RCPT, `data.rs` the input lines and the
//! message, `reply.rs` writes the replies; the state machine is `serve` below.

use std::io::{self, BufRead, Write};

use crate::dsn_params::{Envid, Notify, Ret};

mod command;
mod data;
mod reply;

use command::{parse_mail, parse_rcpt};
use data::{Data, read_data, read_line};
use reply::{Replies, rejection};

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

#[cfg(test)]
mod tests;
