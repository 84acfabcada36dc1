//! `scriptmail bounce`: DSN intake from the node MTA's pipe transport (SPEC §6.3). STUB.

use crate::config::Config;
use crate::exit::Exit;

pub fn run(_cfg: &Config) -> Result<Exit, (Exit, String)> {
    Err((Exit::Software, "bounce intake is not implemented yet".into()))
}
