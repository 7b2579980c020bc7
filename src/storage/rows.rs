//! Turning rows into the types of the storage trait, the same way for every
//! backend. Each backend only says how to read a column (`Columns`); times
//! are stored as milliseconds since the Unix epoch, lists as JSON text.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::encryption::Field;
use super::Keyring;
use super::{
    AliasRef, DeliveryJob, DeliveryState, DeliveryStatus, QueueEntry, Result, StorageError,
    TimelineEntry,
};
use crate::alias::Participant;

/// Reading typed columns by name.
pub trait Columns {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
}

impl<R> Columns for R
where
    R: Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(col)?)
    }
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StorageError::Corrupt(format!("timestamp {ms}")))
}

pub fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("json column: {e}")))
}

fn parsed<T: FromStr>(r: &impl Columns, col: &str) -> Result<T> {
    let text = r.text(col)?;
    text.parse()
        .map_err(|_| StorageError::Corrupt(format!("{col} = `{text}`")))
}

/// Column `state`.
pub(crate) fn state(r: &impl Columns) -> Result<DeliveryState> {
    let text = r.text("state")?;
    DeliveryState::parse(&text)
        .ok_or_else(|| StorageError::Corrupt(format!("delivery state `{text}`")))
}

fn count(r: &impl Columns, col: &str) -> Result<u32> {
    u32::try_from(r.int(col)?).map_err(|_| StorageError::Corrupt(format!("{col} out of range")))
}

pub fn time(r: &impl Columns, col: &str) -> Result<DateTime<Utc>> {
    from_ms(r.int(col)?)
}

pub fn mask_mode(r: &impl Columns, col: &str) -> Result<crate::alias::MaskMode> {
    parsed(r, col)
}

/// A participant row, its address opened with `keys`.
pub fn participant(r: &impl Columns, keys: &Keyring) -> Result<Participant> {
    let mut p = participant_as_stored(r)?;
    p.email = keys.open_address(&p.email)?;
    Ok(p)
}

/// A participant row with its address as stored (perhaps sealed), where
/// the address is not needed.
pub fn participant_as_stored(r: &impl Columns) -> Result<Participant> {
    Ok(Participant {
        alias: r.text("alias")?,
        store: r.text("store")?,
        order: r.text("order_id")?,
        role: parsed(r, "role")?,
        email: r.text("email")?,
        mode: parsed(r, "mode")?,
        created_at: time(r, "created_at")?,
        expires_at: time(r, "expires_at")?,
        disabled: r.opt_int("disabled_at")?.is_some(),
        blocked: r.opt_int("blocked_at")?.is_some(),
        undeliverable: r.opt_int("undeliverable_at")?.is_some(),
    })
}

/// A delivery as the runner works it, its address opened with `keys`.
pub fn delivery_job(r: &impl Columns, keys: &Keyring) -> Result<DeliveryJob> {
    Ok(DeliveryJob {
        id: r.text("id")?,
        message_id: r.text("message_id")?,
        rcpt_alias: r.text("rcpt_alias")?,
        rcpt_email: keys.open_address(&r.text("rcpt_email")?)?,
        mail_from: r.text("mail_from")?,
        attempts: count(r, "attempts")?,
        created_at: time(r, "created_at")?,
    })
}

/// Columns: `schema::QUEUE_ENTRY`.
pub fn queue_entry(r: &impl Columns) -> Result<QueueEntry> {
    Ok(QueueEntry {
        id: r.text("id")?,
        message_id: r.text("message_id")?,
        store: r.text("store")?,
        order: r.text("order_id")?,
        from: r.opt_text("sender_alias")?,
        to: r.text("rcpt_alias")?,
        received_at: time(r, "received_at")?,
        held_at: r.opt_int("held_at")?.map(from_ms).transpose()?,
        state: state(r)?,
        attempts: count(r, "attempts")?,
        next_attempt_at: time(r, "next_attempt_at")?,
        last_reply: r.opt_text("last_reply")?,
        leased_by: r.opt_text("lease_owner")?,
    })
}

/// Columns: rcpt_alias, state, attempts, last_reply, updated_at.
pub fn delivery_status(r: &impl Columns) -> Result<DeliveryStatus> {
    Ok(DeliveryStatus {
        to: r.text("rcpt_alias")?,
        state: state(r)?,
        attempts: count(r, "attempts")?,
        last_reply: r.opt_text("last_reply")?,
        updated_at: time(r, "updated_at")?,
    })
}

/// A `timeline_entries` row, with the deliveries of its message.
/// A timeline entry with its deliveries, its excerpts opened with `keys`.
pub fn timeline_entry(
    r: &impl Columns,
    deliveries: Vec<DeliveryStatus>,
    keys: &Keyring,
) -> Result<TimelineEntry> {
    let excerpt = |text: String| keys.open_text(&text, Field::Excerpt);
    let attachment_names = from_json::<Vec<String>>(&r.text("attachment_names")?)?
        .into_iter()
        .map(excerpt)
        .collect::<Result<Vec<_>>>()?;
    Ok(TimelineEntry {
        id: r.text("id")?,
        date: time(r, "at")?,
        from: r
            .opt_text("from_alias")?
            .map(|t| from_json::<AliasRef>(&t))
            .transpose()?,
        to: from_json(&r.text("to_aliases")?)?,
        subject: excerpt(r.text("subject")?)?,
        first_words: excerpt(r.text("first_words")?)?,
        has_attachment: !attachment_names.is_empty(),
        attachment_names,
        deliveries,
        refused: r.opt_text("refused")?,
        reason: r.opt_text("reason")?,
        flags: r
            .opt_text("flags")?
            .map(|t| from_json(&t))
            .transpose()?
            .unwrap_or_default(),
        authentication: r
            .opt_text("authentication")?
            .map(|t| from_json(&t))
            .transpose()?,
        event: r.opt_text("event")?,
        repeats: u32::try_from(r.int("repeats")?).unwrap_or(u32::MAX),
        last: r.opt_int("last_at")?.map(from_ms).transpose()?,
    })
}
