//! `scriptmail`: the admin CLI (`mailq-ctl`, also by argv[0]), the relay
//! daemon, the panel API, DSN intake and an unprivileged `sendmail`. `main`
//! stays thin: parse, dispatch, and report a failure through `exit::report`,
//! the one reporter both programs share.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use scriptmail::cli::{self, Cli, Command};
use scriptmail::config::{self, Config};
use scriptmail::exit::{self, Failure};
use scriptmail::log::{self, Level};
use scriptmail::{privilege, relay};

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .map(|a| {
            Path::new(a)
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
        return match scriptmail::submit::run(argv0, args.split_off(1)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => exit::report("sendmail", &e),
        };
    }
    let cli = match cli::parse(args) {
        Ok(Some(cli)) => cli,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => return exit::report("scriptmail", &e),
    };
    let program = cli.command.program();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report(program, e.as_ref()),
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn Failure>> {
    let config_path = cli
        .config
        .or_else(|| std::env::var_os(config::ENV_VAR).map(PathBuf::from));
    let config_path = config_path.as_deref();
    match cli.command {
        Command::Sendmail { args } => {
            let mut full = Vec::new();
            if let Some(p) = config_path {
                full.push(OsString::from("--config"));
                full.push(p.as_os_str().to_owned());
            }
            full.extend(args);
            scriptmail::submit::run("sendmail".into(), full)?;
        }
        Command::Relayd { once } => {
            let cfg = Config::load(config_path)?;
            log::init(&cfg.log_socket, "scriptmail/relayd", !once);
            privilege::become_queue_owner(&cfg)?;
            let mode = if once {
                relay::Mode::Once
            } else {
                relay::Mode::Daemon
            };
            relay::run(cfg, config_path.map(Path::to_path_buf), mode).inspect_err(|e| {
                // A one-shot's stderr is /dev/null (wake.rs): without this
                // line nobody learns why the maildrop waits (docs/faults.md).
                let who = if once { "delivery run" } else { "relayd" };
                log::log(Level::Err, &format!("{who} stopped: {e}"));
            })?;
        }
        Command::Api => {
            let cfg = Config::load(config_path)?;
            log::init(&cfg.log_socket, "scriptmail/api", true);
            scriptmail::api::run(cfg, config_path.map(Path::to_path_buf))?;
        }
        Command::MailqCtl(args) => scriptmail::ctl::run(args, config_path)?,
        Command::Bounce { recipient } => {
            let cfg = Config::load(config_path)?;
            log::init(&cfg.log_socket, "scriptmail/bounce", true);
            privilege::become_queue_owner(&cfg)?;
            scriptmail::bounce::run(&cfg, config_path, recipient.as_deref())?;
        }
        Command::InternalMailq { uid } => {
            let cfg = Config::load(config_path)?;
            log::init(&cfg.log_socket, "scriptmail/sendmail", false);
            privilege::become_queue_owner(&cfg)?;
            scriptmail::submission::listing::print_for_uid(&cfg, uid)?;
        }
        Command::Demo => scriptmail::demo::run()?,
        Command::Generate { what } => scriptmail::generate::run(what)?,
    }
    Ok(())
}
