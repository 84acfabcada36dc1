//! `sendmail`: the drop-in that PHP `mail()` runs, installed set-uid to the
//! service user. Kept thin: all logic is in `scriptmail_submit::submit`, and
//! this package's manifest cannot pull in clap, lettre, SQLite, TLS or HTTP
//! (docs/design.md, "Privilege model").

use std::process::ExitCode;

use scriptmail_submit::{exit, submit};

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "sendmail".into());
    match submit::run(argv0, args.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::report("sendmail", &e),
    }
}
