//! Integration tests: package.
