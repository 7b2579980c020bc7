//! scripts/local-topology.sh, the docker-compose topology as processes: two
//! nodes on one PostgreSQL database and a mail catcher.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, wait_until, SmtpClient, TEST_KEY};

/// Ports: SMTP `smtp` and `smtp + 1`, API `api` and `api + 1`.
fn script(
    dir: &Path,
    db: &str,
    (smtp, api, catcher): (u16, u16, u16),
    args: &[&str],
) -> std::process::Output {
    Command::new("scripts/local-topology.sh")
        .args(args)
        .env("TOPOLOGY_DIR", dir)
        .env("SMTP_PORT", smtp.to_string())
        .env("API_PORT", api.to_string())
        .env("CATCHER_PORT", catcher.to_string())
        .env("DATABASE_URL", common::postgres_admin_url())
        .env("TOPOLOGY_DB", db)
        .env("CT_RELAY_BIN", env!("CARGO_BIN_EXE_ct-relay"))
        .env("CT_RELAY__ALIAS__HMAC_KEY", TEST_KEY)
        .env("CT_RELAY__ALIAS__DOMAIN", "ct.test")
        .output()
        .unwrap()
}

/// Two consecutive free ports.
fn port_pair() -> u16 {
    loop {
        let p = free_port().port();
        if std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn local_topology_delivers_through_both_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "ct_topology_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    // The script creates it; the test drops it when it ends.
    let database = common::TestDatabase::named(&db);
    let ports = (port_pair(), port_pair(), free_port().port());
    let smtp = ports.0;
    let up = script(dir.path(), &db, ports, &["up", "2"]);
    assert!(
        up.status.success(),
        "up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let url = database.url.clone();
    let out = Command::new(env!("CARGO_BIN_EXE_ct-relay"))
        .args([
            "alias",
            "create",
            "--store",
            "acme",
            "--order",
            "t-1",
            "--email",
            "buyer@example.net",
        ])
        .env("CT_RELAY__STORAGE__URL", &url)
        .env("CT_RELAY__ALIAS__HMAC_KEY", TEST_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alias = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["alias"]
        .as_str()
        .unwrap()
        .to_string();

    for (i, port) in [smtp, smtp + 1].into_iter().enumerate() {
        let mut c = SmtpClient::ready(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let msg = format!("From: sac@acme-store.com\r\nSubject: via node {i}\r\n\r\nHi.\r\n");
        assert_eq!(
            c.send_mail("sac@acme-store.com", &[&alias], &msg)
                .await
                .code,
            250
        );
    }
    let catcher_dir = dir.path().join("catcher");
    let count = || {
        std::fs::read_dir(&catcher_dir)
            .map(|d| {
                d.filter(|e| e.as_ref().unwrap().path().extension() == Some("eml".as_ref()))
                    .count()
            })
            .unwrap_or(0)
    };
    let delivered = wait_until(Duration::from_secs(20), || count() == 2).await;
    let ready = common::http::get(
        format!("127.0.0.1:{}", ports.1 + 1).parse().unwrap(),
        "/readyz",
        None,
    )
    .await;
    let down = script(dir.path(), &db, ports, &["down"]);
    assert_eq!(ready.status, 200, "second node's API");
    assert!(down.status.success());
    assert!(delivered, "catcher got {} messages", count());
    let envelope = std::fs::read_to_string(catcher_dir.join("1.json")).unwrap();
    assert!(envelope.contains("buyer@example.net"), "{envelope}");
}
