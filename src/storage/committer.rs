//! Group commit. Sessions hand their accepted messages to one committer task;
//! while a transaction is being written, the next ones queue up and go into a
//! single transaction together, so many messages share one fsync.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::{AcceptedMessage, Storage, StorageError};

/// Jobs waiting for the committer. Bounded so a stalled database pushes back
/// on sessions instead of growing memory.
const QUEUE_DEPTH: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("committer stopped")]
    Stopped,
}

struct Job {
    messages: Vec<AcceptedMessage>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Handle to the committer task; cheap to clone, one per session.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Start the committer. `committed` is notified after each successful
    /// transaction so delivery starts at once. The task ends when every
    /// `Committer` handle is dropped.
    pub fn start(
        storage: Arc<dyn Storage>,
        max_batch: usize,
        committed: Arc<Notify>,
    ) -> (Self, JoinHandle<()>) {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let task = tokio::spawn(run(storage, rx, max_batch.max(1), committed));
        (Self { jobs }, task)
    }

    /// Commit one SMTP transaction's messages (all its orders) atomically.
    /// Returns only once they are durable, or with the reason they are not.
    pub async fn commit(&self, messages: Vec<AcceptedMessage>) -> Result<(), CommitError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { messages, done })
            .await
            .map_err(|_| CommitError::Stopped)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(CommitError::Storage(StorageError::Unavailable(reason))),
            Err(_) => Err(CommitError::Stopped),
        }
    }
}

async fn run(
    storage: Arc<dyn Storage>,
    mut rx: mpsc::Receiver<Job>,
    max_batch: usize,
    committed: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut count = jobs[0].messages.len();
        while count < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.messages.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        // Move the messages out so the batch is not a copy of the content.
        let mut waiters = Vec::with_capacity(jobs.len());
        let mut batch = Vec::with_capacity(count);
        for job in jobs {
            waiters.push((job.done, job.messages.len()));
            batch.extend(job.messages);
        }
        let started = std::time::Instant::now();
        match storage.commit(&batch).await {
            Ok(()) => {
                tracing::debug!(
                    messages = batch.len(),
                    jobs = waiters.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "group commit"
                );
                for (done, _) in waiters {
                    let _ = done.send(Ok(()));
                }
                committed.notify_one();
            }
            Err(e) if waiters.len() > 1 => {
                // One bad job must not fail its neighbours: commit each alone.
                tracing::warn!(error = %e, jobs = waiters.len(), "group commit failed; committing jobs one by one");
                let mut rest = batch.as_slice();
                for (done, len) in waiters {
                    let (mine, tail) = rest.split_at(len);
                    rest = tail;
                    let result = storage.commit(mine).await.map_err(|e| e.to_string());
                    if result.is_ok() {
                        committed.notify_one();
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
