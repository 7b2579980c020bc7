//! Nodes sharing one database say they are alive: each writes, every
//! `delivery.heartbeat`, until when it counts as alive. A claim takes a
//! delivery or webhook event whose lease has run out, and also one leased
//! by a node that stopped saying so (killed, frozen, cut off), so a dead
//! node's work resumes within a few heartbeats rather than after its
//! whole lease. A node absent from the table (one that never beat: a
//! single-node database, or an older version) keeps its leases until
//! they run out, as before.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::to_ms;
use super::sql::{Backend, SqlConn, Stmt};
use super::Result;

/// The claim condition: lease free, run out, or held by a silent node.
/// `$3` is the claim's `now`.
pub(crate) const LEASE_FREE: &str = "(lease_until IS NULL OR lease_until <= $3
    OR lease_owner IN (SELECT node FROM nodes WHERE alive_until <= $3))";

/// Nodes sharing one database say they are alive; the queue runner's
/// heartbeat calls it.
#[async_trait]
pub trait Nodes: Send + Sync {
    /// `node` is alive until `until`; nodes silent for a day are forgotten.
    async fn heartbeat(&self, node: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<()>;
    /// `node` stopped cleanly (its leases were given back).
    async fn node_stopped(&self, node: &str) -> Result<()>;
}

#[async_trait]
impl<B: Backend> Nodes for B {
    async fn heartbeat(&self, node: &str, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<()> {
        let mut writer = self.writer().await?;
        let beat = Stmt::new(
            "INSERT INTO nodes (node, started_at, alive_until) VALUES ($1, $2, $3)
             ON CONFLICT (node) DO UPDATE SET alive_until = $3",
        )
        .text(node)
        .int(to_ms(now))
        .int(to_ms(until));
        writer.execute(beat).await?;
        let forget = Stmt::new("DELETE FROM nodes WHERE alive_until < $1")
            .int(to_ms(now - chrono::Duration::days(1)));
        writer.execute(forget).await?;
        Ok(())
    }

    async fn node_stopped(&self, node: &str) -> Result<()> {
        let stmt = Stmt::new("DELETE FROM nodes WHERE node = $1").text(node);
        self.writer().await?.execute(stmt).await?;
        Ok(())
    }
}
