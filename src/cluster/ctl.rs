//! `mailq-ctl cluster` (docs/mailq-ctl.md, "cluster"): every node with its
//! last sync, its lag and its pending commands; retiring a node that is
//! gone for good; creating or migrating the cluster store's schema. Each
//! returns a document (`--json`) and has its text for people.

use clap::Subcommand;
use serde::Serialize;

use super::{ClusterError, Result, client, log, schema};
use crate::config::Config;
use crate::control::Time;
use crate::ctl::view::{Align, Cell, Table};

/// `mailq-ctl cluster [VERB]` (without one: `nodes`).
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterVerb {
    /// Every node: last sync, lag (changes not yet applied), pending commands.
    Nodes,
    /// Stop waiting for and counting a node that is gone for good (its
    /// relayd stopped): its held mail and allowances are forgotten, its
    /// history kept. A retired node that syncs again rejoins.
    Retire { node: String },
    /// Fill the cluster store with synthetic accounts and history (bench/cluster.sh).
    #[command(hide = true)]
    Populate {
        #[arg(long, default_value_t = 10_000)]
        accounts: u64,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 3)]
        nodes: u64,
    },
    /// Create or migrate the cluster store's schema with this node's role,
    /// or print it (--sql) for the database owner to run.
    Init {
        #[arg(long)]
        sql: bool,
        /// With --sql: also the GRANTs for the nodes' role (docs/cluster.md).
        #[arg(long, value_name = "ROLE", requires = "sql", value_parser = parse_role)]
        grant: Option<String>,
    },
}

fn parse_role(s: &str) -> std::result::Result<String, String> {
    if schema::is_plain_role(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a plain role name (lower-case letters, digits and _)"
        ))
    }
}

/// One node, as `cluster nodes` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDoc {
    pub node: String,
    /// This node (the one `mailq-ctl` runs on).
    pub this: bool,
    pub last_sync: Option<Time>,
    pub last_sync_age_s: Option<i64>,
    /// Synced within twice its lease: waited for, counted in the limits.
    pub active: bool,
    pub retired: bool,
    /// The newest change it applied.
    pub revision: i64,
    /// Changes it has not applied yet.
    pub lag: i64,
    /// Commands (release, purge, delete) among them.
    pub pending_commands: i64,
    pub version: String,
}

/// `cluster` / `cluster nodes`.
#[derive(Debug, Clone, Serialize)]
pub struct NodesDoc {
    /// The newest change in the log.
    pub revision: i64,
    pub nodes: Vec<NodeDoc>,
}

/// `cluster retire NODE`.
#[derive(Debug, Clone, Serialize)]
pub struct RetireDoc {
    pub node: String,
    pub retired: bool,
}

/// `cluster init`.
#[derive(Debug, Clone, Serialize)]
pub struct InitDoc {
    /// The schema version found (`null`: none yet).
    pub found: Option<i64>,
    pub version: i64,
}

/// What a cluster verb produced, for `ctl` to print.
#[derive(Debug)]
pub enum Output {
    Nodes(NodesDoc),
    Retire(RetireDoc),
    Init(InitDoc),
    Sql(String),
    Populate(super::populate::PopulateDoc),
}

/// Run a cluster verb with this node's `[cluster]`.
pub fn run(cfg: &Config, verb: Option<ClusterVerb>) -> Result<Output> {
    let cc = cfg.cluster.as_ref().ok_or_else(|| {
        ClusterError::Config(format!(
            "{}: no [cluster] url: this node is not in a cluster (docs/cluster.md)",
            cfg.path.display()
        ))
    })?;
    if let Some(ClusterVerb::Init { sql: true, grant }) = &verb {
        let mut sql = schema::sql();
        if let Some(role) = grant {
            sql.push_str(&schema::grants(role));
        }
        return Ok(Output::Sql(sql));
    }
    let mut c = client::connect(cc, "mailq-ctl")?;
    match verb.unwrap_or(ClusterVerb::Nodes) {
        ClusterVerb::Init { .. } => {
            let found = schema::version(&mut c)?;
            schema::migrate(&mut c)?;
            Ok(Output::Init(InitDoc {
                found,
                version: schema::latest(),
            }))
        }
        ClusterVerb::Nodes => {
            schema::ensure(&mut c)?;
            Ok(Output::Nodes(nodes(&mut c, &cc.node)?))
        }
        ClusterVerb::Populate {
            accounts,
            messages,
            nodes,
        } => {
            schema::ensure(&mut c)?;
            let spec = super::populate::Spec {
                accounts: accounts.clamp(1, 100_000),
                messages,
                nodes: nodes.clamp(1, 100),
            };
            Ok(Output::Populate(super::populate::populate(
                &mut c,
                spec,
                crate::clock::now_ms(),
            )?))
        }
        ClusterVerb::Retire { node } => {
            schema::ensure(&mut c)?;
            Ok(Output::Retire(retire(&mut c, &node)?))
        }
    }
}

fn nodes(c: &mut postgres::Client, me: &str) -> Result<NodesDoc> {
    let top: i64 = c
        .query_one(
            "SELECT greatest(coalesce(max(revision), 0), (SELECT value FROM meta WHERE key = 'pruned'))
             FROM changes",
            &[],
        )?
        .get(0);
    let commands: Vec<&str> = log::Kind::ALL
        .into_iter()
        .filter(|k| k.is_command())
        .map(log::Kind::as_str)
        .collect();
    let rows = c.query(
        "SELECT n.name, (extract(epoch FROM n.last_sync) * 1000)::bigint,
                    (extract(epoch FROM now() - n.last_sync))::bigint,
                    (NOT n.retired AND n.last_sync > now() - make_interval(secs => n.lease_ms * 2 / 1000.0)),
                    n.retired, n.revision, n.version,
                    (SELECT count(*) FROM changes ch WHERE ch.revision > n.revision
                       AND ch.kind = ANY($1))
             FROM nodes n ORDER BY n.name",
        &[&commands],
    )?;
    Ok(NodesDoc {
        revision: top,
        nodes: rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let revision: i64 = r.get(5);
                NodeDoc {
                    this: name == me,
                    node: name,
                    last_sync: r.get::<_, Option<i64>>(1).map(Time),
                    last_sync_age_s: r.get(2),
                    active: r.get::<_, Option<bool>>(3).unwrap_or(false),
                    retired: r.get(4),
                    revision,
                    lag: (top - revision).max(0),
                    pending_commands: r.get(7),
                    version: r.get(6),
                }
            })
            .collect(),
    })
}

fn retire(c: &mut postgres::Client, node: &str) -> Result<RetireDoc> {
    let mut tx = c.transaction()?;
    let Some(row) = tx.query_opt(
        "SELECT n.last_sync > now() - make_interval(secs => n.lease_ms * 2 / 1000.0)
         FROM nodes n WHERE n.name = $1 FOR UPDATE",
        &[&node],
    )?
    else {
        return Err(
            crate::store::StoreError::Conflict(format!("no node {node} in the cluster")).into(),
        );
    };
    if row.get::<_, Option<bool>>(0).unwrap_or(false) {
        return Err(crate::store::StoreError::Conflict(format!(
            "node {node} synced moments ago: stop its relayd first (a retired node that syncs rejoins)"
        ))
        .into());
    }
    tx.execute("UPDATE nodes SET retired = true WHERE name = $1", &[&node])?;
    tx.execute("DELETE FROM quota WHERE node = $1", &[&node])?;
    tx.execute("DELETE FROM held WHERE node = $1", &[&node])?;
    tx.execute(
        "UPDATE node_accounts SET held = 0, queued = 0, deferred = 0, sending = 0,
             oldest_held = NULL, ratio_errors = 0, ratio_sent = 0 WHERE node = $1",
        &[&node],
    )?;
    tx.commit()?;
    Ok(RetireDoc {
        node: node.to_string(),
        retired: true,
    })
}

/// `cluster nodes` for people.
pub fn nodes_text(d: &NodesDoc, color: bool) -> String {
    let mut t = Table::new(&[
        ("NODE", Align::Left),
        ("LAST SYNC", Align::Left),
        ("AGO", Align::Right),
        ("REVISION", Align::Right),
        ("LAG", Align::Right),
        ("PENDING", Align::Right),
        ("STATUS", Align::Left),
    ]);
    for n in &d.nodes {
        let status = if n.retired {
            "retired"
        } else if n.active {
            "active"
        } else {
            "not syncing"
        };
        t.row(vec![
            Cell::untrusted(&format!("{}{}", n.node, if n.this { " *" } else { "" })),
            n.last_sync
                .map_or_else(|| "never".to_string(), |t| t.to_string())
                .into(),
            n.last_sync_age_s
                .map_or_else(|| "-".to_string(), |s| format!("{s}s"))
                .into(),
            n.revision.to_string().into(),
            n.lag.to_string().into(),
            n.pending_commands.to_string().into(),
            status.into(),
        ]);
    }
    t.render_or(color, || "no node has synced yet\n".to_string())
        + &format!("newest change: revision {} (* this node)\n", d.revision)
}

/// `cluster retire` for people.
pub fn retire_text(d: &RetireDoc) -> String {
    format!(
        "node {} retired: no longer waited for or counted in the limits; its history is kept\n",
        d.node
    )
}

/// `cluster init` for people.
pub fn init_text(d: &InitDoc) -> String {
    match d.found {
        Some(v) if v == d.version => format!("cluster store schema is up to date (version {v})\n"),
        Some(v) => format!(
            "cluster store schema migrated from version {v} to {}\n",
            d.version
        ),
        None => format!("cluster store schema created (version {})\n", d.version),
    }
}
