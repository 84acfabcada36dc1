//! Admin and control-panel queries and state changes over the queue (SPEC §3, §6).
