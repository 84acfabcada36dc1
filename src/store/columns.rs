//! How the domain types are stored: each enum as its name in a TEXT column,
//! through `ToSql`/`FromSql`, so the store hands out `MessageState` and
//! `State`, never a string to compare.
//!
//! A value this build does not know fails the read (a conversion error,
//! exit 74) rather than being guessed at: a new state or kind must come with
//! a migration, so an older build refuses the database (`migrations.rs`)
//! before it could misread one.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::account::{Reason, State};
use crate::queue::{FailureKind, MessageState, RecipientState};

/// `ToSql` and `FromSql` for an enum with `as_str` and `parse`.
macro_rules! text_column {
    ($t:ident) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $t::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {text:?}", stringify!($t)).into())
                })
            }
        }
    };
}

text_column!(State);
text_column!(MessageState);
text_column!(RecipientState);
text_column!(FailureKind);

/// Written only: a reason is read back as the text stored (see [`Reason`]).
impl ToSql for Reason {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    fn round_trip<T: ToSql + FromSql>(v: &T) -> T {
        Connection::open_in_memory()
            .unwrap()
            .query_row("SELECT ?1", [v], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn values_round_trip_as_their_names() {
        for s in MessageState::ALL {
            assert_eq!(round_trip(&s), s);
            let text: String = Connection::open_in_memory()
                .unwrap()
                .query_row("SELECT ?1", [s], |r| r.get(0))
                .unwrap();
            assert_eq!(text, s.as_str());
        }
        for s in State::ALL {
            assert_eq!(round_trip(&s), s);
        }
        for s in RecipientState::ALL {
            assert_eq!(round_trip(&s), s);
        }
        for k in FailureKind::ALL {
            assert_eq!(round_trip(&k), k);
        }
    }

    #[test]
    fn an_unknown_value_is_an_error_not_a_guess() {
        let c = Connection::open_in_memory().unwrap();
        let r: rusqlite::Result<MessageState> = c.query_row("SELECT 'limbo'", [], |r| r.get(0));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("unknown MessageState \"limbo\""), "{e}");
        let r: rusqlite::Result<State> = c.query_row("SELECT 1", [], |r| r.get(0));
        assert!(r.is_err());
    }
}
