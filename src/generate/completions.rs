//! Shell completions (bash, zsh, fish) for `scriptmail` and `mailq-ctl`, from the clap
//! definition.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::{GenerateError, create_dir, mailq_ctl_command, write_file};
use crate::cli::Cli;

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

#[cfg(test)]
mod tests {
    use std::process::Command as Process;

    use super::*;

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
