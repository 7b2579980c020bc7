//! Storage fixtures for the contract tests: a fresh database per test on
//! either backend, and ready-made participants, messages and writes.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Backend;
use ct_relay::alias::{AliasKey, Aliaser, MaskMode, Participant, Role, Ttl};
use ct_relay::config::StorageSettings;
use ct_relay::storage::{
    self, AcceptedMessage, AliasRef, AttemptRecord, DeliveryState, NewDelivery, Storage,
    TimelineSummary, Write,
};

pub async fn open(backend: Backend) -> (Arc<dyn Storage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("t.db").display()),
        Backend::Postgres => super::new_postgres_database(),
    };
    (
        storage::open(&StorageSettings::with_url(&url))
            .await
            .unwrap(),
        dir,
    )
}

pub fn aliaser() -> Aliaser {
    Aliaser::new(
        AliasKey::parse(super::TEST_KEY).unwrap(),
        "ct.test",
        Ttl::Months(2),
    )
}

/// The participant of store `acme`'s `order` with this role, address and mode.
pub fn participant(
    order: &str,
    role: Role,
    email: &str,
    mode: MaskMode,
    now: DateTime<Utc>,
) -> Participant {
    aliaser()
        .participant("acme", order, role, email, mode, now)
        .unwrap()
}

pub fn person(order: &str, email: &str, now: DateTime<Utc>) -> Participant {
    aliaser()
        .participant("acme", order, Role::Customer, email, MaskMode::Hard, now)
        .unwrap()
}

/// `person`'s row as stored (made now if it was not).
pub async fn stored_person(
    db: &dyn Storage,
    order: &str,
    email: &str,
    now: DateTime<Utc>,
) -> Participant {
    db.ensure_participants(&[person(order, email, now)])
        .await
        .unwrap()
        .remove(0)
}

pub fn message(id: &str, order: &str, to: &Participant, at: DateTime<Utc>) -> AcceptedMessage {
    AcceptedMessage {
        id: id.into(),
        queue_id: id.into(),
        store: "acme".into(),
        order: order.into(),
        received_at: at,
        return_path: "shop@example.org".into(),
        content: format!("Subject: {id}\r\n\r\nbody\r\n").into(),
        new_participants: Vec::new(),
        entry: TimelineSummary {
            from: None,
            to: vec![AliasRef::from(to)],
            subject: format!("subject {id}"),
            first_words: "body".into(),
            attachment_names: vec!["a.pdf".into()],
            authentication: None,
            flags: Vec::new(),
        },
        deliveries: vec![NewDelivery {
            id: format!("{id}-d"),
            rcpt_alias: to.alias.clone(),
            rcpt_email: to.email.clone(),
            mail_from: format!("bounce-{id}@ct.test"),
            sender_alias: None,
        }],
        lease: None,
    }
}

pub fn accept(m: AcceptedMessage) -> Write {
    Write::Accept(Box::new(m))
}

pub fn attempt(node: &str, delivery: &str, state: DeliveryState) -> Write {
    Write::Attempt {
        node: node.into(),
        delivery_id: delivery.into(),
        record: AttemptRecord {
            at: Utc::now(),
            state,
            reply: "250 2.0.0 Ok".into(),
            next_attempt_at: None,
            hard_bounce: None,
        },
        notice: None,
    }
}
