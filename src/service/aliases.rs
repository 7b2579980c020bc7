//! Creating, showing and disabling aliases: one participant, an order's
//! pair, or many at once. Creation is idempotent (the same store, order,
//! role and address give the same alias and row), in the mode the request
//! names or else the store's.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Result, Scope, ServiceError, Services};
use crate::alias::{MaskMode, Participant, Role};
use crate::storage::Reveal;

/// One alias to create.
#[derive(Debug, Clone)]
pub struct NewAlias {
    /// The store the order belongs to.
    pub store: String,
    /// The order id within the store.
    pub order: String,
    /// What the participant is to the order.
    pub role: Role,
    /// The participant's real address.
    pub email: String,
    /// The alias's form; `None` for the store's mask mode.
    pub mode: Option<MaskMode>,
}

impl Services {
    /// Each item's participant, ready to store, or why it cannot be made.
    /// Each store's mask mode is read once; a store whose mode cannot be
    /// read fails its own items only.
    pub async fn prepare_aliases(
        &self,
        scope: &Scope,
        items: &[NewAlias],
        now: DateTime<Utc>,
    ) -> Vec<Result<Participant>> {
        let mut modes: HashMap<&str, std::result::Result<MaskMode, crate::storage::StorageError>> =
            HashMap::new();
        let mut made = Vec::with_capacity(items.len());
        for item in items {
            let one = async {
                scope.allow(&item.store)?;
                let mode = match item.mode {
                    Some(mode) => mode,
                    None => {
                        if !modes.contains_key(item.store.as_str()) {
                            let read = self.storage.store_mode(&item.store).await;
                            modes.insert(&item.store, read);
                        }
                        modes[item.store.as_str()].clone()?
                    }
                };
                Ok(self.aliaser.participant(
                    &item.store,
                    &item.order,
                    item.role,
                    &item.email,
                    mode,
                    now,
                )?)
            };
            made.push(one.await);
        }
        made
    }

    /// Create (or find) one alias.
    pub async fn create_alias(
        &self,
        scope: &Scope,
        item: NewAlias,
        now: DateTime<Utc>,
    ) -> Result<Participant> {
        let wanted = self.prepare_aliases(scope, &[item], now).await;
        let wanted = wanted.into_iter().next().expect("one item, one result")?;
        let mut stored = self.storage.ensure_participants(&[wanted]).await?;
        Ok(stored.remove(0))
    }

    /// Many aliases in one transaction: a result per item, in order. A bad
    /// item gets its error and the others are created.
    pub async fn create_aliases(
        &self,
        scope: &Scope,
        items: &[NewAlias],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Participant>>> {
        let prepared = self.prepare_aliases(scope, items, now).await;
        let valid: Vec<Participant> = prepared
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut stored = self.storage.ensure_participants(&valid).await?.into_iter();
        Ok(prepared
            .into_iter()
            .map(|r| r.map(|_| stored.next().expect("a stored row per valid item")))
            .collect())
    }

    /// An order's buyer and, when given, its store address, both in the
    /// store's mask mode: the buyer's participant first.
    pub async fn create_order_aliases(
        &self,
        scope: &Scope,
        store: &str,
        order: &str,
        customer_email: &str,
        store_email: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Participant>> {
        scope.allow(store)?;
        let mode = self.storage.store_mode(store).await?;
        let mut wanted = vec![self.aliaser.participant(
            store,
            order,
            Role::Customer,
            customer_email,
            mode,
            now,
        )?];
        if let Some(email) = store_email {
            wanted.push(
                self.aliaser
                    .participant(store, order, Role::Store, email, mode, now)?,
            );
        }
        Ok(self.storage.ensure_participants(&wanted).await?)
    }

    /// The alias's participant, if the caller may see its store.
    pub async fn alias(&self, scope: &Scope, alias: &str) -> Result<Participant> {
        match self.storage.find_alias(alias).await? {
            Some(p) if scope.sees(&p.store) => Ok(p),
            _ => Err(ServiceError::NotFound(format!("no alias `{alias}`"))),
        }
    }

    /// Give an alias's participant a new real address, validated as at
    /// creation; its hard bounces are forgotten, so a participant made
    /// undeliverable takes mail again. A soft alias spells its address and
    /// cannot change it.
    pub async fn change_address(
        &self,
        scope: &Scope,
        alias: &str,
        email: &str,
    ) -> Result<Participant> {
        let p = self.alias(scope, alias).await?;
        if p.mode == MaskMode::Soft {
            return Err(ServiceError::Invalid(
                "a soft alias spells its participant's address: create an alias for the new address instead".into(),
            ));
        }
        let checked = self.aliaser.participant(
            &p.store,
            &p.order,
            p.role,
            email,
            MaskMode::Hard,
            Utc::now(),
        )?;
        self.storage
            .change_address(&p.alias, &checked.email)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no alias `{alias}`")))
    }

    /// The alias's participant with its real address, for `actor` and
    /// `reason` (required, at most 500 characters): the reveal is written
    /// to the audit before it is returned.
    pub async fn reveal(
        &self,
        scope: &Scope,
        alias: &str,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Participant> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ServiceError::Invalid(
                "a reveal needs a reason of 1 to 500 characters".into(),
            ));
        }
        let p = self.alias(scope, alias).await?;
        let entry = Reveal {
            id: ulid::Ulid::new().to_string(),
            at: now,
            actor: actor.to_string(),
            alias: p.alias.clone(),
            store: p.store.clone(),
            order: p.order.clone(),
            reason: reason.to_string(),
        };
        self.storage.record_reveal(&entry).await?;
        tracing::info!(alias = %p.alias, actor, "real address revealed");
        Ok(p)
    }

    /// Stop an alias: mail to it is refused from now on. Returns its
    /// participant as it was found.
    pub async fn disable_alias(
        &self,
        scope: &Scope,
        alias: &str,
        now: DateTime<Utc>,
    ) -> Result<Participant> {
        let p = self.alias(scope, alias).await?;
        if !self.storage.disable_alias(&p.alias, now).await? {
            return Err(ServiceError::NotFound(format!("no alias `{alias}`")));
        }
        Ok(p)
    }
}
