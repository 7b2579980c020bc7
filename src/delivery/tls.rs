//! TLS to the next hop (tokio-rustls), as `delivery.tls` asks: `required`
//! verifies the certificate against the public roots (webpki-roots) and
//! `delivery.tls_ca_file`; `opportunistic` takes any certificate (RFC 7435:
//! encryption without authentication beats the clear) but still checks
//! that the handshake is signed by the key of the certificate shown.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

/// A connector that verifies certificates against the public roots and
/// the CA certificates in `extra_ca_pem`.
pub fn verifying(extra_ca_pem: Option<&[u8]>) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = extra_ca_pem {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| e.to_string())?;
            roots.add(cert).map_err(|e| e.to_string())?;
            found += 1;
        }
        if found == 0 {
            return Err("no certificate in the file".into());
        }
    }
    let config = builder()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A connector that takes any certificate.
pub fn unverified() -> Result<TlsConnector, String> {
    let algorithms = provider().signature_verification_algorithms;
    let config = builder()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate { algorithms }))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the certificate must carry: the host as configured (a DNS name
/// or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))
}

/// What went wrong in a handshake, in words that name no host: rustls's
/// own text names the name asked for (the MX host, under the recipient's
/// domain), which replies must not show.
pub fn describe(error: &std::io::Error) -> &'static str {
    use rustls::CertificateError as C;
    let Some(rustls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return "the connection failed during the handshake";
    };
    match rustls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "the certificate is not valid for the host"
            }
            C::UnknownIssuer => "the certificate's issuer is not trusted",
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet",
            C::Revoked => "the certificate is revoked",
            C::BadSignature => "the certificate's signature is bad",
            _ => "the certificate is not valid",
        },
        rustls::Error::AlertReceived(_) => "the next hop ended the handshake",
        rustls::Error::PeerIncompatible(_) => "no TLS version or cipher in common",
        _ => "the handshake failed",
    }
}

fn provider() -> CryptoProvider {
    crypto::ring::default_provider()
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
}

/// Opportunistic TLS: no certificate is refused.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
