//! The `[relay]` table: how to reach the smarthost.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// TLS mode towards the smarthost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (the usual case for a smarthost on loopback).
    None,
    /// Plain connection upgraded with STARTTLS (RFC 3207); failure defers.
    Starttls,
    /// Implicit TLS from the first byte (RFC 8314, port 465).
    Tls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRelay {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) tls: Option<TlsMode>,
    pub(super) verify_certificate: Option<bool>,
    pub(super) auth_file: Option<PathBuf>,
    pub(super) connect_timeout: Option<String>,
    pub(super) command_timeout: Option<String>,
    pub(super) connections: Option<usize>,
    pub(super) retry_initial: Option<String>,
    pub(super) retry_max: Option<String>,
    pub(super) program: Option<PathBuf>,
}

/// How to reach the smarthost.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Verify the smarthost's certificate (on by default).
    pub verify_certificate: bool,
    /// File holding `username password` for SMTP AUTH; readable by the service user only.
    pub auth_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Parallel SMTP connections of the relay daemon.
    pub connections: usize,
    /// First retry delay after a temporary failure.
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// The `scriptmail` program `sendmail` starts for a one-shot delivery
    /// when no relay daemon is listening.
    pub program: PathBuf,
}

/// The `[relay]` table, validated (defaults: conf/scriptmail.toml).
pub(super) fn parse(
    raw: RawRelay,
    invalid: &dyn Fn(&'static str, String) -> ConfigError,
    dur: &dyn Fn(&'static str, Option<String>, Duration) -> Result<Duration, ConfigError>,
) -> Result<RelayConfig, ConfigError> {
    let connections = raw.connections.unwrap_or(2);
    if connections == 0 || connections > 64 {
        return Err(invalid("relay.connections", "must be 1..64".into()));
    }
    Ok(RelayConfig {
        host: raw.host.unwrap_or_else(|| "127.0.0.1".into()),
        port: raw.port.unwrap_or(25),
        tls: raw.tls.unwrap_or(TlsMode::None),
        verify_certificate: raw.verify_certificate.unwrap_or(true),
        auth_file: raw.auth_file,
        connect_timeout: dur(
            "relay.connect_timeout",
            raw.connect_timeout,
            Duration::from_secs(30),
        )?,
        command_timeout: dur(
            "relay.command_timeout",
            raw.command_timeout,
            Duration::from_secs(120),
        )?,
        connections,
        retry_initial: dur(
            "relay.retry_initial",
            raw.retry_initial,
            Duration::from_secs(60),
        )?,
        retry_max: dur("relay.retry_max", raw.retry_max, Duration::from_secs(3600))?,
        program: raw
            .program
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/scriptmail")),
    })
}
