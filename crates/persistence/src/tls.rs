//! Optional TLS for PostgreSQL (`sslmode=require` in the URL): rustls with the system's CA
//! store (found as OpenSSL finds it: `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the distribution's
//! bundle, `/etc/ssl/certs` on Debian) plus an optional CA file. Certificates and host names
//! are always verified.

use std::path::Path;
use std::str::FromStr;

use diesel::ConnectionError;
use diesel_async::AsyncPgConnection;

use crate::error::DbError;

/// `true` when the URL asks for TLS (`sslmode=require`). `prefer` (tokio-postgres' default)
/// stays plain, so a server with a self-signed certificate still works without configuration.
pub(crate) fn wants_tls(url: &str) -> Result<bool, DbError> {
    let cfg = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError::Config(format!("DATABASE_URL: invalid PostgreSQL URL: {e}")))?;
    Ok(matches!(
        cfg.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    ))
}

#[cfg(feature = "tls")]
fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::warn!(error = %e, "could not read part of the system CA store");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "unusable certificates in the system CA store");
    }
    if added == 0 && ca_file.is_none() {
        return Err(
            "no CA certificates: the system store is empty (install ca-certificates) and no \
             DATABASE_CA_FILE is set"
                .into(),
        );
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("unusable certificate in {}: {e}", path.display()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// Opens a TLS connection.
#[cfg(feature = "tls")]
pub(crate) async fn establish_tls(
    url: &str,
    ca_file: Option<&Path>,
) -> Result<AsyncPgConnection, ConnectionError> {
    let cfg = tokio_postgres::Config::from_str(url)
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
        client_config(ca_file).map_err(ConnectionError::BadConnection)?,
    );
    let (client, conn) = cfg
        .connect(tls)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, conn).await
}

/// Without the `tls` feature, `sslmode=require` is refused.
#[cfg(not(feature = "tls"))]
pub(crate) async fn establish_tls(
    _url: &str,
    _ca_file: Option<&Path>,
) -> Result<AsyncPgConnection, ConnectionError> {
    Err(ConnectionError::BadConnection(
        "sslmode=require needs the persistence crate's `tls` feature".into(),
    ))
}
