//! The `[cluster]` table (docs/cluster.md). Only parsed and checked here:
//! connecting is `cluster::client`'s job, so `sendmail` links no PostgreSQL code.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, parse_duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) url: Option<String>,
    pub(super) node: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) tls: Option<ClusterTls>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) sync_interval: Option<String>,
}

/// TLS towards the cluster store (PostgreSQL's `sslmode`, in its words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterTls {
    /// Plain TCP or a Unix socket (a store on loopback or a private link).
    None,
    /// Encrypted, the server's certificate not checked (`sslmode=require`).
    Require,
    /// Encrypted, the certificate checked against `ca_file` (or the system
    /// roots) and the host name (`sslmode=verify-full`).
    VerifyFull,
}

/// `[cluster]`: this node's link to the cluster store.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// A PostgreSQL connection URL or key=value string, without a password.
    pub url: String,
    /// This node's name in the cluster (default: the host name).
    pub node: String,
    /// File holding the role's password (mode 0600, the service user's).
    pub password_file: Option<PathBuf>,
    pub tls: ClusterTls,
    /// CA certificates (PEM) for `verify-full`; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// How often relayd's sync thread pushes counters and renews the
    /// limits' allowances (state changes arrive at once, by NOTIFY).
    pub sync_interval: Duration,
}

/// The `[cluster]` table: `None` without `url`.
pub(super) fn parse(raw: RawCluster, path: &Path) -> Result<Option<ClusterConfig>, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let Some(url) = raw.url.filter(|u| !u.trim().is_empty()) else {
        let other = raw.node.is_some()
            || raw.password_file.is_some()
            || raw.tls.is_some()
            || raw.ca_file.is_some()
            || raw.sync_interval.is_some();
        return if other {
            Err(invalid(
                "cluster.url",
                "is required when [cluster] sets other keys".into(),
            ))
        } else {
            Ok(None)
        };
    };
    let url = url.trim().to_string();
    let looks_like_url = url.starts_with("postgresql://") || url.starts_with("postgres://");
    if !looks_like_url && !url.contains('=') {
        return Err(invalid(
            "cluster.url",
            "must be postgresql://USER@HOST/DB (or key=value pairs)".into(),
        ));
    }
    // The password lives in password_file, never in the configuration,
    // which every user on the node can read.
    let userinfo = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .and_then(|authority| authority.rsplit_once('@'))
        .map(|(userinfo, _)| userinfo);
    if userinfo.is_some_and(|u| u.contains(':')) || url.contains("password=") {
        return Err(invalid(
            "cluster.url",
            "holds a password: put it in cluster.password_file instead".into(),
        ));
    }
    let node = match raw.node {
        Some(n) => n,
        None => crate::os::hostname().unwrap_or_else(|| "localhost".to_string()),
    };
    let node_ok = !node.is_empty()
        && node.len() <= 64
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !node_ok {
        return Err(invalid(
            "cluster.node",
            format!("{node:?}: 1 to 64 letters, digits, '.', '_' or '-'"),
        ));
    }
    let sync_interval = match raw.sync_interval {
        None => Duration::from_secs(1),
        Some(s) => parse_interval(&s).map_err(|m| invalid("cluster.sync_interval", m))?,
    };
    if sync_interval < Duration::from_millis(50) || sync_interval > Duration::from_secs(60) {
        return Err(invalid("cluster.sync_interval", "must be 50ms..60s".into()));
    }
    Ok(Some(ClusterConfig {
        url,
        node,
        password_file: raw.password_file,
        tls: raw.tls.unwrap_or(ClusterTls::VerifyFull),
        ca_file: raw.ca_file,
        sync_interval,
    }))
}

/// A duration as [`parse_duration`] reads it, or in milliseconds (`200ms`).
fn parse_interval(s: &str) -> Result<Duration, String> {
    match s.trim().strip_suffix("ms") {
        Some(n) => n
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{s:?} is not a duration (e.g. 200ms, 1s)")),
        None => parse_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::ClusterTls;
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn cluster_block_is_off_without_url_and_checked_with_it() {
        assert!(parse("").unwrap().cluster.is_none());
        assert!(parse("[cluster]\n").unwrap().cluster.is_none());
        assert!(parse("").unwrap().cluster.is_none());
        let c = parse(
            "[cluster]\nurl = \"postgresql://scriptmail@db/mail\"\nnode = \"web-1\"\ntls = \"none\"\nsync_interval = \"200ms\"\n",
        )
        .unwrap();
        assert!(c.cluster.is_some());
        let k = c.cluster.unwrap();
        assert_eq!((k.node.as_str(), k.tls), ("web-1", ClusterTls::None));
        assert_eq!(k.sync_interval, Duration::from_millis(200));
        for (text, key) in [
            ("[cluster]\nnode = \"a\"\n", "cluster.url"),
            ("[cluster]\nurl = \"db\"\n", "cluster.url"),
            (
                "[cluster]\nurl = \"postgresql://u:secret@db/x\"\n",
                "cluster.url",
            ),
            (
                "[cluster]\nurl = \"postgresql://db/x\"\nnode = \"a b\"\n",
                "cluster.node",
            ),
            (
                "[cluster]\nurl = \"postgresql://db/x\"\nsync_interval = \"10ms\"\n",
                "cluster.sync_interval",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let e = parse("[cluster]\nurl = \"postgresql://db/x\"\ntls = \"prefer\"\n").unwrap_err();
        assert!(e.to_string().contains("prefer"), "{e}");
    }
}
