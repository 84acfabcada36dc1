//! Connecting to the cluster store: the URL from `[cluster] url`, the
//! password from `password_file` (never from the configuration, which
//! every user of the node can read), TLS through rustls with the ring
//! provider (docs/cluster.md, "Configuring a node"), and the timeouts that
//! turn a dead network into an error instead of a hang.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postgres::Client;
use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{ClusterError, Result};
use crate::config::{ClusterConfig, ClusterTls};

/// Longest wait for a connection (each host of a multi-host URL).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Unacknowledged data on the socket for this long fails the connection
/// (a partition while a query runs), as keepalives do while it is idle.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

/// Connect as `purpose` (shown in `pg_stat_activity`).
pub fn connect(c: &ClusterConfig, purpose: &str) -> Result<Client> {
    let mut pg: postgres::Config = c
        .url
        .parse()
        .map_err(|e| ClusterError::Config(format!("cluster.url: {e}")))?;
    if let Some(path) = &c.password_file {
        pg.password(read_password(path)?);
    }
    pg.application_name(&format!("scriptmail {purpose} {}", c.node))
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_user_timeout(TCP_USER_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .ssl_mode(match c.tls {
            ClusterTls::None => SslMode::Disable,
            ClusterTls::Require | ClusterTls::VerifyFull => SslMode::Require,
        });
    let tls = MakeRustlsConnect::new(tls_config(c)?);
    Ok(pg.connect(tls)?)
}

/// The password: the file's first line. It must not be readable by
/// others (as `relay.auth_file`, SECURITY.md).
fn read_password(path: &Path) -> Result<String> {
    let bad = |why: String| ClusterError::Config(format!("{}: {why}", path.display()));
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let meta = f.metadata().map_err(|e| bad(e.to_string()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(bad(format!(
            "mode {:o} lets others read the password; chmod 600",
            meta.mode() & 0o777
        )));
    }
    let mut text = String::new();
    f.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(bad("empty".into()));
    }
    Ok(line.to_string())
}

/// The rustls client configuration `tls` asks for.
fn tls_config(c: &ClusterConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Config(format!("TLS: {e}")))?;
    let config = match c.tls {
        // Not used (sslmode=disable); any valid configuration does.
        ClusterTls::None => builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        ClusterTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                rustls::crypto::ring::default_provider(),
            )))
            .with_no_client_auth(),
        ClusterTls::VerifyFull => builder
            .with_root_certificates(roots(c.ca_file.as_deref())?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `ca_file`'s certificates, or the system's roots.
fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |why: String| {
                ClusterError::Config(format!("cluster.ca_file {}: {why}", path.display()))
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(bad("no certificate in it".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(ClusterError::Config(
                    "cluster.tls = verify-full: no system root certificates found; set cluster.ca_file"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// `tls = require`: encrypted, the certificate not checked — what
/// libpq's `sslmode=require` does (docs/cluster.md says what it does not
/// protect against). Signatures are still verified, so the handshake
/// itself is sound.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn cfg(url: &str) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node: "n1".into(),
            password_file: None,
            tls: ClusterTls::None,
            ca_file: None,
            sync_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn password_file_must_be_private_and_not_empty() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_password(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_password(&p).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_a_bad_url_is_config() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = connect(&cfg(&format!("postgresql://x@127.0.0.1:{port}/db")), "test")
            .err()
            .unwrap();
        assert!(matches!(e, ClusterError::Unreachable(_)), "{e}");
        assert_eq!(
            crate::exit::Failure::exit_code(&e),
            crate::exit::Exit::Unavailable
        );
        assert!(
            e.to_string().starts_with("cluster store unreachable: "),
            "{e}"
        );
        let e = connect(&cfg("postgresql://x@host:notaport/db"), "test")
            .err()
            .unwrap();
        assert!(matches!(e, ClusterError::Config(_)), "{e}");
        let mut v = cfg("postgresql://x@127.0.0.1/db");
        v.tls = ClusterTls::VerifyFull;
        v.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(
            connect(&v, "test").err().unwrap(),
            ClusterError::Config(_)
        ));
    }
}
