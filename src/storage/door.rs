//! What the policy stage reads and the block endpoints write: recent mail
//! per recipient alias for the rate limits, and senders blocked for an
//! order (a participant with `blocked_at` set). Each store's policy (one
//! JSON value; a store never configured has the defaults) comes with the
//! order at RCPT (`find_alias_with_order`) and is written with the store's
//! settings (`update_store`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{to_ms, Columns};
use super::sql::{Backend, SqlConn, Stmt};
use super::Result;

/// Mail an alias took since some time: from everyone, and from one sender
/// (by the alias its mail went out under).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentMail {
    /// Deliveries to the alias in the window, from everyone.
    pub total: u32,
    /// Of those, from the sender asked about.
    pub from_sender: u32,
}

/// What the policy stage reads and the block endpoints write: recent mail
/// for the rate limits, and senders blocked for an order.
#[async_trait]
pub trait DoorStore: Send + Sync {
    /// Deliveries to `rcpt_alias` created since `since`, counted up to
    /// `cap` (past it the count is `cap`): in all, and those whose copy
    /// came from `sender_alias`.
    async fn recent_mail(
        &self,
        rcpt_alias: &str,
        sender_alias: Option<&str>,
        since: DateTime<Utc>,
        cap: u32,
    ) -> Result<RecentMail>;
    /// Block (or unblock) the participants with these aliases as senders;
    /// returns how many changed.
    async fn set_blocked(
        &self,
        aliases: &[String],
        blocked: bool,
        now: DateTime<Utc>,
    ) -> Result<u64>;
}

#[async_trait]
impl<B: Backend> DoorStore for B {
    async fn recent_mail(
        &self,
        rcpt_alias: &str,
        sender_alias: Option<&str>,
        since: DateTime<Utc>,
        cap: u32,
    ) -> Result<RecentMail> {
        // Read at most `cap` rows through the (rcpt_alias, created_at)
        // index: the cost stays bounded by the limit however much mail the
        // alias has had.
        let stmt = Stmt::new(
            "SELECT sender_alias FROM deliveries
             WHERE rcpt_alias = $1 AND created_at >= $2 LIMIT $3",
        )
        .text(rcpt_alias)
        .int(to_ms(since))
        .int(i64::from(cap));
        let rows = self.reader().await?.fetch_all(stmt).await?;
        let mut recent = RecentMail {
            total: rows.len() as u32,
            from_sender: 0,
        };
        if let Some(sender) = sender_alias {
            for r in &rows {
                if r.opt_text("sender_alias")?.as_deref() == Some(sender) {
                    recent.from_sender += 1;
                }
            }
        }
        Ok(recent)
    }

    async fn set_blocked(
        &self,
        aliases: &[String],
        blocked: bool,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let mut writer = self.writer().await?;
        let mut tx = B::begin_write(&mut writer).await?;
        let mut changed = 0;
        for alias in aliases {
            let stmt = Stmt::new(
                "UPDATE participants
                 SET blocked_at = CASE WHEN $1 THEN COALESCE(blocked_at, $2) ELSE NULL END
                 WHERE alias_key = $3 AND (blocked_at IS NULL) = $1",
            )
            .bool(blocked)
            .int(to_ms(now))
            .text(alias.to_lowercase());
            changed += tx.execute(stmt).await?;
        }
        B::commit(tx).await?;
        Ok(changed)
    }
}
