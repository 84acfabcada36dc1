//! `scriptmail`: the admin CLI (`mailq-ctl`, also by argv[0]), the relay
//! daemon, DSN intake and an unprivileged `sendmail`. `main` stays thin:
//! parse, dispatch, and map errors to exit codes in one place.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use scriptmail::cli::{Cli, Command};
use scriptmail::config::{self, Config};
use scriptmail::exit::Exit;
use scriptmail::log::{self, Level};
use scriptmail::{privilege, relay};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| {
            std::path::Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_os_string()
        })
        .unwrap_or_default();
    // Multi-call: `mailq-ctl VERB` is `scriptmail mailq-ctl VERB`, and
    // `sendmail`/`mailq`/`newaliases` links behave like the drop-in.
    if argv0 == "mailq-ctl" {
        args.insert(1, "mailq-ctl".into());
    } else if argv0 == "sendmail" || argv0 == "mailq" || argv0 == "newaliases" {
        return sendmail(argv0, args.split_off(1));
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // --help and --version print as clap renders them, exit 0.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A usage error is one line and 64 (EX_USAGE), like every other
        // failure of this program; clap's own form has several lines and 2.
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("usage error");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let _ = writeln!(
                std::io::stderr(),
                "scriptmail: {} (try --help)",
                scriptmail::sanitize::line(first)
            );
            return Exit::Usage.into();
        }
    };
    let config_path = cli
        .config
        .clone()
        .or_else(|| std::env::var_os(config::ENV_VAR).map(PathBuf::from));
    match run(cli, config_path) {
        Ok(code) => code.into(),
        Err((code, msg)) => {
            // Not eprintln!: a failed write (stderr closed, RLIMIT_FSIZE)
            // must not turn an error into a panic.
            let _ = writeln!(
                std::io::stderr(),
                "scriptmail: {}",
                scriptmail::sanitize::line(&msg)
            );
            code.into()
        }
    }
}

fn sendmail(argv0: OsString, args: Vec<OsString>) -> ExitCode {
    match scriptmail::submit::run(argv0, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "sendmail: {}",
                scriptmail::sanitize::line(&e.to_string())
            );
            e.exit_code().into()
        }
    }
}

type Failure = (Exit, String);

fn load(config_path: Option<&std::path::Path>) -> Result<Config, Failure> {
    Config::load(config_path).map_err(|e| (e.exit_code(), e.to_string()))
}

fn run(cli: Cli, config_path: Option<PathBuf>) -> Result<Exit, Failure> {
    match cli.command {
        Command::Sendmail { args } => {
            let mut full = Vec::new();
            if let Some(p) = &config_path {
                full.push(OsString::from("--config"));
                full.push(p.clone().into_os_string());
            }
            full.extend(args);
            scriptmail::submit::run("sendmail".into(), full)
                .map(|()| Exit::Ok)
                .map_err(|e| (e.exit_code(), e.to_string()))
        }
        Command::Relayd { once } => {
            let cfg = load(config_path.as_deref())?;
            log::init(&cfg.log_socket, "scriptmail/relayd", !once);
            privilege::become_queue_owner(&cfg).map_err(|e| (e.exit_code(), e.to_string()))?;
            let mode = if once {
                relay::Mode::Once
            } else {
                relay::Mode::Daemon
            };
            relay::run(cfg, config_path, mode)
                .map(|()| Exit::Ok)
                .map_err(|e| {
                    // A one-shot's stderr is /dev/null (wake.rs): without this
                    // line nobody learns why the maildrop waits (docs/faults.md).
                    let who = if once { "delivery run" } else { "relayd" };
                    log::log(Level::Err, &format!("{who} stopped: {e}"));
                    (e.exit_code(), e.to_string())
                })
        }
        Command::MailqCtl(args) => scriptmail::ctl::run(args, config_path.as_deref()),
        Command::Bounce { recipient } => {
            let cfg = load(config_path.as_deref())?;
            log::init(&cfg.log_socket, "scriptmail/bounce", true);
            privilege::become_queue_owner(&cfg).map_err(|e| (e.exit_code(), e.to_string()))?;
            scriptmail::bounce::run(&cfg, config_path.as_deref(), recipient.as_deref())
        }
        Command::InternalMailq { uid } => {
            let cfg = load(config_path.as_deref())?;
            log::init(&cfg.log_socket, "scriptmail/sendmail", false);
            privilege::become_queue_owner(&cfg).map_err(|e| (e.exit_code(), e.to_string()))?;
            // It stands in for `sendmail -bp`: errors look like sendmail's.
            match scriptmail::submission::listing::print_for_uid(&cfg, uid) {
                Ok(()) => Ok(Exit::Ok),
                Err((code, msg)) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "sendmail: {}",
                        scriptmail::sanitize::line(&msg)
                    );
                    Ok(code)
                }
            }
        }
        Command::Demo => scriptmail::demo::run(),
        Command::Generate { what } => scriptmail::generate::run(what),
    }
}
