//! Direct delivery (`delivery.transport = "mx"`) against the test DNS server
//! and SMTP sinks on loopback addresses (127.0.0.2, 127.0.0.3, …, ::1), all
//! on one high port (`delivery.port`): MX preference and fallback, implicit
//! MX, CNAME'd hosts, IPv6, null MX, NXDOMAIN and SERVFAIL; timelines and
//! the relay's notices never name the buyer's address or domain.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::dns::DnsServer;
use common::{wait_until, Backend, Relay, Sink, SinkReply, SmtpClient};
use serde_json::Value;

const SHOP: &str = "sac@acme-store.com";
/// Where the shop's mail (the relay's notices) goes.
const SHOP_MX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);

/// A port free on every address given.
fn common_port(ips: &[IpAddr]) -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind((ips[0], 0)).unwrap();
        let port = first.local_addr().unwrap().port();
        let rest: Result<Vec<_>, _> = ips[1..]
            .iter()
            .map(|ip| std::net::TcpListener::bind((*ip, port)))
            .collect();
        if rest.is_ok() {
            return port;
        }
    }
    panic!("no port free on {ips:?}");
}

/// The test Internet: a DNS server, and a sink per address on one port.
struct Internet {
    dns: DnsServer,
    port: u16,
    sinks: Vec<(IpAddr, Sink)>,
}

impl Internet {
    /// Sinks on `ips` (and the shop's MX), with acme-store.com's MX set.
    async fn start(ips: &[IpAddr]) -> Self {
        let mut all = ips.to_vec();
        all.push(IpAddr::V4(SHOP_MX));
        let port = common_port(&all);
        let mut sinks = Vec::new();
        for ip in all {
            sinks.push((ip, Sink::start_on(SocketAddr::new(ip, port)).await));
        }
        let dns = DnsServer::start().await;
        dns.mx("acme-store.com", 10, "mx.acme-store.com");
        dns.a("mx.acme-store.com", SHOP_MX);
        Self { dns, port, sinks }
    }

    fn sink(&self, ip: impl Into<IpAddr>) -> &Sink {
        let ip = ip.into();
        &self.sinks.iter().find(|(a, _)| *a == ip).unwrap().1
    }

    /// A relay delivering straight to MX hosts, asking our DNS server.
    fn relay(&self) -> Relay {
        self.relay_on(Backend::Sqlite)
    }

    fn relay_on(&self, backend: Backend) -> Relay {
        Relay::on(
            backend,
            &format!(
                "transport = \"mx\"\nport = {}\nnameservers = [\"{}\"]",
                self.port, self.dns.addr
            ),
        )
    }
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

async fn send(relay: &Relay, alias: &str, subject: &str) {
    let message = format!(
        "From: Shop <{SHOP}>\r\nTo: {alias}\r\nSubject: {subject}\r\n\r\nYour order shipped.\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    let reply = c.send_mail(SHOP, &[alias], &message).await;
    assert!(reply.text.starts_with("2.0.0"), "{}", reply.text);
}

/// The only delivery of `order`.
fn delivery(relay: &Relay, order: &str) -> Value {
    let t = relay.timeline(order);
    let deliveries: Vec<Value> = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["deliveries"].as_array().unwrap().clone())
        .collect();
    assert_eq!(deliveries.len(), 1, "{t}");
    deliveries[0].clone()
}

async fn wait_state(relay: &Relay, order: &str, state: &str) -> Value {
    let reached = wait_until(Duration::from_secs(20), || {
        delivery(relay, order)["state"] == state
    })
    .await;
    let d = delivery(relay, order);
    assert!(reached, "{order}: expected {state}, got {d}");
    d
}

/// Give a buyer at each of `domains` an order `O-<domain>`, start the
/// relay, write to each, and wait until each delivery is done; the
/// deliveries.
async fn deliver_to_each(relay: &mut Relay, domains: &[&str]) -> Vec<Value> {
    let aliases: Vec<String> = domains
        .iter()
        .map(|d| relay.create_alias("acme", &format!("O-{d}"), "customer", &format!("buyer@{d}")))
        .collect();
    relay.start().await;
    for (alias, domain) in aliases.iter().zip(domains) {
        send(relay, alias, domain).await;
    }
    let mut done = Vec::new();
    for domain in domains {
        done.push(wait_state(relay, &format!("O-{domain}"), "delivered").await);
    }
    done
}

fn recipients(sink: &Sink) -> Vec<String> {
    sink.received()
        .iter()
        .flat_map(|r| r.rcpt_to.clone())
        .collect()
}

#[tokio::test]
async fn mx_preference_and_fallback_on_refusal_4xx_and_timeout() {
    let net = Internet::start(&[v4(2), v4(3), v4(5)]).await;
    let dns = &net.dns;
    // Nothing listens on .4; .6 takes connections and never greets.
    let silent = std::net::TcpListener::bind((v4(6), net.port)).unwrap();
    for (domain, first) in [
        ("pref.test", 2),
        ("refused.test", 4),
        ("busy.test", 5),
        ("silent.test", 6),
    ] {
        dns.mx(domain, 20, &format!("backup.{domain}"));
        dns.a(&format!("backup.{domain}"), Ipv4Addr::new(127, 0, 0, 3));
        dns.mx(domain, 10, &format!("primary.{domain}"));
        dns.a(
            &format!("primary.{domain}"),
            Ipv4Addr::new(127, 0, 0, first),
        );
    }
    net.sink(v4(5))
        .script(&[SinkReply::Reply("451 4.3.2 try again later".into())]);
    let mut relay = net.relay();
    let domains = ["pref.test", "refused.test", "busy.test", "silent.test"];
    for d in deliver_to_each(&mut relay, &domains).await {
        assert_eq!(d["attempts"], 1, "fallback happens within one attempt: {d}");
    }
    assert_eq!(recipients(net.sink(v4(2))), ["buyer@pref.test"]);
    let mut backup = recipients(net.sink(v4(3)));
    backup.sort();
    assert_eq!(
        backup,
        ["buyer@busy.test", "buyer@refused.test", "buyer@silent.test"]
    );
    assert_eq!(
        net.sink(v4(5)).attempts(),
        1,
        "the 4xx host was tried first"
    );
    drop(silent);
}

#[tokio::test]
async fn implicit_mx_cname_hosts_and_ipv6() {
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let net = Internet::start(&[v4(2), v4(3), v6]).await;
    let dns = &net.dns;
    // No MX: the domain's own address.
    dns.a("implicit.test", Ipv4Addr::new(127, 0, 0, 2));
    dns.txt("implicit.test", "v=spf1 -all");
    // The MX host is a CNAME.
    dns.mx("cname.test", 10, "alias.cname.test");
    dns.cname("alias.cname.test", "real.cname.test");
    dns.a("real.cname.test", Ipv4Addr::new(127, 0, 0, 3));
    // An IPv6-only MX host.
    dns.mx("v6.test", 10, "mx.v6.test");
    dns.aaaa("mx.v6.test", Ipv6Addr::LOCALHOST);
    let mut relay = net.relay();
    deliver_to_each(&mut relay, &["implicit.test", "cname.test", "v6.test"]).await;
    assert_eq!(recipients(net.sink(v4(2))), ["buyer@implicit.test"]);
    assert_eq!(recipients(net.sink(v4(3))), ["buyer@cname.test"]);
    assert_eq!(recipients(net.sink(v6)), ["buyer@v6.test"]);
}

#[tokio::test]
async fn null_mx_and_nxdomain_fail_at_once_servfail_is_retried() {
    let net = Internet::start(&[v4(2)]).await;
    let dns = &net.dns;
    dns.mx("null.test", 0, ".");
    dns.fail("flaky.test");
    // nowhere.test is not in the zone: NXDOMAIN.
    let mut relay = net.relay();
    let null = relay.create_alias("acme", "O-null", "customer", "buyer@null.test");
    let nowhere = relay.create_alias("acme", "O-nowhere", "customer", "buyer@nowhere.test");
    let flaky = relay.create_alias("acme", "O-flaky", "customer", "buyer@flaky.test");
    relay.start().await;
    send(&relay, &null, "null").await;
    send(&relay, &nowhere, "nowhere").await;
    send(&relay, &flaky, "flaky").await;

    let d = wait_state(&relay, "O-null", "failed").await;
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(
        d["last_reply"].as_str().unwrap().starts_with("556 5.1.10"),
        "{d}"
    );
    let d = wait_state(&relay, "O-nowhere", "failed").await;
    assert_eq!(d["attempts"], 1, "{d}");
    assert!(
        d["last_reply"].as_str().unwrap().starts_with("550 5.1.2"),
        "{d}"
    );
    // SERVFAIL: tried again and again, never failed.
    assert!(
        wait_until(Duration::from_secs(20), || {
            delivery(&relay, "O-flaky")["attempts"].as_u64().unwrap() >= 3
        })
        .await
    );
    let d = delivery(&relay, "O-flaky");
    assert_eq!(d["state"], "retrying", "{d}");
    assert!(
        d["last_reply"].as_str().unwrap().starts_with("451 4.4.3"),
        "{d}"
    );

    // The shop hears about the two failures, from its buyer's alias only.
    let shop = net.sink(SHOP_MX);
    assert!(wait_until(Duration::from_secs(20), || shop.received().len() == 2).await);
    let mut notices = String::new();
    for n in shop.received() {
        assert_eq!(
            (n.mail_from.as_str(), n.rcpt_to.clone()),
            ("", vec![SHOP.into()])
        );
        notices.push_str(&n.text());
    }
    assert!(
        notices.contains(&null) && notices.contains(&nowhere),
        "{notices}"
    );
    assert!(net.sink(v4(2)).received().is_empty());
    let timelines = ["O-null", "O-nowhere", "O-flaky"]
        .map(|o| relay.timeline(o).to_string())
        .concat();
    for leak in ["buyer@", "null.test", "nowhere.test", "flaky.test"] {
        assert!(!notices.contains(leak), "notice names {leak}: {notices}");
        assert!(
            !timelines.contains(leak),
            "timeline names {leak}: {timelines}"
        );
    }
    // The log names a failing destination (operators need to know which
    // domain is down), never an address.
    let log = relay.log();
    assert!(!log.contains("buyer@"), "the log names an address");
}

async fn each_destination_has_its_own_share_of_the_workers(backend: Backend) {
    let net = Internet::start(&[v4(2), v4(3)]).await;
    let dns = &net.dns;
    dns.mx("slow.test", 10, "mx.slow.test");
    dns.a("mx.slow.test", Ipv4Addr::new(127, 0, 0, 2));
    dns.mx("fast.test", 10, "mx.fast.test");
    dns.a("mx.fast.test", Ipv4Addr::new(127, 0, 0, 3));
    let slow = net.sink(v4(2));
    slow.set_delay(Duration::from_millis(700));
    let mut relay = net.relay_on(backend);
    relay.without_rate_limits();
    relay.append_config("\n[delivery.destinations.\"slow.test\"]\nconcurrency = 2\n");
    let to_slow = relay.create_alias("acme", "O-slow", "customer", "buyer@slow.test");
    let to_fast = relay.create_alias("acme", "O-fast", "customer", "buyer@fast.test");
    relay.start().await;
    for n in 0..8 {
        send(&relay, &to_slow, &format!("slow {n}")).await;
    }
    for n in 0..4 {
        send(&relay, &to_fast, &format!("fast {n}")).await;
    }
    let fast = net.sink(v4(3));
    assert!(wait_until(Duration::from_secs(20), || fast.received().len() == 4).await);
    assert!(
        slow.received().len() < 8,
        "the fast destination waited for the slow one"
    );
    assert!(wait_until(Duration::from_secs(30), || slow.received().len() == 8).await);
    assert!(
        wait_until(Duration::from_secs(10), || relay
            .delivery_states("O-slow")
            .iter()
            .all(|s| s == "delivered"))
        .await
    );
    assert_eq!(slow.most_open(), 2, "slow.test has two attempts at once");
    let t = relay.timeline("O-slow");
    for e in t["entries"].as_array().unwrap() {
        for d in e["deliveries"].as_array().unwrap() {
            assert_eq!(d["attempts"], 1, "waiting is not an attempt: {d}");
        }
    }
}

on_both_backends!(each_destination_has_its_own_share_of_the_workers);

/// A smarthost relay whose retries wait a minute, so a delivery that had
/// to wait for one would not finish within the test.
async fn smarthost_relay(sink: &Sink) -> (Relay, String) {
    let mut relay = Relay::with_smarthost(Backend::Sqlite, sink.addr);
    relay.edit_config("retry_initial = \"200ms\"", "retry_initial = \"1m\"");
    relay.edit_config("retry_max = \"1s\"", "retry_max = \"1h\"");
    let alias = relay.create_alias("acme", "O-1", "customer", "buyer@example.com");
    relay.start().await;
    (relay, alias)
}

#[tokio::test]
async fn a_kept_connection_found_closed_is_replaced_at_once() {
    let sink = Sink::start().await;
    // Closes each connection right after answering its message, so the
    // connection the relay kept is dead when the next message comes.
    sink.close_after_each_message();
    let (relay, alias) = smarthost_relay(&sink).await;
    for n in 0..3 {
        send(&relay, &alias, &format!("message {n}")).await;
        assert!(
            wait_until(Duration::from_secs(10), || sink.received().len() == n + 1).await,
            "message {n} waited for a retry"
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || relay
            .delivery_states("O-1")
            .iter()
            .all(|s| s == "delivered"))
        .await
    );
    let t = relay.timeline("O-1");
    for e in t["entries"].as_array().unwrap() {
        for d in e["deliveries"].as_array().unwrap() {
            assert_eq!(
                d["attempts"], 1,
                "a closed kept connection is not an attempt: {d}"
            );
        }
    }
    assert_eq!(sink.connections(), 3, "one new connection per message");
}

#[tokio::test]
async fn a_message_larger_than_the_next_hop_takes_fails_at_once() {
    let sink = Sink::start().await;
    sink.set_size(2000);
    let (relay, alias) = smarthost_relay(&sink).await;
    let big = "x".repeat(76);
    let body: String = (0..40).map(|_| format!("{big}\r\n")).collect();
    let message = format!("From: Shop <{SHOP}>\r\nTo: {alias}\r\nSubject: big\r\n\r\n{body}");
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert!(c
        .send_mail(SHOP, &[&alias], &message)
        .await
        .text
        .starts_with("2.0.0"));
    let d = wait_state(&relay, "O-1", "failed").await;
    assert_eq!(d["attempts"], 1, "{d}");
    let reply = d["last_reply"].as_str().unwrap();
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    assert!(reply.contains("2000 bytes"), "{reply}");
    // The relay's notice reaches the shop (through the same next hop).
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let notice = sink.received()[0].text();
    assert!(
        notice.contains("5.3.4") && !notice.contains("buyer@example.com"),
        "{notice}"
    );
}
