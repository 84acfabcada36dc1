//! Man pages and shell completions generated from the clap definition. STUB.

use crate::cli::Generate;
use crate::exit::Exit;

pub fn run(_what: Generate) -> Result<Exit, (Exit, String)> {
    Err((Exit::Software, "not implemented yet".into()))
}
