//! Growth, on SQLite and PostgreSQL alike: timelines read a page at a time
//! by key, bulk alias creation keeps the one-at-a-time contract, and a
//! node's heartbeat keeps its leases while a dead node's lapse soon.

mod common;

use chrono::{Duration, Utc};

use common::storage::{accept, message, open, participant, stored_person};
use common::visitor::{text, Visitor};
use common::{Backend, Relay, Sink, SmtpClient, ACME_TOKEN};
use ct_relay::alias::{MaskMode, Role};
use ct_relay::storage::{RefusedEntry, Write};

/// 250 entries (messages with deliveries, refusals between them), read in
/// pages of 100: every entry once, oldest first, each with its own
/// deliveries; an unknown cursor, or one from another order, is no page.
async fn timelines_page_by_key(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = stored_person(db.as_ref(), "o1", "b@example.com", now).await;
    let other = stored_person(db.as_ref(), "o2", "c@example.com", now).await;
    let mut writes = Vec::new();
    for i in 0..250 {
        // Several entries share a millisecond: (at, id) orders them.
        let at = now + Duration::milliseconds(i / 3);
        if i % 5 == 4 {
            writes.push(Write::Refusal(RefusedEntry {
                id: format!("r{i:03}"),
                store: "acme".into(),
                order: "o1".into(),
                at,
                from: None,
                to: vec![(&to).into()],
                reply: "550 5.7.1 refused".into(),
                reason: "blocked".into(),
                // Refused after DATA, each its own message: no repeats.
                subject: format!("refused {i}"),
            }));
        } else {
            writes.push(accept(message(&format!("m{i:03}"), "o1", &to, at)));
        }
    }
    writes.push(accept(message("x1", "o2", &other, now)));
    for chunk in writes.chunks(50) {
        db.apply(chunk).await.unwrap();
    }

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = db
            .timeline_page("acme", "o1", after.as_deref(), 100)
            .await
            .unwrap()
            .expect("a known cursor");
        pages += 1;
        for e in &page.entries {
            match &e.refused {
                Some(_) => assert!(e.deliveries.is_empty(), "{}", e.id),
                None => {
                    assert_eq!(e.deliveries.len(), 1, "{}", e.id);
                    assert_eq!(e.subject, format!("subject {}", e.id), "its own entry");
                }
            }
        }
        seen.extend(page.entries.iter().map(|e| e.id.clone()));
        if page.entries.len() < 100 {
            assert!(page.next.is_none(), "a short page is the last");
            break;
        }
        assert_eq!(page.next.as_ref(), page.entries.last().map(|e| &e.id));
        after = page.next;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250, "every entry once");
    let mut dates = db.timeline("acme", "o1").await.unwrap();
    assert_eq!(dates.len(), 250);
    assert!(
        dates.windows(2).all(|w| w[0].date <= w[1].date),
        "oldest first"
    );
    assert_eq!(
        dates.drain(..).map(|e| e.id).collect::<Vec<_>>(),
        seen,
        "pages and the whole timeline agree"
    );

    assert!(db
        .timeline_page("acme", "o1", Some("nope"), 10)
        .await
        .unwrap()
        .is_none());
    let x1 = db.timeline("acme", "o2").await.unwrap()[0].id.clone();
    assert!(
        db.timeline_page("acme", "o1", Some(&x1), 10)
            .await
            .unwrap()
            .is_none(),
        "a cursor from another order"
    );
    let last = seen.last().unwrap();
    assert!(db
        .timeline_page("acme", "o1", Some(last), 10)
        .await
        .unwrap()
        .unwrap()
        .entries
        .is_empty());
}

/// One call with more rows than a statement holds: people already made
/// (in another mode) come back as they were, a person twice in the call
/// (in another case) gets one row, soft aliases shared by two roles give
/// the first's row, and calling again changes nothing.
async fn bulk_creation_keeps_the_one_at_a_time_contract(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let make = |order: &str, role: Role, email: &str, mode: MaskMode| {
        participant(order, role, email, mode, now)
    };
    let earlier = db
        .ensure_participants(&[make(
            "o7",
            Role::Customer,
            "old@example.com",
            MaskMode::Soft,
        )])
        .await
        .unwrap()
        .remove(0);
    let mut batch: Vec<_> = (0..1200)
        .map(|i| {
            make(
                &format!("o{}", i / 2),
                Role::Customer,
                &format!("b{i}@example.com"),
                MaskMode::Hard,
            )
        })
        .collect();
    batch.push(make(
        "o7",
        Role::Customer,
        "OLD@example.com",
        MaskMode::Hard,
    ));
    batch.push(make("o1", Role::Customer, "B2@EXAMPLE.com", MaskMode::Hard));
    batch.push(make(
        "o9",
        Role::Customer,
        "shared@example.com",
        MaskMode::Soft,
    ));
    batch.push(make(
        "o9",
        Role::Store,
        "shared@example.com",
        MaskMode::Soft,
    ));
    let stored = db.ensure_participants(&batch).await.unwrap();
    assert_eq!(stored.len(), batch.len());
    for (made, got) in batch.iter().zip(&stored).take(1200) {
        assert_eq!(got.alias, made.alias);
        assert_eq!(got.email, made.email);
    }
    assert_eq!(stored[1200], earlier, "made before, in soft mode: kept");
    assert_eq!(stored[1201], stored[2], "the same person twice: one row");
    assert_eq!(stored[1203], stored[1202], "one soft alias for both roles");
    assert_eq!(stored[1203].role, Role::Customer);
    let again = db.ensure_participants(&batch).await.unwrap();
    assert_eq!(again, stored, "idempotent, creation times kept");
    let found = db.find_alias(&stored[5].alias).await.unwrap().unwrap();
    assert_eq!(found, stored[5], "what is returned is what is stored");
    assert_eq!(db.order_participants("acme", "o1").await.unwrap().len(), 2);
    assert!(db.ensure_participants(&[]).await.unwrap().is_empty());
}

/// A node's claims last their lease while it beats; once it is silent
/// past its `alive_until`, another node claims them (deliveries and
/// webhook events alike). A node that never beat keeps its leases.
async fn a_silent_nodes_claims_go_to_the_others(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = stored_person(db.as_ref(), "o1", "b@example.com", now).await;
    let batch: Vec<_> = (0..4)
        .map(|i| accept(message(&format!("m{i}"), "o1", &to, now)))
        .collect();
    db.apply(&batch).await.unwrap();
    let lease = now + Duration::hours(1);
    db.heartbeat("a", now, now + Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(db.claim_due("a", now, lease, 2).await.unwrap().len(), 2);
    assert_eq!(db.claim_due("quiet", now, lease, 1).await.unwrap().len(), 1);
    // While A beats, its claims are its own.
    let soon = now + Duration::seconds(10);
    assert_eq!(db.claim_due("b", soon, lease, 10).await.unwrap().len(), 1);
    db.heartbeat("a", soon, soon + Duration::seconds(30))
        .await
        .unwrap();
    assert!(db
        .claim_due("b", soon + Duration::seconds(25), lease, 10)
        .await
        .unwrap()
        .is_empty());
    // A is silent: its two go to B; the one of a node that never beat stays.
    let later = soon + Duration::seconds(41);
    let taken = db.claim_due("b", later, lease, 10).await.unwrap();
    assert_eq!(taken.len(), 2, "{taken:?}");
    // A stopped cleanly: no row, nothing more to take.
    db.node_stopped("a").await.unwrap();
    assert!(db
        .claim_due("c", later, lease, 10)
        .await
        .unwrap()
        .is_empty());
}

/// The console's order view shows 50 entries a page, oldest first, with a
/// link to the next page; a cursor that names no entry is a 400 page.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_pages_an_order() {
    let sink = Sink::start().await;
    let mut relay = Relay::with_smarthost(Backend::Sqlite, sink.addr);
    relay.without_rate_limits();
    let alias = relay.create_alias("acme", "pg-1", "customer", "buyer@example.net");
    relay.start().await;
    let mut c = SmtpClient::ready(relay.smtp).await;
    for i in 0..55 {
        let mail = format!("From: <sac@acme-store.com>\r\nSubject: note {i:02}\r\n\r\nhello\r\n");
        let r = c.send_mail("sac@acme-store.com", &[&alias], &mail).await;
        assert_eq!(r.code, 250, "{r:?}");
    }
    let mut v = Visitor::new(relay.api);
    v.log_in(ACME_TOKEN).await;
    let first = v.get("/console/orders?order=pg-1").await;
    assert_eq!(first.status, 200);
    let body = text(&first);
    assert_eq!(body.matches("<article class=\"message").count(), 50);
    assert!(body.contains("note 00") && body.contains("note 49") && !body.contains("note 50"));
    let marker = "rel=\"next\" href=\"";
    let at = body.find(marker).expect("a link to the next page") + marker.len();
    let next = body[at..body[at..].find('"').unwrap() + at].replace("&amp;", "&");
    let second = v.get(&next).await;
    let body = text(&second);
    assert_eq!(body.matches("<article class=\"message").count(), 5);
    assert!(body.contains("note 54") && !body.contains("note 49"));
    assert!(body.contains("First page") && !body.contains("rel=\"next\""));
    let unknown = v.get("/console/orders?order=pg-1&after=nope").await;
    assert_eq!(unknown.status, 400);
}

on_both_backends!(
    a_silent_nodes_claims_go_to_the_others,
    timelines_page_by_key,
    bulk_creation_keeps_the_one_at_a_time_contract
);
