//! Legal holds: an order on hold keeps its aliases, messages and timeline
//! past retention; purge skips it (its statements test `holds`, see
//! `queries`) and says how many orders it skipped.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rows::{from_ms, to_ms, Columns};
use super::sql::{SqlConn, Stmt};
use super::{rfc3339, Result};

/// An order on hold.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// The order's store.
    pub store: String,
    /// The order.
    pub order: String,
    /// Since when.
    #[serde(serialize_with = "rfc3339")]
    pub held_at: DateTime<Utc>,
    /// Why, as given.
    pub reason: String,
}

/// Put the order on hold (kept as it was when already held); the hold.
pub(crate) async fn hold(conn: &mut impl SqlConn, h: &Hold) -> Result<Hold> {
    conn.execute(
        Stmt::new(
            "INSERT INTO holds (store, order_id, held_at, reason) VALUES ($1, $2, $3, $4)
             ON CONFLICT (store, order_id) DO NOTHING",
        )
        .text(&h.store)
        .text(&h.order)
        .int(to_ms(h.held_at))
        .text(&h.reason),
    )
    .await?;
    Ok(find(conn, &h.store, &h.order)
        .await?
        .unwrap_or_else(|| h.clone()))
}

/// Lift the order's hold; whether it had one.
pub(crate) async fn release(conn: &mut impl SqlConn, store: &str, order: &str) -> Result<bool> {
    let stmt = Stmt::new("DELETE FROM holds WHERE store = $1 AND order_id = $2")
        .text(store)
        .text(order);
    Ok(conn.execute(stmt).await? > 0)
}

/// The order's hold, if it has one.
pub(crate) async fn find(
    conn: &mut impl SqlConn,
    store: &str,
    order: &str,
) -> Result<Option<Hold>> {
    let stmt = Stmt::new(
        "SELECT store, order_id, held_at, reason FROM holds WHERE store = $1 AND order_id = $2",
    )
    .text(store)
    .text(order);
    let Some(row) = conn.fetch_optional(stmt).await? else {
        return Ok(None);
    };
    Ok(Some(Hold {
        store: row.text("store")?,
        order: row.text("order_id")?,
        held_at: from_ms(row.int("held_at")?)?,
        reason: row.text("reason")?,
    }))
}

/// How many orders are on hold.
pub(crate) async fn count(conn: &mut impl SqlConn) -> Result<u64> {
    let row = conn
        .fetch_one(Stmt::new("SELECT COUNT(*) AS n FROM holds"))
        .await?;
    Ok(row.int("n")?.max(0) as u64)
}
