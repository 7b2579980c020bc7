//! Blocking a sender for an order (the API's `/v1/orders/{order}/blocks`
//! and the console's order view share this). A sender is named by its
//! alias or by its address; blocking an address blocks every participant
//! of the order with that address, and one that is no participant yet
//! becomes a blocked contact, so its first mail is refused too. The policy
//! stage refuses mail from a blocked participant with `550 5.7.1`.

use chrono::{DateTime, Utc};

use crate::alias::{Aliaser, MaskMode, Participant, Role};
use crate::storage::{Storage, StorageError};

/// Why a block could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The store has no such order.
    #[error("no such order")]
    NoSuchOrder,
    /// The sender is none of the order's participants (or, unblocking, none is blocked).
    #[error("no participant of this order is that sender")]
    NotInOrder,
    /// The sender is neither an alias nor an address.
    #[error("sender must be an alias of the order or an address (local@domain)")]
    BadSender,
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Block or lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockChange {
    /// Refuse the sender's mail to the order.
    Block,
    /// Take it again.
    Unblock,
}

/// Block `sender` (an alias or an address) for the order, or lift its
/// block; the participants changed. Blocking an address that is no
/// participant yet makes it a blocked contact; lifting a block is
/// `NotInOrder` when none of the sender's participants was blocked.
pub async fn change(
    storage: &dyn Storage,
    aliaser: &Aliaser,
    (store, order): (&str, &str),
    sender: &str,
    change: BlockChange,
    now: DateTime<Utc>,
) -> Result<Vec<Participant>, BlockError> {
    let participants = order_of(storage, store, order).await?;
    let matched = matching(aliaser, &participants, sender)?;
    let blocked = change == BlockChange::Block;
    let chosen = match change {
        BlockChange::Block if matched.is_empty() => {
            if is_alias(aliaser, sender) {
                return Err(BlockError::NotInOrder);
            }
            let contact = aliaser
                .participant(
                    store,
                    order,
                    Role::Contact,
                    sender.trim(),
                    MaskMode::Hard,
                    now,
                )
                .map_err(|_| BlockError::BadSender)?;
            storage.ensure_participants(&[contact]).await?
        }
        BlockChange::Block => matched,
        BlockChange::Unblock => {
            let chosen: Vec<Participant> = matched.into_iter().filter(|p| p.blocked).collect();
            if chosen.is_empty() {
                return Err(BlockError::NotInOrder);
            }
            chosen
        }
    };
    let aliases: Vec<String> = chosen.iter().map(|p| p.alias.clone()).collect();
    storage.set_blocked(&aliases, blocked, now).await?;
    tracing::info!(store, order, aliases = ?aliases, blocked, "sender's block for the order changed");
    Ok(chosen
        .into_iter()
        .map(|p| Participant { blocked, ..p })
        .collect())
}

/// The order's blocked senders.
pub async fn blocked(
    storage: &dyn Storage,
    store: &str,
    order: &str,
) -> Result<Vec<Participant>, BlockError> {
    let participants = order_of(storage, store, order).await?;
    Ok(participants.into_iter().filter(|p| p.blocked).collect())
}

async fn order_of(
    storage: &dyn Storage,
    store: &str,
    order: &str,
) -> Result<Vec<Participant>, BlockError> {
    let participants = storage.order_participants(store, order).await?;
    if participants.is_empty() {
        return Err(BlockError::NoSuchOrder);
    }
    Ok(participants)
}

fn is_alias(aliaser: &Aliaser, sender: &str) -> bool {
    sender
        .trim()
        .rsplit_once('@')
        .is_some_and(|(_, domain)| aliaser.is_alias_domain(domain))
}

/// The order's participants `sender` names: the one with that alias, or
/// every one with that address.
fn matching(
    aliaser: &Aliaser,
    participants: &[Participant],
    sender: &str,
) -> Result<Vec<Participant>, BlockError> {
    let sender = sender.trim();
    let Some((local, domain)) = sender.rsplit_once('@') else {
        return Err(BlockError::BadSender);
    };
    if local.is_empty() || domain.is_empty() || sender.len() > 320 {
        return Err(BlockError::BadSender);
    }
    let found = if is_alias(aliaser, sender) {
        participants
            .iter()
            .filter(|p| p.alias.eq_ignore_ascii_case(sender))
            .cloned()
            .collect()
    } else {
        let wanted = crate::masking::canonical(sender);
        participants
            .iter()
            .filter(|p| crate::masking::canonical(&p.email) == wanted)
            .cloned()
            .collect()
    };
    Ok(found)
}
