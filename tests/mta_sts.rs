//! MTA-STS (RFC 8461) with the mx transport, against the test DNS server,
//! a test CA (`delivery.tls_ca_file`), an HTTPS server serving the policy
//! (`delivery.mta_sts_port`) and SMTP sinks with STARTTLS on loopback
//! addresses: `enforce` delivers only to MX hosts the policy names and only
//! over TLS verified for the host, else retries; `testing` delivers and
//! reports; the policy is cached and fetched again when its id changes.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::dns::DnsServer;
use common::pki::{HttpsServer, TestCa};
use common::{free_port, wait_until, Relay, Sink, SmtpClient};
use serde_json::Value;

const SHOP: &str = "sac@acme-store.com";
const BUYER: &str = "buyer@secure.test";
const ORDER: &str = "9101-01";
const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// A port free on 127.0.0.2 to 127.0.0.6.
fn common_port() -> u16 {
    for _ in 0..50 {
        let port = free_port().port();
        let free = (2..=6).all(|n| std::net::TcpListener::bind((v4(n), port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no common free port");
}

/// secure.test's mail setup: MX 10 mx.secure.test (127.0.0.2, STARTTLS
/// with a certificate from the test CA), MX 5 rogue.secure.test
/// (127.0.0.3, no TLS: an MX a spoofed DNS answer might add), the policy
/// host mta-sts.secure.test (127.0.0.5), and the shop's MX (127.0.0.6).
struct World {
    ca: TestCa,
    dns: DnsServer,
    port: u16,
    mx: Sink,
    rogue: Sink,
    https: HttpsServer,
    _shop: Sink,
}

impl World {
    async fn start(mx_cert_names: &[&str]) -> Self {
        let ca = TestCa::new();
        let port = common_port();
        let (cert, key) = ca.issue(mx_cert_names);
        let mx = Sink::start_tls_on(SocketAddr::new(v4(2).into(), port), &cert, &key).await;
        let rogue = Sink::start_on(SocketAddr::new(v4(3).into(), port)).await;
        let shop = Sink::start_on(SocketAddr::new(v4(6).into(), port)).await;
        let (cert, key) = ca.issue(&["mta-sts.secure.test"]);
        let https = HttpsServer::start(SocketAddr::new(v4(5).into(), 0), &cert, &key).await;
        let dns = DnsServer::start().await;
        dns.mx("secure.test", 10, "mx.secure.test");
        dns.mx("secure.test", 5, "rogue.secure.test");
        dns.a("mx.secure.test", v4(2));
        dns.a("rogue.secure.test", v4(3));
        dns.a("mta-sts.secure.test", v4(5));
        dns.mx("acme-store.com", 10, "mx.acme-store.com");
        dns.a("mx.acme-store.com", v4(6));
        Self {
            ca,
            dns,
            port,
            mx,
            rogue,
            https,
            _shop: shop,
        }
    }

    /// A policy with id `id`, mode `mode` and one `mx` line.
    fn publish(&self, id: &str, mode: &str, mx: &str) {
        self.dns
            .replace_txt("_mta-sts.secure.test", &format!("v=STSv1; id={id}"));
        self.https.serve(
            POLICY_PATH,
            "text/plain",
            &format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n"),
        );
    }

    async fn relay(&self) -> Relay {
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), &self.ca.cert_pem).unwrap();
        let (_, ca_path) = ca_file.keep().unwrap();
        let mut relay = Relay::configured(
            None,
            &format!(
                "transport = \"mx\"\nport = {}\nnameservers = [\"{}\"]\nmta_sts_port = {}\n\
                 tls_ca_file = \"{}\"",
                self.port,
                self.dns.addr,
                self.https.addr.port(),
                ca_path.display()
            ),
        );
        relay.create_alias("acme", ORDER, "customer", BUYER);
        relay.start().await;
        relay
    }
}

async fn send(relay: &Relay, subject: &str) {
    let alias = relay.create_alias("acme", ORDER, "customer", BUYER);
    let message = format!(
        "From: Shop <{SHOP}>\r\nTo: {alias}\r\nSubject: {subject}\r\n\r\nYour order shipped.\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    let reply = c.send_mail(SHOP, &[&alias], &message).await;
    assert!(reply.text.starts_with("2.0.0"), "{}", reply.text);
}

fn deliveries(relay: &Relay) -> Vec<Value> {
    relay.timeline(ORDER)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["deliveries"].as_array().unwrap().clone())
        .collect()
}

async fn settled(relay: &Relay, n: usize) -> Vec<Value> {
    let done = || {
        let d = deliveries(relay);
        d.len() == n && d.iter().all(|d| d["state"] != "queued")
    };
    assert!(
        wait_until(Duration::from_secs(15), done).await,
        "{:?}",
        deliveries(relay)
    );
    deliveries(relay)
}

#[tokio::test]
async fn enforce_delivers_only_to_named_hosts_over_verified_tls() {
    let world = World::start(&["mx.secure.test"]).await;
    // Every lookup reaches the DNS server: no answer is cached.
    world.dns.set_ttl(0);
    world.publish("20261206a", "enforce", "*.secure.test");
    let relay = world.relay().await;

    send(&relay, "one").await;
    let d = settled(&relay, 1).await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    assert_eq!(world.mx.received().len(), 1);
    assert!(world.mx.received()[0].tls, "over TLS");
    // rogue.secure.test is preferred and matches `*.secure.test`, but
    // offers no STARTTLS: enforce moves on to the next MX.
    assert!(world.rogue.received().is_empty());

    // A second message: the cached policy, no second fetch.
    send(&relay, "two").await;
    settled(&relay, 2).await;
    assert_eq!(world.https.requests(), 1, "the policy is cached");

    // The id changes: the policy is fetched again.
    world.publish("20261206b", "enforce", "*.secure.test");
    send(&relay, "three").await;
    settled(&relay, 3).await;
    assert_eq!(world.https.requests(), 2, "a new id, a new fetch");
}

#[tokio::test]
async fn enforce_skips_hosts_the_policy_does_not_name_and_needs_tls() {
    let world = World::start(&["mx.secure.test"]).await;
    world.publish("only-mx", "enforce", "mx.secure.test");
    let relay = world.relay().await;
    send(&relay, "named").await;
    let d = settled(&relay, 1).await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    assert!(
        world.rogue.received().is_empty(),
        "the unnamed MX got nothing"
    );
    assert!(world.mx.received()[0].tls);
    let log = relay.log();
    assert!(log.contains("MTA-STS policy not met"), "reported");
    assert!(
        !log.contains("secure.test"),
        "logs name hosts by address: {log}"
    );
}

#[tokio::test]
async fn enforce_retries_when_the_certificate_does_not_verify() {
    // The MX shows a certificate for another name.
    let world = World::start(&["other.example"]).await;
    world.publish("bad-cert", "enforce", "mx.secure.test");
    let relay = world.relay().await;
    send(&relay, "refused").await;
    let d = settled(&relay, 1).await;
    assert_eq!(d[0]["state"], "retrying", "{d:?}");
    let reply = d[0]["last_reply"].as_str().unwrap();
    assert!(reply.contains("4.7."), "{reply}");
    assert!(!reply.contains("secure.test"), "{reply}");
    assert!(world.mx.received().is_empty() && world.rogue.received().is_empty());
}

#[tokio::test]
async fn testing_delivers_and_reports() {
    let world = World::start(&["other.example"]).await;
    world.publish("testing", "testing", "mx.secure.test");
    let relay = world.relay().await;
    send(&relay, "tested").await;
    let d = settled(&relay, 1).await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    let log = relay.log();
    assert!(
        log.contains("MTA-STS policy not met") && log.contains("testing"),
        "{log}"
    );
    let metrics = common::http::metric(
        relay.api,
        "ct_relay_mta_sts_failures_total{mode=\"testing\"}",
    )
    .await;
    assert!(metrics.unwrap_or(0.0) >= 1.0);
}

#[tokio::test]
async fn no_policy_or_an_unfetchable_one_changes_nothing() {
    // A TXT record, but the policy host serves HTML: no policy.
    let world = World::start(&["other.example"]).await;
    world.dns.txt("_mta-sts.secure.test", "v=STSv1; id=broken");
    world
        .https
        .serve(POLICY_PATH, "text/html", "<html>hello</html>");
    let relay = world.relay().await;
    send(&relay, "as before").await;
    let d = settled(&relay, 1).await;
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    // A failed fetch is not tried again for every delivery.
    send(&relay, "and again").await;
    settled(&relay, 2).await;
    assert_eq!(world.https.requests(), 1);
}
