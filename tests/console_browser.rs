//! The console end to end in headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini): a wrong token is refused; log in with a
//! store's token; switch the store to Soft and save; make an order's
//! aliases through the API; send mail over SMTP; read the conversation and
//! the message; retry a waiting delivery from the queue. Saves a screenshot
//! of each page into `CT_SCREENSHOTS_DIR`, else under the target folder;
//! `scripts/screenshots.sh` points it at docs/console/ to refresh the docs.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test
//! says `skipped` and passes, unless `CT_REQUIRE_CHROMIUM=1` (as .ci/run
//! sets after installing them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use common::http::send_json;
use common::{free_port, wait_until, Backend, Relay, Sink, SinkReply, SmtpClient, ACME_TOKEN};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ORDER: &str = "1234567890123-01";

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Option<Driver> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CT_REQUIRE_CHROMIUM").is_none(),
            "CT_REQUIRE_CHROMIUM is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!(
            "skipped: {CHROMIUM} and {CHROMEDRIVER} are needed (Debian: chromium chromium-driver)"
        );
        return None;
    }
    let port = free_port().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let up = wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(up, "chromedriver did not listen");
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// Headless Chromium with no network of its own (this machine has none).
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = match caps {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Where screenshots go: `CT_SCREENSHOTS_DIR`, else target/tmp/console,
/// so a test run never changes the tracked ones in docs/console/.
fn screenshots() -> PathBuf {
    let dir = std::env::var_os("CT_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("console"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn text_of(b: &Client, css: &str) -> String {
    b.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

async fn fill(b: &Client, css: &str, value: &str) {
    let field = b.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Wait until the page shows `text` somewhere in `css`.
async fn wait_for_text(b: &Client, css: &str, text: &str) {
    for _ in 0..100 {
        if let Ok(found) = b.find(Locator::Css(css)).await {
            if found.text().await.unwrap_or_default().contains(text) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "`{text}` never showed in {css}: {}",
        b.source().await.unwrap_or_default()
    );
}

async fn mail(relay: &Relay, from: &str, to: &str, message: &str) {
    let mut c = SmtpClient::ready(relay.smtp).await;
    assert_eq!(c.send_mail(from, &[to], message).await.code, 250);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_operator_switches_to_soft_and_reads_the_conversation() {
    let Some(driver) = driver().await else { return };
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(Backend::Sqlite, sink.addr);
    // Retries an hour apart, so a waiting delivery stays on the queue page.
    relay.edit_config("retry_initial = \"200ms\"", "retry_initial = \"1h\"");
    relay.edit_config("retry_max = \"1s\"", "retry_max = \"2h\"");
    relay.start().await;
    let profile = tempfile::tempdir().unwrap();
    let b = browser(&driver, profile.path()).await;
    let console = format!("http://{}/console", relay.api);

    // Behind the login; a wrong token is refused.
    b.goto(&format!("{console}/orders")).await.unwrap();
    assert_eq!(b.current_url().await.unwrap().path(), "/console/login");
    screenshot(&b, "login").await;
    fill(&b, "#token", "not-the-token-0123456789").await;
    click(&b, "form.card button[type=submit]").await;
    assert_eq!(
        text_of(&b, "#login-problem").await,
        "That token is not valid."
    );
    screenshot(&b, "login-refused").await;

    fill(&b, "#token", ACME_TOKEN).await;
    click(&b, "form.card button[type=submit]").await;
    wait_for_text(&b, "h1", "Orders").await;

    // The store goes Soft.
    click(&b, "nav a[href='/console/settings']").await;
    wait_for_text(&b, "legend", "Conversation mask type").await;
    assert!(
        b.find(Locator::Css("#mode-hard:checked")).await.is_ok(),
        "hard by default"
    );
    click(&b, "label[for=mode-soft]").await;
    click(&b, "form.card button[type=submit]").await;
    wait_for_text(&b, ".notice.ok", "Saved.").await;
    assert!(b.find(Locator::Css("#mode-soft:checked")).await.is_ok());
    screenshot(&b, "settings").await;

    // The order's aliases through the API are soft now; mail goes both ways.
    let made = send_json(
        relay.api,
        "POST",
        &format!("/v1/orders/{ORDER}/aliases"),
        Some(ACME_TOKEN),
        r#"{"store": "acme", "customer_email": "maria.silva@example.net", "store_email": "sac@acme-store.example"}"#,
    )
    .await;
    assert_eq!(made.status, 200);
    let aliases = &made.json()["aliases"];
    let customer = aliases["customer"]["alias"].as_str().unwrap().to_string();
    let shop = aliases["store"]["alias"].as_str().unwrap().to_string();
    assert!(
        customer.starts_with("maria.silva@example.net-"),
        "soft: {customer}"
    );
    mail(
        &relay,
        "sac@acme-store.example",
        &customer,
        &format!(
            "From: Acme Store <sac@acme-store.example>\r\nTo: Maria <{customer}>\r\n\
             Subject: Order {ORDER} invoiced\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nHello Maria, your invoice is attached. \
             Your order ships tomorrow.\r\n--b\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n\
             Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
        ),
    )
    .await;
    mail(
        &relay,
        "maria.silva@example.net",
        &shop,
        &format!(
            "From: Maria Silva <maria.silva@example.net>\r\nTo: <{shop}>\r\n\
             Subject: Re: Order {ORDER} invoiced\r\n\r\nThank you! Can it come before noon?\r\n"
        ),
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 2).await);
    assert!(
        wait_until(Duration::from_secs(10), || relay.delivery_states(ORDER)
            == ["delivered", "delivered"])
        .await
    );

    // The conversation: aliases with roles, no real address.
    click(&b, "nav a[href='/console/orders']").await;
    fill(&b, "#order", ORDER).await;
    click(&b, "form.search button[type=submit]").await;
    wait_for_text(&b, ".conversation", &format!("Order {ORDER} invoiced")).await;
    let page = b.source().await.unwrap();
    assert!(page.contains("invoice.pdf") && page.contains("Thank you! Can it come before noon?"));
    assert!(text_of(&b, ".conversation").await.contains("customer"));
    // Soft aliases contain the address by design; outside them, none.
    let outside = page.replace(&customer, "").replace(&shop, "");
    for real in ["maria.silva@example.net", "sac@acme-store.example"] {
        assert!(!outside.contains(real), "{real} on the page");
    }
    screenshot(&b, "orders").await;
    b.set_window_size(390, 844).await.unwrap();
    screenshot(&b, "orders-phone").await;
    b.set_window_size(1280, 900).await.unwrap();

    click(
        &b,
        ".conversation li:first-child a[href^='/console/messages/']",
    )
    .await;
    wait_for_text(&b, "pre.body", "your invoice is attached").await;
    screenshot(&b, "message").await;

    // A delivery the next hop put off waits on the queue; Retry brings it.
    sink.script(&[SinkReply::Reply("452 4.2.2 mailbox full, try later".into())]);
    mail(
        &relay,
        "sac@acme-store.example",
        &customer,
        &format!("From: <sac@acme-store.example>\r\nTo: <{customer}>\r\nSubject: Shipped\r\n\r\nOn its way.\r\n"),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || relay
            .delivery_states(ORDER)
            .contains(&"retrying".to_string()))
        .await
    );
    click(&b, "nav a[href='/console/queue']").await;
    wait_for_text(&b, "table", "452 4.2.2 mailbox full").await;
    screenshot(&b, "queue").await;
    click(&b, "td form button[type=submit]").await;
    wait_for_text(&b, ".notice.ok", "will be tried again now").await;
    assert!(
        wait_until(Duration::from_secs(10), || sink.received().len() == 3).await,
        "retried at once"
    );

    b.close().await.unwrap();
}
