//! Group commit. Every write that must be durable before someone is answered
//! (an accepted message before its 250, a delivery outcome before its lease
//! is let go) goes through one committer task. While one transaction is being
//! written, the next writes queue up and go into a single transaction
//! together, so many of them share one fsync.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::{AttemptRecord, BatchWriter, Notice, RefusedEntry, StorageError, Write};

/// Jobs waiting for the committer. Bounded so a stalled database pushes back
/// on sessions and workers instead of growing memory.
const QUEUE_DEPTH: usize = 1024;

/// Why a write was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The database failed the batch.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The committer stopped.
    #[error("committer stopped")]
    Stopped,
}

struct Job {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<Vec<bool>, String>>,
}

/// Handle to the committer task; cheap to clone.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Start the committer. `accepted` is notified after each transaction that
    /// committed new messages, so delivery starts at once. The task ends when
    /// every handle is dropped.
    pub fn start(
        storage: Arc<dyn BatchWriter>,
        max_batch: usize,
        accepted: Arc<Notify>,
    ) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(storage, rx, max_batch.max(1), accepted));
        (Self { jobs }, task)
    }

    /// Commit `writes` in one transaction; per write, whether it applied.
    pub async fn submit(&self, writes: Vec<Write>) -> Result<Vec<bool>, CommitError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { writes, done })
            .await
            .map_err(|_| CommitError::Stopped)?;
        match wait.await {
            Ok(Ok(applied)) => Ok(applied),
            Ok(Err(reason)) => Err(CommitError::Storage(StorageError::Unavailable(reason))),
            Err(_) => Err(CommitError::Stopped),
        }
    }

    /// Put a refusal on the order's timeline.
    pub async fn record_refusal(&self, entry: RefusedEntry) -> Result<(), CommitError> {
        self.submit(vec![Write::Refusal(entry)]).await.map(|_| ())
    }

    /// Record a delivery attempt under `node`'s lease, with the notice to
    /// the sender if it failed. False when the lease was lost (nothing
    /// written).
    pub async fn record_attempt(
        &self,
        node: &str,
        delivery_id: &str,
        record: AttemptRecord,
        notice: Option<Notice>,
    ) -> Result<bool, CommitError> {
        let write = Write::Attempt {
            node: node.to_string(),
            delivery_id: delivery_id.to_string(),
            record,
            notice: notice.map(Box::new),
        };
        Ok(self
            .submit(vec![write])
            .await?
            .first()
            .copied()
            .unwrap_or(false))
    }
}

async fn run(
    storage: Arc<dyn BatchWriter>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    accepted: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut count = first.writes.len();
        let mut jobs = vec![first];
        while count < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.writes.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // Move the writes out so the batch is not a copy of the content.
        let mut waiters = Vec::with_capacity(jobs.len());
        let mut batch = Vec::with_capacity(count);
        for job in jobs {
            waiters.push((job.done, job.writes.len()));
            batch.extend(job.writes);
        }
        let has_messages = |writes: &[Write]| writes.iter().any(Write::queues_mail);
        let started = std::time::Instant::now();
        match storage.apply(&batch).await {
            Ok(applied) => {
                crate::telemetry::commit(batch.len(), started.elapsed());
                tracing::debug!(
                    writes = batch.len(),
                    jobs = waiters.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "group commit"
                );
                if has_messages(&batch) {
                    accepted.notify_one();
                }
                let mut applied = applied.into_iter();
                for (done, len) in waiters {
                    let _ = done.send(Ok(applied.by_ref().take(len).collect()));
                }
            }
            Err(e) if waiters.len() > 1 => {
                // One bad job must not fail its neighbours: commit each alone.
                tracing::warn!(error = %e, jobs = waiters.len(), "group commit failed; committing jobs one by one");
                let mut rest = batch.as_slice();
                for (done, len) in waiters {
                    let (mine, tail) = rest.split_at(len);
                    rest = tail;
                    let result = storage.apply(mine).await.map_err(|e| e.to_string());
                    if result.is_ok() && has_messages(mine) {
                        accepted.notify_one();
                    }
                    let _ = done.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "commit failed");
                for (done, _) in waiters {
                    let _ = done.send(Err(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::storage::sqlite::SqliteStorage;
    use crate::storage::{AcceptedMessage, Result, Timelines};

    /// Real SQLite, with the first transaction held up as a slow fsync would.
    struct SlowFirstCommit {
        db: SqliteStorage,
        batches: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl BatchWriter for SlowFirstCommit {
        async fn apply(&self, batch: &[Write]) -> Result<Vec<bool>> {
            let first = {
                let mut b = self.batches.lock().unwrap();
                b.push(batch.len());
                b.len() == 1
            };
            if first {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.db.apply(batch).await
        }
    }

    #[tokio::test]
    async fn concurrent_commits_share_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStorage::migrated_in(dir.path(), Duration::from_secs(5)).await;
        let writer = Arc::new(SlowFirstCommit {
            db,
            batches: Mutex::new(Vec::new()),
        });
        let (committer, task) = Committer::start(writer.clone(), 256, Arc::new(Notify::new()));
        let sessions: Vec<_> = (0..20)
            .map(|i| {
                let c = committer.clone();
                tokio::spawn(async move {
                    c.submit(vec![Write::Accept(Box::new(AcceptedMessage::sample(
                        &format!("m{i}"),
                        0,
                    )))])
                    .await
                })
            })
            .collect();
        for s in sessions {
            s.await.unwrap().unwrap();
        }
        drop(committer);
        task.await.unwrap();
        let batches = writer.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 20);
        assert!(
            batches.len() <= 3,
            "20 commits took {} transactions: {batches:?}",
            batches.len()
        );
        assert_eq!(writer.db.timeline("s", "o").await.unwrap().len(), 20);
    }
}
