//! The configuration file: one TOML document, every key with a default.
//!
//! Loading has two stages (the tealdeer/fd shape): [`RawConfig`] is what serde
//! reads, with `deny_unknown_fields` so a typo is an error naming the file and
//! the key; [`Config`] is the validated form the rest of the program sees,
//! with durations as [`Duration`] and paths resolved. An empty file is a valid
//! configuration; so is a missing file at the default path (as with dma), but
//! a file named explicitly with `--config` or `SCRIPTMAIL_CONFIG` must exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::exit::{Exit, Failure};

mod api;
mod cluster;
mod relay;
mod submit;

use api::RawApi;
pub use api::{ApiConfig, ApiListen};
use cluster::RawCluster;
pub use cluster::{ClusterConfig, ClusterTls};
use relay::RawRelay;
pub use relay::{RelayConfig, TlsMode};
use submit::RawSubmit;
pub use submit::SubmitConfig;

/// Where the configuration lives when nothing else is said.
pub const DEFAULT_PATH: &str = "/etc/scriptmail/scriptmail.toml";
/// The environment variable that names another configuration file
/// (honoured only when the program is not running privileged).
pub const ENV_VAR: &str = "SCRIPTMAIL_CONFIG";

/// Why a configuration could not be loaded. Always exit 78 (`EX_CONFIG`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Failure for ConfigError {
    fn exit_code(&self) -> Exit {
        Exit::Config
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    relay: RawRelay,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    accounts: RawAccounts,
    #[serde(default)]
    bounce: RawBounce,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    submit: RawSubmit,
    #[serde(default)]
    cluster: RawCluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    domain: Option<String>,
    hostname: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    dir: Option<PathBuf>,
    hold_max_age: Option<String>,
    queue_lifetime: Option<String>,
    max_message_size: Option<u64>,
    max_recipients: Option<usize>,
    read_timeout: Option<String>,
    history_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_per_day: Option<u64>,
    max_per_hour: Option<u64>,
    bounce_ratio: Option<f64>,
    bounce_window: Option<String>,
    bounce_min_sample: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    min_uid: Option<u32>,
    allow: Option<Vec<String>>,
    map: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBounce {
    verp: Option<bool>,
    domain: Option<String>,
    local_part: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    from: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    socket: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages), or the default path.
    pub path: PathBuf,
    /// Qualifies bare addresses; the default envelope sender is `account@domain`.
    pub domain: String,
    /// Name used in `Received:`, `Message-ID:` and the SMTP greeting.
    pub hostname: String,
    /// Directory of the SQLite queue.
    pub queue_dir: PathBuf,
    /// Held mail older than this is dropped by the sweep.
    pub hold_max_age: Duration,
    /// Undeliverable queued mail fails after this.
    pub queue_lifetime: Duration,
    /// Largest accepted message, in bytes, headers included.
    pub max_message_size: u64,
    /// Most distinct recipients of one message (`-t` headers and command
    /// line together; RCPT commands of one `-bs` transaction).
    pub max_recipients: usize,
    /// Longest `sendmail` may spend reading one message from its caller
    /// (`-bs`: the session, counted afresh after each accepted message).
    pub read_timeout: Duration,
    /// Days of per-message metadata and per-day counters kept.
    pub history_days: u32,
    pub relay: RelayConfig,
    pub limits: Limits,
    pub accounts: AccountPolicy,
    pub bounce: BounceConfig,
    /// Envelope and From: address of the daily report mails.
    pub report_from: String,
    pub api: ApiConfig,
    /// The syslog socket; when it is absent, logging falls back (see `log`).
    pub log_socket: PathBuf,
    pub submit: SubmitConfig,
    /// Cluster mode (docs/cluster.md); `None`: this node alone, SQLite only.
    pub cluster: Option<ClusterConfig>,
}

/// Node-wide defaults of the automatic protection (docs/bounces.md).
#[derive(Debug, Clone)]
pub struct Limits {
    /// 0 = no limit.
    pub max_per_day: u64,
    /// 0 = no limit.
    pub max_per_hour: u64,
    /// Error ratio above which an account goes to `bounce`; 0 disables.
    pub bounce_ratio: f64,
    pub bounce_window: Duration,
    pub bounce_min_sample: u64,
}

/// Who may submit, and under which account name.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    /// Callers with a lower real uid are refused (77). Root is always allowed.
    pub min_uid: u32,
    /// If not empty, only these account names may submit.
    pub allow: Vec<String>,
    /// uid (or `first-last` range) → account name; a range maps every uid to the same name.
    pub map: Vec<(u32, u32, String)>,
}

/// Bounce capture (docs/bounces.md).
#[derive(Debug, Clone)]
pub struct BounceConfig {
    /// Rewrite the envelope sender so DSNs come back to the node.
    pub verp: bool,
    /// Domain of the rewritten sender (default: the node domain).
    pub domain: String,
    /// Local part prefix: the sender becomes `<local_part>+<qid>@<domain>`.
    pub local_part: String,
}
impl Config {
    /// Load from `path`, or from the default path when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, must_exist) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        Config::parse(&text, &path)
    }

    /// Parse configuration text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string() + &location(text, e.span()),
        })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let dur = |key: &'static str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => parse_duration(&s).map_err(|m| invalid(key, m)),
        };

        let domain = match raw.node.domain {
            Some(d) if !d.is_empty() => d,
            _ => crate::os::hostname().unwrap_or_else(|| "localhost".to_string()),
        };
        // Every unqualified address gets it: refusing it here beats refusing
        // every such mail (`envelope`).
        if let Err(why) = crate::envelope::check_domain(&domain) {
            return Err(invalid("node.domain", format!("{domain:?}: {why}")));
        }
        let hostname = raw.node.hostname.unwrap_or_else(|| domain.clone());

        let max_message_size = raw.queue.max_message_size.unwrap_or(10_000_000);
        if max_message_size == 0 {
            return Err(invalid("queue.max_message_size", "must be > 0".into()));
        }
        // Postfix's smtpd_recipient_limit: RFC 5321 §4.5.3.1.8 asks for at
        // least 100, and a newsletter sent through mail() with a longer
        // list is better split (or sent by a list manager) anyway.
        let max_recipients = raw.queue.max_recipients.unwrap_or(1000);
        if max_recipients == 0 {
            return Err(invalid("queue.max_recipients", "must be > 0".into()));
        }
        // An honest caller writes its message at once (mail()) or as it
        // builds it; five minutes is far above either, and is what bounds
        // how long a caller that never finishes holds a process (SECURITY.md).
        let read_timeout = dur(
            "queue.read_timeout",
            raw.queue.read_timeout,
            Duration::from_secs(300),
        )?;
        if read_timeout.is_zero() || read_timeout > Duration::from_secs(86400) {
            return Err(invalid("queue.read_timeout", "must be 1s..1d".into()));
        }
        let relay = relay::parse(raw.relay, &invalid, &dur)?;
        let bounce_ratio = raw.limits.bounce_ratio.unwrap_or(0.0);
        if !(0.0..=1.0).contains(&bounce_ratio) {
            return Err(invalid(
                "limits.bounce_ratio",
                "must be between 0 and 1".into(),
            ));
        }
        let mut map = Vec::new();
        for (k, v) in raw.accounts.map.unwrap_or_default() {
            let (lo, hi) = parse_uid_range(&k).ok_or_else(|| {
                invalid("accounts.map", format!("{k:?} is not a uid or a uid range"))
            })?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid("accounts.map", format!("bad account name {v:?}")));
            }
            map.push((lo, hi, v));
        }
        let api = ApiConfig::parse(raw.api).map_err(|(key, m)| invalid(key, m))?;
        let bounce_domain = raw.bounce.domain.unwrap_or_else(|| domain.clone());
        let bounce_local = raw.bounce.local_part.unwrap_or_else(|| "bounces".into());
        // With VERP every mail goes out from this address: one the relay cannot
        // send would fail them all after sendmail accepted them (`envelope`).
        let verp = raw.bounce.verp.unwrap_or(false);
        let sample = format!("{bounce_local}+0123456789ABCDEF0123@{bounce_domain}");
        if let (true, Err(why)) = (verp, crate::envelope::check(&sample)) {
            return Err(invalid(
                "bounce.local_part",
                format!("VERP sender {sample:?} cannot be sent: {why} (see also bounce.domain)"),
            ));
        }
        let submit = submit::parse(raw.submit, read_timeout, &invalid, &dur)?;
        Ok(Config {
            path: path.to_path_buf(),
            queue_dir: raw
                .queue
                .dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/scriptmail")),
            hold_max_age: dur(
                "queue.hold_max_age",
                raw.queue.hold_max_age,
                Duration::from_secs(72 * 3600),
            )?,
            queue_lifetime: dur(
                "queue.queue_lifetime",
                raw.queue.queue_lifetime,
                Duration::from_secs(5 * 86400),
            )?,
            max_message_size,
            max_recipients,
            read_timeout,
            history_days: raw.queue.history_days.unwrap_or(400),
            relay,
            limits: Limits {
                max_per_day: raw.limits.max_per_day.unwrap_or(0),
                max_per_hour: raw.limits.max_per_hour.unwrap_or(0),
                bounce_ratio,
                bounce_window: dur(
                    "limits.bounce_window",
                    raw.limits.bounce_window,
                    Duration::from_secs(86400),
                )?,
                bounce_min_sample: raw.limits.bounce_min_sample.unwrap_or(20),
            },
            accounts: AccountPolicy {
                min_uid: raw.accounts.min_uid.unwrap_or(0),
                allow: raw.accounts.allow.unwrap_or_default(),
                map,
            },
            bounce: BounceConfig {
                verp,
                domain: bounce_domain,
                local_part: bounce_local,
            },
            report_from: raw
                .report
                .from
                .unwrap_or_else(|| format!("scriptmail@{domain}")),
            api,
            log_socket: raw.log.socket.unwrap_or_else(|| PathBuf::from("/dev/log")),
            submit,
            cluster: cluster::parse(raw.cluster, path)?,
            domain,
            hostname,
        })
    }

    /// The SQLite database file inside the queue directory.
    pub fn db_path(&self) -> PathBuf {
        self.queue_dir.join("queue.db")
    }

    /// The datagram socket the relay daemon listens on for wake-ups.
    pub fn wake_socket(&self) -> PathBuf {
        self.queue_dir.join("relayd.sock")
    }

    /// The lock file held by whoever is relaying (daemon or one-shot).
    pub fn relay_lock(&self) -> PathBuf {
        self.queue_dir.join("relayd.lock")
    }
}
fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => {
            let line = text[..r.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

fn parse_uid_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => {
            let u = s.trim().parse().ok()?;
            Some((u, u))
        }
    }
}

/// Parse `90`, `90s`, `15m`, `72h`, `5d` (an integer and an optional unit).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 15m, 72h, 5d)"))?;
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x.toml"))
    }

    #[test]
    fn empty_file_is_valid_with_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.queue_dir, PathBuf::from("/var/lib/scriptmail"));
        assert_eq!(c.hold_max_age, Duration::from_secs(72 * 3600));
        assert_eq!(c.queue_lifetime, Duration::from_secs(5 * 86400));
        assert_eq!(c.max_message_size, 10_000_000);
        assert_eq!(c.max_recipients, 1000);
        assert_eq!(c.read_timeout, Duration::from_secs(300));
        assert_eq!(c.history_days, 400);
        assert_eq!(c.relay.host, "127.0.0.1");
        assert_eq!(c.relay.port, 25);
        assert_eq!(c.relay.tls, TlsMode::None);
        assert!(c.relay.verify_certificate);
        assert_eq!(c.limits.max_per_day, 0);
        assert_eq!(
            c.submit.socket,
            PathBuf::from("/run/scriptmail/submit.sock")
        );
        assert_eq!(c.submit.timeout, Duration::from_secs(5));
        assert_eq!(c.submit.read_timeout, Duration::from_secs(330));
        let c = parse("[queue]\nread_timeout = \"1m\"\n").unwrap();
        assert_eq!(c.submit.read_timeout, Duration::from_secs(90));
        assert_eq!(c.submit.max_connections, 512);
        assert_eq!(c.submit.max_connections_per_uid, 64);
        assert_eq!(c.submit.max_per_account, 64);
    }

    #[test]
    fn contract_keys_parse() {
        let c = parse(
            r#"
[node]
domain = "node1.example.net"
[queue]
dir = "/tmp/q"
hold_max_age = "2h"
queue_lifetime = "1d"
max_message_size = 1000
[relay]
host = "10.0.0.1"
port = 2525
tls = "starttls"
"#,
        )
        .unwrap();
        assert_eq!(c.domain, "node1.example.net");
        assert_eq!(c.hostname, "node1.example.net");
        assert_eq!(c.queue_dir, PathBuf::from("/tmp/q"));
        assert_eq!(c.hold_max_age, Duration::from_secs(7200));
        assert_eq!(c.queue_lifetime, Duration::from_secs(86400));
        assert_eq!(c.max_message_size, 1000);
        assert_eq!(c.relay.port, 2525);
        assert_eq!(c.relay.tls, TlsMode::Starttls);
        assert_eq!(c.report_from, "scriptmail@node1.example.net");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse("[queue]\nhold_max_agee = \"1h\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/x.toml: "), "{msg}");
        assert!(msg.contains("hold_max_agee"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(parse("[nope]\n").unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("[queue]\nhold_max_age = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("queue.hold_max_age"), "{e}");
        let e = parse("[relay]\ntls = \"ssl\"\n").unwrap_err();
        assert!(e.to_string().contains("ssl"), "{e}");
        let e = parse("[accounts.map]\n\"x\" = \"a\"\n").unwrap_err();
        assert!(e.to_string().contains("accounts.map"), "{e}");
        for (text, key) in [
            ("[node]\ndomain = \"a..b\"\n", "node.domain"),
            ("[node]\ndomain = \"x_y.org\"\n", "node.domain"),
            (
                "[bounce]\nverp = true\nlocal_part = \"a b\"\n",
                "bounce.local_part",
            ),
            (
                "[bounce]\nverp = true\ndomain = \"-x.org\"\n",
                "bounce.local_part",
            ),
            ("[queue]\nmax_recipients = 0\n", "queue.max_recipients"),
            ("[queue]\nread_timeout = \"0s\"\n", "queue.read_timeout"),
            ("[queue]\nread_timeout = \"2d\"\n", "queue.read_timeout"),
            ("[submit]\nsocket = \"relative.sock\"\n", "submit.socket"),
            ("[submit]\ntimeout = \"0s\"\n", "submit.timeout"),
            ("[submit]\nread_timeout = \"3d\"\n", "submit.read_timeout"),
            ("[submit]\nmax_connections = 0\n", "submit.max_connections"),
            (
                "[submit]\nmax_connections = 8\nmax_connections_per_uid = 9\n",
                "submit.max_connections_per_uid",
            ),
            ("[submit]\nmax_per_account = 0\n", "submit.max_per_account"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn shipped_example_is_valid_and_all_defaults() {
        let text = include_str!("../../../conf/scriptmail.toml");
        let c = parse(text).unwrap();
        assert_eq!(c.max_message_size, 10_000_000);
        // Uncommenting every example line must also parse: the commented
        // keys are real keys.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix('#')
                    .filter(|r| !r.starts_with(' ') && !r.is_empty())
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse(&uncommented).unwrap();
        assert_eq!(c.domain, "node1.example.net");
        assert_eq!(c.accounts.map.len(), 2);
        let cluster = c.cluster.expect("[cluster] uncommented");
        assert_eq!(cluster.node, "node1");
        assert_eq!(cluster.tls, ClusterTls::VerifyFull);
        assert_eq!(cluster.sync_interval, Duration::from_secs(1));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("72h").unwrap(), Duration::from_secs(259200));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432000));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1w").is_err());
    }

    #[test]
    fn uid_map_accepts_ranges() {
        let c = parse("[accounts.map]\n\"1000\" = \"acme\"\n\"2000-2999\" = \"shared\"\n").unwrap();
        assert!(c.accounts.map.contains(&(1000, 1000, "acme".into())));
        assert!(c.accounts.map.contains(&(2000, 2999, "shared".into())));
    }

    #[test]
    fn missing_default_file_is_defaults_but_named_file_must_exist() {
        let e = Config::load(Some(Path::new("/nonexistent/x.toml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"));
    }
}
