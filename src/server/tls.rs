//! STARTTLS for incoming sessions (tokio-rustls): the certificate chain and
//! key from `smtp.tls_cert_file` / `smtp.tls_key_file`, read at start and
//! again on SIGHUP (a bad file then keeps the old pair in service).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read.
    #[error("smtp.tls_cert_file {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The key file could not be read.
    #[error("smtp.tls_key_file {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The pair does not make a TLS configuration.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// The current acceptor and the files it came from.
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl TlsFiles {
    /// Read the certificate chain and key (PEM).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(cert, key)?));
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            acceptor: RwLock::new(acceptor),
        })
    }

    /// Read the files again; on error the pair in service stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = TlsAcceptor::from(Arc::new(server_config(&self.cert, &self.key)?));
        *self.acceptor.write().expect("not poisoned") = fresh;
        Ok(())
    }

    /// A TLS acceptor for STARTTLS with the loaded pair.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().expect("not poisoned").clone()
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))
}
