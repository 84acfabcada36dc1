//! The submission pipeline: what `sendmail` does with one invocation.
//!
//! WARNING: this code runs set-uid to the service user. It must take nothing
//! from its caller that it has not checked: the account comes from the real
//! uid only; the configuration is the default file unless the program is
//! unprivileged; the environment is cleared, inherited descriptors closed,
//! limits reset (see `os`). Everything the caller controls — arguments,
//! stdin, the working directory's name — is data, never instructions.
//!
//! Order of work (docs/submission.md): parse options (usage errors exit 64
//! before stdin is read), load config, find the account; connect to relayd's
//! submit socket *as the caller* (effective uid = real uid for the
//! connect(2), so the kernel names the caller to relayd); switch fully to
//! the service user; take one of the account's submission slots; read and
//! fix up the message; hand it to relayd and exit 0 only on its answer — or,
//! when relayd cannot take it, write it to the maildrop (fsynced) and wake
//! the relay. `sendmail` never opens the SQLite queue.

use std::ffi::OsString;
use std::io::{BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::address::{self, AddressError};
use crate::clock;
use crate::config::{self, Config, ConfigError};
use crate::deadline::{self, Deadline, TimedStdin};
use crate::envelope::Unsendable;
use crate::exit::{Exit, Failure};
use crate::handoff::client::Client;
use crate::handoff::frame::Reply;
use crate::handoff::{Origin, Parcel, listing};
use crate::log::{self, Level};
use crate::maildrop::{self, MaildropError};
use crate::message::{self, MessageError, ReadOptions};
use crate::options::{self, Invocation, Mode, UsageError};
use crate::os;
use crate::sanitize;
use crate::slots::{self, SlotError};
use crate::smtp_server::{self, Envelope, Verdict};
use crate::wake;

mod prepare;

pub use prepare::new_qid;
use prepare::{Recipients, Submission, checked, envelope_sender};

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
    /// relayd refused the message for good; its exit status.
    #[error("{text}")]
    Refused { exit: Exit, text: String },
    #[error("{0}")]
    Maildrop(#[from] MaildropError),
    #[error("{0}")]
    Slot(#[from] SlotError),
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    Os(String),
    #[error("{0}")]
    Install(String),
    #[error("cannot list the queue: {0}")]
    Listing(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Failure for SubmitError {
    fn exit_code(&self) -> Exit {
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
            SubmitError::Refused { exit, .. } => *exit,
            SubmitError::Maildrop(e) => e.exit_code(),
            SubmitError::Slot(e) => e.exit_code(),
            SubmitError::NotAllowed(_) => Exit::NoPerm,
            SubmitError::Os(_) => Exit::OsErr,
            SubmitError::Install(_) => Exit::Config,
            SubmitError::Listing(_) => Exit::Unavailable,
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

/// What every mode needs after the switch.
struct Ctx {
    cfg: Config,
    caller: Caller,
    cwd: String,
    waker: Waker,
    /// The connection to relayd, while it lasts (`None`: use the maildrop).
    client: Option<Client>,
}

/// Run one `sendmail` invocation. `argv0`/`args` as given by the OS.
pub fn run(argv0: OsString, args: Vec<OsString>) -> Result<(), SubmitError> {
    let privileged = os::is_privileged();
    // The real uid, before anything else can change it.
    let uid = os::real_uid();
    let gid = os::real_gid();
    let service_uid = os::effective_uid();
    let service_gid = os::effective_gid();
    // The caller's working directory: "which script" evidence (README, "The
    // `sendmail` interface").
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
    let client = match inv.mode {
        Mode::Deliver | Mode::Smtp | Mode::PrintQueue => {
            connect_as_caller(&cfg, privileged.then_some((uid, service_uid)))?
        }
        Mode::Newaliases | Mode::Verify | Mode::RunQueue => None,
    };
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
    let mut ctx = Ctx {
        cfg,
        caller,
        cwd,
        waker,
        client,
    };
    match inv.mode {
        Mode::Deliver => deliver(&mut ctx, &inv),
        Mode::Smtp => smtp_session(&mut ctx, &inv),
        Mode::PrintQueue => print_queue(ctx),
        // There is no alias database: nothing to rebuild.
        Mode::Newaliases => Ok(()),
        Mode::Verify => verify(&ctx.cfg, &inv),
        Mode::RunQueue => {
            ctx.waker.wake(&ctx.cfg);
            Ok(())
        }
    }
}

/// Connect to relayd's submit socket with the caller's uid as the effective
/// uid, so the kernel records the caller as the peer (docs/submission.md,
/// "Identity"), then take the service user back as the effective uid (still
/// the saved uid: allowed). `ids` is `(caller, service)` when privileged.
/// No daemon, or any failure to connect, is `None`: the maildrop is used.
fn connect_as_caller(cfg: &Config, ids: Option<(u32, u32)>) -> Result<Option<Client>, SubmitError> {
    if let Some((caller, _)) = ids
        && os::set_effective_uid(caller).is_err()
    {
        return Ok(None);
    }
    let client = Client::connect(&cfg.submit.socket, cfg.submit.timeout).ok();
    if let Some((_, service)) = ids {
        os::set_effective_uid(service)
            .map_err(|e| SubmitError::Os(format!("cannot switch back to the service user: {e}")))?;
    }
    Ok(client)
}

/// Refuse to run privileged from a wrong installation (SECURITY.md): set-uid root
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

/// Wakes the relay after a message went to the maildrop (see `wake`), unless
/// the caller left this process unfit to start a delivery run for the node.
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
            // without one, the next submission or the sweep timer imports
            // and relays this mail.
            Some(why) => {
                if !wake::poke(&cfg.wake_socket()) {
                    log::log(
                        Level::Warning,
                        &format!(
                            "account={} stat=\"not starting a delivery run: caller's {why}; \
                             mail stays in the maildrop for the relay daemon or the sweep\"",
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

/// Hand `parcel` to relayd and take its verdict, or — when relayd cannot
/// take it — write it to the maildrop under the same queue id and wake the
/// relay. `Ok` only once the message is committed or on disk.
fn hand_over(ctx: &mut Ctx, parcel: &Parcel) -> Result<(), SubmitError> {
    if let Some(client) = ctx.client.as_mut() {
        match client.hand_over(parcel) {
            Ok(Reply::Accepted { .. }) => return Ok(()),
            Ok(Reply::Refused { exit, text, .. }) => {
                return Err(SubmitError::Refused { exit, text });
            }
            // The client turns a deferral into `Lost`.
            Ok(Reply::Deferred { .. }) => {}
            Err(lost) => log::log(
                Level::Warning,
                &format!(
                    "qid={} account={} stat=\"{}; the message goes to the maildrop\"",
                    parcel.qid,
                    ctx.caller.account,
                    sanitize::line(&lost.to_string())
                ),
            ),
        }
        // Whatever went wrong, this connection is done with.
        ctx.client = None;
    }
    maildrop::check_queue_version(&ctx.cfg.queue_dir)?;
    let origin = Origin {
        uid: ctx.caller.uid,
        time: clock::now_ms(),
    };
    maildrop::write(&ctx.cfg.queue_dir, origin, parcel)?;
    ctx.waker.wake(&ctx.cfg);
    Ok(())
}

/// One of the account's `submit.max_per_account` slots, held until exit.
fn take_slot(ctx: &Ctx) -> Result<slots::Slot, SubmitError> {
    Ok(slots::take(
        &ctx.cfg.queue_dir,
        &ctx.caller.account,
        ctx.cfg.submit.max_per_account,
    )?)
}

/// `sendmail [-t] [-i] [recipients]`: one message from stdin.
fn deliver(ctx: &mut Ctx, inv: &Invocation) -> Result<(), SubmitError> {
    let cfg = &ctx.cfg;
    let sender = envelope_sender(cfg, &ctx.caller, inv)?;
    let mut recipients = Recipients::new(cfg.max_recipients);
    for arg in &inv.recipients {
        let list = address::parse_list(arg).map_err(|source| SubmitError::Address {
            what: format!("bad recipient {:?}", sanitize::line(arg)),
            source,
        })?;
        recipients.add(cfg, list)?;
    }
    let _slot = take_slot(ctx)?;
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
    let parcel =
        Submission::new(cfg, &ctx.caller, inv, &ctx.cwd).parcel(msg, &sender, recipients)?;
    hand_over(ctx, &parcel)
}

/// `sendmail -bs`: an SMTP dialogue on stdin/stdout (Symfony, Laravel, Drupal).
/// Each accepted message is handed over on the same connection to relayd.
fn smtp_session(ctx: &mut Ctx, inv: &Invocation) -> Result<(), SubmitError> {
    let _slot = take_slot(ctx)?;
    let cfg = ctx.cfg.clone();
    let caller = ctx.caller.clone();
    let cwd = ctx.cwd.clone();
    let base = Submission::new(&cfg, &caller, inv, &cwd);
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
                recipients.add(&cfg, env.recipients.clone())?;
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
                let parcel = sub.parcel(msg, &sender, recipients.list)?;
                hand_over(ctx, &parcel)?;
                Ok::<_, SubmitError>(parcel.qid)
            })();
            match verdict {
                Ok(qid) => {
                    // Each accepted message buys the session another
                    // read_timeout (`deadline` module doc).
                    deadline.restart();
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

/// The hidden `scriptmail` verb that lists one uid's pending mail when no
/// relayd answers (`submission::listing`). It runs as the service user, so
/// it may read the queue; the uid it is given is the one this process
/// recorded at start.
pub const LISTING_VERB: &str = "internal-mailq";

/// `sendmail -bp` / `mailq`: the caller's own pending mail, nobody else's.
/// Asked of relayd (which names the caller from the kernel); without relayd,
/// this process becomes the `scriptmail` program's listing verb — it never
/// opens the queue itself.
fn print_queue(mut ctx: Ctx) -> Result<(), SubmitError> {
    if let Some(client) = ctx.client.as_mut()
        && let Ok(rows) = client.list()
    {
        return Ok(listing::print(&mut std::io::stdout().lock(), &rows)?);
    }
    let mut cmd = std::process::Command::new(&ctx.cfg.relay.program);
    if let Some(p) = &ctx.waker.config_path {
        cmd.arg("--config").arg(p);
    }
    let err = cmd
        .arg(LISTING_VERB)
        .arg(ctx.caller.uid.to_string())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .exec();
    Err(SubmitError::Listing(format!(
        "{}: {err}",
        ctx.cfg.relay.program.display()
    )))
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
