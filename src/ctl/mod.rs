//! `mailq-ctl`: the admin and control-panel interface (docs/mailq-ctl.md).
//!
//! This module is the command line around [`crate::control`]: clap
//! arguments become one call of a [`Control`] operation, and the typed
//! document it returns is printed — an aligned table for people or, with
//! `--json`, the document itself (the panel's API, documented in
//! docs/mailq-ctl.md). What is checked, changed and logged is decided in
//! `control`; here are only the process-level concerns: the actor behind
//! `sudo`, becoming the queue owner (SECURITY.md), the `[y/N]` question of
//! `purge`, and the JSON error document.
//!
//! The views, by file: `status.rs` (status, metrics), `block.rs` (block,
//! unblock, purge), `held.rs` (the held mail, released or purged in part),
//! `stats.rs` (stats, errors, history), `settings.rs` (set, accounts),
//! `queue.rs` (queue, show, release, delete, sweep, populate),
//! `delivery.rs` (flush, test); `view.rs` draws tables.

use std::path::Path;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use serde::Serialize;

use crate::account::BlockReason;
use crate::config::{Config, ConfigError};
use crate::control::{self, Control, ControlError, HeldFilter, SettingsChange, SortKey};
use crate::exit::Exit;
use crate::log;
use crate::privilege::{self, PrivilegeError};
use crate::queue::MessageState;
use crate::store::{Limit, PopulateSpec};
use crate::{clock, os};

mod block;
mod delivery;
mod held;
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
    ///
    /// With a filter (--script, --domain, --older-than, --newer-than), drop
    /// only the held mail it matches; the account's state does not change.
    Purge {
        account: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        #[arg(long)]
        note: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// The account's held mail: how many, the oldest, which scripts, which recipient domains.
    ///
    /// With a filter, only the held mail it matches: what `release ACCOUNT`
    /// or `purge ACCOUNT` with the same filter would take.
    Held {
        account: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Scripts and domains listed (most held first).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
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
    ///
    /// With a filter (--script, --domain, --older-than, --newer-than), release
    /// the held mail of ACCOUNT it matches; the account stays blocked.
    Release {
        #[arg(value_name = "QID|ACCOUNT")]
        target: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
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

/// Which held mail `held`, `release ACCOUNT` and `purge ACCOUNT` take:
/// every filter given must match.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct FilterArgs {
    /// Only mail from this script, as recorded (`1001:contact.php`) or
    /// without the UID: prefix (`contact.php`).
    #[arg(long, value_name = "PATH")]
    pub script: Option<String>,
    /// Only mail with a recipient at this domain.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Only mail submitted at least this long ago (e.g. 2h).
    #[arg(long, value_name = "AGE", value_parser = parse_wait)]
    pub older_than: Option<Duration>,
    /// Only mail submitted less than this long ago (e.g. 30m).
    #[arg(long, value_name = "AGE", value_parser = parse_wait)]
    pub newer_than: Option<Duration>,
}

impl FilterArgs {
    fn filter(&self) -> Result<HeldFilter> {
        Ok(control::held_filter(
            self.script.as_deref(),
            self.domain.as_deref(),
            self.older_than,
            self.newer_than,
        )?)
    }
}

/// `status --sort`: the orders, by their names.
impl ValueEnum for SortKey {
    fn value_variants<'a>() -> &'a [Self] {
        &SortKey::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let help = match self {
            SortKey::Name => "By account name",
            SortKey::State => "Blocked accounts first",
            SortKey::Sent => "Most sent first (total)",
            SortKey::Held => "Most held first",
            SortKey::Errors => "Most mails in error first (total)",
        };
        Some(PossibleValue::new(self.as_str()).help(help))
    }
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
    Control(#[from] ControlError),
    /// The command line is wrong (64).
    #[error("{0}")]
    Usage(String),
    /// The admin said no (77).
    #[error("{0}")]
    Refused(String),
    /// stdout or the terminal failed (74).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CtlError {
    pub fn exit_code(&self) -> Exit {
        match self {
            CtlError::Config(e) => e.exit_code(),
            CtlError::Privilege(e) => e.exit_code(),
            CtlError::Control(e) => e.exit_code(),
            CtlError::Usage(_) => Exit::Usage,
            CtlError::Refused(_) => Exit::NoPerm,
            CtlError::Io(_) => Exit::IoErr,
        }
    }
}

type Result<T> = std::result::Result<T, CtlError>;

/// How the verbs print: the document as JSON, or the text for people
/// (coloured on a terminal).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub json: bool,
    pub color: bool,
}

impl Out {
    /// Print a verb's document: as JSON, or as `human` renders it.
    pub fn print<T: Serialize>(&self, doc: &T, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            view::print_json(doc)?;
        } else {
            view::print(&human())?;
        }
        Ok(())
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
                let _ = view::print_json(&ErrorDoc {
                    error: &msg,
                    exit: code.code(),
                });
            }
            Err((code, msg))
        }
    }
}

/// `--json` on failure.
#[derive(Serialize)]
struct ErrorDoc<'a> {
    error: &'a str,
    exit: u8,
}

fn run_verb(args: Args, config_path: Option<&Path>) -> Result<()> {
    let cfg = Config::load(config_path)?;
    // No stderr fallback: the command prints its own outcome, and the
    // panel reading --json must not get log chatter on stderr.
    log::init(&cfg.log_socket, "scriptmail/mailq-ctl", false);
    // Who is acting: asked before we switch to the queue owner.
    let actor = match args.actor {
        Some(a) => control::check_actor(&a)?,
        None => default_actor(),
    };
    privilege::become_queue_owner(&cfg)?;
    let mut c = Control::open(cfg, config_path, actor)?;
    let out = Out {
        json: args.json,
        color: !args.json && view::use_color(),
    };
    let now = clock::now_ms();
    match args.verb {
        Verb::Status {
            account: Some(a), ..
        } => {
            let d = c.status(&a, now)?;
            out.print(&d, || status::one(&d, now, out.color))
        }
        Verb::Status {
            account: None,
            sort,
        } => {
            let d = c.overview(sort, now)?;
            out.print(&d, || status::all(&d, out.color))
        }
        Verb::Accounts => {
            let d = c.accounts()?;
            out.print(&d, || settings::accounts(&d, out.color))
        }
        Verb::Block {
            account,
            reason,
            note,
        } => {
            let d = c.block(&account, reason, note.as_deref(), now)?;
            out.print(&d, || block::block(&d, c.cfg().hold_max_age, out.color))
        }
        Verb::Unblock {
            account,
            force,
            note,
        } => {
            let d = c.unblock(&account, force, note.as_deref(), now)?;
            out.print(&d, || block::unblock(&d, out.color))
        }
        Verb::Purge {
            account,
            yes,
            note,
            filter,
        } => block::purge(
            &mut c,
            out,
            &account,
            yes,
            note.as_deref(),
            &filter.filter()?,
            now,
        ),
        Verb::Held {
            account,
            filter,
            limit,
        } => {
            let d = c.held(&account, &filter.filter()?, limit as usize, now)?;
            out.print(&d, || held::summary(&d))
        }
        Verb::Sweep => {
            let d = c.sweep(now)?;
            out.print(&d, || queue::sweep(&d))
        }
        Verb::Report { account, send, day } => {
            let opts = crate::report::Options {
                account: account.as_deref(),
                send,
                day,
            };
            let r = c.report(&opts, now)?;
            out.print(&r.json, || r.text.clone())
        }
        Verb::Metrics => {
            let d = c.metrics(now)?;
            out.print(&d, || d.prometheus())
        }
        Verb::Queue {
            account,
            state,
            limit,
        } => {
            let d = c.queue(account.as_deref(), state, limit)?;
            out.print(&d, || queue::list(&d, now, out.color))
        }
        Verb::Show { qid, body } => {
            let d = c.show(&qid, body)?;
            out.print(&d, || queue::show(&d, out.color))
        }
        Verb::Release { target, filter } => {
            let filter = filter.filter()?;
            if filter.is_empty() {
                let d = c.release(&target, now)?;
                out.print(&d, || queue::released(&d))
            } else {
                let d = c.release_held(&target, &filter, now)?;
                out.print(&d, || held::released(&d))
            }
        }
        Verb::Delete { qid } => {
            let d = c.delete(&qid)?;
            out.print(&d, || queue::deleted(&d))
        }
        Verb::Flush { account, wait } => {
            let d = c.flush(account.as_deref(), wait)?;
            out.print(&d, || delivery::flush(&d, out.color))
        }
        Verb::Stats { account, days } => {
            let d = c.stats(&account, days, now)?;
            out.print(&d, || stats::stats(&d, out.color))
        }
        Verb::Errors { account, limit } => {
            let d = c.errors(&account, limit)?;
            out.print(&d, || stats::errors(&d, out.color))
        }
        Verb::Set {
            account,
            report_to,
            no_report,
            max_per_day,
            max_per_hour,
        } => {
            let change = SettingsChange {
                report_to: match (report_to.as_deref(), no_report) {
                    (Some(addr), _) => Some(Some(addr)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
                max_per_day,
                max_per_hour,
            };
            let d = c.set(&account, &change, now)?;
            out.print(&d, || settings::set(&d))
        }
        Verb::History { account, limit } => {
            let d = c.history(&account, limit)?;
            out.print(&d, || stats::history(&d, out.color))
        }
        Verb::Test { account, to, wait } => {
            let d = c.test(&account, &to, wait)?;
            out.print(&d, || delivery::test(&d, c.cfg(), wait, out.color))
        }
        Verb::Populate {
            accounts,
            messages,
            held,
            days,
        } => {
            let spec = PopulateSpec {
                accounts,
                messages,
                held,
                days: i64::from(days),
            };
            let d = c.populate(&spec, now)?;
            out.print(&d, || queue::populated(&d))
        }
    }
}

/// Who runs the command: the admin behind `sudo` when there is one (root
/// and the service user are shared accounts, and "scriptmail" is also the
/// actor of automatic changes), else the login name of the real uid.
fn default_actor() -> String {
    if let Some(u) = std::env::var("SUDO_USER")
        .ok()
        .and_then(|u| control::check_actor(&u).ok())
    {
        return u;
    }
    let uid = os::real_uid();
    os::user_by_uid(uid).map_or_else(|| format!("uid {uid}"), |u| u.name)
}
