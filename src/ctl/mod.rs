//! `mailq-ctl`: the admin and control-panel interface (SPEC §6). STUB.

use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Print JSON (the control panel's API) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

pub fn run(
    _args: Args,
    _config: Option<&std::path::Path>,
) -> Result<crate::exit::Exit, (crate::exit::Exit, String)> {
    Err((crate::exit::Exit::Software, "not yet".into()))
}
