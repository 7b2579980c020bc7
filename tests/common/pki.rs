//! A test certificate authority (rcgen) and an HTTPS server of static files
//! over tokio-rustls: what MTA-STS needs from the Internet, on loopback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A certificate authority that issues server certificates.
pub struct TestCa {
    /// The CA's certificate, PEM (what `delivery.tls_ca_file` names).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ct-relay test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names`, and its key, PEM.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A server config presenting this PEM certificate and key.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// An HTTPS server answering GETs from a table of paths: (content type,
/// body); anything else is a 404. Counts the requests.
pub struct HttpsServer {
    pub addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, (String, String)>>>,
    requests: Arc<Mutex<usize>>,
}

impl HttpsServer {
    pub async fn start(addr: SocketAddr, cert_pem: &str, key_pem: &str) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server_config(cert_pem, key_pem));
        let files: Arc<Mutex<HashMap<String, (String, String)>>> = Default::default();
        let requests = Arc::new(Mutex::new(0));
        let (table, count) = (files.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, table, count) = (acceptor.clone(), table.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    *count.lock().unwrap() += 1;
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                    let found = table.lock().unwrap().get(&path).cloned();
                    let response = match found {
                        Some((kind, body)) => format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        ),
                        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string(),
                    };
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            files,
            requests,
        }
    }

    pub fn serve(&self, path: &str, content_type: &str, body: &str) {
        self.files
            .lock()
            .unwrap()
            .insert(path.into(), (content_type.into(), body.into()));
    }

    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}
