//! Man pages and shell completions, generated from the clap definition in `cli`
//! (and, for the clap-less `sendmail` drop-in, from a table checked against
//! `options::parse`), so the documentation cannot drift from the programs.
//!
//! The Debian build (`packaging/build-deb.sh`) runs `scriptmail generate man DIR`
//! and `scriptmail generate completions DIR` and packs what they write.
//!
//! `man.rs` renders the pages of `scriptmail` and `mailq-ctl`, `sendmail_page.rs` the
//! drop-in's, `completions.rs` the shell completions.

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};

use crate::cli::{Cli, Generate};
use crate::exit::{Exit, Failure};

mod completions;
mod man;
mod sendmail_page;

pub use completions::write_completions;
pub use man::{SENDMAIL_PAGE, write_man_pages};
pub use sendmail_page::sendmail_command;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Failure for GenerateError {
    fn exit_code(&self) -> Exit {
        match self {
            // sysexits: "a (user specified) output file cannot be created".
            GenerateError::Write { .. } => Exit::CantCreat,
        }
    }
}

/// `scriptmail generate man|completions DIR`, `generate openapi FILE`.
pub fn run(what: Generate) -> Result<(), GenerateError> {
    let paths = match what {
        Generate::Man { dir } => write_man_pages(&dir)?,
        Generate::Completions { dir } => write_completions(&dir)?,
        Generate::Openapi { file } => {
            std::fs::write(&file, crate::api::openapi_document()).map_err(|source| {
                GenerateError::Write {
                    path: file.clone(),
                    source,
                }
            })?;
            vec![file]
        }
    };
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

pub(super) fn create_dir(dir: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), GenerateError> {
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
