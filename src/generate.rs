//! Man pages and shell completions, generated from the clap definition in `cli`
//! (and, for the clap-less `sendmail` drop-in, from a table checked against
//! `options::parse`), so the documentation cannot drift from the programs.
//!
//! The Debian build (`packaging/build-deb.sh`) runs `scriptmail generate man DIR`
//! and `scriptmail generate completions DIR` and packs what they write.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::{Cli, Generate};
use crate::config;
use crate::exit::Exit;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl GenerateError {
    pub fn exit_code(&self) -> Exit {
        match self {
            // sysexits: "a (user specified) output file cannot be created".
            GenerateError::Write { .. } => Exit::CantCreat,
        }
    }
}

/// `scriptmail generate man|completions DIR`.
pub fn run(what: Generate) -> Result<Exit, (Exit, String)> {
    let result = match what {
        Generate::Man { dir } => write_man_pages(&dir),
        Generate::Completions { dir } => write_completions(&dir),
    };
    match result {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            Ok(Exit::Ok)
        }
        Err(e) => Err((e.exit_code(), e.to_string())),
    }
}

/// Section 8: all three programs are run by administrators or by the system
/// (PHP), never by a site owner at a shell.
const SECTION: &str = "8";
const MANUAL: &str = "System Administration";
/// The man page of the drop-in. Not `sendmail.8`: that path belongs to
/// whichever MTA owns `/usr/sbin/sendmail`, and this package must install
/// next to any of them (SPEC §2) without a file conflict.
pub const SENDMAIL_PAGE: &str = "scriptmail-sendmail";

/// Write `scriptmail.8`, `mailq-ctl.8` and `scriptmail-sendmail.8` into `dir`.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    create_dir(dir)?;
    let pages = [
        ("scriptmail", scriptmail_page()),
        ("mailq-ctl", mailq_ctl_page()),
        (SENDMAIL_PAGE, sendmail_page()),
    ];
    let mut written = Vec::new();
    for (name, text) in pages {
        let path = dir.join(format!("{name}.{SECTION}"));
        write_file(&path, ascii_roff(&text).as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Spell every non-ASCII character as a groff escape (`—` → `\[u2014]`), so the
/// page reads the same whatever encoding the formatter assumes.
fn ascii_roff(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// Write bash, zsh and fish completions for `scriptmail` and `mailq-ctl`
/// into `dir/bash`, `dir/zsh` and `dir/fish`, named the way each shell's
/// vendor directory expects (`NAME`, `_NAME`, `NAME.fish`).
pub fn write_completions(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let sub = dir.join(shell.to_string());
        create_dir(&sub)?;
        for (name, mut cmd) in [
            ("scriptmail", Cli::command()),
            ("mailq-ctl", mailq_ctl_command()),
        ] {
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name.to_owned(),
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
            let path = sub.join(file);
            write_file(&path, &buf)?;
            written.push(path);
        }
    }
    Ok(written)
}

fn create_dir(dir: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenerateError> {
    std::fs::write(path, bytes).map_err(|source| GenerateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// `mailq-ctl` as a command of its own (what the symlink runs): the
/// `scriptmail mailq-ctl` subcommand, renamed, with the global `--config`.
pub fn mailq_ctl_command() -> Command {
    let top = Cli::command();
    let config = top
        .get_arguments()
        .find(|a| a.get_id() == "config")
        .cloned();
    let mut cmd = top
        .find_subcommand("mailq-ctl")
        .cloned()
        .unwrap_or_else(|| Command::new("mailq-ctl"))
        .name("mailq-ctl")
        .version(env!("CARGO_PKG_VERSION"));
    if let Some(arg) = config {
        cmd = cmd.arg(arg);
    }
    cmd
}

// ---------------------------------------------------------------- man pages

fn man(cmd: Command) -> Man {
    Man::new(cmd)
        .section(SECTION)
        .manual(MANUAL)
        .source(format!("scriptmail {}", env!("CARGO_PKG_VERSION")))
}

/// Render a section of `Man` into a string.
fn render(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> String {
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = f(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Drop the `.SH ...` lines of a rendered section so its body can be placed
/// under a `.SS` of ours.
fn without_headings(text: String) -> String {
    text.lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS of `cmd`.
fn head(cmd: &Command) -> String {
    let m = man(cmd.clone());
    let mut out = render(|w| m.render_title(w));
    out += &render(|w| m.render_name_section(w));
    out += &render(|w| m.render_synopsis_section(w));
    out += &render(|w| m.render_description_section(w));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out += &render(|w| m.render_options_section(w));
    }
    out
}

/// One `.SS` per visible subcommand (recursively, depth first), each with
/// its synopsis, description and options. clap_mangen's own subcommand
/// section only points at per-subcommand pages, which we do not install.
fn commands_section(cmd: &Command, heading: &str, refer: &[(&str, &str)]) -> String {
    let mut built = cmd.clone();
    built.build();
    let mut out = String::new();
    let subs: Vec<&Command> = visible_subcommands(&built).collect();
    if subs.is_empty() {
        return out;
    }
    let mut roff = Roff::default();
    roff.control("SH", [heading]);
    out += &roff.to_roff();
    for sub in subs {
        match refer.iter().find(|(name, _)| *name == sub.get_name()) {
            Some((_, page)) => out += &referred(sub, page),
            None => out += &subcommand(sub),
        }
    }
    out
}

/// A subcommand documented on a page of its own: its summary and a pointer.
fn referred(sub: &Command, page: &str) -> String {
    let full = sub.get_bin_name().unwrap_or(sub.get_name());
    let mut roff = Roff::default();
    roff.control("SS", [full]);
    if let Some(about) = sub.get_about() {
        roff.text([roman(about.to_string())]);
    }
    roff.text([roman(" See "), bold(page), roman(format!("({SECTION})."))]);
    roff.to_roff()
}

fn subcommand(sub: &Command) -> String {
    let full = sub.get_bin_name().unwrap_or(sub.get_name()).to_owned();
    let mut roff = Roff::default();
    roff.control("SS", [full.as_str()]);
    let mut out = roff.to_roff();
    // The global options and -h/-V are documented once, under OPTIONS.
    let repeated: Vec<clap::Id> = sub
        .get_arguments()
        .filter(|a| {
            a.is_global_set() || matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
        })
        .map(|a| a.get_id().clone())
        .collect();
    let mut own = sub.clone();
    for id in &repeated {
        own = own.mut_arg(id, |a| a.hide(true));
    }
    let m = man(own.clone());
    out += &without_headings(render(|w| m.render_synopsis_section(w)));
    out += &paragraph();
    out += &without_headings(render(|w| m.render_description_section(w)));
    if own.get_arguments().any(|a| !a.is_hide_set()) {
        out += &without_headings(render(|w| m.render_options_section(w)));
    }
    for inner in visible_subcommands(sub) {
        out += &subcommand(inner);
    }
    out
}

/// Subcommands worth a section: not hidden, and not clap's `help`.
fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

fn paragraph() -> String {
    let mut roff = Roff::default();
    roff.control("PP", []);
    roff.to_roff()
}

/// The one-line summary without a leading "NAME: " (it is already the
/// first word of the NAME line).
fn strip_name_from_about(cmd: Command) -> Command {
    let name = cmd.get_name().to_owned();
    match cmd.get_about().map(|a| a.to_string()) {
        Some(about) => match about.strip_prefix(&format!("{name}: ")) {
            Some(rest) => {
                let rest = rest.to_owned();
                cmd.about(rest)
            }
            None => cmd,
        },
        None => cmd,
    }
}

/// A `.SH` section of plain paragraphs; `(tag, text)` items become `.TP` entries.
fn section(title: &str, paragraphs: &[&str], items: &[(String, String)]) -> String {
    let mut roff = Roff::default();
    roff.control("SH", [title]);
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*p)]);
    }
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text([bold(tag.as_str())]);
        roff.text([roman(text.as_str())]);
    }
    roff.to_roff()
}

fn see_also(pages: &[(&str, &str)]) -> String {
    let mut roff = Roff::default();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (name, sect)) in pages.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(*name));
        line.push(roman(format!("({sect})")));
    }
    roff.text(line);
    roff.to_roff()
}

fn files_section() -> String {
    section(
        "FILES",
        &[],
        &[
            (
                config::DEFAULT_PATH.to_owned(),
                "The configuration (TOML). Every key has a default; unknown keys are errors."
                    .to_owned(),
            ),
            (
                "/var/lib/scriptmail/queue.db".to_owned(),
                "The SQLite queue, owned by the scriptmail user (directory mode 0700).".to_owned(),
            ),
            (
                "/usr/lib/scriptmail/sendmail".to_owned(),
                "The drop-in PHP runs (set-user-ID scriptmail).".to_owned(),
            ),
        ],
    )
}

fn environment_section() -> String {
    section(
        "ENVIRONMENT",
        &[],
        &[(
            config::ENV_VAR.to_owned(),
            format!(
                "Another configuration file instead of {}; same as --config.",
                config::DEFAULT_PATH
            ),
        )],
    )
}

fn scriptmail_page() -> String {
    let mut cmd = strip_name_from_about(Cli::command());
    cmd.build();
    let mut out = head(&cmd);
    out += &commands_section(
        &cmd,
        "COMMANDS",
        &[("mailq-ctl", "mailq-ctl"), ("sendmail", SENDMAIL_PAGE)],
    );
    out += &section(
        "OPERATION",
        &[
            "The relay daemon runs as the systemd service scriptmail-relayd; \
             systemctl reload scriptmail-relayd (SIGHUP) re-reads the configuration. \
             The timers scriptmail-sweep.timer (hourly mailq-ctl sweep) and \
             scriptmail-report.timer (daily mailq-ctl report --send) do the housekeeping.",
            "Run as root, mailq-ctl, relayd and bounce switch to the owner of the queue \
             directory (the scriptmail user) before they touch the queue; other users are refused.",
        ],
        &[],
    );
    out += &environment_section();
    out += &files_section();
    out += &see_also(&[("mailq-ctl", SECTION), (SENDMAIL_PAGE, SECTION)]);
    out
}

fn mailq_ctl_page() -> String {
    let mut cmd = mailq_ctl_command();
    cmd.build();
    let mut out = head(&cmd);
    out += &commands_section(&cmd, "COMMANDS", &[]);
    out += &section(
        "EXIT STATUS",
        &["0 on success; otherwise a sysexits(3) status:"],
        &exit_items(&[
            (Exit::Usage, "bad command line"),
            (Exit::NoUser, "no such account or message"),
            (Exit::CantCreat, "the queue cannot be created"),
            (Exit::IoErr, "the queue cannot be read or written"),
            (
                Exit::NoPerm,
                "not run as root or the scriptmail user, or refused by the account's state",
            ),
            (Exit::Config, "configuration error"),
        ]),
    );
    out += &environment_section();
    out += &files_section();
    out += &see_also(&[("scriptmail", SECTION), (SENDMAIL_PAGE, SECTION)]);
    out
}

fn exit_items(list: &[(Exit, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, text)| (e.code().to_string(), (*text).to_owned()))
        .collect()
}

// ------------------------------------------------------- the sendmail page

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
struct Flag {
    /// The option letter, as a string (clap ids are `&'static str`).
    letter: &'static str,
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

/// The drop-in's options, as `src/options.rs` parses them (SPEC §4).
const SENDMAIL_FLAGS: &[Flag] = &[
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
         stdin/stdout; -bp list the queue (as mailq); -bi rebuild aliases (a no-op, as \
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

fn sendmail_page() -> String {
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
                "not allowed (account blocked from submitting, uid policy)",
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
    use std::process::Command as Process;

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

    fn lint_man_page(path: &Path) {
        // groff's own warnings (-ww) on the real formatter, as lintian does.
        let out = Process::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(path)
            .output()
            .expect("groff");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", path.display());
        assert!(stderr.trim().is_empty(), "{}: {stderr}", path.display());
    }

    fn formatted(path: &Path) -> String {
        let out = Process::new("groff")
            .args(["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"])
            .arg(path)
            .output()
            .expect("groff");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn man_pages_are_written_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["scriptmail.8", "mailq-ctl.8", "scriptmail-sendmail.8"]
        );
        for p in &written {
            lint_man_page(p);
        }

        let top = formatted(&dir.path().join("scriptmail.8"));
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() == "help" {
                continue;
            }
            let full = format!("scriptmail {}", sub.get_name());
            assert!(top.contains(&full), "scriptmail.8 lacks {full}");
        }
        assert!(top.contains("--once"), "relayd's option is documented");
        assert!(
            !top.contains("generate"),
            "the hidden generator stays hidden"
        );

        let ctl = formatted(&dir.path().join("mailq-ctl.8"));
        assert!(ctl.contains("--json"));
        assert!(ctl.contains("--config"), "the global option is on the page");
        let mut ctl_cmd = mailq_ctl_command();
        ctl_cmd.build();
        for verb in ctl_cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if verb.get_name() == "help" {
                continue;
            }
            let full = format!("mailq-ctl {}", verb.get_name());
            assert!(ctl.contains(&full), "mailq-ctl.8 lacks {full}");
        }

        let sm = formatted(&dir.path().join("scriptmail-sendmail.8"));
        assert!(sm.contains("/usr/lib/scriptmail/sendmail"));
        for f in SENDMAIL_FLAGS {
            let opt = format!("-{}", f.letter);
            assert!(sm.contains(&opt), "scriptmail-sendmail.8 lacks {opt}");
        }
        assert!(
            sm.contains("REFUSED"),
            "the refused options have their own section"
        );
        assert!(
            sm.lines().any(|l| l.trim_start().starts_with("64 ")),
            "exit statuses are listed"
        );
        assert!(
            !sm.lines().any(|l| l.trim_start().starts_with("75 ")),
            "exit 75 is never listed as a status"
        );
    }

    #[test]
    fn completions_are_written_and_load_in_bash() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_completions(dir.path()).unwrap();
        for rel in [
            "bash/scriptmail",
            "bash/mailq-ctl",
            "zsh/_scriptmail",
            "zsh/_mailq-ctl",
            "fish/scriptmail.fish",
            "fish/mailq-ctl.fish",
        ] {
            let p = dir.path().join(rel);
            assert!(written.contains(&p), "{rel} not written");
            assert!(std::fs::metadata(&p).unwrap().len() > 100, "{rel} empty");
        }
        // Load both bash files in a real bash and ask it what completes what.
        let script = format!(
            "source {d}/bash/scriptmail && source {d}/bash/mailq-ctl && complete -p scriptmail mailq-ctl",
            d = dir.path().display()
        );
        let out = Process::new("bash").args(["-c", &script]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(" scriptmail"), "{stdout}");
        assert!(stdout.contains(" mailq-ctl"), "{stdout}");
        // The mailq-ctl file completes its own options at the top level.
        let fish = std::fs::read_to_string(dir.path().join("fish/mailq-ctl.fish")).unwrap();
        assert!(fish.contains("complete -c mailq-ctl"), "{fish}");
        assert!(fish.contains("-l json"), "{fish}");
    }
}
