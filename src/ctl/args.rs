//! `mailq-ctl`'s command line (clap): the verbs, their arguments and
//! the held-mail filter, and how the domain's values are spelled on it.
//! `--help`, the man page and the shell completions come from here.

use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args as ClapArgs, Subcommand, ValueEnum};

use super::Result;
use crate::account::BlockReason;
use crate::api::tokens::Scope;
use crate::clock;
use crate::control::{self, HeldFilter, SortKey};
use crate::queue::MessageState;
use crate::store::Limit;

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
    /// Cluster mode: act on and show this node's queue only, without the
    /// cluster store (docs/cluster.md). Without [cluster] it changes nothing.
    #[arg(long, global = true)]
    pub local: bool,
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
    /// Tokens of the panel API (`scriptmail api`): add, list, revoke.
    #[command(name = "api-token", subcommand)]
    ApiToken(TokenVerb),
    /// Cluster mode: the nodes (last sync, lag, pending commands), retire a
    /// node, create the cluster store's schema (docs/cluster.md).
    Cluster {
        #[command(subcommand)]
        verb: Option<crate::cluster::ctl::ClusterVerb>,
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

/// `api-token` (docs/api.md, "Tokens").
#[derive(Debug, Subcommand)]
pub enum TokenVerb {
    /// Make a token; it is printed once, alone on the last line, and only
    /// its SHA-256 is kept in [api] tokens_file.
    Add {
        /// A name for it (recorded as the actor `api:NAME` of its changes).
        name: String,
        /// What it may do: `admin` (every account), or `account:ACCOUNT`
        /// (that account only; every other one is "not found").
        #[arg(long, value_name = "admin|account:ACCOUNT", value_parser = super::tokens::parse_scope)]
        scope: Scope,
    },
    /// The tokens: name, scope, when made (never the token itself).
    List,
    /// Remove a token: it stops working at once, and so do its page sessions.
    Revoke { name: String },
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
    pub(super) fn filter(&self) -> Result<HeldFilter> {
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
