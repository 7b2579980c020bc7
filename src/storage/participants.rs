//! Making participants: creation is idempotent. The same (store, order,
//! role, email) gives the same alias and row, also when the store's mask
//! mode changed since the alias was made (a participant keeps the form its
//! first mail went out with), and an alias already stored is returned as it
//! is, with its first creation time.
//!
//! One call is one transaction and a handful of statements whatever its
//! size (a bulk import sends thousands): the rows already made for the
//! call's orders are read at once, the new ones inserted with multi-row
//! statements, and what is stored read back by alias.

use std::collections::HashMap;

use super::placeholders::{list, value_rows};
use super::rows::{self, to_ms};
use super::sql::{Backend, SqlConn, Stmt};
use super::{schema, Result, StorageError};
use crate::alias::Participant;

/// What makes two participants the same person in an order.
type Person = (String, String, &'static str, String);

fn person(p: &Participant) -> Person {
    (
        p.store.clone(),
        p.order.clone(),
        p.role.as_str(),
        p.email.to_lowercase(),
    )
}

/// Insert each participant unless it exists, in one transaction, and
/// return the stored rows in the order asked. The backend takes turns with
/// other nodes creating participants of the same orders (`lock_orders`), and
/// says how many rows go in one statement and with which placeholders
/// (SQLite's driver looks each numbered value up by its name, in time
/// growing with the statement's values: it gets `?` instead).
pub(crate) async fn ensure_in_one_transaction<B: Backend>(
    backend: &B,
    ps: &[Participant],
) -> Result<Vec<Participant>> {
    if ps.is_empty() {
        return Ok(Vec::new());
    }
    let rows_per_statement = B::ROWS_PER_STATEMENT;
    let mut writer = backend.writer().await?;
    let mut tx = B::begin_write(&mut writer).await?;
    let mut orders: Vec<(&str, &str)> = ps
        .iter()
        .map(|p| (p.store.as_str(), p.order.as_str()))
        .collect();
    orders.sort_unstable();
    orders.dedup();
    B::lock_orders(&mut tx, &orders).await?;

    // The earliest row of each person already in these orders.
    let mut made: HashMap<Person, Participant> = HashMap::new();
    let mut ids: Vec<&str> = orders.iter().map(|(_, o)| *o).collect();
    ids.dedup();
    for chunk in ids.chunks(rows_per_statement) {
        let sql = format!(
            "SELECT {} FROM participants WHERE order_id IN ({}) ORDER BY created_at",
            schema::PARTICIPANT,
            list(chunk.len())
        );
        let stmt = chunk.iter().fold(Stmt::new(sql), |s, id| s.text(*id));
        for row in &tx.fetch_all(stmt).await? {
            let earlier = rows::participant(row, backend.keyring())?;
            made.entry(person(&earlier)).or_insert(earlier);
        }
    }

    // The rest, once each (with its lookup key), inserted unless their
    // alias exists.
    let people: Vec<Person> = ps.iter().map(person).collect();
    let mut first: HashMap<&Person, usize> = HashMap::new();
    let mut new: Vec<(&Participant, String)> = Vec::new();
    for (p, who) in ps.iter().zip(&people) {
        if !made.contains_key(who) && !first.contains_key(who) {
            first.insert(who, new.len());
            new.push((p, p.key()));
        }
    }
    // Inserted rows hold what was made. A statement that inserted fewer
    // rows than it had met aliases that exist (or two made with one
    // alias): its rows are read back.
    let mut stored: HashMap<String, Participant> = HashMap::new();
    for chunk in new.chunks(rows_per_statement) {
        let sql = format!(
            "INSERT INTO participants ({}) VALUES {} ON CONFLICT (alias_key) DO NOTHING",
            schema::PARTICIPANT_INSERT,
            value_rows(chunk.len(), 9, B::NUMBERED_PLACEHOLDERS)
        );
        let stmt = chunk.iter().fold(Stmt::new(sql), |s, (p, key)| {
            s.text(key.as_str())
                .text(&p.alias)
                .text(&p.store)
                .text(&p.order)
                .text(p.role.as_str())
                .text(backend.keyring().seal_address(&p.email))
                .text(p.mode.as_str())
                .int(to_ms(p.created_at))
                .int(to_ms(p.expires_at))
        });
        if tx.execute(stmt).await? == chunk.len() as u64 {
            for (p, key) in chunk {
                let row = Participant {
                    created_at: rows::from_ms(to_ms(p.created_at))?,
                    expires_at: rows::from_ms(to_ms(p.expires_at))?,
                    disabled: false,
                    blocked: false,
                    undeliverable: false,
                    ..(*p).clone()
                };
                stored.insert(key.clone(), row);
            }
        }
    }
    let others: Vec<&str> = new
        .iter()
        .map(|(_, key)| key.as_str())
        .filter(|key| !stored.contains_key(*key))
        .collect();
    for chunk in others.chunks(rows_per_statement) {
        let sql = format!(
            "SELECT {} FROM participants WHERE alias_key IN ({})",
            schema::PARTICIPANT,
            list(chunk.len())
        );
        let stmt = chunk.iter().fold(Stmt::new(sql), |s, key| s.text(*key));
        for row in &tx.fetch_all(stmt).await? {
            let p = rows::participant(row, backend.keyring())?;
            stored.insert(p.key(), p);
        }
    }
    B::commit(tx).await?;

    ps.iter()
        .zip(&people)
        .map(|(p, who)| {
            let found = match made.get(who) {
                Some(earlier) => Some(earlier),
                None => first.get(who).and_then(|&i| stored.get(&new[i].1)),
            };
            found
                .cloned()
                .ok_or_else(|| StorageError::Corrupt(format!("alias {} not stored", p.alias)))
        })
        .collect()
}
