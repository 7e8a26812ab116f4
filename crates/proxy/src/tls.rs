//! TLS termination with rustls. The certificate comes from the running
//! bundle, so a bundle swap rotates it; the resolver reads it per handshake.

use crate::runtime::RuntimeError;
use crate::server::Shared;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, Weak};

/// Parse PEM certificate chain and private key into a rustls key.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, RuntimeError> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RuntimeError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(RuntimeError::Tls("no certificate in PEM".into()));
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| RuntimeError::Tls(format!("key PEM: {e}")))?
        .ok_or_else(|| RuntimeError::Tls("no private key in PEM".into()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| RuntimeError::Tls(format!("private key: {e}")))?;
    Ok(CertifiedKey::new(certs, signer))
}

#[derive(Debug)]
struct FromRuntime(Weak<Shared>);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl ResolvesServerCert for FromRuntime {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.upgrade()?.runtime().tls.clone()
    }
}

pub fn acceptor(shared: &Arc<Shared>) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FromRuntime(Arc::downgrade(shared))));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}
