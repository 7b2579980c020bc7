//! A data subject's rights (LGPD art. 18, GDPR art. 15): what the relay
//! holds about one person, found by their real address. The export is the
//! one place a real address is shown over the API, and only the one the
//! caller already gave.

use std::collections::HashSet;

use serde::Serialize;

use super::{Result, Scope, ServiceError, Services};
use crate::alias::{split_address, MaskMode, Participant, Role};
use crate::storage::{rfc3339_string, Erasure, TimelineEntry};
use chrono::Utc;

/// Everything held about one address.
#[derive(Debug, Serialize)]
pub struct SubjectExport {
    /// The address asked about.
    pub email: String,
    /// Each order the address takes part in, oldest first.
    pub orders: Vec<SubjectOrder>,
}

/// One order of the subject: their aliases in it, and the timeline entries
/// from or to them.
#[derive(Debug, Serialize)]
pub struct SubjectOrder {
    /// The order's store.
    pub store: String,
    /// The order.
    pub order: String,
    /// The order is on legal hold.
    pub held: bool,
    /// The subject's aliases in the order.
    pub aliases: Vec<SubjectAlias>,
    /// The entries from or to one of those aliases, oldest first.
    pub entries: Vec<TimelineEntry>,
}

/// One of the subject's aliases.
#[derive(Debug, Serialize)]
pub struct SubjectAlias {
    /// The alias.
    pub alias: String,
    /// What the subject is to the order.
    pub role: Role,
    /// The alias's form.
    pub mode: MaskMode,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it ends (RFC 3339).
    pub expires_at: String,
    /// Disabled by hand.
    pub disabled: bool,
    /// Blocked as a sender for the order.
    pub blocked: bool,
    /// Its mailbox hard-bounced.
    pub undeliverable: bool,
}

impl From<&Participant> for SubjectAlias {
    fn from(p: &Participant) -> Self {
        Self {
            alias: p.alias.clone(),
            role: p.role,
            mode: p.mode,
            created_at: rfc3339_string(p.created_at),
            expires_at: rfc3339_string(p.expires_at),
            disabled: p.disabled,
            blocked: p.blocked,
            undeliverable: p.undeliverable,
        }
    }
}

impl Services {
    /// What is held about `email`: in `store` when named, in the caller's
    /// store when its token is limited to one, else in every store. A
    /// malformed address is `BadRequest`; an unknown one has no orders.
    pub async fn export_subject(
        &self,
        scope: &Scope,
        email: &str,
        store: Option<&str>,
    ) -> Result<SubjectExport> {
        let (email, store) = subject_of(scope, email, store)?;
        let participants = self.storage.participants_with(email, store).await?;
        let mut orders: Vec<SubjectOrder> = Vec::new();
        for p in &participants {
            match orders
                .iter_mut()
                .find(|o| o.store == p.store && o.order == p.order)
            {
                Some(o) => o.aliases.push(SubjectAlias::from(p)),
                None => orders.push(SubjectOrder {
                    store: p.store.clone(),
                    order: p.order.clone(),
                    held: false,
                    aliases: vec![SubjectAlias::from(p)],
                    entries: Vec::new(),
                }),
            }
        }
        for o in &mut orders {
            let mine: HashSet<String> = o.aliases.iter().map(|a| a.alias.to_lowercase()).collect();
            let theirs = |alias: &str| mine.contains(&alias.to_lowercase());
            o.held = self.storage.find_hold(&o.store, &o.order).await?.is_some();
            o.entries = self
                .storage
                .timeline(&o.store, &o.order)
                .await?
                .into_iter()
                .filter(|e| {
                    e.from.as_ref().is_some_and(|f| theirs(&f.email_alias))
                        || e.to.iter().any(|t| theirs(&t.email_alias))
                })
                .collect();
        }
        tracing::info!(orders = orders.len(), "data subject exported");
        Ok(SubjectExport {
            email: email.to_string(),
            orders,
        })
    }

    /// Erase `email` from every order (in `store` when named, in the
    /// caller's store when its token is limited to one) that is not on
    /// legal hold: see `storage::erasure`. Idempotent: an unknown or
    /// already erased address erases nothing.
    pub async fn erase_subject(
        &self,
        scope: &Scope,
        email: &str,
        store: Option<&str>,
    ) -> Result<Erasure> {
        let (email, store) = subject_of(scope, email, store)?;
        let erasure = self.storage.erase_subject(email, store, Utc::now()).await?;
        let e = &erasure.erased;
        tracing::info!(
            orders = e.orders,
            participants = e.participants,
            messages = e.messages,
            messages_pending = e.messages_pending,
            deliveries_cancelled = e.deliveries_cancelled,
            held_orders = erasure.held.len(),
            "data subject erased"
        );
        Ok(erasure)
    }
}

/// The address asked about (trimmed) and the store to look in: the one
/// named, else the token's own. A malformed address is `BadRequest`, a
/// store the token may not act for `Forbidden`.
fn subject_of<'a>(
    scope: &'a Scope,
    email: &'a str,
    store: Option<&'a str>,
) -> Result<(&'a str, Option<&'a str>)> {
    let email = email.trim();
    if split_address(email).is_err() {
        return Err(ServiceError::BadRequest(format!(
            "`{email}` is not an e-mail address"
        )));
    }
    if let Some(store) = store {
        scope.allow(store)?;
    }
    Ok((email, store.or(scope.store.as_deref())))
}
