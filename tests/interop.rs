//! Interoperability with a real Postfix and real clients (swaks, Python's
//! smtplib). Postfix is the MX in front of ct-relay (it relays the alias
//! domain to it) and ct-relay's smarthost (everything else goes through it
//! to a recording sink):
//!
//! client --> Postfix --> ct-relay --> Postfix --> sink
//!
//! Both hops between Postfix and ct-relay go over STARTTLS: Postfix's client
//! opportunistically, ct-relay's with `delivery.tls = "required"` and the
//! Postfix certificate trusted.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::postfix::{Postfix, Routes};
use common::{free_port, wait_until, Backend, Relay, Sink, SinkReply};

const STORE: &str = "acme";
const SHOP: &str = "shop@example.org";
const BUYER: &str = "buyer@example.net";

struct Setup {
    sink: Sink,
    postfix: Postfix,
    relay: Relay,
}

/// Write a self-signed certificate for `name` as `<file>.crt`/`<file>.key`
/// in `dir`; returns the PEM pair.
fn certificate(dir: &Path, file: &str, name: &str) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let pair = (made.cert.pem(), made.signing_key.serialize_pem());
    std::fs::write(dir.join(format!("{file}.crt")), &pair.0).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), &pair.1).unwrap();
    pair
}

/// Sink, Postfix and ct-relay wired as in the module comment. None when
/// Postfix cannot run here (see `Postfix::unavailable`).
async fn start(backend: Backend) -> Option<Setup> {
    if Postfix::unavailable().is_some() {
        return None;
    }
    let sink = Sink::start().await;
    let placeholder = free_port();
    let mut relay = Relay::with_smarthost(backend, placeholder);
    let dir = relay.dir.path().to_path_buf();
    certificate(&dir, "relay", "relay.test");
    // ct-relay reaches Postfix as 127.0.0.1 and checks its certificate.
    let postfix_pair = certificate(&dir, "postfix", "127.0.0.1");
    let postfix = Postfix::start(&Routes {
        alias_domain: "ct.test",
        relay: relay.smtp,
        sink: sink.addr,
        tls: Some(postfix_pair),
    })
    .await;
    relay.edit_config(&placeholder.to_string(), &postfix.smtp.to_string());
    relay.edit_config(
        "[smtp]\n",
        &format!(
            "[smtp]\ntls_cert_file = \"{0}/relay.crt\"\ntls_key_file = \"{0}/relay.key\"\n",
            dir.display()
        ),
    );
    relay.edit_config(
        "[delivery]\n",
        &format!(
            "[delivery]\ntls = \"required\"\ntls_ca_file = \"{}/postfix.crt\"\n",
            dir.display()
        ),
    );
    relay.start().await;
    Some(Setup {
        sink,
        postfix,
        relay,
    })
}

/// Run a client program to completion; panics with its output on failure.
async fn run(mut command: Command) -> String {
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "client failed:\n{text}");
    text
}

fn swaks(server: SocketAddr, from: &str, to: &str, subject: &str, tls: bool) -> Command {
    let mut cmd = Command::new("swaks");
    cmd.args(["--server", &server.to_string(), "--helo", "client.test"])
        .args(["--from", from, "--to", to])
        .args(["--header", &format!("Subject: {subject}")])
        .args(["--header", &format!("From: Shop <{from}>")])
        .args(["--body", "Your order has shipped.\n"]);
    if tls {
        cmd.arg("--tls");
    }
    cmd
}

/// Python's smtplib: STARTTLS when offered, then one message.
fn smtplib(server: SocketAddr, from: &str, to: &str, subject: &str) -> Command {
    let script = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, sender, rcpt, subject = sys.argv[1:]
msg = EmailMessage()
msg["From"] = "Buyer <%s>" % sender
msg["To"] = rcpt
msg["Subject"] = subject
msg.set_content("Thanks, when does it arrive?\n")
with smtplib.SMTP(host, int(port), local_hostname="client.test", timeout=20) as s:
    s.ehlo()
    if s.has_extn("starttls"):
        s.starttls(context=ssl._create_unverified_context())
        s.ehlo()
    refused = s.send_message(msg, from_addr=sender, to_addrs=[rcpt])
    print("refused:", refused)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script])
        .arg(server.ip().to_string())
        .arg(server.port().to_string())
        .args([from, to, subject]);
    cmd
}

/// Wait until the sink holds a message for `rcpt` whose text has `needle`.
async fn received_for(setup: &Setup, rcpt: &str, needle: &str) -> common::Received {
    let found = || {
        setup
            .sink
            .received()
            .into_iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpt) && m.text().contains(needle))
    };
    let arrived = wait_until(Duration::from_secs(30), || found().is_some()).await;
    assert!(
        arrived,
        "nothing for {rcpt} with {needle:?}; sink has {:?}\nPostfix log:\n{}\nrelay log:\n{}",
        setup
            .sink
            .received()
            .iter()
            .map(|m| (&m.mail_from, &m.rcpt_to))
            .collect::<Vec<_>>(),
        setup.postfix.log(),
        setup.relay.log()
    );
    found().unwrap()
}

async fn postfix_in_front_and_behind_with_swaks_and_smtplib(backend: Backend) {
    let Some(setup) = start(backend).await else {
        return;
    };
    let relay = &setup.relay;
    let shop_alias = relay.create_alias(STORE, "7001-01", "store", SHOP);
    let buyer_alias = relay.create_alias(STORE, "7001-01", "customer", BUYER);

    // The shop, with swaks, through Postfix as MX.
    let said = run(swaks(
        setup.postfix.smtp,
        SHOP,
        &buyer_alias,
        "Shipped",
        false,
    ))
    .await;
    assert!(said.contains("250 2.0.0 Ok: queued"), "{said}");
    let to_buyer = received_for(&setup, BUYER, "Subject: Shipped").await;
    let text = to_buyer.text();
    assert!(!text.contains(SHOP), "shop's address leaked:\n{text}");
    assert!(
        text.contains(&format!("From: Shop <{shop_alias}>")),
        "{text}"
    );
    assert!(
        to_buyer.mail_from.starts_with("b-") && to_buyer.mail_from.ends_with("@ct.test"),
        "envelope sender {}",
        to_buyer.mail_from
    );
    // Postfix -> ct-relay went over TLS: ct-relay's trace says ESMTPS.
    assert!(
        text.contains("by relay.test (ct-relay) with ESMTPS"),
        "{text}"
    );
    // ct-relay -> Postfix went over TLS, certificate verified (required).
    let postfix_trace = text
        .split("Received: ")
        .find(|r| r.starts_with("from relay.test"))
        .unwrap_or_else(|| panic!("no Postfix trace of the ct-relay hop:\n{text}"));
    assert!(
        postfix_trace.contains("(using TLSv1.") && postfix_trace.contains("with ESMTPS"),
        "{postfix_trace}"
    );
    let body = String::from_utf8_lossy(&to_buyer.body()).into_owned();
    assert!(body.starts_with("Your order has shipped.\r\n"), "{body:?}");

    // The buyer answers with Python's smtplib, to the shop's alias.
    let said = run(smtplib(setup.postfix.smtp, BUYER, &shop_alias, "When?")).await;
    assert!(said.contains("refused: {}"), "{said}");
    let to_shop = received_for(&setup, SHOP, "Subject: When?").await;
    let text = to_shop.text();
    assert!(!text.contains(BUYER), "buyer's address leaked:\n{text}");
    assert!(text.contains(&buyer_alias), "{text}");

    // Both are on the order's timeline, delivered.
    let delivered = || relay.delivery_states("7001-01") == ["delivered", "delivered"];
    assert!(
        wait_until(Duration::from_secs(10), delivered).await,
        "{}",
        relay.timeline("7001-01")
    );
}

async fn swaks_straight_to_ct_relay_over_starttls(backend: Backend) {
    let Some(setup) = start(backend).await else {
        return;
    };
    let relay = &setup.relay;
    let buyer_alias = relay.create_alias(STORE, "7002-01", "customer", BUYER);
    let said = run(swaks(relay.smtp, SHOP, &buyer_alias, "Direct", true)).await;
    assert!(said.contains("<-  220 2.0.0"), "STARTTLS answered:\n{said}");
    assert!(said.contains("<~  250 2.0.0 Ok: queued as"), "{said}");
    let to_buyer = received_for(&setup, BUYER, "Subject: Direct").await;
    // The shop has no alias on this order: its address is hidden all the same.
    assert!(!to_buyer.text().contains(SHOP), "{}", to_buyer.text());

    // A recipient ct-relay does not know is refused with the reference's reply.
    let forged = "0123456789abcdef0123456789abcdef@ct.test";
    let mut cmd = swaks(relay.smtp, SHOP, forged, "Forged", true);
    cmd.args(["--quit-after", "RCPT"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("<~* 550 5.1.1"), "{said}");
}

/// Postfix takes mail for a forged alias (it knows nothing of aliases),
/// ct-relay refuses it at RCPT, and Postfix returns it to the sender: the
/// reply reaches the sender's bounce intact.
async fn postfix_returns_what_ct_relay_refuses(backend: Backend) {
    let Some(setup) = start(backend).await else {
        return;
    };
    let forged = "0123456789abcdef0123456789abcdef@ct.test";
    run(swaks(setup.postfix.smtp, SHOP, forged, "Forged", false)).await;
    let bounce = received_for(&setup, SHOP, "Final-Recipient: rfc822; ").await;
    let text = bounce.text();
    assert_eq!(bounce.mail_from, "", "bounces come from the null sender");
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("no such alias"), "{text}");
}

/// The buyer's mailbox refuses the message after Postfix (ct-relay's
/// smarthost) took it: Postfix sends its bounce to ct-relay's signed bounce
/// address, ct-relay marks the delivery failed and tells the shop, through
/// Postfix, without the buyer's address.
async fn a_postfix_bounce_comes_back_to_ct_relay(backend: Backend) {
    let Some(setup) = start(backend).await else {
        return;
    };
    let relay = &setup.relay;
    let shop_alias = relay.create_alias(STORE, "7003-01", "store", SHOP);
    let buyer_alias = relay.create_alias(STORE, "7003-01", "customer", BUYER);
    setup.sink.script(&[SinkReply::Reply(
        "550 5.1.1 <buyer@example.net>: mailbox unavailable".into(),
    )]);
    run(swaks(relay.smtp, SHOP, &buyer_alias, "Returned", true)).await;

    let failed = || relay.delivery_states("7003-01") == ["failed"];
    assert!(
        wait_until(Duration::from_secs(30), failed).await,
        "{}\nPostfix log:\n{}",
        relay.timeline("7003-01"),
        setup.postfix.log()
    );
    let d = relay.timeline("7003-01")["entries"][0]["deliveries"][0].clone();
    let last = d["last_reply"].as_str().unwrap();
    assert!(last.starts_with("bounced: 5.1.1"), "{last}");
    assert!(!last.contains(BUYER), "{last}");

    let notice = received_for(&setup, SHOP, "Final-Recipient: rfc822; ").await;
    let text = notice.text();
    assert!(text.contains(&buyer_alias), "{text}");
    assert!(!text.contains(BUYER), "buyer's address leaked:\n{text}");
    assert!(text.contains(&format!("To: {shop_alias}")) || text.contains(&shop_alias));
}

on_both_backends!(
    postfix_in_front_and_behind_with_swaks_and_smtplib,
    swaks_straight_to_ct_relay_over_starttls,
    postfix_returns_what_ct_relay_refuses,
    a_postfix_bounce_comes_back_to_ct_relay,
);
