//! `sendmail`: the drop-in that PHP `mail()` runs. Kept tiny and privileged-
//! safe: all logic is in `scriptmail::submit`; this links no SMTP, TLS or
//! clap code (a test checks the symbols).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "sendmail".into());
    match scriptmail_submit::submit::run(argv0, args.collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line on stderr, nothing on stdout (PHP CLI would print it
            // into the page). Not eprintln!: it panics when the write fails,
            // and the caller owns stderr (a full disk, RLIMIT_FSIZE, a closed
            // pipe) — the exit status must still be the sysexits code.
            let _ = writeln!(
                std::io::stderr().lock(),
                "sendmail: {}",
                scriptmail_submit::sanitize::line(&e.to_string())
            );
            e.exit_code().into()
        }
    }
}
