//! Integration tests: sendmail.
