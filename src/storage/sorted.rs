//! A group commit's writes sorted the way both backends write them: the
//! common ones (accepted mail, outcomes that notify nobody) in bulk, the
//! rare ones one by one beside them.

use std::collections::HashSet;

use super::sql::SqlConn;
use super::{
    notices, refusals, suppression, AcceptedMessage, AttemptRecord, Notice, Result, Write,
};

/// An attempt's outcome, to be written under `node`'s lease.
pub(crate) struct Outcome<'a> {
    pub node: &'a str,
    pub delivery_id: &'a str,
    pub record: &'a AttemptRecord,
}

pub(crate) struct Sorted<'a> {
    pub messages: Vec<&'a AcceptedMessage>,
    pub outcomes: Vec<Outcome<'a>>,
    /// Refusals, bounces, or outcomes written alone are in the batch.
    pub rare: bool,
}

pub(crate) fn sort(batch: &[Write]) -> Sorted<'_> {
    let mut sorted = Sorted {
        messages: Vec::new(),
        outcomes: Vec::new(),
        rare: false,
    };
    for w in batch {
        match w {
            Write::Accept(m) => sorted.messages.push(m.as_ref()),
            Write::Attempt {
                node,
                delivery_id,
                record,
                notice,
            } if !written_alone(notice, record) => sorted.outcomes.push(Outcome {
                node,
                delivery_id,
                record,
            }),
            Write::Attempt { .. } | Write::Refusal(_) | Write::Bounce { .. } => sorted.rare = true,
        }
    }
    sorted
}

/// An attempt's outcome with more to write than its own rows (a notice to
/// queue, a hard bounce to count) is written on its own, among the rare
/// writes; the others go in bulk.
fn written_alone(notice: &Option<Box<Notice>>, record: &AttemptRecord) -> bool {
    notice.is_some() || record.hard_bounce.is_some()
}

/// Per write of `batch`, whether it applied: accepted mail and refusals
/// always; an outcome where its lease held (`recorded`); a bounce where the
/// delivery had not failed already (`bounced`).
pub(crate) fn applied(
    batch: &[Write],
    recorded: &HashSet<String>,
    bounced: &HashSet<String>,
) -> Vec<bool> {
    batch
        .iter()
        .map(|w| match w {
            Write::Accept(_) | Write::Refusal(_) => true,
            Write::Attempt { delivery_id, .. } => recorded.contains(delivery_id),
            Write::Bounce { delivery_id, .. } => bounced.contains(delivery_id),
        })
        .collect()
}

/// The rare writes of `batch`, one by one on `conn` (inside the batch's
/// transaction): refusals; outcomes that notify the sender, each written
/// by `write_outcome` (true where its lease held) and its notice queued;
/// bounces, with their notices. Adds the outcomes that applied to
/// `recorded`; returns the deliveries whose bounce applied.
pub(crate) async fn rare_writes<C: SqlConn>(
    conn: &mut C,
    batch: &[Write],
    recorded: &mut HashSet<String>,
    mut write_outcome: impl AsyncFnMut(&mut C, Outcome<'_>) -> Result<bool>,
) -> Result<HashSet<String>> {
    let mut bounced = HashSet::new();
    for write in batch {
        match write {
            Write::Refusal(r) => refusals::insert_refusal(conn, r).await?,
            Write::Attempt {
                node,
                delivery_id,
                record,
                notice,
            } if written_alone(notice, record) => {
                let one = Outcome {
                    node,
                    delivery_id,
                    record,
                };
                if write_outcome(conn, one).await? {
                    if let Some(n) = notice {
                        notices::insert_notice(conn, n).await?;
                    }
                    if let Some(bounce) = &record.hard_bounce {
                        suppression::count_hard_bounce(conn, delivery_id, bounce, record.at)
                            .await?;
                    }
                    recorded.insert(delivery_id.clone());
                }
            }
            Write::Bounce {
                delivery_id,
                record,
                notice,
            } => {
                if notices::record_bounce(conn, delivery_id, record).await? {
                    if let Some(n) = notice {
                        notices::insert_notice(conn, n).await?;
                    }
                    if let Some(bounce) = &record.hard_bounce {
                        suppression::count_hard_bounce(conn, delivery_id, bounce, record.at)
                            .await?;
                    }
                    bounced.insert(delivery_id.clone());
                }
            }
            Write::Accept(_) | Write::Attempt { .. } => {}
        }
    }
    Ok(bounced)
}
