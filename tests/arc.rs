//! ARC: every masked copy leaves with the relay's ARC set (RFC 8617) over
//! what the relay found on arrival, and mail-auth's verifier, asking the
//! test DNS server for the keys, validates the delivered chain. The DKIM
//! signature for the alias domain is still there and still verifies.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::dns::DnsServer;
use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use ct_relay::delivery::arc::ArcSealing;
use ct_relay::delivery::dkim::{generate, DkimSigning, KeyAlgorithm};
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DkimResult, MessageAuthenticator};

const ORDER: &str = "6101-01";
const BUYER: &str = "buyer@example.com";
const SHOP: &str = "shop@authentic.example";

/// A relay that checks senders against `dns` and signs and seals with a
/// key published there as `s1._domainkey.ct.test`.
async fn sealing_relay(dns: &DnsServer) -> (Sink, Relay, String) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(Backend::Sqlite, sink.addr);
    let key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("s1._domainkey.ct.test", &key.txt);
    let key_file = relay.dir.path().join("dkim.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();
    relay.edit_config(
        "[auth]\ncheck = false",
        &format!(
            "[auth]\ncheck = true\nnameservers = [\"{}\"]\ntimeout = \"3s\"",
            dns.addr
        ),
    );
    relay.set_env("CT_RELAY__DKIM__SELECTOR", "s1");
    relay.set_env(
        "CT_RELAY__DKIM__PRIVATE_KEY_FILE",
        key_file.to_str().unwrap(),
    );
    let alias = relay.create_alias("acme", ORDER, "customer", BUYER);
    relay.start().await;
    (sink, relay, alias)
}

/// The sending shop's domain: SPF for 127.0.0.1 and a DKIM key.
fn authentic_shop(dns: &DnsServer) -> DkimSigning {
    dns.txt("authentic.example", "v=spf1 ip4:127.0.0.1 -all");
    dns.txt("_dmarc.authentic.example", "v=DMARC1; p=none");
    let key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("s1._domainkey.authentic.example", &key.txt);
    DkimSigning::from_pem(key.private_pem.as_bytes(), "authentic.example", "s1").unwrap()
}

/// An earlier forwarder's sealer, its key published for `forwarder.example`.
fn forwarder(dns: &DnsServer) -> ArcSealing {
    let key = generate(KeyAlgorithm::Ed25519).unwrap();
    dns.txt("f1._domainkey.forwarder.example", &key.txt);
    ArcSealing::from_pem(key.private_pem.as_bytes(), "forwarder.example", "f1").unwrap()
}

fn message(to: &str, subject: &str) -> String {
    format!(
        "From: Shop <{SHOP}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@authentic.example>\r\n\r\n\
         Your order is on its way.\r\n"
    )
}

fn verifier(dns: SocketAddr) -> MessageAuthenticator {
    let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::<NameServerConfig>::new());
    config.add_name_server(NameServerConfig::new(dns, ProtocolConfig::Udp));
    MessageAuthenticator::new(config, ResolverOpts::default()).unwrap()
}

/// The ARC chain's result, the DKIM results, and the unfolded ARC fields.
async fn verify(dns: SocketAddr, delivered: &[u8]) -> (DkimResult, Vec<DkimResult>, Vec<String>) {
    let verifier = verifier(dns);
    let parsed = AuthenticatedMessage::parse(delivered).unwrap();
    let arc = verifier.verify_arc(&parsed).await;
    let dkim = verifier.verify_dkim(&parsed).await;
    let text = String::from_utf8_lossy(delivered).replace("\r\n\t", " ");
    let fields = text
        .lines()
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("ARC-"))
        .map(str::to_string)
        .collect();
    (
        arc.result().clone(),
        dkim.iter().map(|o| o.result().clone()).collect(),
        fields,
    )
}

async fn send(relay: &Relay, data: &str) {
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c.send_mail(SHOP, &[&data_to(data)], data).await;
    assert_eq!(r.code, 250, "{r:?}");
}

fn data_to(data: &str) -> String {
    let line = data.lines().find(|l| l.starts_with("To: <")).unwrap();
    line["To: <".len()..line.len() - 1].to_string()
}

#[tokio::test]
async fn the_relay_seals_what_it_found_and_the_seal_verifies() {
    let dns = DnsServer::start().await;
    let shop = authentic_shop(&dns);
    let (sink, relay, alias) = sealing_relay(&dns).await;

    let signed = shop.sign(message(&alias, "sealed").as_bytes()).unwrap();
    send(&relay, &String::from_utf8(signed).unwrap()).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let delivered = sink.received()[0].data.clone();

    let (arc, dkim, fields) = verify(dns.addr, &delivered).await;
    assert_eq!(arc, DkimResult::Pass, "{fields:#?}");
    assert_eq!(fields.len(), 3, "one set: {fields:#?}");
    let seal = fields.iter().find(|f| f.starts_with("ARC-Seal:")).unwrap();
    assert!(seal.contains("i=1;") && seal.contains("cv=none") && seal.contains("d=ct.test"));
    let results = fields
        .iter()
        .find(|f| f.starts_with("ARC-Authentication-Results:"))
        .unwrap();
    for found in [
        "spf=pass",
        "smtp.mailfrom=authentic.example",
        "dkim=pass",
        "header.d=authentic.example",
        "dmarc=pass",
        "; arc=none",
    ] {
        assert!(results.contains(found), "{found} in {results}");
    }
    // The shop's own DKIM signature was broken by masking and removed or
    // fails; the relay's, for the alias domain, passes.
    assert!(dkim.contains(&DkimResult::Pass), "{dkim:?}");
    let text = String::from_utf8_lossy(&delivered);
    assert!(!text.contains(SHOP) && !text.contains(BUYER), "{text}");

    // A changed body breaks the seal's message signature.
    let mut tampered = delivered.clone();
    let at = tampered.windows(6).position(|w| w == b"on its").unwrap();
    tampered[at] = b'O';
    let (arc, _, _) = verify(dns.addr, &tampered).await;
    assert_ne!(arc, DkimResult::Pass);
}

#[tokio::test]
async fn a_chain_that_validates_on_arrival_is_extended() {
    let dns = DnsServer::start().await;
    let shop = authentic_shop(&dns);
    let forwarder = forwarder(&dns);
    let (sink, relay, alias) = sealing_relay(&dns).await;

    let signed = shop.sign(message(&alias, "forwarded").as_bytes()).unwrap();
    let results = AuthenticationResults::new("mx.forwarder.example");
    let sealed = forwarder.seal(&signed, &results, false).unwrap();
    send(&relay, &String::from_utf8(sealed).unwrap()).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let delivered = sink.received()[0].data.clone();

    let (arc, _, fields) = verify(dns.addr, &delivered).await;
    assert_eq!(arc, DkimResult::Pass, "{fields:#?}");
    assert_eq!(fields.len(), 6, "two sets: {fields:#?}");
    let ours = fields
        .iter()
        .find(|f| f.starts_with("ARC-Seal:") && f.contains("i=2;"))
        .expect("the relay's set is the second");
    assert!(
        ours.contains("cv=pass") && ours.contains("d=ct.test"),
        "{ours}"
    );
    let results = fields
        .iter()
        .find(|f| f.starts_with("ARC-Authentication-Results: i=2;"))
        .unwrap();
    assert!(results.contains("; arc=pass"), "{results}");
}

#[tokio::test]
async fn a_broken_chain_is_replaced_by_a_new_one() {
    let dns = DnsServer::start().await;
    let shop = authentic_shop(&dns);
    let forwarder = forwarder(&dns);
    let (sink, relay, alias) = sealing_relay(&dns).await;

    let signed = shop.sign(message(&alias, "broken").as_bytes()).unwrap();
    let results = AuthenticationResults::new("mx.forwarder.example");
    let mut sealed = forwarder.seal(&signed, &results, false).unwrap();
    // The body changed after the forwarder sealed it.
    let at = sealed.windows(6).position(|w| w == b"on its").unwrap();
    sealed[at] = b'O';
    send(&relay, &String::from_utf8(sealed).unwrap()).await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let delivered = sink.received()[0].data.clone();

    let (arc, _, fields) = verify(dns.addr, &delivered).await;
    assert_eq!(arc, DkimResult::Pass, "{fields:#?}");
    assert_eq!(fields.len(), 3, "the broken set is gone: {fields:#?}");
    assert!(fields.iter().all(|f| !f.contains("forwarder.example")));
    let results = fields
        .iter()
        .find(|f| f.starts_with("ARC-Authentication-Results: i=1;"))
        .unwrap();
    assert!(
        results.contains("; arc=") && !results.contains("; arc=pass"),
        "the broken chain is reported: {results}"
    );
}
