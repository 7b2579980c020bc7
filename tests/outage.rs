//! PostgreSQL goes away under load and comes back: 451s while it is gone,
//! never a 250 for mail that was not committed, and recovery without restart.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, Relay, Sink, SmtpClient};

/// Message number, final reply, and whether the database was up then.
type Outcome = (usize, String, &'static str);

/// One message per session; the reply that ended it ("250 2.0.0", "451 4.3.0", …).
async fn try_send(relay: &Relay, alias: &str, n: usize) -> String {
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<sac@acme-store.com>").await;
    let r = c.cmd(&format!("RCPT TO:<{alias}>")).await;
    if r.code != 250 {
        return r.status();
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.send_raw(
        format!("From: sac@acme-store.com\r\nSubject: msg-{n}\r\n\r\nBody.\r\n.\r\n").as_bytes(),
    )
    .await;
    c.reply().await.unwrap().status()
}

fn subjects(sink: &Sink) -> Vec<String> {
    sink.received()
        .iter()
        .map(|r| {
            r.headers()
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn database_outage_gives_451_and_the_relay_recovers_by_itself() {
    let sink = Sink::start().await;
    let (proxy, mut relay) = Relay::behind_database_proxy(sink.addr).await;
    relay.without_rate_limits();
    let alias = relay.create_alias("acme", "out-1", "customer", "buyer@example.net");
    relay.start().await;

    // A client sending steadily while the database goes away and comes back.
    let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let phase = Arc::new(Mutex::new("before"));
    let relay = Arc::new(relay);
    let load = {
        let (outcomes, phase, relay, alias) = (
            outcomes.clone(),
            phase.clone(),
            relay.clone(),
            alias.clone(),
        );
        tokio::spawn(async move {
            let start = Instant::now();
            let mut n = 0;
            while start.elapsed() < Duration::from_secs(12) {
                let status = try_send(&relay, &alias, n).await;
                let when = *phase.lock().unwrap();
                outcomes.lock().unwrap().push((n, status, when));
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    *phase.lock().unwrap() = "down";
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    *phase.lock().unwrap() = "after";
    load.await.unwrap();

    let outcomes = outcomes.lock().unwrap().clone();
    let count = |when: &str, status: &str| {
        outcomes
            .iter()
            .filter(|(_, s, w)| *w == when && s == status)
            .count()
    };
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for (_, s, _) in &outcomes {
        *by_status.entry(s.clone()).or_default() += 1;
    }
    eprintln!("outage: replies {by_status:?}");
    assert!(count("before", "250 2.0.0") > 0, "{outcomes:?}");
    assert!(
        count("down", "451 4.3.0") > 0,
        "no 451 while the database was down: {outcomes:?}"
    );
    assert!(count("after", "250 2.0.0") > 0, "no recovery: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(_, s, _)| s == "250 2.0.0" || s == "451 4.3.0"),
        "{outcomes:?}"
    );

    // Every 250 is delivered; nothing refused shows up (beyond the commit
    // whose answer was lost with the connection, counted here).
    let accepted: Vec<String> = outcomes
        .iter()
        .filter(|(_, s, _)| s == "250 2.0.0")
        .map(|(n, _, _)| format!("msg-{n}"))
        .collect();
    let all = wait_until(Duration::from_secs(30), || {
        let got = subjects(&sink);
        accepted.iter().all(|a| got.contains(a))
    })
    .await;
    assert!(
        all,
        "a message answered 250 was not delivered; log:\n{}",
        relay.log()
    );
    let got = subjects(&sink);
    let refused_but_delivered = outcomes
        .iter()
        .filter(|(n, s, _)| s != "250 2.0.0" && got.contains(&format!("msg-{n}")))
        .count();
    eprintln!(
        "outage: {} accepted, all delivered; {refused_but_delivered} answered 451 yet delivered",
        accepted.len()
    );
    assert!(refused_but_delivered <= 1);
}
