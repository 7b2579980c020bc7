//! Test harness: the real `ct-relay` binary on a free port, a recording SMTP
//! sink as its smarthost, and a plain SMTP client that shows exact replies.

#![allow(dead_code)]

pub mod client;
pub mod dns;
pub mod door;
pub mod header_reading;
pub mod hooks;
pub mod http;
pub mod pki;
pub mod postfix;
pub mod postgres;
pub mod proxy;
pub mod scanners;
pub mod sink;
pub mod storage;
pub mod visitor;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[allow(unused_imports)]
pub use client::SmtpClient;
#[allow(unused_imports)]
pub use sink::{Received, Sink, SinkReply};

/// The key of the test vectors in docs/REFERENCE.md: bytes 00..1f.
/// API tokens of every test relay: one for all stores, one for `acme` only.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
pub const ACME_TOKEN: &str = "acme-token-for-tests-0123456789";

pub const TEST_KEY: &str = "hex:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// The key the test relays seal addresses and messages under.
pub const TEST_ENCRYPTION_KEY: &str =
    "hex:5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// Which storage a test runs on. Every integration test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Run `async fn $name(backend: Backend)` once per backend, as
/// `$name::sqlite` and `$name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )*};
}

#[allow(unused_imports)]
pub use postgres::{admin_url as postgres_admin_url, TestDatabase};

/// A port nothing listens on now, never one this test process was given
/// before: the kernel may hand a just-closed port out again, and a relay
/// whose SMTP and API ports came out equal could not start (nor could its
/// config be told which `listen` to move).
pub fn free_port() -> SocketAddr {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&addr.port()) {
            given.push(addr.port());
            return addr;
        }
    }
}

/// Poll `check` until it is true or `limit` passes.
pub async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

pub struct Relay {
    pub dir: tempfile::TempDir,
    pub smtp: SocketAddr,
    /// The HTTP API.
    pub api: SocketAddr,
    pub config: PathBuf,
    child: Option<Child>,
    env: Vec<(String, String)>,
    /// The PostgreSQL database this relay (and its other nodes) use, dropped
    /// after the last of them.
    database: Option<std::sync::Arc<TestDatabase>>,
}

/// A started relay on `backend` delivering to a new recording sink.
pub async fn relay_and_sink(backend: Backend) -> (Relay, Sink) {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(backend, sink.addr);
    relay.start().await;
    (relay, sink)
}

/// The `[delivery]` lines for a smarthost.
fn smarthost_delivery(smarthost: SocketAddr) -> String {
    format!("transport = \"smarthost\"\nsmarthost = \"{smarthost}\"")
}

impl Relay {
    /// A relay delivering to `smarthost`, with fast retries.
    pub fn with_smarthost(backend: Backend, smarthost: SocketAddr) -> Self {
        Self::on(backend, &smarthost_delivery(smarthost))
    }

    /// A relay on `backend` (a new database of its own for PostgreSQL) with
    /// these `[delivery]` lines.
    pub fn on(backend: Backend, delivery: &str) -> Self {
        match backend {
            Backend::Sqlite => Self::configured(None, delivery),
            Backend::Postgres => {
                let db = TestDatabase::create();
                let mut relay = Self::configured(Some(db.url.clone()), delivery);
                relay.database = Some(db);
                relay
            }
        }
    }

    /// A relay delivering to `smarthost`, on a new PostgreSQL database it
    /// reaches through a proxy the test can cut. Returned configured, not
    /// started, with the proxy.
    pub async fn behind_database_proxy(smarthost: SocketAddr) -> (proxy::Proxy, Self) {
        let proxy = proxy::Proxy::start("127.0.0.1:5432".parse().unwrap()).await;
        let db = TestDatabase::create();
        let url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
        let mut relay = Self::configured(Some(url), &smarthost_delivery(smarthost));
        relay.database = Some(db);
        (proxy, relay)
    }

    /// Another node on the same database as `self`, same next hop.
    pub fn another_node(&self) -> Self {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut node = Self::configured(None, "");
        let text = text
            .replace(&self.smtp.to_string(), &node.smtp.to_string())
            .replace(&self.api.to_string(), &node.api.to_string());
        std::fs::write(&node.config, text).unwrap();
        node.env = self.env.clone();
        node.database = self.database.clone();
        node
    }

    /// `storage_url`: None for a SQLite file in the relay's folder.
    pub fn configured(storage_url: Option<String>, delivery: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let smtp = free_port();
        let api = free_port();
        let config = dir.path().join("relay.toml");
        let url = storage_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("relay.db").display()));
        let text = format!(
            r#"
[smtp]
listen = "{smtp}"
hostname = "relay.test"
max_message_size = 1000000
max_recipients = 5
max_errors = 5
idle_timeout = "30s"
shutdown_grace = "5s"

[alias]
domain = "ct.test"
hmac_key = "{TEST_KEY}"

[api]
listen = "{api}"
token = "{ADMIN_TOKEN}"
tokens = [{{ token = "{ACME_TOKEN}", store = "acme" }}]

[storage]
url = "{url}"
busy_timeout = "1s"
encryption_key = "{TEST_ENCRYPTION_KEY}"

[delivery]
{delivery}
dir = "{outbox}"
retry_initial = "200ms"
retry_max = "1s"
give_up_after = "1h"
timeout = "500ms"
lease = "6s"
poll_interval = "200ms"

[auth]
check = false

[webhook]
allow_private_networks = true
retry_initial = "200ms"
retry_max = "1s"
timeout = "2s"
lease = "6s"
poll_interval = "100ms"
"#,
            outbox = dir.path().join("outbox").display(),
        );
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            smtp,
            api,
            config,
            child: None,
            env: Vec::new(),
            database: None,
        }
    }

    /// Replace `from` by `to` in the config file (before `start`).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "`{from}` is not in the config");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// Add lines to the end of the config file (a section of its own).
    pub fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(&self.config).unwrap();
        config.push_str(text);
        std::fs::write(&self.config, config).unwrap();
    }

    /// No rate limits (`[policy]` all 0): for tests that load one alias
    /// with more mail than a buyer's alias takes in an hour.
    pub fn without_rate_limits(&self) {
        self.append_config(
            "\n[policy]\nper_sender_and_alias_per_hour = 0\nper_alias_per_hour = 0\n\
             privileged_per_sender_and_alias_per_hour = 0\nprivileged_per_alias_per_hour = 0\n",
        );
    }

    /// Set an environment override for every later command and start.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Drop an environment override set earlier.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Add an environment override for the commands run from now on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ct-relay"));
        cmd.arg("--config").arg(&self.config);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("relay.log")
    }

    /// Start `serve` and wait until it accepts connections. A port taken
    /// since `free_port` chose it (another test's process got it first) is
    /// replaced by a fresh one and the start tried again.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        for _ in 0..5 {
            let log_before = self.log().len();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            let mut child = self
                .command()
                .arg("serve")
                .env("RUST_LOG", "ct_relay=debug")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            // Up once this process logs that it started, which it does
            // after binding both ports. A connection is no proof: on a
            // restart another test's process may already listen on the old
            // port (durability.rs saw its relay exit with "Address already
            // in use" after the probe had connected), and a probe of the
            // SMTP port would open a session that counts against the
            // address's session limit (tests/limits.rs raced that).
            let mut exited = false;
            let up = wait_until(Duration::from_secs(20), || {
                exited = child.try_wait().unwrap().is_some();
                exited || self.log()[log_before..].contains("ct-relay started")
            })
            .await;
            if up && !exited {
                self.child = Some(child);
                return;
            }
            let said = self.log()[log_before..].to_string();
            assert!(
                exited && said.contains("Address already in use"),
                "relay did not start; log:\n{}",
                self.log()
            );
            for old in [self.smtp, self.api] {
                let fresh = free_port();
                self.edit_config(
                    &format!("listen = \"{old}\""),
                    &format!("listen = \"{fresh}\""),
                );
                if old == self.smtp {
                    self.smtp = fresh;
                } else {
                    self.api = fresh;
                }
            }
        }
        panic!("relay did not start: ports kept being taken");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    /// The running relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident memory of the running relay, in KiB (Linux /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    /// Run a CLI command; stdout parsed as JSON, panics on failure.
    pub fn cli(&self, args: &[&str]) -> Value {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ct-relay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Run a CLI command and return (exit success, stdout, stderr).
    pub fn cli_raw(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(pipe);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn create_alias(&self, store: &str, order: &str, role: &str, email: &str) -> String {
        let v = self.cli(&[
            "alias", "create", "--store", store, "--order", order, "--role", role, "--email", email,
        ]);
        v["alias"].as_str().unwrap().to_string()
    }

    /// One message from the shop to a new buyer of `store`'s `order`,
    /// waited for until the sink has `n` messages and it is delivered.
    pub async fn deliver_one(&self, sink: &Sink, (store, order): (&str, &str), n: usize) {
        let shop = "sac@acme-store.com";
        let alias = self.create_alias(
            store,
            order,
            "customer",
            &format!("buyer-{order}@example.com"),
        );
        let message =
            format!("From: <{shop}>\r\nTo: <{alias}>\r\nSubject: {order}\r\n\r\nHello.\r\n");
        let mut c = SmtpClient::ready(self.smtp).await;
        assert_eq!(c.send_mail(shop, &[&alias], &message).await.code, 250);
        assert!(wait_until(Duration::from_secs(10), || sink.received().len() == n).await);
        let delivered = wait_until(Duration::from_secs(10), || {
            self.delivery_states(order) == ["delivered"]
        });
        assert!(delivered.await);
    }

    /// How many entries the order's timeline has.
    pub fn entry_count(&self, order: &str) -> usize {
        self.timeline(order)["entries"]
            .as_array()
            .map_or(0, Vec::len)
    }

    pub fn timeline(&self, order: &str) -> Value {
        self.cli(&["timeline", order])
    }

    /// States of every delivery on the order's timeline.
    pub fn delivery_states(&self, order: &str) -> Vec<String> {
        let t = self.timeline(order);
        t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["deliveries"].as_array().unwrap().clone())
            .map(|d| d["state"].as_str().unwrap().to_string())
            .collect()
    }

    /// The SQLite file (SQLite relays only).
    /// The `storage.url` of this relay's config.
    pub fn storage_url(&self) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("url = "))
            .expect("storage.url");
        line.trim_start_matches("url = ")
            .trim_matches('"')
            .to_string()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("relay.db")
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
