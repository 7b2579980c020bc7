//! The storage trait's contract, run against SQLite and PostgreSQL alike.

mod common;

use chrono::Utc;

use common::storage::{
    accept, aliaser, attempt, message, open, participant, person, stored_person,
};
use common::Backend;
use ct_relay::alias::{MaskMode, Role};
use ct_relay::policy::{PolicyUpdate, SpamAction, StorePolicy};
use ct_relay::storage::{DeliveryState, QueueChange, StoreUpdate, Write};

async fn participants_are_idempotent_and_case_insensitive(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let p = person("o1", "Buyer@Example.com", now);
    let first = db
        .ensure_participants(std::slice::from_ref(&p))
        .await
        .unwrap();
    let again = person("o1", "buyer@example.COM", now + chrono::Duration::hours(1));
    let second = db.ensure_participants(&[again]).await.unwrap();
    assert_eq!(
        first, second,
        "same alias, same row (first creation time kept)"
    );
    assert_eq!(first[0].email, "Buyer@Example.com");
    let found = db
        .find_alias(&p.alias.to_uppercase())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.alias, p.alias);
    assert!(db.find_alias("nobody@ct.test").await.unwrap().is_none());
    assert!(db.disable_alias(&p.alias, now).await.unwrap());
    assert!(db.find_alias(&p.alias).await.unwrap().unwrap().disabled);
    assert!(!db.disable_alias("nobody@ct.test", now).await.unwrap());
    assert_eq!(db.order_participants("acme", "o1").await.unwrap().len(), 1);
    assert_eq!(
        db.stores_with_order("o1").await.unwrap(),
        vec!["acme".to_string()]
    );
}

/// docs/REFERENCE.md: the same (store, order, role, email) gives the same alias and
/// row, also when the store switched its mask mode in between; other roles
/// and orders get aliases of the new mode.
async fn a_participant_keeps_its_alias_when_the_mode_changes(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let make = |order: &str, role: Role, email: &str, mode: MaskMode| {
        participant(order, role, email, mode, now)
    };
    let hard = make("o1", Role::Customer, "buyer@example.com", MaskMode::Hard);
    let first = db
        .ensure_participants(std::slice::from_ref(&hard))
        .await
        .unwrap();
    let soft = make("o1", Role::Customer, "Buyer@example.com", MaskMode::Soft);
    assert_ne!(soft.key(), hard.key());
    let shop = make("o1", Role::Store, "sac@shop.example", MaskMode::Soft);
    let other_order = make("o2", Role::Customer, "buyer@example.com", MaskMode::Soft);
    let second = db
        .ensure_participants(&[soft, shop.clone(), other_order.clone()])
        .await
        .unwrap();
    assert_eq!(second[0], first[0], "the hard alias made first stays");
    assert_eq!(second[1].alias, shop.alias);
    assert_eq!(second[1].mode, MaskMode::Soft);
    assert_eq!(second[2].alias, other_order.alias);
    assert_eq!(db.order_participants("acme", "o1").await.unwrap().len(), 2);
}

async fn store_mode_defaults_to_hard(backend: Backend) {
    let (db, _dir) = open(backend).await;
    assert_eq!(db.store_mode("new").await.unwrap(), MaskMode::Hard);
    assert!(!db.store_summary("new").await.unwrap().configured);
    db.set_store_mode("new", MaskMode::Soft).await.unwrap();
    assert_eq!(db.store_mode("new").await.unwrap(), MaskMode::Soft);
    db.set_store_mode("new", MaskMode::Hard).await.unwrap();
    let summary = db.store_summary("new").await.unwrap();
    assert!(summary.configured);
    assert_eq!(summary.mask_mode, MaskMode::Hard);
}

async fn accepted_message_is_on_the_timeline_and_queued(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = stored_person(db.as_ref(), "o2", "b@example.com", now).await;
    let contact = aliaser()
        .participant(
            "acme",
            "o2",
            Role::Contact,
            "carrier@example.net",
            MaskMode::Hard,
            now,
        )
        .unwrap();
    let mut m = message("m1", "o2", &to, now);
    m.new_participants = vec![contact.clone()];
    assert_eq!(db.apply(&[accept(m)]).await.unwrap(), vec![true]);

    let timeline = db.timeline("acme", "o2").await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].subject, "subject m1");
    assert_eq!(timeline[0].attachment_names, vec!["a.pdf"]);
    assert_eq!(timeline[0].deliveries[0].state, DeliveryState::Queued);
    assert_eq!(
        db.message_content("m1").await.unwrap().unwrap(),
        b"Subject: m1\r\n\r\nbody\r\n"
    );
    assert!(
        db.find_alias(&contact.alias).await.unwrap().is_some(),
        "contact committed with the message"
    );
    let queued = db.queue_list(None, 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let store = queued[0].store.clone();
    assert_eq!(db.queue_list(Some(&store), 10).await.unwrap().len(), 1);
    assert!(db
        .queue_list(Some("another-store"), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn a_failing_batch_writes_nothing(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = person("o3", "c@example.com", now);
    let ok = message("m2", "o3", &to, now);
    let duplicate = message("m2", "o3", &to, now);
    assert!(db.apply(&[accept(ok), accept(duplicate)]).await.is_err());
    assert!(db.timeline("acme", "o3").await.unwrap().is_empty());
    assert!(db.message_content("m2").await.unwrap().is_none());
}

async fn leases_keep_a_delivery_to_one_node(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = person("o4", "d@example.com", now);
    db.apply(&[accept(message("m3", "o4", &to, now))])
        .await
        .unwrap();
    let lease = now + chrono::Duration::seconds(60);

    let a = db.claim_due("node-a", now, lease, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].rcpt_email, "d@example.com");
    assert!(
        db.claim_due("node-b", now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert_eq!(
        db.next_due().await.unwrap().unwrap().timestamp_millis(),
        lease.timestamp_millis()
    );

    // Node A goes silent; after its lease, B takes the delivery over.
    let later = lease + chrono::Duration::seconds(1);
    let b = db
        .claim_due("node-b", later, later + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(b.len(), 1);
    // Only the lease holder's outcome is written.
    assert_eq!(
        db.apply(&[attempt("node-a", "m3-d", DeliveryState::Delivered)])
            .await
            .unwrap(),
        vec![false]
    );
    assert_eq!(
        db.apply(&[attempt("node-b", "m3-d", DeliveryState::Delivered)])
            .await
            .unwrap(),
        vec![true]
    );
    let d = &db.timeline("acme", "o4").await.unwrap()[0].deliveries[0];
    assert_eq!((d.state, d.attempts), (DeliveryState::Delivered, 1));
    assert!(db
        .claim_due("node-a", later, later, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(
        !db.queue_retry("m3-d", later).await.unwrap(),
        "delivered is final"
    );
}

async fn concurrent_claims_never_overlap(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = person("o5", "e@example.com", now);
    let batch: Vec<Write> = (0..40)
        .map(|i| accept(message(&format!("c{i:02}"), "o5", &to, now)))
        .collect();
    db.apply(&batch).await.unwrap();
    let lease = now + chrono::Duration::seconds(60);
    let nodes: Vec<_> = (0..4)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = db
                        .claim_due(&format!("node-{n}"), now, lease, 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for n in nodes {
        all.extend(n.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (40, 40),
        "every delivery claimed exactly once"
    );
}

async fn released_leases_are_due_again(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let to = person("o6", "f@example.com", now);
    db.apply(&[
        accept(message("m4", "o6", &to, now)),
        accept(message("m5", "o6", &to, now)),
    ])
    .await
    .unwrap();
    let lease = now + chrono::Duration::seconds(60);
    assert_eq!(db.claim_due("a", now, lease, 1).await.unwrap().len(), 1);
    assert_eq!(db.claim_due("b", now, lease, 1).await.unwrap().len(), 1);
    assert_eq!(db.release_leases(Some("a")).await.unwrap(), 1);
    assert_eq!(
        db.claim_due("c", now, lease, 10).await.unwrap().len(),
        1,
        "only a's came back"
    );
    let listed = db.queue_list(None, 10).await.unwrap();
    assert!(listed.iter().all(|q| q.leased_by.is_some()));
}

async fn held_deliveries_wait_for_release_and_delete_ends_them(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(60);
    let to = person("o7", "g@example.com", now);
    db.apply(&[accept(message("m6", "o7", &to, now))])
        .await
        .unwrap();
    assert_eq!(db.queue_hold("m6-d", now).await.unwrap(), QueueChange::Done);
    assert_eq!(db.queue_hold("m6-d", now).await.unwrap(), QueueChange::Done);
    assert!(
        db.claim_due("a", now, lease, 10).await.unwrap().is_empty(),
        "due, but held"
    );
    assert_eq!(db.next_due().await.unwrap(), None);
    assert!(db.queue_list(None, 10).await.unwrap()[0].held_at.is_some());

    assert_eq!(
        db.queue_release("m6-d", now).await.unwrap(),
        QueueChange::Done
    );
    assert_eq!(
        db.queue_release("m6-d", now).await.unwrap(),
        QueueChange::NotWaiting,
        "not held"
    );
    let job = db.claim_delivery("cli", "m6-d", now, lease).await.unwrap();
    assert_eq!(job.unwrap().id, "m6-d");
    let again = db
        .claim_delivery("other", "m6-d", now, lease)
        .await
        .unwrap();
    assert_eq!(again.unwrap_err(), QueueChange::InFlight);
    assert_eq!(
        db.queue_delete("m6-d", now).await.unwrap(),
        QueueChange::InFlight
    );
    db.release_leases(Some("cli")).await.unwrap();
    assert_eq!(
        db.queue_delete("m6-d", now).await.unwrap(),
        QueueChange::Done
    );
    let status = db.delivery_status("m6-d").await.unwrap().unwrap();
    assert_eq!(status.state, DeliveryState::Failed);
    assert!(status
        .last_reply
        .unwrap()
        .contains("deleted from the queue"));
    assert!(db.claim_due("a", now, lease, 10).await.unwrap().is_empty());
    assert_eq!(
        db.queue_delete("m6-d", now).await.unwrap(),
        QueueChange::NotWaiting
    );
    assert_eq!(
        db.queue_hold("nope", now).await.unwrap(),
        QueueChange::Unknown
    );
    let unknown = db.claim_delivery("x", "nope", now, lease).await.unwrap();
    assert_eq!(unknown.unwrap_err(), QueueChange::Unknown);
}

async fn purge_keeps_pending_mail_and_live_aliases(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let old = Utc::now() - chrono::Duration::days(400);
    let now = Utc::now();
    let expired = person("o7", "old@example.com", old); // expired 2 months after `old`
    let live = person("o7", "new@example.com", now);
    db.ensure_participants(&[expired.clone(), live.clone()])
        .await
        .unwrap();
    db.apply(&[
        accept(message("done", "o7", &live, old)),
        accept(message("waiting", "o7", &live, old)),
        accept(message("recent", "o7", &live, now)),
    ])
    .await
    .unwrap();
    let claimed = db
        .claim_due("n", now, now + chrono::Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    db.apply(&[attempt("n", "done-d", DeliveryState::Delivered)])
        .await
        .unwrap();

    let cutoff = now - chrono::Duration::days(30);
    let first = db.purge_batch(cutoff, cutoff, 1).await.unwrap();
    assert_eq!((first.aliases, first.messages), (1, 1));
    let second = db.purge_batch(cutoff, cutoff, 1).await.unwrap();
    assert!(second.is_empty(), "{second:?}");
    assert!(db.find_alias(&expired.alias).await.unwrap().is_none());
    assert!(db.find_alias(&live.alias).await.unwrap().is_some());
    let left: Vec<String> = db
        .timeline("acme", "o7")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, vec!["waiting".to_string(), "recent".to_string()]);
    assert!(db.message_content("done").await.unwrap().is_none());
}

async fn the_door_reads_policy_blocks_and_recent_mail(backend: Backend) {
    let (db, _dir) = open(backend).await;
    let now = Utc::now();
    let p = person("o7", "buyer@example.com", now);
    db.ensure_participants(std::slice::from_ref(&p))
        .await
        .unwrap();
    let (_, order) = db.find_alias_with_order(&p.alias).await.unwrap().unwrap();
    assert_eq!(order.policy, StorePolicy::default());
    assert!(!order.participants[0].blocked);

    // The policy comes with the order at RCPT once the store sets it.
    let update = StoreUpdate {
        policy: Some(PolicyUpdate {
            spam: Some(SpamAction::Refuse),
            ..PolicyUpdate::default()
        }),
        ..StoreUpdate::default()
    };
    db.update_store("acme", &update, now).await.unwrap();
    let (_, order) = db.find_alias_with_order(&p.alias).await.unwrap().unwrap();
    assert_eq!(order.policy.spam, SpamAction::Refuse);
    assert!(order.policy.require_authenticated_store, "the rest stays");

    // Blocks: changed once, read back with the order.
    let aliases = [p.alias.to_uppercase()];
    assert_eq!(db.set_blocked(&aliases, true, now).await.unwrap(), 1);
    assert_eq!(db.set_blocked(&aliases, true, now).await.unwrap(), 0);
    let (found, _) = db.find_alias_with_order(&p.alias).await.unwrap().unwrap();
    assert!(found.blocked);
    assert_eq!(db.set_blocked(&aliases, false, now).await.unwrap(), 1);
    assert!(!db.find_alias(&p.alias).await.unwrap().unwrap().blocked);

    // Recent mail: by recipient alias, since a time, per sender, capped.
    let mut writes = Vec::new();
    for (i, sender) in ["s1", "s1", "s2"].iter().enumerate() {
        let mut m = message(&format!("r{i}"), "o7", &p, now);
        m.deliveries[0].sender_alias = Some(sender.to_string());
        writes.push(accept(m));
    }
    db.apply(&writes).await.unwrap();
    let hour_ago = now - chrono::Duration::hours(1);
    let recent = db
        .recent_mail(&p.alias, Some("s1"), hour_ago, 100)
        .await
        .unwrap();
    assert_eq!((recent.total, recent.from_sender), (3, 2));
    let capped = db.recent_mail(&p.alias, None, hour_ago, 2).await.unwrap();
    assert_eq!((capped.total, capped.from_sender), (2, 0));
    let later = now + chrono::Duration::seconds(1);
    assert_eq!(
        db.recent_mail(&p.alias, Some("s1"), later, 100)
            .await
            .unwrap()
            .total,
        0
    );
}

on_both_backends!(
    the_door_reads_policy_blocks_and_recent_mail,
    participants_are_idempotent_and_case_insensitive,
    a_participant_keeps_its_alias_when_the_mode_changes,
    store_mode_defaults_to_hard,
    accepted_message_is_on_the_timeline_and_queued,
    a_failing_batch_writes_nothing,
    leases_keep_a_delivery_to_one_node,
    concurrent_claims_never_overlap,
    released_leases_are_due_again,
    held_deliveries_wait_for_release_and_delete_ends_them,
    purge_keeps_pending_mail_and_live_aliases,
);
