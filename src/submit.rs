//! The submission pipeline: what `sendmail` does with one invocation.
//!
//! WARNING: this code runs set-uid to the service user. It must take nothing
//! from its caller that it has not checked: the account comes from the real
//! uid only; the configuration is the default file unless the program is
//! unprivileged; the environment is cleared, inherited descriptors closed,
//! limits reset (see `os`). Everything the caller controls — arguments,
//! stdin, the working directory's name — is data, never instructions.
//!
//! Order of work: parse options (usage errors exit 64 before stdin is read),
//! load config, find the account, drop to the service user, read and fix up
//! the message, commit it in one transaction, wake the relay, exit 0.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::address::{self, AddressError};
use crate::clock;
use crate::config::{self, Config, ConfigError};
use crate::deadline::{self, Deadline, TimedStdin};
use crate::dsn_params::{Envid, Notify, Ret};
use crate::envelope::{self, Unsendable};
use crate::exit::Exit;
use crate::log::{self, Level};
use crate::message::{self, Header, Message, MessageError, ReadOptions};
use crate::options::{self, BodyType, Invocation, Mode, Sender, UsageError};
use crate::os;
use crate::reencode;
use crate::sanitize;
use crate::smtp_server::{self, Envelope, Verdict};
use crate::store::{Durability, NewMessage, Store, StoreError};
use crate::wake;

/// Why a submission failed; each knows its exit status.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Usage(#[from] UsageError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Message(#[from] MessageError),
    #[error("{what}: {source}")]
    Address { what: String, source: AddressError },
    #[error("bad address {addr:?}: {reason}")]
    Unsendable { addr: String, reason: Unsendable },
    #[error("{0}")]
    NoRecipients(&'static str),
    #[error("too many recipients: more than {max} (queue.max_recipients)")]
    TooManyRecipients { max: usize },
    #[error(
        "input not finished within {}s (queue.read_timeout); the unfinished message is not queued",
        .0.as_secs()
    )]
    ReadTimeout(Duration),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Os(String),
    #[error("{0}")]
    Install(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl SubmitError {
    pub fn exit_code(&self) -> Exit {
        match self {
            SubmitError::Usage(_) | SubmitError::NoRecipients(_) => Exit::Usage,
            SubmitError::Config(e) => e.exit_code(),
            SubmitError::Message(MessageError::TooLarge { .. }) => Exit::Unavailable,
            SubmitError::Message(_) => Exit::DataErr,
            SubmitError::Address { .. } | SubmitError::Unsendable { .. } => Exit::DataErr,
            // The input as given can never be accepted: a data error, as for
            // a malformed address, so PHP's mail() returns false at once.
            SubmitError::TooManyRecipients { .. } => Exit::DataErr,
            // The caller never completed its input: not a message we could take.
            SubmitError::ReadTimeout(_) => Exit::DataErr,
            SubmitError::Store(e) => e.exit_code(),
            SubmitError::NotAllowed(_) => Exit::NoPerm,
            SubmitError::Os(_) => Exit::OsErr,
            SubmitError::Install(_) => Exit::Config,
            SubmitError::Io(_) => Exit::IoErr,
        }
    }
}

/// Who is submitting.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub account: String,
}

/// Run one `sendmail` invocation. `argv0`/`args` as given by the OS.
pub fn run(argv0: OsString, args: Vec<OsString>) -> Result<(), SubmitError> {
    let privileged = os::is_privileged();
    // The real uid, before anything else can change it.
    let uid = os::real_uid();
    let gid = os::real_gid();
    let service_uid = os::effective_uid();
    let service_gid = os::effective_gid();
    // The caller's working directory: "which script" evidence (SPEC §4).
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let env_config = std::env::var_os(config::ENV_VAR);
    if privileged {
        os::clear_env();
        os::close_inherited_fds();
        os::reset_limits();
    }
    os::ensure_std_fds();
    os::set_umask(0o077);
    if privileged {
        check_installation(uid, gid, service_uid, service_gid)?;
    }

    let inv = options::parse(&argv0, &args)?;
    for w in &inv.warnings {
        // Like the error line: never a panic on a stderr the caller made unwritable.
        let _ = writeln!(std::io::stderr().lock(), "sendmail: warning: {w}");
    }
    // Overrides only when unprivileged: a tenant must not pick the queue.
    let config_path: Option<PathBuf> = if privileged {
        None
    } else {
        inv.config.clone().or_else(|| env_config.map(PathBuf::from))
    };
    let cfg = Config::load(config_path.as_deref())?;
    log::init(&cfg.log_socket, "scriptmail/sendmail", false);
    let caller = identify(&cfg, uid)?;
    if privileged {
        let user = os::User {
            name: String::new(),
            uid: service_uid,
            gid: service_gid,
        };
        os::become_user(&user)
            .map_err(|e| SubmitError::Os(format!("cannot switch to the service user: {e}")))?;
    }

    let waker = Waker {
        config_path,
        account: caller.account.clone(),
        // Checked only when privileged: unprivileged, the caller could run the
        // delivery itself anyway.
        hazard: if privileged {
            os::delivery_hazard()
        } else {
            None
        },
    };
    match inv.mode {
        Mode::Deliver => deliver(&cfg, &caller, &inv, &cwd, &waker),
        Mode::Smtp => smtp_session(&cfg, &caller, &inv, &cwd, &waker),
        Mode::PrintQueue => print_queue(&cfg, &caller),
        // There is no alias database: nothing to rebuild.
        Mode::Newaliases => Ok(()),
        Mode::Verify => verify(&cfg, &inv),
        Mode::RunQueue => {
            waker.wake(&cfg);
            Ok(())
        }
    }
}

/// Refuse to run privileged from a wrong installation (SPEC §7): set-uid root
/// would run the whole parser as root for every tenant; set-gid alone leaves
/// the process the caller's, who could then stop it inside the queue lock.
/// The package installs it `scriptmail:scriptmail` mode 6755.
fn check_installation(uid: u32, gid: u32, euid: u32, egid: u32) -> Result<(), SubmitError> {
    if euid == 0 && uid != 0 {
        return Err(SubmitError::Install(
            "installed set-uid root: it must be set-uid and set-gid to the service user \
             (mode 6755, scriptmail:scriptmail)"
                .into(),
        ));
    }
    if euid == uid && egid != gid {
        return Err(SubmitError::Install(
            "installed set-gid only: it must be set-uid and set-gid to the service user \
             (mode 6755, scriptmail:scriptmail)"
                .into(),
        ));
    }
    Ok(())
}

/// Wakes the relay after a commit (see `wake`), unless the caller left this
/// process unfit to start a delivery run for the whole node.
struct Waker {
    config_path: Option<PathBuf>,
    account: String,
    /// Why a one-shot delivery must not be started from here, if so.
    hazard: Option<String>,
}

impl Waker {
    fn wake(&self, cfg: &Config) {
        match &self.hazard {
            None => wake::relay(cfg, self.config_path.as_deref()),
            // A one-shot inherits the caller's scheduling class and hard
            // limits; holding the relay lock, a starved or dying one would
            // delay every account's mail. The daemon still gets its wake-up;
            // without one, the next submission or the timer relays this mail.
            Some(why) => {
                if !wake::poke(&cfg.wake_socket()) {
                    log::log(
                        Level::Warning,
                        &format!(
                            "account={} stat=\"not starting a delivery run: caller's {why}; \
                             mail stays queued for the relay daemon\"",
                            self.account
                        ),
                    );
                }
            }
        }
    }
}

/// The account of a real uid: the configured map first, then the login name.
pub fn identify(cfg: &Config, uid: u32) -> Result<Caller, SubmitError> {
    let mapped = cfg
        .accounts
        .map
        .iter()
        .find(|(lo, hi, _)| (*lo..=*hi).contains(&uid))
        .map(|(_, _, name)| name.clone());
    let account = match mapped {
        Some(name) => name,
        None => os::user_by_uid(uid)
            .map(|u| u.name)
            .ok_or_else(|| SubmitError::NotAllowed(format!("uid {uid} has no passwd entry")))?,
    };
    if uid != 0 && uid < cfg.accounts.min_uid {
        return Err(SubmitError::NotAllowed(format!(
            "uid {uid} ({account}) is not allowed to submit mail"
        )));
    }
    if !cfg.accounts.allow.is_empty() && !cfg.accounts.allow.iter().any(|a| a == &account) {
        return Err(SubmitError::NotAllowed(format!(
            "account {account} is not allowed to submit mail"
        )));
    }
    Ok(Caller { uid, account })
}

/// A fresh queue id: 20 upper-case hex digits, the time in seconds then 48
/// random bits. The id is UNIQUE in the queue and a collision would fail a
/// submission: with 32 random bits, a fleet of 10,000 nodes at 10 mails/s
/// would see several a day; with 48, about one in a thousand years.
pub fn new_qid(now: i64) -> String {
    let r = os::random_u64() & 0xFFFF_FFFF_FFFF;
    format!("{:08X}{:012X}", (now / 1000) as u32, r)
}

/// Envelope and headers decided from the invocation, shared by -t and -bs.
struct Submission<'a> {
    cfg: &'a Config,
    caller: &'a Caller,
    cwd: &'a str,
    full_name: Option<&'a str>,
    dsn_notify: Option<Notify>,
    dsn_ret: Option<Ret>,
    envid: Option<&'a Envid>,
    declared_8bit: bool,
}

impl Submission<'_> {
    /// Fix up the message (SPEC §4), enqueue it, return its queue id.
    fn enqueue(
        &self,
        store: &mut Store,
        mut msg: Message,
        sender: &str,
        recipients: &[String],
    ) -> Result<(String, bool), SubmitError> {
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
        // Trace (RFC 5321 §4.4): the account and queue id let an abuse desk
        // go from a complaint to the account in one step.
        msg.prepend(Header::new(
            "Received",
            &format!(
                "by {} (scriptmail, from userid {} account {})\r\n\tid {}; {}",
                cfg.hostname,
                self.caller.uid,
                self.caller.account,
                qid,
                clock::format_rfc5322(now)
            ),
        ));
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
        let mut data = Vec::with_capacity(msg.wire_len() as usize + 256);
        msg.write_wire(&mut data);
        // Not `declared_8bit`: re-encoding may have made an 8-bit body 7-bit.
        let body_8bit = (self.declared_8bit && !refit.changed()) || !data.is_ascii();
        let subject = sanitize::truncate(&sanitize::line(subject.trim()), 200).into_owned();
        let script = sanitize::truncate(&sanitize::line(script.trim()), 200).into_owned();
        let result = store.submit(
            &NewMessage {
                qid: &qid,
                account: &self.caller.account,
                uid: self.caller.uid,
                sender,
                recipients,
                data: &data,
                subject: &subject,
                script: &script,
                cwd: self.cwd,
                dsn_notify: self.dsn_notify,
                dsn_ret: self.dsn_ret,
                envid: self.envid,
                body_8bit,
                system: false,
            },
            cfg.enqueue_policy(),
            now,
            &format!(" cwd={}", log::quote(self.cwd)),
        )?;
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
        Ok((qid, result.held))
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
fn envelope_sender(cfg: &Config, caller: &Caller, inv: &Invocation) -> Result<String, SubmitError> {
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
fn checked(addr: String) -> Result<String, SubmitError> {
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
struct Recipients {
    list: Vec<String>,
    seen: HashSet<String>,
    max: usize,
}

impl Recipients {
    fn new(max: usize) -> Recipients {
        Recipients {
            list: Vec::new(),
            seen: HashSet::new(),
            max,
        }
    }

    /// Add the addresses of `list` not already there.
    fn add(&mut self, cfg: &Config, list: Vec<String>) -> Result<(), SubmitError> {
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

fn submission<'a>(
    cfg: &'a Config,
    caller: &'a Caller,
    inv: &'a Invocation,
    cwd: &'a str,
) -> Submission<'a> {
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

fn open_store(cfg: &Config) -> Result<Store, SubmitError> {
    Ok(Store::open(&cfg.db_path(), Durability::Full)?)
}

/// `sendmail [-t] [-i] [recipients]`: one message from stdin.
fn deliver(
    cfg: &Config,
    caller: &Caller,
    inv: &Invocation,
    cwd: &str,
    waker: &Waker,
) -> Result<(), SubmitError> {
    let sender = envelope_sender(cfg, caller, inv)?;
    let mut recipients = Recipients::new(cfg.max_recipients);
    for arg in &inv.recipients {
        let list = address::parse_list(arg).map_err(|source| SubmitError::Address {
            what: format!("bad recipient {:?}", sanitize::line(arg)),
            source,
        })?;
        recipients.add(cfg, list)?;
    }
    let deadline = Deadline::start(cfg.read_timeout);
    let input = BufReader::with_capacity(INPUT_BUFFER, TimedStdin::new(deadline.clone()));
    let msg = message::read(
        input,
        &ReadOptions {
            ignore_dots: inv.ignore_dots,
            max_size: cfg.max_message_size,
        },
    )
    .map_err(|e| read_failed(e, &deadline))?;
    if inv.extract_recipients {
        recipients.add(cfg, msg.extract_recipients()?)?;
    }
    let recipients = recipients.list;
    if recipients.is_empty() {
        return Err(SubmitError::NoRecipients(if inv.extract_recipients {
            "No recipient addresses found in message header"
        } else {
            "Recipient addresses must be specified on the command line or via the -t option"
        }));
    }
    let mut store = open_store(cfg)?;
    let (_qid, held) =
        submission(cfg, caller, inv, cwd).enqueue(&mut store, msg, &sender, &recipients)?;
    drop(store);
    if !held {
        waker.wake(cfg);
    }
    Ok(())
}

/// `sendmail -bs`: an SMTP dialogue on stdin/stdout (Symfony, Laravel, Drupal).
fn smtp_session(
    cfg: &Config,
    caller: &Caller,
    inv: &Invocation,
    cwd: &str,
    waker: &Waker,
) -> Result<(), SubmitError> {
    let mut store = open_store(cfg)?;
    let base = submission(cfg, caller, inv, cwd);
    let deadline = Deadline::start(cfg.read_timeout);
    let input = BufReader::with_capacity(INPUT_BUFFER, TimedStdin::new(deadline.clone()));
    let stdout = std::io::stdout();
    let result = smtp_server::serve(
        input,
        stdout.lock(),
        &smtp_server::Settings {
            hostname: &cfg.hostname,
            max_size: cfg.max_message_size,
            max_recipients: cfg.max_recipients,
            domain: &cfg.domain,
        },
        |env: &Envelope, data: &[u8]| {
            let verdict = (|| {
                let sender = match &env.sender {
                    None => String::new(),
                    Some(s) => checked(address::qualify(s, &cfg.domain))?,
                };
                let mut recipients = Recipients::new(cfg.max_recipients);
                recipients.add(cfg, env.recipients.clone())?;
                let recipients = recipients.list;
                let msg = message::read(
                    data,
                    &ReadOptions {
                        ignore_dots: true,
                        max_size: cfg.max_message_size,
                    },
                )?;
                let sub = Submission {
                    dsn_notify: env.dsn_notify.or(base.dsn_notify),
                    dsn_ret: env.dsn_ret.or(base.dsn_ret),
                    envid: env.envid.as_ref().or(base.envid),
                    declared_8bit: base.declared_8bit || env.body_8bit,
                    ..base
                };
                sub.enqueue(&mut store, msg, &sender, &recipients)
            })();
            match verdict {
                Ok((qid, held)) => {
                    // Each accepted message buys the session another
                    // read_timeout (`deadline` module doc).
                    deadline.restart();
                    // After every message, not once per session: a one-shot
                    // woken by the first may have finished before the next
                    // message of a long-lived `-bs` session is committed.
                    if !held {
                        waker.wake(cfg);
                    }
                    Verdict::Accepted(qid)
                }
                Err(e) => {
                    let code = match e.exit_code() {
                        Exit::Unavailable => 552,
                        Exit::DataErr | Exit::Usage => 554,
                        _ => 451,
                    };
                    Verdict::Rejected {
                        code,
                        text: sanitize::line(&e.to_string()).into_owned(),
                    }
                }
            }
        },
    );
    result.map_err(|e| {
        if deadline::is_timeout(&e) {
            SubmitError::ReadTimeout(deadline.timeout())
        } else {
            SubmitError::Io(e)
        }
    })
}

/// Bytes read from stdin at a time (PHP writes the whole message at once).
const INPUT_BUFFER: usize = 64 * 1024;

/// A message read failed: say so plainly if it was the deadline.
fn read_failed(e: MessageError, deadline: &Deadline) -> SubmitError {
    match e {
        MessageError::Io(io) if deadline::is_timeout(&io) => {
            SubmitError::ReadTimeout(deadline.timeout())
        }
        e => e.into(),
    }
}

/// `sendmail -bp` / `mailq`: the caller's own pending mail, nobody else's.
fn print_queue(cfg: &Config, caller: &Caller) -> Result<(), SubmitError> {
    let store = open_store(cfg)?;
    let rows = store.pending_of(&caller.account)?;
    let mut out = std::io::stdout().lock();
    if rows.is_empty() {
        writeln!(out, "Mail queue is empty")?;
        return Ok(());
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
            r.qid,
            r.size,
            clock::format_rfc3339(r.created),
            r.state,
            sanitize::line(&r.sender)
        )?;
        for rcpt in r.recipients {
            writeln!(out, "{:<57} <{}>", "", sanitize::line(&rcpt))?;
        }
    }
    Ok(())
}

/// `sendmail -bv`: check the addresses on the command line with the rules a
/// submission applies, without sending. Never reads stdin: a caller may pass
/// one it never closes.
fn verify(cfg: &Config, inv: &Invocation) -> Result<(), SubmitError> {
    if inv.recipients.is_empty() {
        return Err(SubmitError::NoRecipients("no addresses to verify"));
    }
    let mut out = std::io::stdout().lock();
    for arg in &inv.recipients {
        match address::parse_list(arg) {
            Ok(list) => {
                for a in list {
                    match checked(address::qualify(&a, &cfg.domain)) {
                        Ok(a) => writeln!(
                            out,
                            "{}... deliverable: relayed to {}",
                            sanitize::line(&a),
                            cfg.relay.host
                        )?,
                        Err(e) => writeln!(out, "{}... {e}", sanitize::line(&a))?,
                    }
                }
            }
            Err(e) => writeln!(out, "{}... {e}", sanitize::line(arg))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_rules() {
        // (uid, gid, euid, egid): a tenant and root through a 6755 scriptmail:scriptmail
        // binary, a 4755 one (the gid stays the caller's: harmless), and a privileged start
        // with no set-id bit (an LSM transition) are fine.
        for ok in [
            (1001, 1001, 999, 995),
            (0, 0, 999, 995),
            (1001, 1001, 999, 1001),
            (1001, 1001, 1001, 1001),
        ] {
            assert!(check_installation(ok.0, ok.1, ok.2, ok.3).is_ok(), "{ok:?}");
        }
        // Set-uid root, and set-gid without set-uid, are refused as a config error.
        for bad in [
            (1001, 1001, 0, 1001),
            (1001, 1001, 1001, 995),
            (0, 0, 0, 995),
        ] {
            let e = check_installation(bad.0, bad.1, bad.2, bad.3).unwrap_err();
            assert_eq!(e.exit_code(), Exit::Config, "{bad:?}");
        }
    }
}
