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
//! `args.rs` is the command line. The views, by file: `status.rs` (status,
//! metrics), `block.rs` (block, unblock, purge), `held.rs` (the held mail,
//! released or purged in part), `stats.rs` (stats, errors, history),
//! `settings.rs` (set, accounts), `queue.rs` (queue, show, release, delete,
//! sweep, populate), `delivery.rs` (flush, test), `tokens.rs` (the panel
//! API's tokens); `view.rs` draws tables.

use std::path::Path;

use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::control::{self, Control, ControlError, SettingsChange};
use crate::exit::{Exit, Failure};
use crate::log;
use crate::privilege::{self, PrivilegeError};
use crate::store::PopulateSpec;
use crate::{clock, os};

mod args;
mod block;
mod delivery;
mod held;
mod queue;
mod settings;
mod stats;
mod status;
mod tokens;
pub(crate) mod view;

pub use args::{Args, FilterArgs, TokenVerb, Verb};

/// Why a verb failed; each knows its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Privilege(#[from] PrivilegeError),
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("{0}")]
    Token(#[from] crate::api::tokens::TokenError),
    /// The command line is wrong (64).
    #[error("{0}")]
    Usage(String),
    /// The admin said no (77).
    #[error("{0}")]
    Refused(String),
    /// stdout or the terminal failed (74).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The cluster store is unreachable (69), with the way out.
    #[error("{0} (mailq-ctl --local acts on this node only)")]
    Unreachable(Box<CtlError>),
}

impl Failure for CtlError {
    fn exit_code(&self) -> Exit {
        match self {
            CtlError::Config(e) => e.exit_code(),
            CtlError::Privilege(e) => e.exit_code(),
            CtlError::Control(e) => e.exit_code(),
            CtlError::Token(e) => e.exit_code(),
            CtlError::Usage(_) => Exit::Usage,
            CtlError::Refused(_) => Exit::NoPerm,
            CtlError::Io(_) => Exit::IoErr,
            CtlError::Unreachable(e) => e.exit_code(),
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

/// Run `mailq-ctl`. On failure the error is returned for the caller to
/// report on stderr; with `--json` a `{"error": ..., "exit": ...}` document
/// also goes to stdout so the panel always gets JSON.
pub fn run(args: Args, config_path: Option<&Path>) -> Result<()> {
    let json = args.json;
    // The cluster store being down is not the end of the admin's options:
    // say which one is left.
    let result = run_verb(args, config_path).map_err(|e| match e {
        CtlError::Control(ControlError::Cluster(crate::cluster::ClusterError::Unreachable(_))) => {
            CtlError::Unreachable(Box::new(e))
        }
        e => e,
    });
    if let (Err(e), true) = (&result, json) {
        let _ = view::print_json(&ErrorDoc {
            error: &e.to_string(),
            exit: e.exit_code().code(),
        });
    }
    result
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
    let out = Out {
        json: args.json,
        color: !args.json && view::use_color(),
    };
    if let Verb::ApiToken(verb) = &args.verb {
        // The tokens file is not the queue's: see `tokens.rs`.
        return tokens::run(verb, &cfg, &actor, out);
    }
    privilege::become_queue_owner(&cfg)?;
    let mut c = if args.local {
        Control::open_local(cfg, config_path, actor)?
    } else {
        Control::open(cfg, config_path, actor)?
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
        Verb::ApiToken(_) => unreachable!("handled before the queue is opened"),
        Verb::Cluster { verb } => {
            use crate::cluster::ctl::{self as cluster, Output};
            match cluster::run(c.cfg(), verb).map_err(ControlError::from)? {
                Output::Nodes(d) => out.print(&d, || cluster::nodes_text(&d, out.color)),
                Output::Retire(d) => out.print(&d, || cluster::retire_text(&d)),
                Output::Init(d) => out.print(&d, || cluster::init_text(&d)),
                Output::Sql(sql) => Ok(view::print(&sql)?),
                Output::Populate(d) => out.print(&d, || format!("{d:?}\n")),
            }
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
