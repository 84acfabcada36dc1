//! The man pages of `scriptmail` and `mailq-ctl` (section 8), rendered with clap_mangen
//! from the clap definition, plus the sections clap knows nothing about (files,
//! environment, exit status), and the writing of all three pages.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::sendmail_page::sendmail_page;
use super::{GenerateError, create_dir, mailq_ctl_command, write_file};
use crate::cli::Cli;
use crate::config;
use crate::exit::Exit;

/// Section 8: all three programs are run by administrators or by the system
/// (PHP), never by a site owner at a shell.
pub(super) const SECTION: &str = "8";
const MANUAL: &str = "System Administration";
/// The man page of the drop-in. Not `sendmail.8`: that path belongs to
/// whichever MTA owns `/usr/sbin/sendmail`, and this package must install
/// next to any of them (README, "Install (Debian package)") without a file
/// conflict.
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
pub(super) fn head(cmd: &Command) -> String {
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
pub(super) fn section(title: &str, paragraphs: &[&str], items: &[(String, String)]) -> String {
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

pub(super) fn see_also(pages: &[(&str, &str)]) -> String {
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

pub(super) fn files_section() -> String {
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

pub(super) fn exit_items(list: &[(Exit, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, text)| (e.code().to_string(), (*text).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command as Process;

    use super::*;
    use crate::generate::sendmail_page::SENDMAIL_FLAGS;

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
}
