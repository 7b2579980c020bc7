//! `ct-relay keys rotate`: every sealed value (see `encryption`) sealed
//! again under the current key, a batch of rows per short transaction,
//! while the relay serves. Values in clear are sealed (turning encryption
//! on for an existing database); with no current key, sealed values are
//! opened and written in clear (turning it off). A value changed by the
//! relay between the read and the write is left for the next pass.

use chrono::Utc;
use serde::Serialize;

use super::encryption::Field;
use super::rows::{from_json, json, Columns};
use super::sql::{Backend, SqlConn, Stmt};
use super::{Result, Storage};

/// The tables holding sealed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealedTable {
    /// `participants.email`.
    Participants,
    /// `deliveries.rcpt_email`.
    Deliveries,
    /// `messages.return_path` and `messages.content`.
    Messages,
    /// `timeline_entries.subject`, `first_words` and `attachment_names`.
    Timeline,
}

impl SealedTable {
    /// Every table, in the order a rotation goes through them.
    pub const ALL: [Self; 4] = [
        Self::Participants,
        Self::Deliveries,
        Self::Messages,
        Self::Timeline,
    ];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Participants => "participants",
            Self::Deliveries => "deliveries",
            Self::Messages => "messages",
            Self::Timeline => "timeline_entries",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Participants => "alias_key",
            Self::Deliveries | Self::Messages | Self::Timeline => "id",
        }
    }
}

/// One batch of a rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealBatch {
    /// Rows read.
    pub read: u64,
    /// Rows written again under the current key.
    pub resealed: u64,
    /// The last key read: the next batch starts after it (`None`: the
    /// table is done).
    pub next: Option<String>,
}

/// Read up to `limit` rows of `table` after key `after` and write again
/// those not under the current key, in one transaction.
pub(crate) async fn reseal_batch<B: Backend>(
    backend: &B,
    table: SealedTable,
    after: &str,
    limit: u32,
) -> Result<ResealBatch> {
    let keys = backend.keyring();
    let mut writer = backend.writer().await?;
    let mut tx = B::begin_write(&mut writer).await?;
    let key = table.key();
    let columns = match table {
        SealedTable::Participants => "alias_key, email AS address",
        SealedTable::Deliveries => "id, rcpt_email AS address",
        SealedTable::Messages => {
            "id, return_path AS address, substr(content, 1, 16) AS head, erasure"
        }
        SealedTable::Timeline => "id, subject, first_words, attachment_names",
    };
    let sql = format!(
        "SELECT {columns} FROM {} WHERE {key} > $1 ORDER BY {key} LIMIT $2",
        table.name()
    );
    let rows = tx
        .fetch_all(Stmt::new(sql).text(after).int(i64::from(limit)))
        .await?;
    let mut batch = ResealBatch {
        read: rows.len() as u64,
        ..ResealBatch::default()
    };
    for row in &rows {
        let id = row.text(key)?;
        if table == SealedTable::Timeline {
            batch.resealed += reseal_excerpts(&mut *tx, keys, row).await?;
            batch.next = Some(id);
            continue;
        }
        let address = row.text("address")?;
        let address_current = keys.address_is_current(&address);
        let (head, erasure) = match table {
            SealedTable::Messages => (row.bytes("head")?, row.opt_text("erasure")?),
            _ => (Vec::new(), None),
        };
        let content_current = keys.message_is_current(&head);
        if !(address_current && content_current) {
            let new_address = keys.seal_address(&keys.open_address(&address)?);
            let written = match table {
                SealedTable::Messages => {
                    reseal_message(&mut *tx, keys, &id, (&address, &new_address), erasure).await?
                }
                SealedTable::Timeline => unreachable!("handled above"),
                _ => {
                    let column = if table == SealedTable::Participants {
                        "email"
                    } else {
                        "rcpt_email"
                    };
                    let sql = format!(
                        "UPDATE {} SET {column} = $1 WHERE {key} = $2 AND {column} = $3",
                        table.name()
                    );
                    tx.execute(Stmt::new(sql).text(new_address).text(&id).text(&address))
                        .await?
                }
            };
            batch.resealed += written;
        }
        batch.next = Some(id);
    }
    B::commit(tx).await?;
    if batch.read < u64::from(limit) {
        batch.next = None;
    }
    Ok(batch)
}

/// One message's return path and text sealed again, unless the relay
/// changed it (an erasure) since it was read.
async fn reseal_message(
    conn: &mut impl SqlConn,
    keys: &super::Keyring,
    id: &str,
    (address, new_address): (&str, &str),
    erasure: Option<String>,
) -> Result<u64> {
    let stmt = Stmt::new("SELECT content FROM messages WHERE id = $1").text(id);
    let Some(row) = conn.fetch_optional(stmt).await? else {
        return Ok(0);
    };
    let content = keys.open_message(row.bytes("content")?)?;
    let sealed = keys.seal_message(&content).into_owned();
    let stmt = Stmt::new(
        "UPDATE messages SET return_path = $1, content = $2
         WHERE id = $3 AND return_path = $4 AND COALESCE(erasure, '') = $5",
    )
    .text(new_address)
    .bytes(sealed)
    .text(id)
    .text(address)
    .text(erasure.unwrap_or_default());
    conn.execute(stmt).await
}

/// One timeline entry's excerpts sealed again, unless they changed (an
/// erasure) since they were read; 1 if written.
async fn reseal_excerpts(
    conn: &mut impl SqlConn,
    keys: &super::Keyring,
    row: &impl Columns,
) -> Result<u64> {
    let (subject, words) = (row.text("subject")?, row.text("first_words")?);
    let names: Vec<String> = from_json(&row.text("attachment_names")?)?;
    let current = |t: &str| keys.text_is_current(t);
    if current(&subject) && current(&words) && names.iter().all(|n| current(n)) {
        return Ok(0);
    }
    let again = |t: &str| -> Result<String> {
        Ok(keys.seal_text(&keys.open_text(t, Field::Excerpt)?, Field::Excerpt))
    };
    let names = names.iter().map(|n| again(n)).collect::<Result<Vec<_>>>()?;
    let stmt = Stmt::new(
        "UPDATE timeline_entries SET subject = $1, first_words = $2, attachment_names = $3
         WHERE id = $4 AND subject = $5 AND first_words = $6",
    )
    .text(again(&subject)?)
    .text(again(&words)?)
    .text(json(&names))
    .text(row.text("id")?)
    .text(&subject)
    .text(&words);
    conn.execute(stmt).await
}

/// What a rotation did, per table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rotation {
    /// The key everything is now sealed under (`None`: in clear).
    pub key: Option<String>,
    /// Passes over the tables (another pass follows one that wrote
    /// anything, to catch rows the relay wrote meanwhile; at most three).
    pub passes: u32,
    /// Rows read in the last pass.
    pub read: u64,
    /// Rows written again, over all passes.
    pub resealed: u64,
    /// Rows still under another key after the last pass (0 when done).
    pub left: u64,
}

/// Seal every value under the current key, `batch` rows at a time;
/// `progress(table, rows read, rows resealed)` after each batch.
pub async fn rotate(
    storage: &dyn Storage,
    batch: u32,
    mut progress: impl FnMut(SealedTable, u64, u64),
) -> Result<Rotation> {
    const PASSES: u32 = 3;
    let mut out = Rotation {
        key: storage.encryption_key_id(),
        ..Rotation::default()
    };
    let started = Utc::now();
    for pass in 1..=PASSES {
        out.passes = pass;
        out.read = 0;
        let mut written = 0;
        for table in SealedTable::ALL {
            let (mut read, mut resealed) = (0, 0);
            let mut after = String::new();
            loop {
                let b = storage.reseal_batch(table, &after, batch.max(1)).await?;
                read += b.read;
                resealed += b.resealed;
                progress(table, read, resealed);
                match b.next {
                    Some(next) => after = next,
                    None => break,
                }
            }
            out.read += read;
            written += resealed;
        }
        out.resealed += written;
        if written == 0 {
            out.left = 0;
            break;
        }
        out.left = written;
    }
    // SQLite: the log with the old pages goes; PostgreSQL: the old row
    // versions are vacuumed.
    storage.compact(false).await?;
    tracing::info!(
        key = out.key.as_deref().unwrap_or("none"),
        passes = out.passes,
        resealed = out.resealed,
        seconds = (Utc::now() - started).num_seconds(),
        "keys rotated"
    );
    Ok(out)
}
