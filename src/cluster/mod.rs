//! Cluster mode (docs/cluster.md): one account across many web nodes, with
//! PostgreSQL as the authority for account state, limits, counters, mails
//! in error and commands, while each node keeps its own SQLite queue.

pub mod allowance;
