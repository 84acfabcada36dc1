//! Mails in error: DSN records, the error-ratio rule (SPEC §6.3, §6.4) and report queries.

use rusqlite::Transaction;

use super::{Protection, Result};

/// Called inside the transaction that recorded `new_errors` new mails in
/// error for an account: applies the error-ratio rule (SPEC §6.4).
pub(crate) fn after_errors(
    _tx: &Transaction<'_>,
    _protection: &Protection,
    _account_id: i64,
    _now: i64,
) -> Result<()> {
    Ok(())
}
