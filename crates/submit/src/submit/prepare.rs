//! Preparing one message for the hand-off: the envelope sender and
//! recipients checked as the relay will need them, and the fix-ups a real
//! MTA's sendmail makes (README, "The `sendmail` interface"). The result is a
//! [`Parcel`]; relayd adds the `Received:` trace itself (docs/submission.md).

use std::collections::HashSet;

use super::{Caller, SubmitError};
use crate::address;
use crate::clock;
use crate::config::Config;
use crate::dsn_params::{Envid, Notify, Ret};
use crate::envelope;
use crate::handoff::Parcel;
use crate::handoff::parcel::{MAX_CWD, MAX_LABEL, floor_char_boundary};
use crate::log::{self, Level};
use crate::message::{Header, Message, MessageError};
use crate::options::{BodyType, Invocation, Sender};
use crate::reencode;
use crate::sanitize;

/// A fresh queue id: 20 upper-case hex digits, the time in seconds then 48
/// random bits. The id is UNIQUE in the queue and a collision would fail a
/// submission: with 32 random bits, a fleet of 10,000 nodes at 10 mails/s
/// would see several a day; with 48, about one in a thousand years.
pub fn new_qid(now: i64) -> String {
    let r = crate::os::random_u64() & 0xFFFF_FFFF_FFFF;
    format!("{:08X}{:012X}", (now / 1000) as u32, r)
}

/// Envelope and headers decided from the invocation, shared by -t and -bs.
#[derive(Clone, Copy)]
pub(super) struct Submission<'a> {
    pub cfg: &'a Config,
    pub caller: &'a Caller,
    pub cwd: &'a str,
    pub full_name: Option<&'a str>,
    pub dsn_notify: Option<Notify>,
    pub dsn_ret: Option<Ret>,
    pub envid: Option<&'a Envid>,
    pub declared_8bit: bool,
}

impl<'a> Submission<'a> {
    pub fn new(cfg: &'a Config, caller: &'a Caller, inv: &'a Invocation, cwd: &'a str) -> Self {
        Submission {
            cfg,
            caller,
            cwd,
            full_name: inv.full_name.as_deref(),
            dsn_notify: inv.dsn_notify,
            dsn_ret: inv.dsn_ret,
            envid: inv.envid.as_ref(),
            declared_8bit: inv.body == Some(BodyType::EightBitMime),
        }
    }

    /// Fix up the message (README, "The `sendmail` interface") and package
    /// it under a fresh queue id.
    pub fn parcel(
        &self,
        mut msg: Message,
        sender: &str,
        recipients: Vec<String>,
    ) -> Result<Parcel, SubmitError> {
        let now = clock::now_ms();
        let qid = new_qid(now);
        let cfg = self.cfg;
        for name in ["Bcc", "Resent-Bcc", "Return-Path", "Content-Length"] {
            msg.remove(name);
        }
        let subject = msg.values("Subject").next().unwrap_or_default();
        let script = msg
            .values("X-PHP-Originating-Script")
            .next()
            .unwrap_or_default();
        if !msg.has("From") {
            let addr = if sender.is_empty() {
                format!("{}@{}", self.caller.account, cfg.domain)
            } else {
                sender.to_string()
            };
            let value = match self.full_name {
                Some(name) if !name.trim().is_empty() => {
                    format!("{} <{addr}>", quote_phrase(name))
                }
                _ => addr,
            };
            msg.append(Header::new("From", &value));
        }
        if !msg.has("Date") {
            msg.append(Header::new("Date", &clock::format_rfc5322(now)));
        }
        if !msg.has("Message-ID") {
            msg.append(Header::new(
                "Message-ID",
                &format!("<{}.{}@{}>", now, qid, cfg.hostname),
            ));
        }
        // The limit applies to the message as the caller wrote it: re-encoding
        // below (quoted-printable or base64, whichever is shorter) may add up to
        // about a third, and the caller cannot know that.
        if msg.wire_len() > cfg.max_message_size {
            return Err(MessageError::TooLarge {
                max: cfg.max_message_size,
            }
            .into());
        }
        let refit = reencode::refit(&mut msg);
        let mut data = Vec::with_capacity(msg.wire_len() as usize);
        msg.write_wire(&mut data);
        // Not `declared_8bit`: re-encoding may have made an 8-bit body 7-bit.
        let body_8bit = (self.declared_8bit && !refit.changed()) || !data.is_ascii();
        if refit.changed() {
            log::log(
                Level::Info,
                &format!(
                    "qid={qid} account={} stat=\"lines over 998 octets: {} part(s) re-encoded, \
                     {} broken, {} header field(s) folded, {} dropped\"",
                    self.caller.account, refit.reencoded, refit.broken, refit.folded, refit.dropped
                ),
            );
        }
        Ok(Parcel {
            qid,
            sender: sender.to_string(),
            recipients,
            subject: sanitize::truncate(&sanitize::line(subject.trim()), MAX_LABEL).into_owned(),
            script: sanitize::truncate(&sanitize::line(script.trim()), MAX_LABEL).into_owned(),
            cwd: self
                .cwd
                .get(..floor_char_boundary(self.cwd, MAX_CWD))
                .unwrap_or_default()
                .to_string(),
            dsn_notify: self.dsn_notify,
            dsn_ret: self.dsn_ret,
            envid: self.envid.cloned(),
            body_8bit,
            data,
        })
    }
}

/// Quote a display name for a From: header (RFC 5322 §3.2.4) unless it is
/// already an encoded word or a plain atom sequence.
fn quote_phrase(name: &str) -> String {
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain || name.starts_with("=?") {
        return name;
    }
    let mut q = String::from("\"");
    for c in name.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The envelope sender: `-f` if given, else `account@domain`.
pub(super) fn envelope_sender(
    cfg: &Config,
    caller: &Caller,
    inv: &Invocation,
) -> Result<String, SubmitError> {
    match &inv.sender {
        None => checked(format!("{}@{}", caller.account, cfg.domain)),
        Some(Sender::Null) => Ok(String::new()),
        Some(Sender::Address(raw)) => {
            let parsed = address::parse_sender(raw).map_err(|source| SubmitError::Address {
                what: format!("bad sender {:?}", sanitize::line(raw)),
                source,
            })?;
            match parsed {
                None => Ok(String::new()),
                Some(a) => checked(address::qualify(&a, &cfg.domain)),
            }
        }
    }
}

/// `addr` (qualified) if the relay can send it: what sendmail accepts must not fail
/// at the relay after exit 0 (`envelope` module doc).
pub(super) fn checked(addr: String) -> Result<String, SubmitError> {
    match envelope::check(&addr) {
        Ok(()) => Ok(addr),
        Err(reason) => Err(SubmitError::Unsendable {
            addr: sanitize::line(&addr).into_owned(),
            reason,
        }),
    }
}

/// The envelope recipients of one message: qualified, checked, each once
/// (the domain compares case-insensitively), at most `max`.
///
/// Linear in the number of addresses: a `-t` header can list a hundred
/// thousand, and a quadratic check took minutes of CPU the caller cannot
/// kill (this runs as the service user).
pub(super) struct Recipients {
    pub list: Vec<String>,
    seen: HashSet<String>,
    max: usize,
}

impl Recipients {
    pub fn new(max: usize) -> Recipients {
        Recipients {
            list: Vec::new(),
            seen: HashSet::new(),
            max,
        }
    }

    /// Add the addresses of `list` not already there.
    pub fn add(&mut self, cfg: &Config, list: Vec<String>) -> Result<(), SubmitError> {
        for a in list {
            let a = checked(address::qualify(&a, &cfg.domain))?;
            if self.seen.insert(dedupe_key(&a)) {
                if self.list.len() == self.max {
                    return Err(SubmitError::TooManyRecipients { max: self.max });
                }
                self.list.push(a);
            }
        }
        Ok(())
    }
}

/// What makes two recipients the same: the local part as written (RFC 5321
/// §2.4: only the receiving host may fold its case), the domain in any case.
fn dedupe_key(a: &str) -> String {
    match a.rsplit_once('@') {
        Some((l, d)) => format!("{l}@{}", d.to_ascii_lowercase()),
        None => a.to_string(),
    }
}
