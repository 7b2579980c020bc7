//! Mail to hard and soft aliases arrives at the real address, masked.

mod common;

use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink, SmtpClient};

const CUSTOMER: &str = "JohnDoe@Example.COM";
const SHOP: &str = "sac@acme-store.com";

fn shop_message(to_alias: &str) -> String {
    format!(
        "From: \"ACME Store\" <{SHOP}>\r\n\
         To: John <{to_alias}>\r\n\
         Cc: johndoe@example.com\r\n\
         Reply-To: {SHOP}\r\n\
         Subject: Order 1001-01 shipped\r\n\
         Message-ID: <m1@acme-store.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Olá John,\r\n\
         .leading dot line stays\r\n\
         your order is on its way.\r\n"
    )
}

/// Everything after the blank line, exactly as sent.
fn body_of(message: &str) -> &[u8] {
    let pos = message.find("\r\n\r\n").unwrap();
    &message.as_bytes()[pos + 4..]
}

async fn hard_alias_delivers_to_the_real_address_with_sender_masked(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let customer = relay.create_alias("acme", "1001-01", "customer", CUSTOMER);
    let shop = relay.create_alias("acme", "1001-01", "store", SHOP);
    assert_eq!(
        customer.len(),
        "f44789d54cb7909fb48a75629fbe7cfa@ct.test".len()
    );
    relay.start().await;

    let message = shop_message(&customer);
    let mut c = SmtpClient::ready(relay.smtp).await;
    let r = c
        .send_mail("bounces@acme-store.com", &[&customer], &message)
        .await;
    assert_eq!(r.status(), "250 2.0.0", "{r:?}");
    assert!(r.text.starts_with("2.0.0 Ok: queued as "));
    c.cmd("QUIT").await;

    assert!(
        wait_until(Duration::from_secs(15), || sink.received().len() == 1).await,
        "{}",
        relay.log()
    );
    let got = &sink.received()[0];
    assert_eq!(got.rcpt_to, vec![CUSTOMER.to_string()]);
    assert!(
        got.mail_from.ends_with("@ct.test"),
        "envelope sender {}",
        got.mail_from
    );
    let headers = got.headers();
    assert!(
        headers.contains(&format!("From: ACME Store <{shop}>")),
        "{headers}"
    );
    assert!(headers.contains(&format!("Reply-To: {shop}")), "{headers}");
    assert!(headers.contains(&format!("Cc: {customer}")), "{headers}");
    let lower = headers.to_lowercase();
    for real in [SHOP, "johndoe@example.com", "bounces@acme-store.com"] {
        assert!(!lower.contains(real), "{real} leaked in:\n{headers}");
    }
    assert!(
        headers.starts_with("Received: from client.test"),
        "{headers}"
    );
    assert_eq!(got.body(), body_of(&message), "body must be byte-identical");

    let timeline = relay.timeline("1001-01");
    let entry = &timeline["entries"][0];
    assert_eq!(entry["from"]["email_alias"], shop.as_str());
    assert_eq!(entry["from"]["role"], "store");
    assert_eq!(entry["to"][0]["email_alias"], customer.as_str());
    assert_eq!(entry["subject"], "Order 1001-01 shipped");
    assert!(entry["first_words"]
        .as_str()
        .unwrap()
        .starts_with("Olá John,"));
    assert!(
        wait_until(Duration::from_secs(5), || relay.delivery_states("1001-01")
            == ["delivered"])
        .await
    );
    let text = relay.timeline("1001-01").to_string().to_lowercase();
    assert!(
        !text.contains(SHOP) && !text.contains("johndoe@example.com"),
        "{text}"
    );
}

async fn soft_alias_delivers_and_reply_comes_back_through_the_relay(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.cli(&["store", "set-mode", "shop2", "soft"]);
    let maria = relay.create_alias(
        "shop2",
        "v502556llux-01",
        "customer",
        "maria.silva@gmail.com",
    );
    let store = relay.create_alias("shop2", "v502556llux-01", "store", "loja@shop2.example");
    // The reference's test vector for this participant.
    assert_eq!(maria, "maria.silva@gmail.com-a227fbbab7cad.ct.test");
    relay.start().await;

    // The buyer writes to the shop's alias.
    let message = format!(
        "From: Maria Silva <maria.silva@gmail.com>\r\nTo: {store}\r\nSubject: =?UTF-8?Q?D=C3=BAvida?=\r\n\r\nQuando chega?\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(
        c.send_mail("maria.silva@gmail.com", &[&store], &message)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    let got = &sink.received()[0];
    assert_eq!(got.rcpt_to, vec!["loja@shop2.example".to_string()]);
    let headers = got.headers();
    assert!(
        headers.contains(&format!("From: Maria Silva <{maria}>")),
        "{headers}"
    );
    // The soft alias shows who it is; outside the aliases no real address remains.
    let without_aliases = headers.replace(&maria, "").replace(&store, "");
    assert!(
        !without_aliases.contains("maria.silva@gmail.com"),
        "{headers}"
    );
    assert!(!without_aliases.contains("loja@shop2.example"), "{headers}");

    // The shop answers to the alias it saw: it reaches Maria.
    let reply = format!(
        "From: loja@shop2.example\r\nTo: {maria}\r\nSubject: Re: Duvida\r\n\r\nAmanha.\r\n"
    );
    assert_eq!(
        c.send_mail("loja@shop2.example", &[&maria], &reply)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    let back = &sink.received()[1];
    assert_eq!(back.rcpt_to, vec!["maria.silva@gmail.com".to_string()]);
    assert!(
        back.headers().contains(&format!("From: {store}")),
        "{}",
        back.headers()
    );
    assert_eq!(
        relay.timeline("v502556llux-01")["entries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn unknown_sender_becomes_a_contact_whose_alias_works(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let customer = relay.create_alias("acme", "2002-01", "customer", "buyer@example.net");
    relay.start().await;

    let carrier =
        "From: Carrier <tracking@carrier.example>\r\nSubject: Out for delivery\r\n\r\nToday.\r\n";
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(
        c.send_mail("tracking@carrier.example", &[&customer], carrier)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    let headers = sink.received()[0].headers();
    let from = headers
        .lines()
        .find(|l| l.starts_with("From: "))
        .unwrap()
        .to_string();
    assert!(!from.contains("carrier.example"), "{from}");
    let contact = from
        .trim_start_matches("From: Carrier <")
        .trim_end_matches('>')
        .to_string();
    let entry = &relay.timeline("2002-01")["entries"][0];
    assert_eq!(entry["from"]["role"], "contact");
    assert_eq!(entry["from"]["email_alias"], contact.as_str());

    // The buyer replies to the contact alias: it reaches the carrier.
    let reply =
        format!("From: buyer@example.net\r\nTo: {contact}\r\nSubject: Thanks\r\n\r\nOk.\r\n");
    assert_eq!(
        c.send_mail("buyer@example.net", &[&contact], &reply)
            .await
            .code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    let back = &sink.received()[1];
    assert_eq!(back.rcpt_to, vec!["tracking@carrier.example".to_string()]);
    assert!(
        back.headers().contains(&format!("From: {customer}")),
        "{}",
        back.headers()
    );
}

async fn one_transaction_for_two_orders_gives_one_entry_in_each(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let a = relay.create_alias("acme", "3003-01", "customer", "a@example.net");
    let b = relay.create_alias("acme", "3003-02", "customer", "b@example.net");
    relay.start().await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    let msg = "From: sac@acme-store.com\r\nSubject: Two orders\r\n\r\nHi.\r\n";
    assert_eq!(
        c.send_mail("sac@acme-store.com", &[&a, &b], msg).await.code,
        250
    );
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 2).await);
    let mut rcpts: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.rcpt_to[0].clone())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["a@example.net", "b@example.net"]);
    for order in ["3003-01", "3003-02"] {
        assert_eq!(
            relay.timeline(order)["entries"].as_array().unwrap().len(),
            1,
            "{order}"
        );
    }
    // Each order got its own contact alias for the shop.
    let from_a = relay.timeline("3003-01")["entries"][0]["from"]["email_alias"].clone();
    let from_b = relay.timeline("3003-02")["entries"][0]["from"]["email_alias"].clone();
    assert_ne!(from_a, from_b);
}

async fn attachments_pass_unchanged_and_are_named_on_the_timeline(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let customer = relay.create_alias("acme", "3004-01", "customer", CUSTOMER);
    relay.create_alias("acme", "3004-01", "store", SHOP);
    relay.start().await;
    let message = format!(
        "From: {SHOP}\r\nTo: {customer}\r\nSubject: Invoice\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Segue a nota fiscal.\r\n\
         --b1\r\nContent-Type: application/pdf; name=\"nota.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"nota.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n--b1--\r\n"
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail(SHOP, &[&customer], &message).await.code, 250);
    assert!(wait_until(Duration::from_secs(15), || sink.received().len() == 1).await);
    assert_eq!(sink.received()[0].body(), body_of(&message));
    let entry = &relay.timeline("3004-01")["entries"][0];
    assert_eq!(entry["has_attachment"], true);
    assert_eq!(entry["attachment_names"][0], "nota.pdf");
    assert_eq!(entry["first_words"], "Segue a nota fiscal.");
}

on_both_backends!(
    hard_alias_delivers_to_the_real_address_with_sender_masked,
    soft_alias_delivers_and_reply_comes_back_through_the_relay,
    unknown_sender_becomes_a_contact_whose_alias_works,
    one_transaction_for_two_orders_gives_one_entry_in_each,
    attachments_pass_unchanged_and_are_named_on_the_timeline,
);
