//! Integration tests: ctl.
