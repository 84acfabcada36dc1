//! The `scriptmail` command line (clap), shared by the program and by the
//! man page and completion generators.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::{Exit, Failure};

/// scriptmail: sendmail for PHP mail() on shared hosting — per-account hold,
/// durable SQLite queue, immediate SMTP relay.
#[derive(Debug, Parser)]
#[command(name = "scriptmail", version, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: /etc/scriptmail/scriptmail.toml; env SCRIPTMAIL_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Administer accounts and the queue (also installed as `mailq-ctl`).
    #[command(name = "mailq-ctl", display_name = "mailq-ctl")]
    MailqCtl(crate::ctl::Args),
    /// Run the relay daemon: deliver queued mail to the smarthost.
    Relayd {
        /// Deliver what is due, then exit (what `sendmail` starts when no daemon runs).
        #[arg(long)]
        once: bool,
    },
    /// Run the panel API and the "E-mail scripts" page (HTTP on [api] listen; docs/api.md).
    ///
    /// The control panel's API (/hosting/web/ACCOUNT/email...), the native JSON API
    /// (/v1, the documents of `mailq-ctl --json`), the page at /, /metrics and
    /// /healthz. Tokens: `mailq-ctl api-token add NAME --scope admin|account:ACCOUNT`.
    /// Runs as root or the service user; stops on SIGTERM.
    Api,
    /// Read one delivery-status notification on stdin and record it (MTA pipe transport).
    Bounce {
        /// The bounce's envelope recipient, the VERP address (Postfix pipe: ${original_recipient}).
        recipient: Option<String>,
    },
    /// Behave like the `sendmail` drop-in, unprivileged (same flags).
    #[command(disable_help_flag = true)]
    Sendmail {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 0..)]
        args: Vec<std::ffi::OsString>,
    },
    /// Show the whole path on this machine: submit a message through the
    /// sendmail interface to a built-in SMTP sink and show it delivered.
    Demo,
    /// What `sendmail -bp` runs when relayd does not answer: list the
    /// pending mail of the account of UID. Internal: only the queue owner
    /// may run it (`sendmail` runs it after its switch to the service user).
    #[command(hide = true, name = "internal-mailq")]
    InternalMailq { uid: u32 },
    /// Write man pages or shell completions generated from this CLI.
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Man pages (scriptmail.8, mailq-ctl.8, scriptmail-sendmail.8) into DIR.
    Man { dir: PathBuf },
    /// Completions for bash, zsh and fish into DIR.
    Completions { dir: PathBuf },
    /// The API's OpenAPI document into FILE (docs/openapi.json).
    Openapi { file: PathBuf },
}

/// A command line clap refused: its first line, for a one-line error.
#[derive(Debug, thiserror::Error)]
#[error("{0} (try --help)")]
pub struct UsageError(String);

impl Failure for UsageError {
    fn exit_code(&self) -> Exit {
        Exit::Usage
    }
}

/// Parse the command line. `Ok(None)`: `--help` or `--version` was asked
/// for and has been printed as clap renders it (exit 0). A usage error is
/// one line and 64 (`EX_USAGE`), like every other failure of this program;
/// clap's own form has several lines and 2.
pub fn parse(args: Vec<OsString>) -> Result<Option<Cli>, UsageError> {
    match Cli::try_parse_from(args) {
        Ok(cli) => Ok(Some(cli)),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Ok(None)
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("usage error");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            Err(UsageError(first.to_string()))
        }
    }
}

impl Command {
    /// The program a failure of this command is reported as: the hidden
    /// listing verb stands in for `sendmail -bp`.
    pub fn program(&self) -> &'static str {
        match self {
            Command::InternalMailq { .. } => "sendmail",
            _ => "scriptmail",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sendmail -bp` without relayd execs this verb by name (`submit::LISTING_VERB`).
    #[test]
    fn the_listing_verb_sendmail_execs_exists() {
        let cli = Cli::try_parse_from(["scriptmail", crate::submit::LISTING_VERB, "1001"]).unwrap();
        assert!(matches!(cli.command, Command::InternalMailq { uid: 1001 }));
    }
}
