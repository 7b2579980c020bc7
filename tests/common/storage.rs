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

/// What a test's storage lives in: a folder for SQLite, a database of its
/// own for PostgreSQL. Both go when this is dropped.
pub struct Scratch {
    _dir: tempfile::TempDir,
    _database: Option<Arc<super::TestDatabase>>,
}

pub async fn open(backend: Backend) -> (Arc<dyn Storage>, Scratch) {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(super::TestDatabase::create()),
    };
    let url = match &database {
        None => format!("sqlite://{}", dir.path().join("t.db").display()),
        Some(db) => db.url.clone(),
    };
    let storage = storage::open(&StorageSettings::with_url(&url))
        .await
        .unwrap();
    (
        storage,
        Scratch {
            _dir: dir,
            _database: database,
        },
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

/// Every place in the database the needles (lowercase) appear.
pub async fn found_in_database(
    relay: &super::Relay,
    backend: Backend,
    needles: &[String],
) -> Vec<String> {
    match backend {
        Backend::Sqlite => {
            let mut found = Vec::new();
            let db = relay.db_path();
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let path = format!("{}{suffix}", db.display());
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let lower = bytes.to_ascii_lowercase();
                for n in needles {
                    if lower.windows(n.len()).any(|w| w == n.as_bytes()) {
                        found.push(format!("{path}: {n}"));
                    }
                }
            }
            found
        }
        Backend::Postgres => {
            use sqlx::Row;
            let pool = sqlx::PgPool::connect(&relay.storage_url()).await.unwrap();
            let columns = sqlx::query(
                "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS d
                 FROM information_schema.columns
                 WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'bytea')",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(columns.len() > 20, "the tables' columns are read");
            let mut found = Vec::new();
            for col in columns {
                let (t, c, d): (String, String, String) =
                    (col.get("t"), col.get("c"), col.get("d"));
                let text = match d.as_str() {
                    "bytea" => format!("lower(encode(\"{c}\", 'escape'))"),
                    _ => format!("lower(\"{c}\")"),
                };
                for n in needles {
                    let sql = format!("SELECT count(*) FROM \"{t}\" WHERE strpos({text}, $1) > 0");
                    let hits: i64 = sqlx::query_scalar(&sql)
                        .bind(n)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    if hits > 0 {
                        found.push(format!("{t}.{c}: {n} ({hits})"));
                    }
                }
            }
            found
        }
    }
}
