//! STARTTLS inbound with certificates made by rcgen: offered in EHLO,
//! the session starts over under TLS, input pipelined in the clear after
//! STARTTLS is dropped, mail goes through (Received says ESMTPS), SIGHUP
//! loads a new certificate, and a missing file is a clear error.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A certificate for relay.test: its DER, and the PEM files written.
fn certificate(relay: &Relay, name: &str) -> Vec<u8> {
    let made = rcgen::generate_simple_self_signed(vec!["relay.test".to_string()]).unwrap();
    std::fs::write(
        relay.dir.path().join(format!("{name}.crt")),
        made.cert.pem(),
    )
    .unwrap();
    std::fs::write(
        relay.dir.path().join(format!("{name}.key")),
        made.signing_key.serialize_pem(),
    )
    .unwrap();
    made.cert.der().to_vec()
}

/// Read one reply: its lines, without codes' continuation dashes.
async fn reply(r: &mut (impl AsyncBufRead + Unpin)) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed");
        let line = line.trim_end().to_string();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return lines;
        }
    }
}

async fn cmd<S: AsyncBufRead + AsyncWrite + Unpin>(s: &mut S, line: &str) -> Vec<String> {
    s.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    reply(s).await
}

fn connector(trusted: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(trusted.to_vec())).unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Greet, STARTTLS (with `smuggled` sent in the clear right after it), and
/// hand back the TLS stream and the certificate the relay showed.
async fn upgrade(
    relay: &Relay,
    trusted: &[u8],
    smuggled: &str,
) -> (
    BufReader<tokio_rustls::client::TlsStream<TcpStream>>,
    Vec<u8>,
) {
    let mut plain = BufReader::new(TcpStream::connect(relay.smtp).await.unwrap());
    assert!(reply(&mut plain).await[0].starts_with("220 "));
    let ehlo = cmd(&mut plain, "EHLO client.test").await;
    assert!(ehlo.iter().any(|l| l.ends_with("STARTTLS")), "{ehlo:?}");
    plain
        .write_all(format!("STARTTLS\r\n{smuggled}").as_bytes())
        .await
        .unwrap();
    assert_eq!(reply(&mut plain).await, ["220 2.0.0 Ready to start TLS"]);
    let tls = connector(trusted)
        .connect(
            ServerName::try_from("relay.test").unwrap(),
            plain.into_inner(),
        )
        .await
        .expect("TLS handshake with the relay's certificate");
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (BufReader::new(tls), shown)
}

async fn starttls_carries_mail_and_drops_smuggled_input(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let first = certificate(&relay, "a");
    let dir = relay.dir.path().to_path_buf();
    relay.edit_config(
        "hostname = \"relay.test\"",
        &format!(
            "hostname = \"relay.test\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
            dir.join("a.crt").display(),
            dir.join("a.key").display()
        ),
    );
    let alias = relay.create_alias("acme", "3001-01", "customer", "buyer@example.com");
    relay.start().await;

    let (mut tls, shown) = upgrade(&relay, &first, "RSET\r\n").await;
    assert_eq!(shown, first);
    // The first reply under TLS answers EHLO: the RSET sent in the clear was dropped.
    let ehlo = cmd(&mut tls, "EHLO client.test").await;
    assert!(ehlo[0].starts_with("250-relay.test"), "{ehlo:?}");
    assert!(
        !ehlo.iter().any(|l| l.contains("STARTTLS")),
        "not offered twice: {ehlo:?}"
    );
    assert!(cmd(&mut tls, "MAIL FROM:<shop@example.org>").await[0].starts_with("250 "));
    assert!(cmd(&mut tls, &format!("RCPT TO:<{alias}>")).await[0].starts_with("250 "));
    assert!(cmd(&mut tls, "DATA").await[0].starts_with("354 "));
    let done = cmd(&mut tls, "Subject: over TLS\r\n\r\nsecret\r\n.").await;
    assert!(done[0].starts_with("250 2.0.0"), "{done:?}");
    assert!(cmd(&mut tls, "STARTTLS").await[0].starts_with("503 5.5.1"));
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    assert!(
        sink.received()[0].headers().contains("with ESMTPS id"),
        "{}",
        sink.received()[0].headers()
    );

    // A new certificate in the same files, then SIGHUP: new sessions get it.
    let second = certificate(&relay, "a");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut shown = Vec::new();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shown = upgrade(&relay, &second, "").await.1;
        if shown == second {
            break;
        }
    }
    assert_eq!(shown, second, "reloaded on SIGHUP");
    assert!(relay.log().contains("TLS certificate reloaded"));
}

async fn missing_or_bad_certificates_are_clear_errors(backend: Backend) {
    let relay = Relay::with_smarthost(backend, common::free_port());
    let dir = relay.dir.path().to_path_buf();
    std::fs::write(dir.join("bad.crt"), "not a certificate").unwrap();
    certificate(&relay, "good");
    for (cert, key, says) in [
        ("missing.crt", "good.key", "smtp.tls_cert_file"),
        ("bad.crt", "good.key", "no PEM certificate"),
        ("good.crt", "missing.key", "smtp.tls_key_file"),
    ] {
        let node = relay
            .another_node()
            .env(
                "CT_RELAY__SMTP__TLS_CERT_FILE",
                dir.join(cert).to_str().unwrap(),
            )
            .env(
                "CT_RELAY__SMTP__TLS_KEY_FILE",
                dir.join(key).to_str().unwrap(),
            );
        let (ok, _, err) = node.cli_raw(&["serve"], None);
        assert!(!ok && err.contains(says), "{cert}/{key}: {err}");
    }
    let half = relay.another_node().env(
        "CT_RELAY__SMTP__TLS_CERT_FILE",
        dir.join("good.crt").to_str().unwrap(),
    );
    let (ok, _, err) = half.cli_raw(&["serve"], None);
    assert!(!ok && err.contains("go together"), "{err}");
}

/// One message through a relay with `env`; the delivery as the timeline shows it.
async fn deliver(
    backend: Backend,
    sink: &Sink,
    env: &[(&str, String)],
) -> (Relay, serde_json::Value) {
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    for (k, v) in env {
        relay.set_env(k, v);
    }
    let alias = relay.create_alias("acme", "3002-01", "customer", "buyer@example.com");
    relay.start().await;
    let mut c = common::SmtpClient::ready(relay.smtp).await;
    let message = format!("From: shop@example.org\r\nTo: {alias}\r\nSubject: hop\r\n\r\nhi\r\n");
    assert_eq!(
        c.send_mail("shop@example.org", &[&alias], &message)
            .await
            .code,
        250
    );
    let settled = || {
        let d = relay.timeline("3002-01")["entries"][0]["deliveries"][0].clone();
        d["state"] != "queued"
    };
    assert!(wait_until(Duration::from_secs(10), settled).await);
    let d = relay.timeline("3002-01")["entries"][0]["deliveries"][0].clone();
    (relay, d)
}

async fn delivery_uses_starttls_as_configured(backend: Backend) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &cert).unwrap();
    let ca_path = ca.path().to_str().unwrap().to_string();

    // Opportunistic (the default): TLS although the certificate is self-signed.
    let sink = Sink::start_tls(&cert, &key).await;
    let (_relay, d) = deliver(backend, &sink, &[]).await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert!(sink.received()[0].tls, "went over TLS");

    // Required, with the certificate's CA trusted: TLS.
    let sink = Sink::start_tls(&cert, &key).await;
    let env = [
        ("CT_RELAY__DELIVERY__TLS", "required".to_string()),
        ("CT_RELAY__DELIVERY__TLS_CA_FILE", ca_path.clone()),
    ];
    let (_relay, d) = deliver(backend, &sink, &env).await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert!(sink.received()[0].tls);

    // Required, untrusted certificate: not delivered, retried.
    let sink = Sink::start_tls(&cert, &key).await;
    let (_relay, d) = deliver(
        backend,
        &sink,
        &[("CT_RELAY__DELIVERY__TLS", "required".to_string())],
    )
    .await;
    assert_eq!(d["state"], "retrying", "{d}");
    assert!(
        d["last_reply"].as_str().unwrap().starts_with("421 4.7.10"),
        "{d}"
    );
    assert!(sink.received().is_empty());

    // Required, next hop without STARTTLS: not delivered, retried.
    let plain = Sink::start().await;
    let (_relay, d) = deliver(backend, &plain, &env).await;
    assert_eq!(d["state"], "retrying", "{d}");
    assert!(
        d["last_reply"]
            .as_str()
            .unwrap()
            .contains("STARTTLS not offered"),
        "{d}"
    );

    // Off: in the clear even when offered.
    let sink = Sink::start_tls(&cert, &key).await;
    let (_relay, d) = deliver(
        backend,
        &sink,
        &[("CT_RELAY__DELIVERY__TLS", "off".to_string())],
    )
    .await;
    assert_eq!(d["state"], "delivered", "{d}");
    assert!(!sink.received()[0].tls);
}

on_both_backends!(
    starttls_carries_mail_and_drops_smuggled_input,
    missing_or_bad_certificates_are_clear_errors,
    delivery_uses_starttls_as_configured,
);
