//! The man page of the clap-less `sendmail` drop-in: a table of its options, held by the
//! tests below to what `options::parse` does, rendered through a descriptive clap
//! `Command`.

use clap::{Arg, ArgAction, Command};

use super::man::{SECTION, SENDMAIL_PAGE, exit_items, files_section, head, section, see_also};
use crate::exit::Exit;

/// How the drop-in treats an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Honoured,
    Ignored,
    Refused,
}

impl Kind {
    fn heading(self) -> Option<&'static str> {
        match self {
            Kind::Honoured => None,
            Kind::Ignored => Some("Accepted and ignored (sendmail compatibility)"),
            Kind::Refused => Some("Refused (exit 64, before the message is read)"),
        }
    }
}

/// One option of the drop-in: letter, value name, what it does, and the
/// argument words a test feeds to `options::parse` to prove the page right.
pub(super) struct Flag {
    /// The option letter, as a string (clap ids are `&'static str`).
    pub(super) letter: &'static str,
    value: Option<&'static str>,
    kind: Kind,
    help: &'static str,
    #[cfg_attr(not(test), allow(dead_code))]
    sample: &'static [&'static str],
}

const fn flag(
    letter: &'static str,
    value: Option<&'static str>,
    kind: Kind,
    help: &'static str,
    sample: &'static [&'static str],
) -> Flag {
    Flag {
        letter,
        value,
        kind,
        help,
        sample,
    }
}

/// The drop-in's options, as `crates/submit/src/options.rs` parses them (README, "The `sendmail`
/// interface").
pub(super) const SENDMAIL_FLAGS: &[Flag] = &[
    flag(
        "t",
        None,
        Kind::Honoured,
        "Take recipients from the To, Cc and Bcc headers (or only Resent-To/Cc/Bcc when \
         present), in addition to those on the command line. Bcc is removed.",
        &["-t"],
    ),
    flag(
        "i",
        None,
        Kind::Honoured,
        "A line holding only a dot does not end the message (also -oi).",
        &["-i"],
    ),
    flag(
        "o",
        Some("OPTION"),
        Kind::Honoured,
        "-oi is -i. Every other -o option (-odb, -odi, -oem, -oep, -om, -o7, -o8, ...) \
         is accepted and ignored.",
        &["-oi", "-odb", "-oem", "-o7"],
    ),
    flag(
        "f",
        Some("SENDER"),
        Kind::Honoured,
        "Envelope sender (also \"Name <addr>\"); an empty value or <> is the null sender. \
         Anything that is not exactly one address is refused (exit 65). \
         Default: ACCOUNT@DOMAIN.",
        &[
            "-f",
            "site@example.org",
            "-fsite@example.org",
            "-f<>",
            "-f",
            "",
        ],
    ),
    flag(
        "r",
        Some("SENDER"),
        Kind::Honoured,
        "Same as -f.",
        &["-r", "a@b"],
    ),
    flag(
        "F",
        Some("NAME"),
        Kind::Honoured,
        "Full name for the From header added when the message has none.",
        &["-F", "Web Shop"],
    ),
    flag(
        "b",
        Some("MODE"),
        Kind::Honoured,
        "-bm deliver a message read from stdin (the default); -bs SMTP dialogue on \
         stdin/stdout; -bp list the caller's own pending mail (as mailq); -bi rebuild aliases (a no-op, as \
         newaliases); -bv check the recipients on the command line, never reading stdin. \
         Other modes (-be, -bd, -bt, ...) are refused.",
        &["-bm", "-bs", "-bp", "-bi", "-bv"],
    ),
    flag(
        "q",
        None,
        Kind::Honoured,
        "Process the queue. An attached argument (-q1h) is accepted and ignored; -q never \
         takes the next word.",
        &["-q", "-q1h"],
    ),
    flag("I", None, Kind::Honoured, "Same as -bi.", &["-I"]),
    flag(
        "N",
        Some("DSN"),
        Kind::Honoured,
        "Delivery status notification: never, or a list of success, delay, failure \
         (RFC 3461 NOTIFY). A bad value of -N, -R, -V or -B gets one warning line on \
         standard error and is ignored; the mail still goes out.",
        &["-N", "success,failure", "-Nnever"],
    ),
    flag(
        "R",
        Some("RET"),
        Kind::Honoured,
        "What a DSN returns: hdrs or full (RFC 3461 RET).",
        &["-R", "hdrs", "-Rfull"],
    ),
    flag(
        "V",
        Some("ENVID"),
        Kind::Honoured,
        "DSN envelope identifier, 1 to 100 printable ASCII characters (RFC 3461 ENVID).",
        &["-V", "order-42"],
    ),
    flag(
        "B",
        Some("TYPE"),
        Kind::Honoured,
        "Body type: 7BIT or 8BITMIME (RFC 6152).",
        &["-B", "8BITMIME", "-B7BIT"],
    ),
    flag("v", None, Kind::Honoured, "Verbose.", &["-v"]),
    flag("m", None, Kind::Ignored, "Me too.", &["-m"]),
    flag(
        "U",
        None,
        Kind::Ignored,
        "Initial user submission.",
        &["-U"],
    ),
    flag("G", None, Kind::Ignored, "Gateway submission.", &["-G"]),
    flag("n", None, Kind::Ignored, "No aliasing.", &["-n"]),
    flag("x", None, Kind::Ignored, "Historical no-op.", &["-x"]),
    flag("c", None, Kind::Ignored, "Historical no-op.", &["-c"]),
    flag(
        "h",
        Some("HOPS"),
        Kind::Ignored,
        "Hop count.",
        &["-h", "10"],
    ),
    flag(
        "L",
        Some("TAG"),
        Kind::Ignored,
        "Syslog tag.",
        &["-L", "tag"],
    ),
    flag(
        "A",
        Some("CF"),
        Kind::Ignored,
        "Configuration choice.",
        &["-Ac"],
    ),
    flag(
        "O",
        Some("OPT=VAL"),
        Kind::Ignored,
        "Long option.",
        &["-O", "x=y"],
    ),
    flag(
        "p",
        Some("PROTO"),
        Kind::Ignored,
        "Protocol.",
        &["-p", "smtp"],
    ),
    flag(
        "e",
        Some("MODE"),
        Kind::Ignored,
        "Error mode (old form).",
        &["-em"],
    ),
    flag(
        "C",
        Some("FILE"),
        Kind::Refused,
        "Alternate configuration file (an attack vector through mail()'s 5th argument).",
        &["-C", "/tmp/x"],
    ),
    flag(
        "X",
        Some("FILE"),
        Kind::Refused,
        "Traffic log file (writes attacker-chosen files through mail()'s 5th argument).",
        &["-X", "/tmp/x"],
    ),
    flag(
        "D",
        Some("FILE"),
        Kind::Refused,
        "Debug output file of other MTAs.",
        &["-D", "/tmp/x"],
    ),
    flag(
        "d",
        Some("LEVELS"),
        Kind::Refused,
        "Debug levels of other MTAs.",
        &["-d0"],
    ),
];

/// A clap `Command` that describes the drop-in for clap_mangen. It is only
/// a description: the drop-in parses its arguments with `options::parse`
/// (getopt semantics, no clap), which the tests below hold it to.
pub fn sendmail_command() -> Command {
    let mut cmd = Command::new("sendmail")
        .display_name(SENDMAIL_PAGE)
        .bin_name("/usr/lib/scriptmail/sendmail")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .disable_version_flag(true)
        .about("the sendmail drop-in for PHP mail() on shared web hosting")
        .long_about(
            "/usr/lib/scriptmail/sendmail is the sendmail PHP mail() runs (set sendmail_path, \
             or php_admin_value[sendmail_path] in a PHP-FPM pool, to \
             \"/usr/lib/scriptmail/sendmail -t -i\"). It reads one message on stdin, works out \
             the sending account from the caller's real user ID (never from arguments or \
             environment), adds missing Date, Message-ID and From headers, and hands the \
             message to the relay daemon over its submission socket \
             (/run/scriptmail/submit.sock), which adds a Received header naming the account and \
             durably enqueues it: queued for immediate relay, or held while the account is \
             blocked. When the daemon does not answer, the message is written to the queue's \
             maildrop directory and imported from there. It returns at once; the relay daemon \
             delivers to the configured smarthost.\n\n\
             Options follow getopt rules: they end at the first argument that is not an \
             option, or at --; everything after is a recipient. Invoked as mailq it behaves \
             like -bp, as newaliases like -bi. Nothing is printed on standard output; a \
             failure prints one line on standard error, prefixed \"sendmail: \".\n\n\
             It is installed set-user-ID to the scriptmail user (not root). It records the \
             caller's real user ID, then switches real, effective and saved user and group \
             IDs fully to scriptmail, clears the environment and closes inherited descriptors. \
             It does not replace /usr/sbin/sendmail: the node's MTA keeps it.",
        )
        .override_usage(
            "/usr/lib/scriptmail/sendmail [--config FILE] [OPTION]... [--] [RECIPIENT]...",
        )
        .arg(
            Arg::new("config")
                .long("config")
                .value_name("FILE")
                .action(ArgAction::Set)
                .help(
                    "Another configuration file. Accepted only as the very first argument, and \
                     only when the program is not installed set-ID (as scriptmail sendmail); \
                     so is the SCRIPTMAIL_CONFIG variable.",
                ),
        );
    for f in SENDMAIL_FLAGS {
        let mut arg = Arg::new(f.letter)
            .short(f.letter.chars().next().unwrap_or('?'))
            .help(f.help)
            .action(match f.value {
                Some(_) => ArgAction::Set,
                None => ArgAction::SetTrue,
            });
        if let Some(v) = f.value {
            arg = arg.value_name(v);
        }
        if let Some(h) = f.kind.heading() {
            arg = arg.help_heading(h);
        }
        cmd = cmd.arg(arg);
    }
    cmd.arg(
        Arg::new("recipients")
            .value_name("RECIPIENT")
            .num_args(0..)
            .help("Recipient addresses; bare names get @DOMAIN."),
    )
}

pub(super) fn sendmail_page() -> String {
    let cmd = sendmail_command();
    let mut out = head(&cmd);
    out += &section(
        "EXIT STATUS",
        &[
            "0 only once the message is durably committed to the queue by the relay daemon, \
             or written and synced to the maildrop. Otherwise a \
             sysexits(3) status; never 75 (EX_TEMPFAIL), which PHP versions read differently.",
        ],
        &exit_items(&[
            (Exit::Usage, "usage error, or no recipients"),
            (
                Exit::DataErr,
                "malformed message or address, more recipients than queue.max_recipients, \
                 or input not finished within queue.read_timeout",
            ),
            (
                Exit::Unavailable,
                "service unavailable, message too large, or the account already has \
                 submit.max_per_account submissions running",
            ),
            (Exit::Software, "internal error"),
            (Exit::OsErr, "operating-system error"),
            (Exit::CantCreat, "the queue cannot be created"),
            (Exit::IoErr, "the queue cannot be written"),
            (
                Exit::NoPerm,
                "not allowed (accounts.min_uid, accounts.allow, no passwd entry)",
            ),
            (Exit::Config, "configuration error"),
        ]),
    );
    out += &section(
        "EXAMPLES",
        &[],
        &[
            (
                "php_admin_value[sendmail_path] = /usr/lib/scriptmail/sendmail -t -i".to_owned(),
                "In a PHP-FPM pool: that pool's mail() goes through scriptmail.".to_owned(),
            ),
            (
                "printf 'To: a@example.org\\nSubject: hi\\n\\nbody\\n' | /usr/lib/scriptmail/sendmail -t -i"
                    .to_owned(),
                "Queue a message from a shell.".to_owned(),
            ),
        ],
    );
    out += &files_section();
    out += &see_also(&[("scriptmail", SECTION), ("mailq-ctl", SECTION)]);
    out
}

#[cfg(test)]
mod tests {
    use std::ffi::{OsStr, OsString};

    use super::*;
    use crate::options::{Invocation, UsageError, parse as parse_sendmail};

    fn parse(args: &[&str]) -> Result<Invocation, UsageError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_sendmail(OsStr::new("sendmail"), &args)
    }

    /// Split a flag's sample words into separate invocations: a word starting
    /// with '-' starts a new one, the others are its argument.
    fn samples(f: &Flag) -> Vec<Vec<&'static str>> {
        let mut out: Vec<Vec<&str>> = Vec::new();
        for w in f.sample {
            if w.starts_with('-') {
                out.push(vec![w]);
            } else if let Some(last) = out.last_mut() {
                last.push(w);
            }
        }
        out
    }
    #[test]
    fn every_documented_option_is_parsed_as_documented() {
        for f in SENDMAIL_FLAGS {
            let runs = samples(f);
            assert!(!runs.is_empty(), "-{} has no sample", f.letter);
            for run in runs {
                // A recipient after the option proves it consumed exactly its argument.
                let mut args = run.clone();
                args.push("rcpt@example.org");
                let got = parse(&args);
                match f.kind {
                    Kind::Honoured | Kind::Ignored => {
                        let inv = got.unwrap_or_else(|e| panic!("{args:?} refused: {e}"));
                        assert_eq!(inv.recipients, ["rcpt@example.org"], "{args:?}");
                    }
                    Kind::Refused => {
                        assert!(
                            matches!(got, Err(UsageError::Unsupported(_))),
                            "{args:?} should be refused, got {got:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn documented_ignored_options_change_nothing() {
        for f in SENDMAIL_FLAGS.iter().filter(|f| f.kind == Kind::Ignored) {
            for run in samples(f) {
                let inv = parse(&run).unwrap();
                assert_eq!(inv, Invocation::default(), "{run:?}");
            }
        }
    }

    #[test]
    fn refused_modes_named_on_the_page_are_refused() {
        for mode in ["-be", "-bd", "-bt"] {
            assert!(parse(&[mode]).is_err(), "{mode}");
        }
    }

    #[test]
    fn undocumented_letters_are_refused() {
        // Every ASCII letter the page does not list must be refused by the parser,
        // so the page lists everything that is accepted.
        let listed: Vec<&str> = SENDMAIL_FLAGS.iter().map(|f| f.letter).collect();
        for c in ('a'..='z').chain('A'..='Z') {
            if listed.contains(&c.to_string().as_str()) {
                continue;
            }
            let arg = format!("-{c}");
            assert!(
                matches!(parse(&[&arg, "x"]), Err(UsageError::Unsupported(_))),
                "{arg} is accepted but not documented"
            );
        }
    }
}
