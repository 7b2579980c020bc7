//! Reading an order's timeline a page at a time. Entries are ordered by
//! (`at`, `id`) and a page starts after the entry its cursor names, so a
//! page is one seek and `limit` rows of the index on
//! (store, order_id, at, id), however long the order's timeline has grown;
//! the deliveries read are those of the page's messages only.

use async_trait::async_trait;

use super::{Result, TimelineEntry};

/// Most entries one page holds.
pub const PAGE_MAX: u32 = 1000;

/// Up to `limit` entries of an order's timeline, and the cursor of the
/// page after them (the last entry's id) when more follow.
#[derive(Debug, Default)]
pub struct TimelinePage {
    pub entries: Vec<TimelineEntry>,
    pub next: Option<String>,
}

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

/// `impl Timelines for $storage`, in SQL both backends accept.
macro_rules! impl_timelines {
    ($storage:ident, $db:ty $(,)?) => {
        const _: () = {
            use std::collections::HashMap;

            use $crate::storage::rows::{self, Columns};
            use $crate::storage::timeline::{TimelinePage, Timelines};
            use $crate::storage::{DeliveryStatus, Result, TimelineEntry};

            const ENTRY_COLUMNS: &str = "id, at, message_id, from_alias, to_aliases, subject, first_words,
                attachment_names, refused, reason, flags, authentication";

            impl $storage {
                /// The deliveries of these messages, by message, in the
                /// order they were made.
                async fn deliveries_of(
                    &self,
                    messages: &[String],
                ) -> Result<HashMap<String, Vec<DeliveryStatus>>> {
                    let mut by_message: HashMap<String, Vec<DeliveryStatus>> = HashMap::new();
                    if messages.is_empty() {
                        return Ok(by_message);
                    }
                    let sql = format!(
                        "SELECT message_id, rcpt_alias, state, attempts, last_reply, updated_at
                         FROM deliveries WHERE message_id IN ({}) ORDER BY id",
                        $crate::storage::placeholders::list(messages.len())
                    );
                    let mut query = sqlx::query(&sql);
                    for m in messages {
                        query = query.bind(m);
                    }
                    for r in &query.fetch_all(&mut *self.reader().await?).await? {
                        by_message
                            .entry(r.text("message_id")?)
                            .or_default()
                            .push(rows::delivery_status(r)?);
                    }
                    Ok(by_message)
                }

                /// Entry rows with their messages' deliveries.
                async fn with_deliveries(
                    &self,
                    found: Vec<<$db as sqlx::Database>::Row>,
                ) -> Result<Vec<TimelineEntry>> {
                    let messages = found
                        .iter()
                        .filter_map(|r| r.opt_text("message_id").transpose())
                        .collect::<Result<Vec<String>>>()?;
                    let mut by_message = self.deliveries_of(&messages).await?;
                    found
                        .iter()
                        .map(|r| {
                            let mine = r
                                .opt_text("message_id")?
                                .and_then(|id| by_message.remove(&id));
                            rows::timeline_entry(r, mine.unwrap_or_default())
                        })
                        .collect()
                }
            }

            #[async_trait::async_trait]
            impl Timelines for $storage {
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
                            let at: Option<i64> = sqlx::query_scalar(
                                "SELECT at FROM timeline_entries WHERE id = $1 AND store = $2 AND order_id = $3",
                            )
                            .bind(id)
                            .bind(store)
                            .bind(order)
                            .fetch_optional(&mut *reader)
                            .await?;
                            match at {
                                Some(at) => (at, id.to_string()),
                                None => return Ok(None),
                            }
                        }
                    };
                    let sql = format!(
                        "SELECT {ENTRY_COLUMNS} FROM timeline_entries
                         WHERE store = $1 AND order_id = $2 AND (at, id) > ($3, $4)
                         ORDER BY at, id LIMIT $5"
                    );
                    // One more than asked: whether there is a next page.
                    let mut found = sqlx::query(&sql)
                        .bind(store)
                        .bind(order)
                        .bind(from.0)
                        .bind(from.1)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&mut *reader)
                        .await?;
                    drop(reader);
                    let more = found.len() > limit as usize;
                    found.truncate(limit as usize);
                    let entries = self.with_deliveries(found).await?;
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
                        "SELECT {ENTRY_COLUMNS} FROM timeline_entries
                         WHERE id = $1 AND store = $2 AND order_id = $3"
                    );
                    let found = sqlx::query(&sql)
                        .bind(entry_id)
                        .bind(store)
                        .bind(order)
                        .fetch_all(&mut *self.reader().await?)
                        .await?;
                    Ok(self.with_deliveries(found).await?.pop())
                }
            }
        };
    };
}

pub(crate) use impl_timelines;
