//! Several relay nodes on one PostgreSQL database.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{wait_until, Backend, Relay, Sink, SmtpClient};

const MESSAGES: usize = 120;

/// Subjects the sink got, with how often each.
fn delivered(sink: &Sink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in sink.received() {
        let subject = r
            .headers()
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            .unwrap();
        *seen.entry(subject).or_insert(0) += 1;
    }
    seen
}

async fn send_range(relay: &Relay, alias: &str, range: std::ops::Range<usize>) {
    let mut c = SmtpClient::ready(relay.smtp).await;
    for i in range {
        let msg = format!("From: sac@acme-store.com\r\nSubject: msg-{i}\r\n\r\nBody {i}.\r\n");
        let r = c.send_mail("sac@acme-store.com", &[alias], &msg).await;
        assert_eq!(r.status(), "250 2.0.0", "{r:?}");
    }
}

/// Node A is killed (SIGKILL) with deliveries claimed and in flight. Its
/// leases last 15 minutes, far past the test: B takes them over because
/// A's heartbeat (every second) stopped, within seconds.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_the_queue_and_survive_one_being_killed() {
    let sink = Sink::start().await;
    // A slow next hop keeps deliveries in flight when the node dies.
    sink.set_delay(Duration::from_secs(1));
    let mut a = Relay::with_smarthost(Backend::Postgres, sink.addr)
        .env("CT_RELAY__DELIVERY__LEASE", "15m")
        .env("CT_RELAY__DELIVERY__HEARTBEAT", "1s");
    a.without_rate_limits();
    let mut b = a.another_node();
    let alias = a.create_alias("acme", "c-1", "customer", "buyer@example.net");
    a.start().await;
    b.start().await;

    let half = MESSAGES / 2;
    tokio::join!(
        send_range(&a, &alias, 0..half),
        send_range(&b, &alias, half..MESSAGES)
    );
    assert!(wait_until(Duration::from_secs(20), || sink.attempts() >= 10).await);
    let before_kill = sink.received().len();
    assert!(before_kill < MESSAGES, "node A must die mid-queue");
    a.kill();
    let killed = std::time::Instant::now();

    // B finishes everything, A's leased deliveries once A is silent for
    // three heartbeats.
    let all = wait_until(Duration::from_secs(60), || {
        delivered(&sink).len() == MESSAGES
    })
    .await;
    let resumed_in = killed.elapsed();
    let seen = delivered(&sink);
    assert!(
        all,
        "{} of {MESSAGES} delivered; log of B:\n{}",
        seen.len(),
        b.log()
    );
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "cluster: {MESSAGES} accepted over 2 nodes, node A killed when {before_kill} were delivered; \
         {} distinct delivered {resumed_in:?} after the kill, {duplicates} duplicates, {} attempts at the sink",
        seen.len(),
        sink.attempts()
    );
    // At-least-once: only what A had in flight when it died can come twice.
    assert!(duplicates <= 16, "{duplicates} duplicates");
    assert!(
        wait_until(Duration::from_secs(10), || b.cli(&["queue", "list"])
            ["deliveries"]
            .as_array()
            .unwrap()
            .is_empty())
        .await
    );
    let states = b.delivery_states("c-1");
    assert_eq!(states.len(), MESSAGES);
    assert!(states.iter().all(|s| s == "delivered"), "{states:?}");
}
