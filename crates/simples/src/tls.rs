//! HTTPS: a rustls server configuration (ring provider, TLS 1.2 and 1.3,
//! ALPN `http/1.1`) from PEM certificate and key files.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::error::{Error, ErrorKind, Result};

/// A TLS configuration for an HTTPS listener.
#[derive(Clone)]
pub struct Tls {
    pub(crate) config: Arc<rustls::ServerConfig>,
}

fn tls_error(reason: impl Into<String>) -> Error {
    Error::from_kind(ErrorKind::Tls, reason)
}

impl Tls {
    /// Reads a certificate chain and a private key (PKCS#8, PKCS#1 or SEC1)
    /// from PEM files.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Tls> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| tls_error(format!("cannot read certificates from {}: {e}", cert.display())))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| tls_error(format!("cannot read a private key from {}: {e}", key.display())))?;
        Tls::from_der(chain, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text.
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Tls> {
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(format!("cannot read certificates: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_error(format!("cannot read a private key: {e}")))?;
        Tls::from_der(chain, key)
    }

    fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Tls> {
        if chain.is_empty() {
            return Err(tls_error("no certificate found"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| tls_error(format!("unusable certificate or key: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { config: Arc::new(config) })
    }

    /// A configuration built by hand.
    pub fn from_config(config: Arc<rustls::ServerConfig>) -> Tls {
        Tls { config }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls { .. }")
    }
}
