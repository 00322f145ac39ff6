//! TLS for `wss://`: rustls with the ring provider, the system's CA store plus an optional
//! extra CA file. Certificate verification is always on.
//!
//! Troubleshooting: "invalid peer certificate: UnknownIssuer" means the server's certificate
//! is signed by a CA this device does not trust: put that CA (PEM) in `server.ca_file`.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::Connector;

use super::endpoint::Endpoint;

/// The connector for `server`, or `None` for plain `ws://`.
pub fn connector(server: &Endpoint) -> Result<Option<Connector>, String> {
    if !server.url.to_ascii_lowercase().starts_with("wss://") {
        return Ok(None);
    }
    let trusted = TrustedRoots::load(server)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(trusted.system);
    for cert in trusted.extra {
        roots.add(cert).map_err(|e| format!("server.ca_file: {e}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Connector::Rustls(Arc::new(config))))
}

/// The crypto provider every TLS connection of pivox uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CAs a server certificate may chain to: the system's store plus `server.ca_file`.
pub struct TrustedRoots {
    /// Certificates rustls cannot parse are skipped, as every TLS client does.
    pub system: Vec<CertificateDer<'static>>,
    pub extra: Vec<CertificateDer<'static>>,
}

impl TrustedRoots {
    pub fn load(server: &Endpoint) -> Result<Self, String> {
        let system = rustls_native_certs::load_native_certs().certs;
        let mut extra = Vec::new();
        if let Some(ca_file) = &server.ca_file {
            // Bounded, and never waiting on a FIFO (crate::files).
            let pem = crate::files::read_bounded(ca_file, crate::files::CA_FILE_MAX)
                .map_err(|e| format!("server.ca_file {}: {e}", ca_file.display()))?;
            extra = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("server.ca_file {}: not a PEM certificate file: {e}", ca_file.display()))?;
            if extra.is_empty() {
                return Err(format!("server.ca_file {}: holds no certificate", ca_file.display()));
            }
        } else if system.is_empty() {
            return Err(
                "no CA certificates found on this system (install ca-certificates) and no server.ca_file".into()
            );
        }
        Ok(Self { system, extra })
    }
}

/// A connection error, with what to do about it when it is a certificate the device does
/// not trust.
pub fn explain(error: String) -> String {
    if error.contains("CaUsedAsEndEntity") {
        format!(
            "{error}: the server presents a CA certificate as its own (a self-signed certificate made as a CA); \
             make a server certificate signed by that CA, or one without the CA flag, and put the CA in server.ca_file"
        )
    } else if error.contains("UnknownIssuer") {
        format!(
            "{error}: the server's certificate is not signed by a CA this device trusts; put that CA (PEM) in server.ca_file"
        )
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_say_what_to_do() {
        assert!(explain("invalid peer certificate: UnknownIssuer".into()).contains("server.ca_file"));
        let ca = explain("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))".into());
        assert!(ca.contains("presents a CA certificate as its own"), "{ca}");
        assert_eq!(explain("Connection refused".into()), "Connection refused");
    }
}
