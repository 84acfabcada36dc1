//! Integration tests: relay.
