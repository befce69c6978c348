//! TLS client configurations roster's own connections share (LDAP, PostgreSQL): rustls with
//! ring, trusting a CA file an admin names, else the system's roots.

use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::path::Path;
use std::sync::Arc;

/// A client configuration trusting the certificates in `ca_file`, or the system's trusted
/// roots without one. Errors say what is wrong with the file (the caller names the key).
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
                roots
                    .add(cert.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            }
            if roots.is_empty() {
                return Err("holds no PEM certificate".into());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot parse is no root for it.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
