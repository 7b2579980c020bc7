//! Bounces: every delivery leaves from a signed bounce address; a report sent
//! back to it fails the delivery and the original sender gets the relay's
//! own notice, which names the alias and never the real address. Forged and
//! stale bounce addresses are refused; nothing answers a null sender.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{wait_until, Backend, Relay, Sink, SinkReply, SmtpClient, TEST_KEY};
use ct_relay::alias::{AliasKey, Aliaser, Ttl};

const REAL: &str = "JohnDoe@Example.com";
const SHOP: &str = "sac@acme-store.com";
const ORDER: &str = "7001-01";

async fn start(backend: Backend) -> (Sink, Relay, String) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", ORDER, "customer", REAL);
    relay.start().await;
    (sink, relay, alias)
}

async fn send(relay: &Relay, from: &str, to: &str, message: &str) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.send_mail(from, &[to], message).await.text
}

fn message(to: &str) -> String {
    format!("From: Shop <{SHOP}>\r\nTo: {to}\r\nSubject: Your order\r\n\r\nIt shipped.\r\n")
}

/// A report as Postfix sends it, about `real`, to `bounce_address`.
fn report(bounce_address: &str, real: &str, action: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n\
         To: {bounce_address}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"R\"\r\n\
         \r\n\
         --R\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Your message to <{real}> could not be delivered.\r\n\
         --R\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.example.com\r\n\
         \r\n\
         Final-Recipient: rfc822; {real}\r\n\
         Action: {action}\r\n\
         Status: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 <{real}>: mailbox full\r\n\
         \r\n\
         --R--\r\n"
    )
}

/// Send a report with `action` about REAL to `bounce_address`, from the
/// null sender, as a receiving MTA would; it is taken (250).
async fn bounce(relay: &Relay, bounce_address: &str, action: &str) {
    let message = report(bounce_address, REAL, action);
    let reply = send(relay, "", bounce_address, &message).await;
    assert!(reply.starts_with("2.0.0"), "{reply}");
}

/// The shop writes to the alias; once delivered, the delivery's bounce address.
async fn deliver_one(sink: &Sink, relay: &Relay, alias: &str) -> String {
    let reply = send(relay, SHOP, alias, &message(alias)).await;
    assert!(reply.starts_with("2.0.0"), "{reply}");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    // The sink has the message before the relay has the sink's 250 on record.
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states(ORDER)
            == ["delivered"])
        .await,
        "the outcome was not recorded"
    );
    sink.received()[0].mail_from.clone()
}

fn delivery(relay: &Relay) -> serde_json::Value {
    relay.timeline(ORDER)["entries"][0]["deliveries"][0].clone()
}

async fn a_bounce_fails_the_delivery_and_tells_the_sender(backend: Backend) {
    let (sink, relay, alias) = start(backend).await;
    let bounce_address = deliver_one(&sink, &relay, &alias).await;
    assert!(
        bounce_address.starts_with("b-") && bounce_address.ends_with("@ct.test"),
        "{bounce_address}"
    );
    assert_eq!(delivery(&relay)["state"], "delivered");

    // Days later the receiving side bounces it, from the null sender.
    bounce(&relay, &bounce_address, "failed").await;
    let d = delivery(&relay);
    assert_eq!(d["state"], "failed");
    let last = d["last_reply"].as_str().unwrap();
    assert!(
        last.starts_with("bounced: 5.2.2") && last.contains(&alias),
        "{last}"
    );

    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    let notice = &sink.received()[1];
    assert_eq!(
        (notice.mail_from.as_str(), notice.rcpt_to.clone()),
        ("", vec![SHOP.to_string()])
    );
    let text = notice.text();
    assert!(
        text.contains(&format!("Final-Recipient: rfc822; {alias}")),
        "{text}"
    );
    assert!(
        text.contains("Action: failed") && text.contains("Status: 5.2.2"),
        "{text}"
    );
    for leak in [
        text.to_lowercase(),
        relay.timeline(ORDER).to_string().to_lowercase(),
        relay.log().to_lowercase(),
    ] {
        assert!(
            !leak.contains("johndoe@example.com"),
            "real address leaked: {leak}"
        );
    }

    // The same bounce again changes nothing and tells nobody twice.
    bounce(&relay, &bounce_address, "failed").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.received().len(), 2);
}

async fn forged_and_stale_bounce_addresses_are_refused(backend: Backend) {
    let (sink, relay, alias) = start(backend).await;
    let real_one = deliver_one(&sink, &relay, &alias).await;
    let (local, _) = real_one.split_once('@').unwrap();
    let last = local.chars().last().unwrap();
    let forged = format!(
        "{}{}@ct.test",
        &local[..local.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let aliaser = Aliaser::new(
        AliasKey::parse(TEST_KEY).unwrap(),
        "ct.test",
        Ttl::Months(2),
    );
    let delivery_id = local.split('-').nth(1).unwrap().to_ascii_uppercase();
    let stale = aliaser.bounce_address(&delivery_id, Utc::now() - chrono::Duration::days(40));
    let other_key = Aliaser::new(
        AliasKey::new(vec![9; 32]).unwrap(),
        "ct.test",
        Ttl::Months(2),
    );
    let wrong_key = other_key.bounce_address(&delivery_id, Utc::now());

    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.cmd("MAIL FROM:<>").await.code, 250);
    for address in [
        forged.as_str(),
        stale.as_str(),
        wrong_key.as_str(),
        "b-nonsense@ct.test",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{address}>")).await;
        assert_eq!(r.status(), "550 5.1.1", "{address}: {r:?}");
    }
    assert_eq!(c.cmd(&format!("RCPT TO:<{real_one}>")).await.code, 250);
    assert_eq!(delivery(&relay)["state"], "delivered", "nothing changed");
}

async fn reports_that_are_not_failures_change_nothing(backend: Backend) {
    let (sink, relay, alias) = start(backend).await;
    let bounce_address = deliver_one(&sink, &relay, &alias).await;
    bounce(&relay, &bounce_address, "delayed").await;
    let vacation = "From: john@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: Away\r\n\r\nBack Monday.\r\n";
    assert!(send(&relay, "", &bounce_address, vacation)
        .await
        .starts_with("2.0.0"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(delivery(&relay)["state"], "delivered");
    assert_eq!(sink.received().len(), 1, "no notice");
}

async fn no_notice_answers_a_null_sender_or_a_notice(backend: Backend) {
    let (sink, relay, alias) = start(backend).await;
    // Mail from the null sender fails: nobody to tell.
    sink.script(&[SinkReply::Reply("550 5.1.1 no such user".into())]);
    assert!(send(&relay, "", &alias, &message(&alias))
        .await
        .starts_with("2.0.0"));
    assert!(
        wait_until(Duration::from_secs(10), || delivery(&relay)["state"]
            == "failed")
        .await
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.attempts(), 1);

    // A notice that fails is not answered by another notice.
    sink.script(&[
        SinkReply::Reply("550 5.1.1 no such user".into()),
        SinkReply::Reply("550 5.1.1 no such sender either".into()),
    ]);
    assert!(send(&relay, SHOP, &alias, &message(&alias))
        .await
        .starts_with("2.0.0"));
    assert!(wait_until(Duration::from_secs(10), || sink.attempts() == 3).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.attempts(), 3, "original, its notice, and nothing more");
    let queue = relay.cli(&["queue", "list"]);
    let states: Vec<&str> = queue["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "failed", "failed"]);
}

/// The envelope sender of a participant is kept as its alias, not as the
/// address it came from: when the delivery fails after the store changed its
/// address, the relay's notice goes to the new one (a stored real return
/// path would send it to the old).
async fn a_participants_envelope_sender_is_kept_as_its_alias(backend: Backend) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    let alias = relay.create_alias("acme", ORDER, "customer", REAL);
    let shop = relay.create_alias("acme", ORDER, "store", SHOP);
    relay.start().await;
    sink.script(&[
        SinkReply::Reply("451 4.3.0 try later".into()),
        SinkReply::Reply("550 5.1.1 user unknown".into()),
    ]);
    let reply = send(&relay, SHOP, &alias, &message(&alias)).await;
    assert!(reply.starts_with("2.0.0"), "{reply}");
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states(ORDER)
            == ["retrying"])
        .await
    );
    const MOVED: &str = "atendimento@acme-store.com";
    relay.cli(&["alias", "set-address", &shop, "--email", MOVED]);
    assert!(
        wait_until(Duration::from_secs(15), || relay
            .delivery_states(ORDER)
            .contains(&"failed".to_string()))
        .await
    );
    // The sink keeps only what it took: the notice.
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let notice = &sink.received()[0];
    assert_eq!(notice.mail_from, "");
    assert_eq!(notice.rcpt_to, [MOVED.to_string()]);
    assert!(
        notice.text().contains(&format!("To: <{shop}>")),
        "{}",
        notice.text()
    );
}

/// A next hop that names the mailbox only by its local part, or in a
/// spelling no address reader knows: its text is withheld from the
/// timeline, the relay's notice and the log; the codes stay.
async fn a_reply_naming_the_mailbox_is_withheld(backend: Backend) {
    let (sink, relay, alias) = start(backend).await;
    sink.script(&[SinkReply::Reply(
        "550 5.1.1 mailbox JohnDoe unknown, see https://mx.example/u?johndoe%2540example.com"
            .into(),
    )]);
    let reply = send(&relay, SHOP, &alias, &message(&alias)).await;
    assert!(reply.starts_with("2.0.0"), "{reply}");
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
    let last = delivery(&relay)["last_reply"].as_str().unwrap().to_string();
    assert!(
        last.starts_with("550 5.1.1 (the next hop's text is withheld") && last.contains(&alias),
        "{last}"
    );
    let notice = sink.received()[0].text();
    assert!(notice.contains("Status: 5.1.1"), "{notice}");
    for text in [last, notice, relay.log(), relay.timeline(ORDER).to_string()] {
        assert!(!text.to_lowercase().contains("johndoe"), "{text}");
    }
}

on_both_backends!(
    a_reply_naming_the_mailbox_is_withheld,
    a_participants_envelope_sender_is_kept_as_its_alias,
    a_bounce_fails_the_delivery_and_tells_the_sender,
    forged_and_stale_bounce_addresses_are_refused,
    reports_that_are_not_failures_change_nothing,
    no_notice_answers_a_null_sender_or_a_notice,
);
