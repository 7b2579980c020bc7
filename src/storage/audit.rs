//! The audit of reveals: every time a participant's real address is shown,
//! a row saying who asked, when, for which alias and why, written before
//! the address is shown.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::{from_ms, to_ms, Columns};
use super::sql::{SqlConn, Stmt};
use super::{rfc3339, Result};

/// One reveal of a real address.
#[derive(Debug, Clone, Serialize)]
pub struct Reveal {
    /// The entry's id.
    pub id: String,
    /// When it was shown.
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// Who asked (`cli:<user>`).
    pub actor: String,
    /// The alias whose address was shown.
    pub alias: String,
    /// Its store.
    pub store: String,
    /// Its order.
    pub order: String,
    /// Why, as given.
    pub reason: String,
}

pub(crate) async fn insert(conn: &mut impl SqlConn, r: &Reveal) -> Result<()> {
    conn.execute(
        Stmt::new(
            "INSERT INTO reveals (id, at, actor, alias, store, order_id, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .text(&r.id)
        .int(to_ms(r.at))
        .text(&r.actor)
        .text(&r.alias)
        .text(&r.store)
        .text(&r.order)
        .text(&r.reason),
    )
    .await
    .map(|_| ())
}

pub(crate) async fn latest(conn: &mut impl SqlConn, limit: u32) -> Result<Vec<Reveal>> {
    let rows = conn
        .fetch_all(
            Stmt::new(
                "SELECT id, at, actor, alias, store, order_id, reason FROM reveals
                 ORDER BY at DESC, id DESC LIMIT $1",
            )
            .int(i64::from(limit)),
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Reveal {
                id: r.text("id")?,
                at: from_ms(r.int("at")?)?,
                actor: r.text("actor")?,
                alias: r.text("alias")?,
                store: r.text("store")?,
                order: r.text("order_id")?,
                reason: r.text("reason")?,
            })
        })
        .collect()
}
