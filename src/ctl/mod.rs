//! `mailq-ctl`: the admin and control-panel interface (docs/mailq-ctl.md):
//! account states (block, unblock, purge), counters, history, the queue,
//! delivery on demand and the expiry sweep.
//!
//! Every verb prints an aligned table for people or, with `--json`, a
//! stable JSON document (the panel's API, documented in docs/mailq-ctl.md).
//! The SQL lives in `store`; this module parses, checks, prints and logs.
//! Run as root, it becomes the queue owner before it opens the queue
//! (SECURITY.md); every state change is recorded with its actor and logged.
//!
//! The verbs, by file: `status.rs` (status, metrics), `block.rs` (block,
//! unblock, purge), `stats.rs` (stats, errors, history), `settings.rs`
//! (set, accounts), `queue.rs` (queue, show, release, delete, sweep),
//! `delivery.rs` (flush, test); `view.rs` prints.
//!
//! ## Accounts before their first mail (issue 11 item 17)
//! A panel must be able to block or configure a site before it sends
//! anything (a compromised site is pre-blocked). So `block`, `set` and
//! `status` take any name the node resolves — a Unix user (`getpwnam`), or
//! a name the configuration's `[accounts.map]` gives to uids — not only one
//! with a row in the queue: `block` and `set` create the row, `status`
//! shows a fresh `ok` account without writing anything. A name that
//! resolves to nothing is still `no such account` (67), so a typo in a
//! panel never creates an account nobody can send as. The other verbs need
//! an account that exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};

use crate::account::{BlockReason, Reason, State};
use crate::config::{Config, ConfigError};
use crate::exit::Exit;
use crate::log::{self, Level};
use crate::privilege::{self, PrivilegeError};
use crate::queue::MessageState;
use crate::relay::RelayError;
use crate::sanitize;
use crate::store::Limit;
use crate::store::{Durability, Store, StoreError};
use crate::{clock, os};

mod block;
mod delivery;
mod queue;
mod settings;
mod stats;
mod status;
mod view;

/// `mailq-ctl [--json] [--actor NAME] VERB ...`
#[derive(Debug, ClapArgs)]
#[command(
    about = "Administer accounts and the queue: states, counters, history, delivery",
    after_help = "Every verb takes --json (the control panel's API, see docs/mailq-ctl.md)."
)]
pub struct Args {
    /// Print JSON (the control panel's API) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is acting, recorded with every state change [default: $SUDO_USER, else your login name].
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

/// The verbs (docs/mailq-ctl.md, "Verbs").
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// An account's state and counters; without ACCOUNT, one line per account.
    Status {
        account: Option<String>,
        /// Order of the lines when listing every account.
        #[arg(long, value_enum, default_value_t = SortKey::Name)]
        sort: SortKey,
    },
    /// Every account with its settings (report recipient, limits).
    Accounts,
    /// Block an account: its new mail is held (exit 0 for the sender), at
    /// most queue.hold_max_age.
    Block {
        account: String,
        #[arg(long, value_enum, default_value_t = BlockReason::Manual)]
        reason: BlockReason,
        /// A note kept in the history (ticket number, why).
        #[arg(long)]
        note: Option<String>,
    },
    /// Unblock an account and relay its held mail at once. From spam or
    /// bounce, refused while mail is held unless --force (bounce → force).
    Unblock {
        account: String,
        #[arg(long)]
        force: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Drop an account's held and not-yet-sent mail, then unblock it (asks on a terminal).
    Purge {
        account: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        note: Option<String>,
    },
    /// Expire held mail older than queue.hold_max_age and delete history
    /// older than queue.history_days (run by a timer).
    Sweep,
    /// List messages: not-yet-done mail oldest first, or one state newest first.
    Queue {
        #[arg(long)]
        account: Option<String>,
        #[arg(long, value_enum)]
        state: Option<MessageState>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One message: envelope, recipients and headers (the body only with --body).
    Show {
        qid: String,
        #[arg(long)]
        body: bool,
    },
    /// Release one held message for delivery (even from a blocked account).
    Release { qid: String },
    /// Delete one held, queued or deferred message.
    Delete { qid: String },
    /// Relay what is queued now, in the foreground, and report the outcome.
    Flush {
        #[arg(long)]
        account: Option<String>,
        /// How long to wait for the outcome.
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        wait: Duration,
    },
    /// Per-day sent, errors, held and expired, with a bar chart of sent mail.
    Stats {
        account: String,
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
    },
    /// The account's mails in error: date, recipient, server answer, script.
    Errors {
        account: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Configure an account (created if unknown): report recipient, limits.
    Set {
        account: String,
        /// Where the daily error report goes.
        #[arg(long, value_name = "ADDR")]
        report_to: Option<String>,
        /// Send no daily error report.
        #[arg(long, conflicts_with = "report_to")]
        no_report: bool,
        /// Mails per UTC day before the account is blocked (0: unlimited; `default`: node default).
        #[arg(long, value_name = "N|default", value_parser = parse_limit)]
        max_per_day: Option<Limit>,
        /// Mails per UTC hour before the account is blocked (0: unlimited; `default`: node default).
        #[arg(long, value_name = "N|default", value_parser = parse_limit)]
        max_per_hour: Option<Limit>,
    },
    /// The account's state changes: time, old, new, reason, actor, note.
    History {
        account: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The daily error report (docs/bounces.md): print it, or --send it to each
    /// account's report recipient (run daily by a timer).
    Report {
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Queue the reports for delivery instead of printing them.
        #[arg(long)]
        send: bool,
        /// The UTC day to report on [default: yesterday].
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day)]
        day: Option<i64>,
    },
    /// Per-account counters in the Prometheus text format (for node_exporter's
    /// textfile collector or a scrape).
    Metrics,
    /// Send a test mail for the account through the full path and say what happened.
    Test {
        account: String,
        #[arg(long, value_name = "ADDR")]
        to: String,
        /// How long to wait for the outcome.
        #[arg(long, default_value = "30s", value_parser = parse_wait)]
        wait: Duration,
    },
    /// Fill the queue with synthetic accounts and history (benchmarks).
    #[command(hide = true)]
    Populate {
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 0)]
        held: u64,
        #[arg(long, default_value_t = 400)]
        days: u32,
    },
}

/// `status --sort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// By account name.
    Name,
    /// Blocked accounts first.
    State,
    /// Most sent first (total).
    Sent,
    /// Most held first.
    Held,
    /// Most mails in error first (total).
    Errors,
}

/// `block --reason`: the domain's reasons, by their names (the domain type
/// knows nothing of clap).
impl ValueEnum for BlockReason {
    fn value_variants<'a>() -> &'a [Self] {
        &[BlockReason::Manual, BlockReason::Spam, BlockReason::Limit]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

/// `queue --state`: the message states, by their names.
impl ValueEnum for MessageState {
    fn value_variants<'a>() -> &'a [Self] {
        &MessageState::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.as_str()))
    }
}

fn parse_wait(s: &str) -> std::result::Result<Duration, String> {
    crate::config::parse_duration(s)
}

fn parse_day(s: &str) -> std::result::Result<i64, String> {
    clock::parse_day(s).ok_or_else(|| format!("{s:?} is not YYYY-MM-DD"))
}

fn parse_limit(s: &str) -> std::result::Result<Limit, String> {
    if s == "default" {
        return Ok(Limit::Default);
    }
    s.parse::<u64>()
        .map(Limit::Value)
        .map_err(|_| format!("{s:?} is not a number or `default`"))
}

/// Why a verb failed; each knows its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Privilege(#[from] PrivilegeError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Relay(#[from] RelayError),
    /// The command line is wrong (64).
    #[error("{0}")]
    Usage(String),
    /// Not allowed, or the admin said no (77).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Report(#[from] crate::report::ReportError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CtlError {
    pub fn exit_code(&self) -> Exit {
        match self {
            CtlError::Config(e) => e.exit_code(),
            CtlError::Privilege(e) => e.exit_code(),
            CtlError::Store(e) => e.exit_code(),
            CtlError::Relay(e) => e.exit_code(),
            CtlError::Usage(_) => Exit::Usage,
            CtlError::Refused(_) => Exit::NoPerm,
            CtlError::Report(e) => e.exit_code(),
            CtlError::Io(_) => Exit::IoErr,
        }
    }
}

type Result<T> = std::result::Result<T, CtlError>;

/// What every verb needs.
pub(crate) struct Ctx {
    pub cfg: Config,
    /// The configuration file named explicitly, passed on to a one-shot relayer.
    pub config_path: Option<PathBuf>,
    /// Recorded with state changes.
    pub actor: String,
    pub json: bool,
    pub color: bool,
    pub store: Store,
}

impl Ctx {
    /// Print a verb's result: JSON or the human text.
    pub fn output<T: serde::Serialize>(
        &self,
        json: &T,
        human: impl FnOnce() -> String,
    ) -> Result<()> {
        if self.json {
            view::print_json(json)?;
        } else {
            view::print(&human())?;
        }
        Ok(())
    }

    /// Log a state change: one key=value line per event (docs/mailq-ctl.md,
    /// "Logging").
    pub fn log_change(&self, account: &str, old: State, new: State, reason: Reason, extra: &str) {
        log::log(
            Level::Info,
            &format!(
                "account={} old={old} new={new} reason={reason} actor={}{extra}",
                sanitize::line(account),
                log::quote(&self.actor)
            ),
        );
    }

    /// Wake the relay (start a one-shot if no daemon listens).
    pub fn wake_relay(&self) {
        crate::wake::relay(&self.cfg, self.config_path.as_deref());
    }
}

/// Run `mailq-ctl`. On failure the message is returned for the caller to
/// print on stderr; with `--json` a `{"error": ..., "exit": ...}` document
/// also goes to stdout so the panel always gets JSON.
pub fn run(args: Args, config_path: Option<&Path>) -> std::result::Result<Exit, (Exit, String)> {
    let json = args.json;
    match run_verb(args, config_path) {
        Ok(()) => Ok(Exit::Ok),
        Err(e) => {
            let code = e.exit_code();
            let msg = e.to_string();
            if json {
                let _ = view::print_json(&serde_json::json!({
                    "error": msg,
                    "exit": code.code(),
                }));
            }
            Err((code, msg))
        }
    }
}

fn run_verb(args: Args, config_path: Option<&Path>) -> Result<()> {
    let cfg = Config::load(config_path)?;
    // No stderr fallback: the command prints its own outcome, and the
    // panel reading --json must not get log chatter on stderr.
    log::init(&cfg.log_socket, "scriptmail/mailq-ctl", false);
    // Who is acting: asked before we switch to the queue owner.
    let actor = match args.actor {
        Some(a) => check_actor(&a)?,
        None => default_actor(),
    };
    privilege::become_queue_owner(&cfg)?;
    let store = Store::open(&cfg.db_path(), Durability::Full)?;
    let mut ctx = Ctx {
        cfg,
        config_path: config_path.map(Path::to_path_buf),
        actor,
        json: args.json,
        color: !args.json && view::use_color(),
        store,
    };
    let now = clock::now_ms();
    match args.verb {
        Verb::Status {
            account: Some(a), ..
        } => status::status(&ctx, &a, now),
        Verb::Status {
            account: None,
            sort,
        } => status::overview(&ctx, sort, now),
        Verb::Accounts => settings::list(&ctx),
        Verb::Block {
            account,
            reason,
            note,
        } => block::block(&mut ctx, &account, reason, note.as_deref(), now),
        Verb::Unblock {
            account,
            force,
            note,
        } => block::unblock(&mut ctx, &account, force, note.as_deref(), now),
        Verb::Purge { account, yes, note } => {
            block::purge(&mut ctx, &account, yes, note.as_deref(), now)
        }
        Verb::Sweep => queue::sweep(&mut ctx, now),
        Verb::Report { account, send, day } => {
            let o = crate::report::execute(
                &ctx.cfg,
                &mut ctx.store,
                &crate::report::Options {
                    account: account.as_deref(),
                    send,
                    day,
                },
                now,
            )?;
            if o.queued > 0 {
                ctx.wake_relay();
            }
            ctx.output(&o.json, || o.text.clone())
        }
        Verb::Metrics => status::metrics(&ctx, now),
        Verb::Queue {
            account,
            state,
            limit,
        } => queue::list(&ctx, account, state, limit, now),
        Verb::Show { qid, body } => queue::show(&ctx, &qid, body),
        Verb::Release { qid } => queue::release(&mut ctx, &qid, now),
        Verb::Delete { qid } => queue::delete(&mut ctx, &qid),
        Verb::Flush { account, wait } => delivery::flush(&mut ctx, account.as_deref(), wait),
        Verb::Stats { account, days } => stats::stats(&ctx, &account, days, now),
        Verb::Errors { account, limit } => stats::errors(&ctx, &account, limit),
        Verb::Set {
            account,
            report_to,
            no_report,
            max_per_day,
            max_per_hour,
        } => settings::set(
            &mut ctx,
            &account,
            report_to.as_deref(),
            no_report,
            max_per_day,
            max_per_hour,
            now,
        ),
        Verb::History { account, limit } => stats::history(&ctx, &account, limit),
        Verb::Test { account, to, wait } => delivery::test(&mut ctx, &account, &to, wait),
        Verb::Populate {
            accounts: n,
            messages,
            held,
            days,
        } => queue::populate(&mut ctx, n, messages, held, days, now),
    }
}

/// Who runs the command: the admin behind `sudo` when there is one (root
/// and the service user are shared accounts, and "scriptmail" is also the
/// actor of automatic changes), else the login name of the real uid.
fn default_actor() -> String {
    if let Some(u) = std::env::var("SUDO_USER")
        .ok()
        .and_then(|u| check_actor(&u).ok())
    {
        return u;
    }
    let uid = os::real_uid();
    os::user_by_uid(uid).map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// An actor name from `--actor`: short, printable, one line.
fn check_actor(a: &str) -> Result<String> {
    let a = a.trim();
    if a.is_empty() || a.chars().count() > 64 || a.chars().any(sanitize::is_unsafe) {
        return Err(CtlError::Usage(
            "--actor must be 1 to 64 printable characters".into(),
        ));
    }
    Ok(a.to_string())
}

/// A note from `--note`: one line, bounded.
pub(crate) fn check_note(note: Option<&str>) -> Result<String> {
    let note = note.unwrap_or("").trim();
    if note.chars().count() > 500 {
        return Err(CtlError::Usage(
            "--note is limited to 500 characters".into(),
        ));
    }
    Ok(sanitize::line(note).into_owned())
}

/// Whether this node can resolve `name` to an account without a mail from
/// it: a Unix user, or a name of `[accounts.map]` (see "Accounts before
/// their first mail" above).
pub(crate) fn resolvable(ctx: &Ctx, name: &str) -> bool {
    ctx.cfg.accounts.map.iter().any(|(_, _, n)| n == name)
        || crate::os::user_by_name(name).is_some()
}

/// An account name the panel may create: a login-name-like word.
pub(crate) fn check_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(CtlError::Usage(format!(
            "{:?} is not a valid account name",
            sanitize::line(name)
        )))
    }
}
