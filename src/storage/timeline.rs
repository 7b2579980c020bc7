//! Reading an order's timeline a page at a time. Entries are ordered by
//! (`at`, `id`) and a page starts after the entry its cursor names, so a
//! page is one seek and `limit` rows of the index on
//! (store, order_id, at, id), however long the order's timeline has grown;
//! the deliveries read are those of the page's messages only.

use std::collections::HashMap;

use async_trait::async_trait;

use super::placeholders::list;
use super::rows::{self, Columns};
use super::sql::{Backend, SqlConn, Stmt};
use super::{schema, DeliveryStatus, Keyring, Result, TimelineEntry};

/// Most entries one page holds.
pub const PAGE_MAX: u32 = 1000;

/// Up to `limit` entries of an order's timeline, and the cursor of the
/// page after them (the last entry's id) when more follow.
#[derive(Debug, Default)]
pub struct TimelinePage {
    /// The entries, oldest first.
    pub entries: Vec<TimelineEntry>,
    /// The cursor of the next page (the last entry's id); none on the last page.
    pub next: Option<String>,
}

/// An order's timeline read a page at a time by key; the API, the console
/// and the CLI read it through `service::timelines`.
#[async_trait]
pub trait Timelines: Send + Sync {
    /// Up to `limit` entries of the order's timeline, oldest first, after
    /// the entry `after` (from the first when `None`), and whether more
    /// follow. `None` when `after` names no entry of this order's timeline.
    async fn timeline_page(
        &self,
        store: &str,
        order: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<TimelinePage>>;

    /// One entry of the order's timeline, as a page shows it.
    async fn timeline_entry(
        &self,
        store: &str,
        order: &str,
        entry_id: &str,
    ) -> Result<Option<TimelineEntry>>;

    /// Every entry after `after` (from the first when `None`), read a page
    /// at a time; `None` as for `timeline_page`.
    async fn timeline_after(
        &self,
        store: &str,
        order: &str,
        after: Option<&str>,
    ) -> Result<Option<Vec<TimelineEntry>>> {
        let mut all = Vec::new();
        let mut cursor = after.map(str::to_string);
        loop {
            let Some(page) = self
                .timeline_page(store, order, cursor.as_deref(), PAGE_MAX)
                .await?
            else {
                return Ok(None);
            };
            all.extend(page.entries);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(Some(all)),
            }
        }
    }

    /// The whole timeline (tests and small orders; callers that serve
    /// people page instead).
    async fn timeline(&self, store: &str, order: &str) -> Result<Vec<TimelineEntry>> {
        Ok(self
            .timeline_after(store, order, None)
            .await?
            .unwrap_or_default())
    }
}

/// The deliveries of these messages, by message, in the order they were made.
async fn deliveries_of(
    conn: &mut impl SqlConn,
    messages: &[String],
) -> Result<HashMap<String, Vec<DeliveryStatus>>> {
    let mut by_message: HashMap<String, Vec<DeliveryStatus>> = HashMap::new();
    if messages.is_empty() {
        return Ok(by_message);
    }
    let sql = format!(
        "SELECT {} FROM deliveries WHERE message_id IN ({}) ORDER BY id",
        schema::DELIVERY_STATUS,
        list(messages.len())
    );
    let stmt = messages.iter().fold(Stmt::new(sql), |s, m| s.text(m));
    for r in &conn.fetch_all(stmt).await? {
        by_message
            .entry(r.text("message_id")?)
            .or_default()
            .push(rows::delivery_status(r)?);
    }
    Ok(by_message)
}

/// Entry rows (`schema::TIMELINE_ENTRY`) with their messages' deliveries.
async fn with_deliveries<C: SqlConn>(
    conn: &mut C,
    keys: &Keyring,
    found: Vec<C::Row>,
) -> Result<Vec<TimelineEntry>> {
    let messages = found
        .iter()
        .filter_map(|r| r.opt_text("message_id").transpose())
        .collect::<Result<Vec<String>>>()?;
    let mut by_message = deliveries_of(conn, &messages).await?;
    found
        .iter()
        .map(|r| {
            let mine = r
                .opt_text("message_id")?
                .and_then(|id| by_message.remove(&id));
            rows::timeline_entry(r, mine.unwrap_or_default(), keys)
        })
        .collect()
}

#[async_trait]
impl<B: Backend> Timelines for B {
    async fn timeline_page(
        &self,
        store: &str,
        order: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Option<TimelinePage>> {
        let mut reader = self.reader().await?;
        let from: (i64, String) = match after {
            None => (i64::MIN, String::new()),
            Some(id) => {
                let stmt = Stmt::new(
                    "SELECT at FROM timeline_entries WHERE id = $1 AND store = $2 AND order_id = $3",
                )
                .text(id)
                .text(store)
                .text(order);
                match reader.fetch_optional(stmt).await? {
                    Some(row) => (row.int("at")?, id.to_string()),
                    None => return Ok(None),
                }
            }
        };
        let sql = format!(
            "SELECT {} FROM timeline_entries
             WHERE store = $1 AND order_id = $2 AND (at, id) > ($3, $4)
             ORDER BY at, id LIMIT $5",
            schema::TIMELINE_ENTRY
        );
        // One more than asked: whether there is a next page.
        let stmt = Stmt::new(sql)
            .text(store)
            .text(order)
            .int(from.0)
            .text(from.1)
            .int(i64::from(limit) + 1);
        let mut found = reader.fetch_all(stmt).await?;
        let more = found.len() > limit as usize;
        found.truncate(limit as usize);
        let entries = with_deliveries(&mut *reader, self.keyring(), found).await?;
        let next = more.then(|| entries.last().map(|e| e.id.clone())).flatten();
        Ok(Some(TimelinePage { entries, next }))
    }

    async fn timeline_entry(
        &self,
        store: &str,
        order: &str,
        entry_id: &str,
    ) -> Result<Option<TimelineEntry>> {
        let sql = format!(
            "SELECT {} FROM timeline_entries WHERE id = $1 AND store = $2 AND order_id = $3",
            schema::TIMELINE_ENTRY
        );
        let stmt = Stmt::new(sql).text(entry_id).text(store).text(order);
        let mut reader = self.reader().await?;
        let found = reader.fetch_all(stmt).await?;
        Ok(with_deliveries(&mut *reader, self.keyring(), found)
            .await?
            .pop())
    }
}
