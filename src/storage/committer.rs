//! Group commit. Every write that must be durable before someone is answered
//! (an accepted message before its 250, a delivery outcome before its lease
//! is let go) goes through one committer task. While one transaction is being
//! written, the next writes queue up and go into a single transaction
//! together, so many of them share one fsync.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::{AcceptedMessage, AttemptRecord, Storage, StorageError, Write};

/// Jobs waiting for the committer. Bounded so a stalled database pushes back
/// on sessions and workers instead of growing memory.
const QUEUE_DEPTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Storage(#[from] StorageError),
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
        storage: Arc<dyn Storage>,
        max_batch: usize,
        accepted: Arc<Notify>,
    ) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(storage, rx, max_batch.max(1), accepted));
        (Self { jobs }, task)
    }

    async fn submit(&self, writes: Vec<Write>) -> Result<Vec<bool>, CommitError> {
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

    /// Commit one SMTP transaction's messages (all its orders) atomically.
    /// Returns only once they are durable, or with the reason they are not.
    pub async fn commit(&self, messages: Vec<AcceptedMessage>) -> Result<(), CommitError> {
        self.submit(
            messages
                .into_iter()
                .map(|m| Write::Accept(Box::new(m)))
                .collect(),
        )
        .await
        .map(|_| ())
    }

    /// Record a delivery attempt under `node`'s lease. False when the lease
    /// was lost (nothing written).
    pub async fn record_attempt(
        &self,
        node: &str,
        delivery_id: &str,
        record: AttemptRecord,
    ) -> Result<bool, CommitError> {
        let write = Write::Attempt {
            node: node.to_string(),
            delivery_id: delivery_id.to_string(),
            record,
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
    storage: Arc<dyn Storage>,
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
        let has_messages = |writes: &[Write]| writes.iter().any(|w| matches!(w, Write::Accept(_)));
        let started = std::time::Instant::now();
        match storage.apply(&batch).await {
            Ok(applied) => {
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
