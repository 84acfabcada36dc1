//! Integration tests: bounce.
