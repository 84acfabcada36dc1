//! The sendmail command line: turns argv into an [`Invocation`] or a [`UsageError`].
//!
//! Parsing follows Postfix's `sendmail` on Linux (getopt with a leading `+`): options end at
//! the first non-option argument or at `--`, and everything after that is a recipient even
//! if it starts with `-`. PHP appends the script-controlled 5th `mail()` argument after
//! `sendmail_path`, so this is also what keeps `-- user-arguments` from being read as
//! options. Options that could be abused through that 5th argument (`-X` log files, `-C`
//! config files, `-be` expansion, debug flags) are refused before stdin is read.
//! The options and what each does: README, "The `sendmail` interface", and docs/design.md,
//! "The sendmail interface".

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::dsn_params::{Envid, Notify, Ret};

/// Why the command line cannot be honoured. The caller prints it (one line, prefixed
/// `sendmail: `) and exits 64 (EX_USAGE) before reading stdin.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UsageError {
    /// An option letter we do not know, or one refused on purpose (`-C`, `-X`, `-be`, `-D`,
    /// `-d`). The payload is the option as typed up to its letter(s), never its argument,
    /// so a refused `-X/path` does not echo attacker text.
    #[error("unsupported option {0}")]
    Unsupported(String),
    /// An option that takes an argument came last with nothing after it.
    #[error("option {0} requires an argument")]
    MissingArgument(String),
    /// `--config` is only looked for before any sendmail option, so that it can never be
    /// smuggled in through PHP's 5th `mail()` argument, which comes after `sendmail_path`.
    #[error("--config is accepted only as the first argument")]
    ConfigNotFirst,
}

/// A bad value of an option that only asks for a service (a DSN, a body type): the
/// option is ignored and the mail goes out without it, as Postfix does — losing a
/// contact-form mail over a DSN option is worse than dropping the option. The caller
/// prints each as one `sendmail: warning: ...` line. The value is shown escaped and
/// shortened ([`shown`]), never raw.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Warning {
    #[error("-B: bad body type {0} (want 7BIT or 8BITMIME); ignored")]
    BadBodyType(String),
    #[error(
        "-N: bad DSN notify value {0} (want never, or a list of success,delay,failure); ignored"
    )]
    BadDsnNotify(String),
    #[error("-R: bad DSN return value {0} (want hdrs or full); ignored")]
    BadDsnRet(String),
    #[error("-V: bad DSN envelope id {0} (want 1 to 100 printable ASCII characters); ignored")]
    BadEnvid(String),
}

/// An option value for a message: quoted, control characters escaped, at most 64
/// characters of it.
fn shown(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().nth(64).is_some() {
        out.push_str("...");
    }
    format!("\"{out}\"")
}

/// What the invocation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `-bm`, and the default: read one message from stdin and enqueue it.
    #[default]
    Deliver,
    /// `-bs`: SMTP dialogue on stdin/stdout.
    Smtp,
    /// `-bp`, or invoked as `mailq`.
    PrintQueue,
    /// `-bi`, `-I`, or invoked as `newaliases`.
    Newaliases,
    /// `-bv`.
    Verify,
    /// `-q`, `-q<anything>`.
    RunQueue,
}

/// The envelope sender given with `-f`/`-r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `-f ''` or `-f '<>'`: the null reverse-path (bounces, auto-replies).
    Null,
    /// The argument exactly as given (may be `Name <a@b>`); the caller parses it.
    Address(String),
}

/// Declared body type (`-B`), passed on as the SMTP `BODY=` parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

/// A parsed sendmail command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    pub mode: Mode,
    /// `-t`: take recipients from the message headers (in addition to `recipients`).
    pub extract_recipients: bool,
    /// `-i`, `-oi`: a line holding only `.` does not end the message.
    pub ignore_dots: bool,
    /// `-f`/`-r`; the last one given wins (getopt semantics).
    pub sender: Option<Sender>,
    /// `-F`.
    pub full_name: Option<String>,
    /// `-N`, for `NOTIFY=`.
    pub dsn_notify: Option<Notify>,
    /// `-R`, for `RET=`.
    pub dsn_ret: Option<Ret>,
    /// `-V`: the DSN envelope id, plain (the relay xtext-encodes it).
    pub envid: Option<Envid>,
    /// `-B`.
    pub body: Option<BodyType>,
    /// `-v`.
    pub verbose: bool,
    /// `--config PATH` / `--config=PATH`; only honoured as the first argument(s). Whether
    /// it may be used at all (not when privileged) is the caller's decision (docs/design.md,
    /// "Privilege model").
    pub config: Option<PathBuf>,
    /// Arguments after the options (lossy UTF-8), in order.
    pub recipients: Vec<String>,
    /// Option values that were ignored, to be reported (see [`Warning`]).
    pub warnings: Vec<Warning>,
}

/// Parse a sendmail command line.
///
/// argv0: the program name as invoked (basename decides mailq/newaliases); args: the rest.
pub fn parse(argv0: &OsStr, args: &[OsString]) -> Result<Invocation, UsageError> {
    let mut inv = Invocation {
        mode: mode_from_argv0(argv0),
        ..Invocation::default()
    };

    let mut i = 0;
    // `--config` is ours, not sendmail's; it is only recognised in front of everything else.
    if let Some(first) = args.first() {
        let b = first.as_encoded_bytes();
        if b == b"--config" {
            let path = args
                .get(1)
                .ok_or_else(|| UsageError::MissingArgument("--config".into()))?;
            inv.config = Some(PathBuf::from(path));
            i = 2;
        } else if let Some(rest) = b.strip_prefix(b"--config=") {
            inv.config = Some(PathBuf::from(os_from_bytes(rest)));
            i = 1;
        }
    }

    while i < args.len() {
        let arg = args[i].as_encoded_bytes();
        i += 1;
        if arg == b"--" {
            break;
        }
        // "-" alone and anything not starting with '-' is the first operand (getopt).
        if arg.len() < 2 || arg[0] != b'-' {
            i -= 1;
            break;
        }
        if arg.starts_with(b"--config") {
            return Err(UsageError::ConfigNotFirst);
        }
        if arg.starts_with(b"--") {
            // Sendmail has no long options; name the whole word (escaped, bounded, without
            // any "=value") so the message is useful and cannot carry control characters.
            let name = arg.split(|&b| b == b'=').next().unwrap_or(arg);
            let name: String = String::from_utf8_lossy(name)
                .chars()
                .take(40)
                .flat_map(char::escape_debug)
                .collect();
            return Err(UsageError::Unsupported(name));
        }

        // Walk a cluster such as "-ti" letter by letter, as getopt does; an option that
        // takes an argument consumes the rest of the word, or the next word if none is left.
        let mut j = 1;
        while j < arg.len() {
            let c = arg[j];
            j += 1;
            if !c.is_ascii() {
                // Not an option letter at all; name the character it starts (escaped, in
                // case it is a C1 control) so the message still says what was wrong.
                let first = String::from_utf8_lossy(&arg[j - 1..])
                    .chars()
                    .next()
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                return Err(UsageError::Unsupported(format!(
                    "-{}",
                    first.escape_debug()
                )));
            }
            let c = char::from(c);
            match c {
                // Boolean flags.
                't' => inv.extract_recipients = true,
                'i' => inv.ignore_dots = true,
                'v' => inv.verbose = true,
                'I' => inv.mode = Mode::Newaliases,
                // -q[time|Rsite|Iid]: only an attached argument, never the next word.
                // Postfix special-cases a lone "-q" for the same reason: "-q" followed by
                // a recipient must not swallow the recipient.
                'q' => {
                    inv.mode = Mode::RunQueue;
                    j = arg.len();
                }
                // Accepted and ignored for sendmail compatibility (no argument):
                //   -m  (me too), -U (initial user submission), -G (gateway submission),
                //   -n  (no aliasing: there are no aliases here, so nothing to turn off;
                //        Postfix refuses it),
                //   -x, -c (historical no-ops).
                'm' | 'U' | 'G' | 'n' | 'x' | 'c' => {}
                // Refused: -D/-d are debugging switches of other MTAs (-D file, -d
                // debug levels); nothing of them is safe to honour for a web user.
                'D' | 'd' => return Err(UsageError::Unsupported(format!("-{c}"))),
                _ => {
                    if !takes_argument(c) {
                        return Err(UsageError::Unsupported(format!("-{c}")));
                    }
                    // Refuse -C (alternate config) and -X (traffic log file) before even
                    // looking for their argument: both were used to attack mail() through
                    // its 5th argument (README, "The `sendmail` interface").
                    if c == 'C' || c == 'X' {
                        return Err(UsageError::Unsupported(format!("-{c}")));
                    }
                    let optarg: &[u8] = if j < arg.len() {
                        let rest = &arg[j..];
                        j = arg.len();
                        rest
                    } else if let Some(next) = args.get(i) {
                        i += 1;
                        next.as_encoded_bytes()
                    } else {
                        return Err(UsageError::MissingArgument(format!("-{c}")));
                    };
                    apply_with_argument(&mut inv, c, optarg)?;
                }
            }
        }
    }

    inv.recipients = args[i.min(args.len())..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok(inv)
}

/// Letters that take an argument, attached (`-fa@b`) or as the next word (`-f a@b`).
/// Postfix's getopt string is "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"; `q` is
/// handled separately (attached only).
fn takes_argument(c: char) -> bool {
    matches!(
        c,
        'A' | 'B'
            | 'C'
            | 'F'
            | 'L'
            | 'N'
            | 'O'
            | 'R'
            | 'V'
            | 'X'
            | 'b'
            | 'e'
            | 'f'
            | 'h'
            | 'o'
            | 'p'
            | 'r'
    )
}

fn apply_with_argument(inv: &mut Invocation, c: char, optarg: &[u8]) -> Result<(), UsageError> {
    let text = || String::from_utf8_lossy(optarg).into_owned();
    match c {
        'f' | 'r' => {
            let raw = text();
            // "" and "<>" both mean the null sender (Exim spec, msmtp; Postfix via its
            // RFC 822 parser); surrounding blanks cannot be meant as an address.
            let trimmed = raw.trim();
            inv.sender = Some(if trimmed.is_empty() || trimmed == "<>" {
                Sender::Null
            } else {
                Sender::Address(raw)
            });
        }
        'F' => inv.full_name = Some(text()),
        'b' => {
            // Only the first letter counts, as in Postfix ("-bs" and "-bsmtp" alike).
            inv.mode = match optarg.first() {
                Some(b'm') => Mode::Deliver,
                Some(b's') => Mode::Smtp,
                Some(b'p') => Mode::PrintQueue,
                Some(b'i') => Mode::Newaliases,
                Some(b'v') => Mode::Verify,
                // -be (Exim string expansion: remote code execution through mail()'s 5th
                // argument), -bd (daemon), -bt (address test) and the rest are refused.
                Some(&b) if b.is_ascii() => {
                    return Err(UsageError::Unsupported(format!("-b{}", char::from(b))));
                }
                _ => return Err(UsageError::Unsupported("-b".into())),
            };
        }
        'o' => {
            // Sendmail's -o<letter><value>. Like Postfix, only the first letter matters:
            // -oi turns dot-termination off; everything else (-odb, -odi, -odq, -oem,
            // -oep, -oee, -om, -o7, -o8, -oA…, any other letter) is accepted and ignored.
            if optarg.first() == Some(&b'i') {
                inv.ignore_dots = true;
            }
        }
        // A bad value of -B, -N, -R or -V is a warning, and the option is ignored
        // (see `Warning`); an earlier good value of the same option stays.
        'B' => {
            // RFC 6152 body types; Postfix compares case-sensitively, we accept any case.
            let t = text();
            if t.eq_ignore_ascii_case("8BITMIME") {
                inv.body = Some(BodyType::EightBitMime);
            } else if t.eq_ignore_ascii_case("7BIT") {
                inv.body = Some(BodyType::SevenBit);
            } else {
                inv.warnings.push(Warning::BadBodyType(shown(optarg)));
            }
        }
        'N' => match text().parse::<Notify>() {
            Ok(n) => inv.dsn_notify = Some(n),
            Err(_) => inv.warnings.push(Warning::BadDsnNotify(shown(optarg))),
        },
        'R' => match text().parse::<Ret>() {
            Ok(r) => inv.dsn_ret = Some(r),
            Err(_) => inv.warnings.push(Warning::BadDsnRet(shown(optarg))),
        },
        // The relay sends it xtext-encoded (RFC 3461 §4).
        'V' => match Envid::new(optarg) {
            Ok(e) => inv.envid = Some(e),
            Err(_) => inv.warnings.push(Warning::BadEnvid(shown(optarg))),
        },
        // Accepted and ignored for sendmail compatibility (each takes an argument):
        //   -h N (hop count), -L tag (syslog tag), -A X (sendmail.cf/submit.cf choice),
        //   -O opt=val (long option), -p proto (protocol), -e* (error mode, old form).
        'h' | 'L' | 'A' | 'O' | 'p' | 'e' => {}
        // takes_argument() and this match list the same letters; -C/-X never get here.
        _ => return Err(UsageError::Unsupported(format!("-{c}"))),
    }
    Ok(())
}

/// Every sendmail-compatible MTA changes its default mode by program name: `mailq` lists
/// the queue, `newaliases` rebuilds aliases. Options may still override it afterwards.
fn mode_from_argv0(argv0: &OsStr) -> Mode {
    match Path::new(argv0).file_name().map(OsStr::as_encoded_bytes) {
        Some(b"mailq") => Mode::PrintQueue,
        Some(b"newaliases") => Mode::Newaliases,
        _ => Mode::Deliver,
    }
}

/// Rebuild an OsString from a tail of another OsString's encoded bytes.
fn os_from_bytes(bytes: &[u8]) -> OsString {
    // On Unix an OsStr is arbitrary bytes, so a path that is not UTF-8 survives intact;
    // elsewhere fall back to lossy text rather than use the unsafe unchecked constructor.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        OsStr::from_bytes(bytes).to_os_string()
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, UsageError> {
        p0("sendmail", args)
    }

    fn p0(argv0: &str, args: &[&str]) -> Result<Invocation, UsageError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(OsStr::new(argv0), &args)
    }

    fn inv() -> Invocation {
        Invocation::default()
    }

    fn addr(s: &str) -> Option<Sender> {
        Some(Sender::Address(s.to_owned()))
    }

    fn rcpts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn notify(s: &str) -> Option<Notify> {
        Some(s.parse().expect("a NOTIFY value"))
    }

    #[test]
    fn real_invocations_table() {
        let ti = Invocation {
            extract_recipients: true,
            ignore_dots: true,
            ..inv()
        };
        let cases: Vec<(&[&str], Invocation)> = vec![
            // PHP's default sendmail_path.
            (&["-t", "-i"], ti.clone()),
            (&["-ti"], ti.clone()),
            (&["-it"], ti.clone()),
            // mail() 5th argument, attached and separate.
            (
                &["-t", "-i", "-fbounce@x.tld"],
                Invocation {
                    sender: addr("bounce@x.tld"),
                    ..ti.clone()
                },
            ),
            (
                &["-t", "-i", "-f", "bounce@x.tld"],
                Invocation {
                    sender: addr("bounce@x.tld"),
                    ..ti.clone()
                },
            ),
            // escapeshellcmd keeps paired quotes, so this arrives as one word.
            (
                &["-t", "-i", "-f", "Name <b@x>"],
                Invocation {
                    sender: addr("Name <b@x>"),
                    ..ti.clone()
                },
            ),
            // PHPMailer's sendmail mode.
            (
                &["-oi", "-fsite@x", "-t"],
                Invocation {
                    sender: addr("site@x"),
                    ..ti.clone()
                },
            ),
            // Symfony / Laravel / Drupal / SwiftMailer.
            (
                &["-bs"],
                Invocation {
                    mode: Mode::Smtp,
                    ..inv()
                },
            ),
            (
                &["-f<>"],
                Invocation {
                    sender: Some(Sender::Null),
                    ..inv()
                },
            ),
            (
                &["-f", ""],
                Invocation {
                    sender: Some(Sender::Null),
                    ..inv()
                },
            ),
            (
                &["-r", "<>", "a@b"],
                Invocation {
                    sender: Some(Sender::Null),
                    recipients: rcpts(&["a@b"]),
                    ..inv()
                },
            ),
            (
                &["--", "-weird@x"],
                Invocation {
                    recipients: rcpts(&["-weird@x"]),
                    ..inv()
                },
            ),
            // Options end at the first operand: "-v" is a recipient here.
            (
                &["-t", "-i", "a@b", "-v"],
                Invocation {
                    recipients: rcpts(&["a@b", "-v"]),
                    ..ti.clone()
                },
            ),
            (
                &["-q"],
                Invocation {
                    mode: Mode::RunQueue,
                    ..inv()
                },
            ),
            // A lone -q never takes the next word: "x" stays a recipient.
            (
                &["-q", "x"],
                Invocation {
                    mode: Mode::RunQueue,
                    recipients: rcpts(&["x"]),
                    ..inv()
                },
            ),
            (
                &["-q1h"],
                Invocation {
                    mode: Mode::RunQueue,
                    ..inv()
                },
            ),
            (
                &["-N", "success,failure"],
                Invocation {
                    dsn_notify: notify("success,failure"),
                    ..inv()
                },
            ),
            (
                &["-N", "never"],
                Invocation {
                    dsn_notify: Some(Notify::Never),
                    ..inv()
                },
            ),
            (
                &["-Ndelay, Success"],
                Invocation {
                    dsn_notify: notify("DELAY,SUCCESS"),
                    ..inv()
                },
            ),
            (
                &["-R", "hdrs"],
                Invocation {
                    dsn_ret: Some(Ret::Hdrs),
                    ..inv()
                },
            ),
            (
                &["-RFull"],
                Invocation {
                    dsn_ret: Some(Ret::Full),
                    ..inv()
                },
            ),
            (
                &["-V", "envid123"],
                Invocation {
                    envid: Envid::new(b"envid123").ok(),
                    ..inv()
                },
            ),
            (
                &["-B", "8bitmime"],
                Invocation {
                    body: Some(BodyType::EightBitMime),
                    ..inv()
                },
            ),
            (
                &["-B7BIT"],
                Invocation {
                    body: Some(BodyType::SevenBit),
                    ..inv()
                },
            ),
            // Ignored options with an argument must swallow it, not make it a recipient.
            (&["-h", "10", "-t"], ti_t()),
            (&["-O", "DeliveryMode=b", "-t"], ti_t()),
            (&["-L", "tag", "-A", "c", "-p", "smtp", "-t"], ti_t()),
            (&["-h10", "-LTAG", "-Ac", "-ODeliveryMode=b", "-t"], ti_t()),
            (&["-odb", "-oem"], inv()),
            (&["-om", "-o7", "-o8", "-odi", "-oep", "-oX", "-em"], inv()),
            (&["-m", "-U", "-G", "-n", "-x", "-c"], inv()),
            (
                &["--config", "/x/y.toml", "-t"],
                Invocation {
                    config: Some(PathBuf::from("/x/y.toml")),
                    ..ti_t()
                },
            ),
            (
                &["--config=/x/y.toml", "-t"],
                Invocation {
                    config: Some(PathBuf::from("/x/y.toml")),
                    ..ti_t()
                },
            ),
            (
                &["-F", "Jane Doe", "-v", "x@y"],
                Invocation {
                    full_name: Some("Jane Doe".into()),
                    verbose: true,
                    recipients: rcpts(&["x@y"]),
                    ..inv()
                },
            ),
            (
                &["-bm", "a@b", "c@d"],
                Invocation {
                    recipients: rcpts(&["a@b", "c@d"]),
                    ..inv()
                },
            ),
            (
                &["-bp"],
                Invocation {
                    mode: Mode::PrintQueue,
                    ..inv()
                },
            ),
            (
                &["-bi"],
                Invocation {
                    mode: Mode::Newaliases,
                    ..inv()
                },
            ),
            (
                &["-I"],
                Invocation {
                    mode: Mode::Newaliases,
                    ..inv()
                },
            ),
            (
                &["-b", "v"],
                Invocation {
                    mode: Mode::Verify,
                    ..inv()
                },
            ),
            // Last -f wins, as with getopt.
            (
                &["-fa@x", "-f", "b@x"],
                Invocation {
                    sender: addr("b@x"),
                    ..inv()
                },
            ),
            // "-" alone is an operand.
            (
                &["-t", "-", "a@b"],
                Invocation {
                    recipients: rcpts(&["-", "a@b"]),
                    ..ti_t()
                },
            ),
            // A cluster ending in an argument-taking letter uses the next word.
            (
                &["-tif", "s@x", "r@y"],
                Invocation {
                    sender: addr("s@x"),
                    recipients: rcpts(&["r@y"]),
                    ..ti.clone()
                },
            ),
            (&[], inv()),
        ];
        for (args, want) in cases {
            assert_eq!(p(args), Ok(want), "args {args:?}");
        }
    }

    fn ti_t() -> Invocation {
        Invocation {
            extract_recipients: true,
            ..inv()
        }
    }

    #[test]
    fn refused_and_bad_options_table() {
        use UsageError::*;
        let cases: Vec<(&[&str], UsageError)> = vec![
            (&["-X/tmp/log"], Unsupported("-X".into())),
            (&["-X", "/tmp/log"], Unsupported("-X".into())),
            (&["-C/etc/x"], Unsupported("-C".into())),
            (&["-t", "-C", "/etc/x"], Unsupported("-C".into())),
            (&["-be"], Unsupported("-be".into())),
            (&["-bd"], Unsupported("-bd".into())),
            (&["-bt"], Unsupported("-bt".into())),
            (&["-D", "x"], Unsupported("-D".into())),
            (&["-d0.1"], Unsupported("-d".into())),
            (&["-Z"], Unsupported("-Z".into())),
            (&["-tZ"], Unsupported("-Z".into())),
            (&["--help"], Unsupported("--help".into())),
            (&["--foo=bar"], Unsupported("--foo".into())),
            (&["-t", "--config", "/x"], ConfigNotFirst),
            (&["--config"], MissingArgument("--config".into())),
            (&["-f"], MissingArgument("-f".into())),
            (&["-t", "-i", "-f"], MissingArgument("-f".into())),
            (&["-h"], MissingArgument("-h".into())),
        ];
        for (args, want) in cases {
            assert_eq!(p(args), Err(want), "args {args:?}");
        }
    }

    #[test]
    fn bad_service_option_values_are_warnings() {
        use Warning::*;
        let q = |s: &str| format!("\"{s}\"");
        let cases: Vec<(&[&str], Warning)> = vec![
            (&["-B", "binary"], BadBodyType(q("binary"))),
            (&["-N", "sometimes"], BadDsnNotify(q("sometimes"))),
            (&["-N", "never,success"], BadDsnNotify(q("never,success"))),
            (&["-N", ""], BadDsnNotify(q(""))),
            (
                &["-N", "success,,failure"],
                BadDsnNotify(q("success,,failure")),
            ),
            (&["-R", "body"], BadDsnRet(q("body"))),
            (&["-V", ""], BadEnvid(q(""))),
            (&["-V", "a\tb"], BadEnvid(q("a\\tb"))),
        ];
        for (args, want) in cases {
            let mut argv = args.to_vec();
            argv.extend(["-t", "a@b"]);
            let got = p(&argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(got.warnings, [want], "args {args:?}");
            assert_eq!(
                (got.body, got.dsn_notify, got.dsn_ret, got.envid),
                (None, None, None, None),
                "{args:?}"
            );
            assert!(
                got.extract_recipients && got.recipients == ["a@b"],
                "{args:?}"
            );
        }
        assert!(p(&["-V", &"x".repeat(100)]).unwrap().warnings.is_empty());
        let long = p(&["-V", &"x".repeat(101)]).unwrap();
        assert_eq!(long.envid, None);
        assert!(matches!(&long.warnings[..], [BadEnvid(v)] if v.ends_with("...\"")));
        // A good value stays when a later one is bad.
        let r = p(&["-N", "never", "-N", "x"]).unwrap();
        assert_eq!(r.dsn_notify, Some(Notify::Never));
        // Messages are one line, the value escaped.
        let w = p(&["-R", "a\nb\u{1b}[31m"]).unwrap().warnings;
        let text = w[0].to_string();
        assert_eq!(
            text,
            "-R: bad DSN return value \"a\\nb\\u{1b}[31m\" (want hdrs or full); ignored"
        );
    }

    #[test]
    fn argv0_basename_sets_default_mode() {
        assert_eq!(p0("mailq", &[]).map(|i| i.mode), Ok(Mode::PrintQueue));
        assert_eq!(
            p0("/usr/bin/mailq", &[]).map(|i| i.mode),
            Ok(Mode::PrintQueue)
        );
        assert_eq!(
            p0("/usr/sbin/newaliases", &[]).map(|i| i.mode),
            Ok(Mode::Newaliases)
        );
        assert_eq!(
            p0("/usr/lib/scriptmail/sendmail", &[]).map(|i| i.mode),
            Ok(Mode::Deliver)
        );
        assert_eq!(
            p0("/opt/mailq/sendmail", &[]).map(|i| i.mode),
            Ok(Mode::Deliver)
        );
        assert_eq!(p0("", &[]).map(|i| i.mode), Ok(Mode::Deliver));
        // Options still override the name, as in Postfix ("newaliases -bp").
        assert_eq!(
            p0("newaliases", &["-bp"]).map(|i| i.mode),
            Ok(Mode::PrintQueue)
        );
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            UsageError::Unsupported("-X".into()).to_string(),
            "unsupported option -X"
        );
        assert_eq!(
            UsageError::MissingArgument("-f".into()).to_string(),
            "option -f requires an argument"
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments() {
        use std::os::unix::ffi::OsStringExt;
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        // Non-ASCII option letter: unknown option.
        let r = parse(OsStr::new("sendmail"), &[os(b"-\xe9")]);
        assert_eq!(r, Err(UsageError::Unsupported("-\u{fffd}".into())));
        let r = parse(OsStr::new("sendmail"), &[os("-é".as_bytes())]);
        assert_eq!(r, Err(UsageError::Unsupported("-é".into())));
        let r = parse(OsStr::new("sendmail"), &[os(b"-\xc2\x85")]);
        assert_eq!(r, Err(UsageError::Unsupported("-\\u{85}".into())));
        // Sender and recipients become lossy strings.
        let r = parse(
            OsStr::new("sendmail"),
            &[os(b"-f"), os(b"b\xffd@x"), os(b"r\xfe@y")],
        )
        .expect("parses");
        assert_eq!(r.sender, addr("b\u{fffd}d@x"));
        assert_eq!(r.recipients, rcpts(&["r\u{fffd}@y"]));
        // --config keeps the raw path bytes.
        let r = parse(OsStr::new("sendmail"), &[os(b"--config=/x/\xff.toml")]).expect("parses");
        assert_eq!(
            r.config.map(|p| p.into_os_string().into_vec()),
            Some(b"/x/\xff.toml".to_vec())
        );
    }
}
