//! What the trust-at-the-door tests share: one order with a store and a
//! buyer, its mail over SMTP, its timeline and settings.

use serde_json::Value;

use super::http::{metric as read_metric, send_json};
use super::{Relay, SmtpClient, ADMIN_TOKEN};

pub const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
pub const ORDER: &str = "5001-01";
pub const STORE_EMAIL: &str = "sac@acme-store.com";
pub const BUYER: &str = "buyer@example.com";

pub struct Order {
    pub store_alias: String,
    pub buyer_alias: String,
}

pub fn make_order(relay: &Relay) -> Order {
    Order {
        store_alias: relay.create_alias("acme", ORDER, "store", STORE_EMAIL),
        buyer_alias: relay.create_alias("acme", ORDER, "customer", BUYER),
    }
}

pub fn checking(relay: &Relay, nameserver: &str, timeout: &str) {
    relay.edit_config(
        "[auth]\ncheck = false",
        &format!("[auth]\ncheck = true\nnameservers = [\"{nameserver}\"]\ntimeout = \"{timeout}\""),
    );
}

pub fn message(from: &str, to: &str, subject: &str, extra: &str) -> String {
    format!(
        "From: ACME Store <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{}@test>\r\n{extra}\r\nClick http://evil.example/pay\r\n",
        subject.replace(' ', "-")
    )
}

pub async fn send(relay: &Relay, mail_from: &str, to: &str, data: &str) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.send_mail(mail_from, &[to], data).await.status()
}

pub fn entries(relay: &Relay) -> Vec<Value> {
    relay.timeline(ORDER)["entries"].as_array().unwrap().clone()
}

pub fn from_header(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_default()
        .to_string()
}

pub async fn metric(relay: &Relay, line_start: &str) -> Option<f64> {
    read_metric(relay.api, line_start).await
}

pub async fn put_settings(relay: &Relay, body: &str) -> Value {
    let r = send_json(relay.api, "PUT", "/v1/stores/acme/settings", ADMIN, body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// None of the order's real addresses in `text`.
pub fn no_real_address(text: &str) {
    for real in [STORE_EMAIL, BUYER] {
        assert!(!text.contains(real), "{real} in {text}");
    }
}
