//! HTTPS for the emulator: a fresh self-signed certificate for localhost,
//! so tests and demos exercise `pce_ca_file` and `pce_insecure` against a
//! real TLS server.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct SelfSigned {
    pub acceptor: TlsAcceptor,
    /// The certificate, PEM: what a client trusts as its CA.
    pub cert_pem: String,
}

pub fn self_signed() -> Result<SelfSigned> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating a certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .context("building the TLS configuration")?;
    Ok(SelfSigned {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_pem: certified.cert.pem(),
    })
}
