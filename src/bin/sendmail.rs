//! `sendmail`: the drop-in that PHP `mail()` runs. Kept tiny and privileged-
//! safe: all logic is in `scriptmail::submit`; this links no SMTP, TLS or
//! clap code (a test checks the symbols).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "sendmail".into());
    match scriptmail::submit::run(argv0, args.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line on stderr, nothing on stdout (PHP CLI would print it
            // into the page).
            eprintln!("sendmail: {}", scriptmail::log::clean(&e.to_string()));
            e.exit_code().into()
        }
    }
}
