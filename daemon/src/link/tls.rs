//! TLS for `wss://`: rustls with the ring provider, the system's CA store plus an optional
//! extra CA file. Certificate verification is always on.
//!
//! Troubleshooting: "invalid peer certificate: UnknownIssuer" means the server's certificate
//! is signed by a CA this device does not trust: put that CA (PEM) in `server.ca_file`.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::Connector;

use crate::config::ServerConfig;

/// The connector for `server`, or `None` for plain `ws://`.
pub fn connector(server: &ServerConfig) -> Result<Option<Connector>, String> {
    if !server.url.to_ascii_lowercase().starts_with("wss://") {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(ca_file) = &server.ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("server.ca_file {}: not a PEM certificate file: {e}", ca_file.display()))?;
        if certs.is_empty() {
            return Err(format!("server.ca_file {}: holds no certificate", ca_file.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("server.ca_file {}: {e}", ca_file.display()))?;
        }
    } else if added == 0 {
        return Err("no CA certificates found on this system (install ca-certificates) and no server.ca_file".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Connector::Rustls(Arc::new(config))))
}

/// A connection error, with what to do about it when it is a certificate the device does
/// not trust.
pub fn explain(error: String) -> String {
    if error.contains("UnknownIssuer") {
        format!(
            "{error}: the server's certificate is not signed by a CA this device trusts; put that CA (PEM) in server.ca_file"
        )
    } else {
        error
    }
}
