//! Erasing a data subject (LGPD art. 18 VI, GDPR art. 17): every trace of
//! one real address, in one transaction per call, on both backends.
//!
//! What changes, for each of the person's participant rows in an order
//! that is not on legal hold:
//! - the row keeps its place (role, times) but its address becomes a
//!   marker (`erased:<id>`) and its alias a new, dead one
//!   (`erased-<id>@erased.invalid`): a soft alias spells the address, and
//!   a hard one is a keyed hash of it, so neither may stay. The old alias
//!   stops working (mail to it finds no alias);
//! - the timeline keeps every entry, with the new alias in place of the
//!   old; entries of the person's messages lose their subject, first
//!   words and attachment names and gain the flag `erased`;
//! - the person's queued deliveries are cancelled (failed, with a
//!   `delivery.updated` event); every delivery to them loses the address;
//! - the stored text of every message sent to or by them (and of the
//!   relay's notices that name them) is deleted once no other delivery
//!   of it is queued; until then it is marked `pending` and the purge
//!   deletes it when the last delivery ends;
//! - audit rows of reveals name the new alias.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::redaction::{rename_refs, Person};
use super::rows::{from_json, json, to_ms, Columns};
use super::sql::{SqlConn, Stmt};
use super::{AliasRef, Keyring, Result};

/// What an address is replaced with: not an address, so nothing can
/// ever be sent to it.
pub const ERASED_EMAIL_PREFIX: &str = "erased:";
/// The domain of the aliases that replace an erased person's.
pub const ERASED_ALIAS_DOMAIN: &str = "erased.invalid";
/// The reply recorded on a delivery cancelled by an erasure.
pub const CANCELLED_REPLY: &str = "cancelled: the recipient's data was erased on request";
/// The flag of a timeline entry whose content was erased.
pub const ERASED_FLAG: &str = "erased";

/// What one erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasedCounts {
    /// Orders the person took part in whose data was erased.
    pub orders: u64,
    /// Participant rows that lost the address (one per alias).
    pub participants: u64,
    /// Of those, aliases that were still working and now stop.
    pub aliases: u64,
    /// Stored messages whose text was deleted.
    pub messages: u64,
    /// Messages sent to or by the person whose text is deleted when their
    /// other recipients' deliveries end (the purge does it).
    pub messages_pending: u64,
    /// The person's queued deliveries cancelled.
    pub deliveries_cancelled: u64,
    /// Timeline entries rewritten.
    pub timeline_entries: u64,
}

/// An order the erasure left alone because it is on legal hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldOrder {
    /// The store.
    pub store: String,
    /// The order.
    pub order: String,
    /// Why it is held.
    pub reason: String,
}

/// The outcome of erasing one address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erasure {
    /// What was erased.
    pub erased: ErasedCounts,
    /// Orders skipped because of a legal hold: the person's data there is
    /// kept until the hold is lifted and the erasure asked again.
    pub held: Vec<HeldOrder>,
}

/// One participant row of the person.
struct Row {
    alias_key: String,
    store: String,
    order: String,
    working: bool,
}

fn new_marker() -> (String, String) {
    let id = ulid::Ulid::new().to_string().to_lowercase();
    (
        format!("{ERASED_EMAIL_PREFIX}{id}"),
        format!("erased-{id}@{ERASED_ALIAS_DOMAIN}"),
    )
}

/// The person's participant rows: `email` in any case, in `store` when given.
async fn rows_of(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    email: &str,
    store: Option<&str>,
) -> Result<Vec<Row>> {
    let (matching, values) = super::subjects::address_is(keys, email, 2);
    let sql = format!(
        "SELECT alias_key, store, order_id, disabled_at, expires_at FROM participants
         WHERE {matching} AND (CAST($1 AS TEXT) IS NULL OR store = $1)
         ORDER BY store, order_id, alias_key"
    );
    let stmt = values
        .into_iter()
        .fold(Stmt::new(sql).opt_text(store), |s, v| s.text(v));
    let now = to_ms(Utc::now());
    conn.fetch_all(stmt)
        .await?
        .iter()
        .map(|r| {
            Ok(Row {
                alias_key: r.text("alias_key")?,
                store: r.text("store")?,
                order: r.text("order_id")?,
                working: r.opt_int("disabled_at")?.is_none() && r.int("expires_at")? > now,
            })
        })
        .collect()
}

/// Every order (store, order id) the address takes part in, each once,
/// sorted (the order their locks are taken in).
pub(crate) async fn orders_with(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    email: &str,
    store: Option<&str>,
) -> Result<Vec<(String, String)>> {
    let mut orders: Vec<(String, String)> = rows_of(conn, keys, email, store)
        .await?
        .into_iter()
        .map(|r| (r.store, r.order))
        .collect();
    orders.sort();
    orders.dedup();
    Ok(orders)
}

/// Erase `email` from every order not on hold, inside the caller's
/// transaction (which holds the orders' locks).
pub(crate) async fn erase(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    email: &str,
    store: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Erasure> {
    let rows = rows_of(conn, keys, email, store).await?;
    let mut out = Erasure::default();
    let mut by_order: Vec<((String, String), Vec<Row>)> = Vec::new();
    for row in rows {
        let key = (row.store.clone(), row.order.clone());
        match by_order.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rs)) => rs.push(row),
            None => by_order.push((key, vec![row])),
        }
    }
    for ((store, order), rows) in by_order {
        if let Some(hold) = super::holds::find(conn, &store, &order).await? {
            out.held.push(HeldOrder {
                store,
                order,
                reason: hold.reason,
            });
            continue;
        }
        let counts = erase_in_order(conn, keys, email, (&store, &order), &rows, now).await?;
        out.erased.orders += 1;
        out.erased.participants += counts.participants;
        out.erased.aliases += counts.aliases;
        out.erased.messages += counts.messages;
        out.erased.messages_pending += counts.messages_pending;
        out.erased.deliveries_cancelled += counts.deliveries_cancelled;
        out.erased.timeline_entries += counts.timeline_entries;
    }
    Ok(out)
}

/// A delivery of one of the order's messages.
struct Delivery {
    id: String,
    message_id: String,
    rcpt_alias: String,
    sender_alias: Option<String>,
    to_person: bool,
    pending: bool,
}

async fn erase_in_order(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    email: &str,
    (store, order): (&str, &str),
    rows: &[Row],
    now: DateTime<Utc>,
) -> Result<ErasedCounts> {
    let mut counts = ErasedCounts::default();
    let lower_email = email.to_lowercase();
    let mut renamed = HashMap::new();
    let mut needles = vec![lower_email.clone()];
    for row in rows {
        let (_, alias) = new_marker();
        needles.push(row.alias_key.clone());
        renamed.insert(row.alias_key.clone(), alias);
    }
    let person = Person {
        email: &lower_email,
        renamed,
        needles,
    };

    // The order's deliveries: the person's, and those of their messages.
    let stmt = Stmt::new(
        "SELECT d.id, d.message_id, d.rcpt_alias, d.sender_alias, d.rcpt_email, d.state,
                m.return_path
         FROM deliveries d JOIN messages m ON m.id = d.message_id
         WHERE m.store = $1 AND m.order_id = $2",
    )
    .text(store)
    .text(order);
    let mut deliveries = Vec::new();
    let mut touched: HashSet<String> = HashSet::new();
    for r in conn.fetch_all(stmt).await? {
        let rcpt_alias = r.text("rcpt_alias")?;
        let sender_alias = r.opt_text("sender_alias")?;
        let to_person = person.is_theirs(&rcpt_alias)
            || keys.open_address(&r.text("rcpt_email")?)?.to_lowercase() == *person.email;
        // The envelope sender: the person's alias, or their address.
        let return_path = keys.open_address(&r.text("return_path")?)?.to_lowercase();
        let by_person = sender_alias.as_deref().is_some_and(|a| person.is_theirs(a))
            || return_path == *person.email
            || person.is_theirs(&return_path);
        let d = Delivery {
            id: r.text("id")?,
            message_id: r.text("message_id")?,
            rcpt_alias,
            sender_alias,
            to_person,
            pending: matches!(r.text("state")?.as_str(), "queued" | "retrying"),
        };
        if to_person || by_person {
            touched.insert(d.message_id.clone());
        }
        deliveries.push(d);
    }

    // The order's timeline: entries from the person mark their messages.
    let stmt = Stmt::new(
        "SELECT id, message_id, from_alias, to_aliases, refused, flags FROM timeline_entries
         WHERE store = $1 AND order_id = $2",
    )
    .text(store)
    .text(order);
    let entries = conn.fetch_all(stmt).await?;
    let mut with_entry = HashSet::new();
    for e in &entries {
        let Some(message) = e.opt_text("message_id")? else {
            continue;
        };
        with_entry.insert(message.clone());
        if let Some(from) = e.opt_text("from_alias")? {
            if person.is_theirs(&from_json::<AliasRef>(&from)?.email_alias) {
                touched.insert(message);
            }
        }
    }
    // The relay's notices (on no timeline) that name the person.
    let stmt = Stmt::new(
        "SELECT id, content FROM messages WHERE store = $1 AND order_id = $2 AND erasure IS NULL",
    )
    .text(store)
    .text(order);
    for m in conn.fetch_all(stmt).await? {
        let id = m.text("id")?;
        if !with_entry.contains(&id)
            && !touched.contains(&id)
            && person.mentioned_in(&keys.open_message(m.bytes("content")?)?)
        {
            touched.insert(id);
        }
    }

    // Deliveries: the person's lose the address (cancelled when queued);
    // everyone's lose the person's alias.
    for d in &deliveries {
        if d.to_person {
            let (marker, _) = new_marker();
            let alias = person
                .rename(&d.rcpt_alias)
                .cloned()
                .unwrap_or_else(|| d.rcpt_alias.clone());
            if d.pending {
                cancel(conn, d, store, order, now).await?;
                counts.deliveries_cancelled += 1;
            }
            let stmt =
                Stmt::new("UPDATE deliveries SET rcpt_email = $1, rcpt_alias = $2 WHERE id = $3")
                    .text(marker)
                    .text(alias)
                    .text(&d.id);
            conn.execute(stmt).await?;
            scrub_replies(conn, &person, &d.id).await?;
        }
        if let Some(new) = d.sender_alias.as_deref().and_then(|a| person.rename(a)) {
            let stmt = Stmt::new("UPDATE deliveries SET sender_alias = $1 WHERE id = $2")
                .text(new)
                .text(&d.id);
            conn.execute(stmt).await?;
        }
    }

    // Messages: deleted now, or once their other deliveries end.
    for id in &touched {
        let pending = deliveries
            .iter()
            .any(|d| d.message_id == *id && d.pending && !d.to_person);
        let stmt = match pending {
            true => Stmt::new(
                "UPDATE messages SET erasure = 'pending', return_path = ''
                 WHERE id = $1 AND erasure IS NULL",
            )
            .text(id),
            false => Stmt::new(
                "UPDATE messages SET erasure = 'done', return_path = '', content = $1
                 WHERE id = $2 AND (erasure IS NULL OR erasure <> 'done')",
            )
            .bytes(Vec::new())
            .text(id),
        };
        if conn.execute(stmt).await? > 0 {
            match pending {
                true => counts.messages_pending += 1,
                false => counts.messages += 1,
            }
        }
    }

    // The timeline: the person's aliases renamed, their messages' text gone.
    for e in &entries {
        let id = e.text("id")?;
        let erased_message = e
            .opt_text("message_id")?
            .is_some_and(|m| touched.contains(&m));
        let from = e.opt_text("from_alias")?;
        let to = e.text("to_aliases")?;
        let new_from = match &from {
            Some(f) => Some(rename_refs(&person, f, false)?),
            None => None,
        };
        let new_to = rename_refs(&person, &to, true)?;
        let changed_names = new_from.as_ref().is_some_and(|n| n.is_some()) || new_to.is_some();
        if !changed_names && !erased_message {
            continue;
        }
        let from = match new_from {
            Some(Some(n)) => Some(n),
            _ => from,
        };
        let refused = e.opt_text("refused")?.map(|r| person.scrub(&r));
        let mut flags: Vec<String> = match e.opt_text("flags")? {
            Some(f) => from_json(&f)?,
            None => Vec::new(),
        };
        if erased_message && !flags.iter().any(|f| f == ERASED_FLAG) {
            flags.push(ERASED_FLAG.to_string());
        }
        let stmt = Stmt::new(
            "UPDATE timeline_entries SET from_alias = $1, to_aliases = $2, refused = $3, flags = $4,
                 subject = CASE WHEN $5 THEN '' ELSE subject END,
                 first_words = CASE WHEN $5 THEN '' ELSE first_words END,
                 attachment_names = CASE WHEN $5 THEN '[]' ELSE attachment_names END
             WHERE id = $6",
        )
        .opt_text(from)
        .text(new_to.unwrap_or(to))
        .opt_text(refused)
        .text(json(&flags))
        .bool(erased_message)
        .text(&id);
        conn.execute(stmt).await?;
        counts.timeline_entries += 1;
    }

    // The rows themselves, and the audit of reveals.
    for row in rows {
        let (marker, _) = new_marker();
        let alias = &person.renamed[&row.alias_key];
        let stmt = Stmt::new(
            "UPDATE participants SET alias_key = $1, alias = $1, email = $2,
                 disabled_at = COALESCE(disabled_at, $3)
             WHERE alias_key = $4",
        )
        .text(alias)
        .text(marker)
        .int(to_ms(now))
        .text(&row.alias_key);
        conn.execute(stmt).await?;
        let stmt = Stmt::new("UPDATE reveals SET alias = $1 WHERE lower(alias) = $2")
            .text(alias)
            .text(&row.alias_key);
        conn.execute(stmt).await?;
        counts.participants += 1;
        counts.aliases += u64::from(row.working);
    }
    Ok(counts)
}

/// Cancel one of the person's queued deliveries: failed, with the reply
/// saying why, an attempt on record and the store's webhook told.
async fn cancel(
    conn: &mut impl SqlConn,
    d: &Delivery,
    store: &str,
    order: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    super::queue_control::end_delivery(
        conn,
        (&d.id, &d.message_id),
        (store, order),
        CANCELLED_REPLY,
        now,
    )
    .await
}

/// Remove the person from the reply texts of one of their deliveries.
async fn scrub_replies(conn: &mut impl SqlConn, person: &Person<'_>, delivery: &str) -> Result<()> {
    let stmt = Stmt::new("SELECT last_reply FROM deliveries WHERE id = $1").text(delivery);
    if let Some(reply) = conn.fetch_one(stmt).await?.opt_text("last_reply")? {
        let clean = person.scrub(&reply);
        if clean != reply {
            let stmt = Stmt::new("UPDATE deliveries SET last_reply = $1 WHERE id = $2")
                .text(clean)
                .text(delivery);
            conn.execute(stmt).await?;
        }
    }
    let stmt =
        Stmt::new("SELECT at, reply FROM delivery_attempts WHERE delivery_id = $1").text(delivery);
    for a in conn.fetch_all(stmt).await? {
        let reply = a.text("reply")?;
        let clean = person.scrub(&reply);
        if clean != reply {
            let stmt = Stmt::new(
                "UPDATE delivery_attempts SET reply = $1 WHERE delivery_id = $2 AND at = $3 AND reply = $4",
            )
            .text(clean)
            .text(delivery)
            .int(a.int("at")?)
            .text(reply);
            conn.execute(stmt).await?;
        }
    }
    Ok(())
}
