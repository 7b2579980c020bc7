//! `ct-relay queue`: what waits, and an operator's hand on it (attempt
//! now, hold, release, delete), like Postfix's mailq, postqueue and
//! postsuper.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use tokio::sync::Notify;
use ulid::Ulid;

use ct_relay::config::Settings;
use ct_relay::storage::{Committer, DeliveryState, QueueChange, QueueEntry, Storage};

use super::report::print;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Deliveries not delivered (waiting, held or failed), the next due first.
    List {
        /// Print at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only this store's deliveries.
        #[arg(long)]
        store: Option<String>,
        /// `json` (one object, as every command prints) or `text` (a table
        /// to read, like mailq: one delivery a block, its last reply below).
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Attempt a delivery now, in this process, and print where it stands
    /// after: a failed one is tried again, a held one released.
    Retry {
        /// The delivery's id (`queue list` shows it).
        id: String,
    },
    /// Hold a waiting delivery: not attempted until released (an attempt
    /// already under way finishes).
    Hold {
        /// The delivery's id.
        id: String,
    },
    /// Release a held delivery: due at once.
    Release {
        /// The delivery's id.
        id: String,
    },
    /// Delete a waiting delivery without attempting it: it ends `failed`
    /// ("deleted from the queue by an operator") on the order's timeline,
    /// and no failure notice goes to the sender.
    Delete {
        /// The delivery's id.
        id: String,
    },
}

/// How `queue list` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON object.
    Json,
    /// A table for people.
    Text,
}

pub async fn run(
    cmd: QueueCommand,
    settings: &Settings,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    match cmd {
        QueueCommand::List {
            limit,
            store,
            format,
        } => {
            let entries = storage.queue_list(store.as_deref(), limit).await?;
            match format {
                Format::Json => print(&json!({ "deliveries": entries })),
                Format::Text => print!("{}", table(&entries, now)),
            }
        }
        QueueCommand::Retry { id } => return retry(&id, settings, storage).await,
        QueueCommand::Hold { id } => {
            changed(&id, storage.queue_hold(&id, now).await?, "held")?;
        }
        QueueCommand::Release { id } => {
            changed(&id, storage.queue_release(&id, now).await?, "released")?;
        }
        QueueCommand::Delete { id } => {
            changed(&id, storage.queue_delete(&id, now).await?, "deleted")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Print `{"id", what: true}` when done, else say why not.
fn changed(id: &str, change: QueueChange, what: &str) -> anyhow::Result<()> {
    match change {
        QueueChange::Done => {
            print(&json!({ "id": id, what: true }));
            Ok(())
        }
        QueueChange::Unknown => bail!("no delivery `{id}`"),
        QueueChange::NotWaiting if what == "released" => bail!("delivery `{id}` is not held"),
        QueueChange::NotWaiting => {
            bail!("delivery `{id}` is not waiting: it was delivered or has failed")
        }
        QueueChange::InFlight => bail!(
            "delivery `{id}` is being attempted right now; try again when the attempt is over"
        ),
    }
}

/// Make the delivery due, lease it to this process and attempt it with the
/// transport the configuration names; print where it stands after.
async fn retry(
    id: &str,
    settings: &Settings,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    if !storage.queue_retry(id, now).await? {
        bail!("no delivery `{id}` waiting or failed (delivered ones, and those to an erased person, are not retried)");
    }
    let node = format!("{}-cli-{}", settings.smtp.hostname, Ulid::new());
    let lease_until = now + settings.delivery.lease;
    let attempted = match storage.claim_delivery(&node, id, now, lease_until).await? {
        Ok(job) => {
            let wake = Arc::new(Notify::new());
            let (committer, task) =
                Committer::start(storage.clone(), settings.storage.commit_batch, wake.clone());
            let runner =
                ct_relay::daemon::queue_runner(settings, storage.clone(), committer, node, wake)?;
            runner.attempt_now(job).await;
            drop(runner);
            let _ = task.await;
            true
        }
        // A running relay took it first: it is being attempted.
        Err(QueueChange::InFlight) => false,
        Err(change) => return changed(id, change, "retried").map(|()| ExitCode::SUCCESS),
    };
    let status = storage.delivery_status(id).await?;
    print(&json!({ "id": id, "attempted": attempted, "delivery": status }));
    Ok(ExitCode::SUCCESS)
}

/// The queue as a table: a line per delivery (id, state, attempts, when
/// next, store and order), the aliases it goes from and to, its last reply.
fn table(entries: &[QueueEntry], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("Queue is empty\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<26}  {:<9} {:>8}  {:<20}  Store/Order",
        "Delivery", "State", "Attempts", "Next attempt"
    );
    for e in entries {
        let state = match (e.held_at, &e.leased_by) {
            (None, Some(_)) => "sending",
            _ => e.shown_state(),
        };
        let next = if e.state == DeliveryState::Failed {
            "-".to_string()
        } else if e.next_attempt_at <= now {
            "now".to_string()
        } else {
            e.next_attempt_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        let _ = writeln!(
            out,
            "{:<26}  {:<9} {:>8}  {:<20}  {}/{}",
            e.id, state, e.attempts, next, e.store, e.order
        );
        let _ = writeln!(
            out,
            "    from {}  to {}  received {}",
            e.from.as_deref().unwrap_or("-"),
            e.to,
            e.received_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        if let Some(reply) = &e.last_reply {
            let _ = writeln!(out, "    ({reply})");
        }
    }
    let held = entries.iter().filter(|e| e.held_at.is_some()).count();
    let failed = entries
        .iter()
        .filter(|e| e.state == DeliveryState::Failed)
        .count();
    let _ = writeln!(
        out,
        "-- {} deliveries: {} waiting ({held} held), {failed} failed",
        entries.len(),
        entries.len() - failed
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, state: DeliveryState, held: bool, reply: Option<&str>) -> QueueEntry {
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        QueueEntry {
            id: id.into(),
            message_id: "m1".into(),
            store: "acme".into(),
            order: "o-1".into(),
            from: Some("0dbd@ct.test".into()),
            to: "5ade@ct.test".into(),
            received_at: at,
            held_at: held.then_some(at),
            state,
            attempts: 2,
            next_attempt_at: at + chrono::TimeDelta::minutes(5),
            last_reply: reply.map(String::from),
            leased_by: None,
        }
    }

    #[test]
    fn the_table_shows_aliases_states_and_replies() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let text = table(
            &[
                entry("d1", DeliveryState::Retrying, false, Some("451 4.2.0 busy")),
                entry("d2", DeliveryState::Queued, true, None),
                entry(
                    "d3",
                    DeliveryState::Failed,
                    false,
                    Some("550 5.1.1 unknown"),
                ),
            ],
            now,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Delivery"), "{text}");
        assert!(lines[1].contains("d1") && lines[1].contains("retrying"));
        assert!(lines[1].contains("2026-12-07T10:05:00Z") && lines[1].ends_with("acme/o-1"));
        assert!(lines[2].contains("from 0dbd@ct.test  to 5ade@ct.test"));
        assert_eq!(lines[3], "    (451 4.2.0 busy)");
        assert!(lines[4].contains("d2") && lines[4].contains("held"));
        assert!(lines[6].contains("d3") && lines[6].contains("failed") && lines[6].contains(" - "));
        assert_eq!(
            lines.last().unwrap(),
            &"-- 3 deliveries: 2 waiting (1 held), 1 failed"
        );
        assert_eq!(table(&[], now), "Queue is empty\n");
    }
}
