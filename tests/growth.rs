//! Growth, on SQLite and PostgreSQL alike: timelines read a page at a time
//! by key, bulk alias creation keeps the one-at-a-time contract, and a
//! node's heartbeat keeps its leases while a dead node's lapse soon.

mod common;

use chrono::{Duration, Utc};

use common::storage::{accept, message, open, person};
use common::Backend;
use ct_relay::storage::{RefusedEntry, Write};

/// 250 entries (messages with deliveries, refusals between them), read in
/// pages of 100: every entry once, oldest first, each with its own
/// deliveries; an unknown cursor, or one from another order, is no page.
async fn timelines_page_by_key(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = db
        .ensure_participants(&[person("o1", "b@example.com", now)])
        .await
        .unwrap()
        .remove(0);
    let other = db
        .ensure_participants(&[person("o2", "c@example.com", now)])
        .await
        .unwrap()
        .remove(0);
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
                subject: String::new(),
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
        for e in &page {
            match &e.refused {
                Some(_) => assert!(e.deliveries.is_empty(), "{}", e.id),
                None => {
                    assert_eq!(e.deliveries.len(), 1, "{}", e.id);
                    assert_eq!(e.subject, format!("subject {}", e.id), "its own entry");
                }
            }
        }
        seen.extend(page.iter().map(|e| e.id.clone()));
        if page.len() < 100 {
            break;
        }
        after = page.last().map(|e| e.id.clone());
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
        .is_empty());
}

on_both_backends!(timelines_page_by_key);
