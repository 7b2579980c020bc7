//! The webhook outbox's contract and the relay's own notices, on SQLite and
//! PostgreSQL alike: events follow timeline changes, leases keep an event to
//! one node, and notices (no timeline entry) are never announced.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use common::storage::{accept, attempt, message, open, person};
use common::Backend;
use ct_relay::alias::MaskMode;
use ct_relay::storage::{
    AliasRef, AttemptRecord, DeliveryState, Notice, RefusedEntry, Storage, StoreUpdate,
    WebhookChange, WebhookEventKind, WebhookOutcome, WebhookState, Write,
};

fn set_webhook(url: &str, secret: Option<&str>) -> StoreUpdate {
    StoreUpdate {
        mask_mode: None,
        webhook: WebhookChange::Set {
            url: url.into(),
            secret: secret.map(String::from),
            new_secret: "whsec_fresh".into(),
        },
        policy: None,
        retention: None,
    }
}

async fn webhook_outbox_follows_the_timeline(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let to = person("o9", "w@example.com", now);
    db.apply(&[accept(message("before", "o9", &to, now))])
        .await
        .unwrap();
    let events = |db: Arc<dyn Storage>, at: DateTime<Utc>| async move {
        db.claim_webhook_events("n", at, at + chrono::Duration::seconds(60), 50)
            .await
            .unwrap()
    };
    assert!(events(db.clone(), now).await.is_empty(), "no webhook yet");

    // A secret is made when none is given, then kept when the URL changes.
    let config = db
        .update_store("acme", &set_webhook("http://a.example/1", None), now)
        .await
        .unwrap();
    assert_eq!(config.webhook.unwrap().secret, "whsec_fresh");
    let config = db
        .update_store("acme", &set_webhook("http://a.example/2", None), now)
        .await
        .unwrap();
    let target = config.webhook.unwrap();
    assert_eq!(
        (target.url.as_str(), target.secret.as_str()),
        ("http://a.example/2", "whsec_fresh")
    );
    assert_eq!(
        db.store_config("acme").await.unwrap().mask_mode,
        MaskMode::Hard
    );

    db.apply(&[accept(message("after", "o9", &to, now))])
        .await
        .unwrap();
    let got = events(db.clone(), now).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].kind, got[0].entry_id.as_str()),
        (WebhookEventKind::MessageAccepted, "after")
    );
    assert_eq!(got[0].target.as_ref(), Some(&target));
    assert!(
        db.claim_webhook_events("other", now, lease, 50)
            .await
            .unwrap()
            .is_empty(),
        "leased to n"
    );
    let entry = db
        .timeline_entry("acme", "o9", "after")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.subject, "subject after");

    // Delivery events only where the state changes.
    assert_eq!(db.claim_due("n", now, lease, 10).await.unwrap().len(), 2);
    for state in [DeliveryState::Retrying, DeliveryState::Retrying] {
        db.apply(&[attempt("n", "after-d", state)]).await.unwrap();
        db.claim_due("n", now + chrono::Duration::hours(1), lease, 10)
            .await
            .unwrap();
    }
    db.apply(&[attempt("n", "after-d", DeliveryState::Delivered)])
        .await
        .unwrap();
    // A second later: events of the same millisecond come in id order,
    // which is random within it.
    let later = Utc::now() + chrono::Duration::seconds(1);
    let refusal = RefusedEntry {
        id: "refused-1".into(),
        store: "acme".into(),
        order: "o9".into(),
        at: later,
        from: None,
        to: vec![AliasRef::from(&to)],
        reply: "550 5.1.1 no such alias".into(),
        reason: "ended_alias".into(),
        subject: String::new(),
    };
    db.apply(&[Write::Refusal(refusal)]).await.unwrap();
    let kinds: Vec<_> = events(db.clone(), later)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            WebhookEventKind::DeliveryUpdated, // queued -> retrying
            WebhookEventKind::DeliveryUpdated, // retrying -> delivered
            WebhookEventKind::MessageRefused,
        ]
    );

    // A retry is due at its time and only the lease holder writes outcomes.
    let retry = WebhookOutcome {
        at: now,
        state: WebhookState::Pending,
        status: "HTTP 500".into(),
        next_attempt_at: Some(now + chrono::Duration::seconds(30)),
    };
    let first = &got[0].id;
    assert!(!db
        .record_webhook_outcome("other", first, &retry)
        .await
        .unwrap());
    assert!(db.record_webhook_outcome("n", first, &retry).await.unwrap());
    assert_eq!(db.webhook_backlog().await.unwrap().0, 4);
    assert!(events(db.clone(), now + chrono::Duration::seconds(10))
        .await
        .is_empty());
    let again = events(db.clone(), now + chrono::Duration::seconds(31)).await;
    assert_eq!((again.len(), again[0].attempts), (1, 1));

    // Removing the webhook fails what is pending.
    let removed = StoreUpdate {
        mask_mode: Some(MaskMode::Soft),
        webhook: WebhookChange::Remove,
        policy: None,
        retention: None,
    };
    let config = db.update_store("acme", &removed, now).await.unwrap();
    assert_eq!((config.mask_mode, config.webhook), (MaskMode::Soft, None));
    assert_eq!(db.webhook_backlog().await.unwrap().0, 0);
    let later = now + chrono::Duration::days(1);
    let purged = db.purge_batch(now, later, 100).await.unwrap();
    assert_eq!(purged.webhook_events, 4);
}

async fn notices_are_not_announced(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    db.update_store("acme", &set_webhook("http://a.example/", None), now)
        .await
        .unwrap();
    let to = person("o10", "n@example.com", now);
    db.apply(&[accept(message("n1", "o10", &to, now))])
        .await
        .unwrap();
    let lease = now + chrono::Duration::seconds(60);
    assert_eq!(db.claim_due("n", now, lease, 10).await.unwrap().len(), 1);
    // The delivery fails for good: the sender is sent a notice.
    let notice = Notice {
        id: "notice1".into(),
        delivery_id: "notice1-d".into(),
        store: "acme".into(),
        order: "o10".into(),
        at: now,
        content: b"Subject: Undelivered\r\n\r\nreport\r\n".to_vec(),
        rcpt_email: "shop@example.org".into(),
        rcpt_label: "(sender)".into(),
    };
    let failed = Write::Attempt {
        node: "n".into(),
        delivery_id: "n1-d".into(),
        record: AttemptRecord {
            at: now,
            state: DeliveryState::Failed,
            reply: "550 5.1.1 no".into(),
            next_attempt_at: None,
            hard_bounce: None,
        },
        notice: Some(Box::new(notice)),
    };
    assert_eq!(db.apply(&[failed]).await.unwrap(), vec![true]);
    let later = Utc::now() + chrono::Duration::seconds(1);
    let queued = db
        .claim_due("n", later, later + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].id.as_str(), queued[0].mail_from.as_str()),
        ("notice1-d", "")
    );
    db.apply(&[attempt("n", "notice1-d", DeliveryState::Delivered)])
        .await
        .unwrap();

    let events = db
        .claim_webhook_events("n", later + chrono::Duration::seconds(5), lease, 50)
        .await
        .unwrap();
    let announced: Vec<(&str, WebhookEventKind)> = events
        .iter()
        .map(|e| (e.entry_id.as_str(), e.kind))
        .collect();
    assert_eq!(
        announced,
        [
            ("n1", WebhookEventKind::MessageAccepted),
            ("n1", WebhookEventKind::DeliveryUpdated)
        ]
    );
    // Not on the timeline either.
    let timeline = db.timeline("acme", "o10").await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].deliveries.len(), 1);
}

on_both_backends!(
    webhook_outbox_follows_the_timeline,
    notices_are_not_announced
);
