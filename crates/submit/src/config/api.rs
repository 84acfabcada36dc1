//! The `[api]` table: where and how the panel API daemon listens (docs/api.md).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) listen: Option<String>,
    pub(super) tokens_file: Option<PathBuf>,
    pub(super) workers: Option<usize>,
    pub(super) open_metrics: Option<bool>,
    pub(super) client_address_header: Option<String>,
}

/// Where the panel API listens (`api.listen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiListen {
    Tcp(std::net::SocketAddr),
    /// A Unix socket path, for a reverse proxy on the same host.
    Unix(PathBuf),
}

impl std::fmt::Display for ApiListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiListen::Tcp(a) => write!(f, "{a}"),
            ApiListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The panel API daemon, `scriptmail api` (docs/api.md).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: ApiListen,
    /// Hashes of the API tokens (`mailq-ctl api-token`), mode 0600.
    pub tokens_file: PathBuf,
    /// Requests handled at once (each worker has its own queue connection).
    pub workers: usize,
    /// `/metrics` and `/healthz` answer without a token.
    pub open_metrics: bool,
    /// The request header that names the client behind a reverse proxy
    /// (e.g. `X-Real-IP`), for the rate limit and the logs; none: the peer.
    pub client_address_header: Option<String>,
}

impl ApiConfig {
    pub(super) fn parse(raw: RawApi) -> Result<ApiConfig, (&'static str, String)> {
        let listen = match raw.listen.as_deref().map(str::trim) {
            None => ApiListen::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 8025))),
            Some(p) if p.starts_with('/') => ApiListen::Unix(PathBuf::from(p)),
            Some(a) => ApiListen::Tcp(a.parse().map_err(|_| {
                (
                    "api.listen",
                    format!("{a:?} is neither ADDRESS:PORT nor an absolute socket path"),
                )
            })?),
        };
        let workers = raw.workers.unwrap_or(4);
        if workers == 0 || workers > 64 {
            return Err(("api.workers", "must be 1..64".into()));
        }
        let header = match raw.client_address_header.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(h) if h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                Some(h.to_string())
            }
            Some(h) => {
                return Err((
                    "api.client_address_header",
                    format!("{h:?} is not a header name"),
                ));
            }
        };
        Ok(ApiConfig {
            listen,
            tokens_file: raw
                .tokens_file
                .unwrap_or_else(|| PathBuf::from("/etc/scriptmail/api-tokens")),
            workers,
            open_metrics: raw.open_metrics.unwrap_or(true),
            client_address_header: header,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::ApiListen;
    use crate::config::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn api_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8025");
        assert_eq!(
            c.api.tokens_file,
            PathBuf::from("/etc/scriptmail/api-tokens")
        );
        assert_eq!((c.api.workers, c.api.open_metrics), (4, true));
        assert_eq!(c.api.client_address_header, None);
        let c = parse(
            "[api]\nlisten = \"/run/scriptmail/api.sock\"\nclient_address_header = \"X-Real-IP\"\n",
        )
        .unwrap();
        assert_eq!(
            c.api.listen,
            ApiListen::Unix("/run/scriptmail/api.sock".into())
        );
        assert_eq!(c.api.client_address_header.as_deref(), Some("X-Real-IP"));
        let c = parse("[api]\nlisten = \"[::1]:9000\"\n").unwrap();
        assert_eq!(c.api.listen.to_string(), "[::1]:9000");
        for (text, key) in [
            ("[api]\nlisten = \"localhost\"\n", "api.listen"),
            ("[api]\nlisten = \"api.sock\"\n", "api.listen"),
            ("[api]\nworkers = 0\n", "api.workers"),
            (
                "[api]\nclient_address_header = \"X Real\"\n",
                "api.client_address_header",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }
}
