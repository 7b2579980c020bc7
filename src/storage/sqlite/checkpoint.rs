//! WAL checkpoints off the writer's path, and a bound on the log's size.
//! SQLite's own checkpoint runs in the commit that crosses its threshold:
//! that commit copies the log into the database file and waits for its
//! fsync (about 10 ms on the test machine, every 4 MB of log), and every
//! session waiting on the group commit waits with it. The writer
//! connection has it turned off; this task runs a passive checkpoint,
//! which never blocks the writer, on a connection of its own soon after
//! group commits, and every few seconds whatever was written (the API's
//! and the CLI's writes do not go through the group commit, and a node
//! that takes no mail must not grow its log forever).
//!
//! A passive checkpoint copies the log into the database but leaves the
//! file as long as it ever grew (readers in the middle of it, or a burst
//! of writes, can keep the writer appending for a while). When the file
//! passes `storage.wal_limit_mib`, or when nothing was committed for an
//! idle interval and the file is not empty, a `TRUNCATE` checkpoint
//! empties it. That one needs the write lock and no reader in the log, so
//! it takes the writer's turn (commits wait for it: the few frames the
//! passive checkpoints left, then an fsync) and waits for readers as any
//! write does. `journal_size_limit` makes every reset of the log by the
//! writer truncate it to the limit too.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Writer;
use crate::telemetry;

/// Least time between two checkpoints: under load, a checkpoint copies
/// what a few hundred commits wrote, as SQLite's default threshold
/// (1000 pages) would.
const INTERVAL: Duration = Duration::from_millis(200);
/// Longest time between two checkpoints. One with nothing to copy costs a
/// look at the log's header.
const IDLE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs checkpoints while it lives.
pub(super) struct Checkpointer {
    due: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The log's file and the size past which it is emptied.
#[derive(Clone)]
pub(super) struct WalBound {
    pub path: PathBuf,
    pub limit: u64,
}

impl WalBound {
    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

impl Checkpointer {
    /// Passive checkpoints on a connection of its own, opened with
    /// `options`; truncating ones on the writer's, in its turn.
    pub(super) fn start(options: SqliteConnectOptions, wal: WalBound, writer: Arc<Writer>) -> Self {
        let due = Arc::new(Notify::new());
        let task = tokio::spawn(run(options, wal, writer, due.clone()));
        Self { due, task }
    }

    /// Something was committed: checkpoint soon.
    pub(super) fn committed(&self) {
        self.due.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(options: SqliteConnectOptions, wal: WalBound, writer: Arc<Writer>, due: Arc<Notify>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut last_passive = Instant::now();
    loop {
        let idle = tokio::time::timeout(IDLE_INTERVAL, due.notified())
            .await
            .is_err();
        // Looked at after every commit: the log passes its bound by at
        // most one commit's writes.
        let size = wal.size();
        if size > wal.limit || (idle && size > 0) {
            truncate(&writer, size).await;
        } else if idle || last_passive.elapsed() >= INTERVAL {
            passive(&mut conn, &options).await;
            last_passive = Instant::now();
        }
        telemetry::wal(wal.size());
    }
}

/// A passive checkpoint on the checkpointer's own connection.
async fn passive(conn: &mut Option<SqliteConnection>, options: &SqliteConnectOptions) {
    let c = match conn.as_mut() {
        Some(c) => c,
        None => match SqliteConnection::connect_with(options).await {
            Ok(c) => conn.insert(c),
            Err(e) => {
                tracing::debug!(error = %e, "checkpoint did not run");
                return;
            }
        },
    };
    if let Err(e) = checkpoint(c, "PASSIVE").await {
        // Another process (a CLI command) may be checkpointing: next time.
        tracing::debug!(error = %e, "checkpoint did not run");
    }
}

/// Empty the log, in the writer's turn.
async fn truncate(writer: &Writer, size: u64) {
    let truncated = match writer.turn().await {
        Ok(mut turn) => checkpoint(&mut turn.conn, "TRUNCATE")
            .await
            .map_err(Into::into),
        Err(e) => Err(e),
    };
    match truncated {
        Ok(true) => telemetry::wal_truncated(),
        Ok(false) => tracing::debug!(bytes = size, "log in use; truncated later"),
        Err(e) => tracing::debug!(error = %e, "truncating checkpoint did not run"),
    }
}

/// Run a checkpoint of `mode`; true when it copied the whole log (and,
/// for `TRUNCATE`, emptied the file).
pub(super) async fn checkpoint(
    conn: &mut SqliteConnection,
    mode: &str,
) -> Result<bool, sqlx::Error> {
    // One row: busy (1 when blocked), frames in the log, frames copied.
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
        .fetch_one(conn)
        .await?;
    Ok(busy == 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::storage::sqlite::SqliteStorage;
    use crate::storage::{AcceptedMessage, BatchWriter, Storage, Write};

    /// A migrated database at `t.db` in the directory returned with it.
    async fn migrated() -> (SqliteStorage, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStorage::migrated_in(dir.path(), Duration::from_secs(5)).await;
        (db, dir)
    }

    #[tokio::test]
    async fn commits_are_checkpointed_by_the_task_not_the_writer() {
        let (db, dir) = migrated().await;
        let path = dir.path().join("t.db");
        let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *db.writer().await.unwrap())
            .await
            .unwrap();
        assert_eq!(autocheckpoint, 0, "the writer never checkpoints");
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        let message = AcceptedMessage {
            content: vec![b'x'; 256 * 1024].into(),
            ..AcceptedMessage::sample("m1", 0)
        };
        db.apply(&[Write::Accept(Box::new(message))]).await.unwrap();
        // The commit is in the log; the task copies it into the file soon.
        let mut waited = Duration::ZERO;
        while size() < before + 256 * 1024 {
            assert!(
                waited < Duration::from_secs(5),
                "the commit was not checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    }

    /// Writes outside the group commit (participants made by the API) are
    /// checkpointed too, within the idle interval.
    #[tokio::test]
    async fn writes_outside_the_group_commit_are_checkpointed() {
        let (db, dir) = migrated().await;
        let path = dir.path().join("t.db");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *db.writer().await.unwrap())
            .await
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        let aliaser = crate::alias::Aliaser::new(
            crate::alias::AliasKey::new(vec![7; 32]).unwrap(),
            "ct.test",
            crate::alias::Ttl::Months(2),
        );
        let now = chrono::Utc::now();
        let people: Vec<_> = (0..500)
            .map(|i| {
                let email = format!("person{i}@example.com");
                aliaser
                    .participant(
                        "acme",
                        "o1",
                        crate::alias::Role::Contact,
                        &email,
                        crate::alias::MaskMode::Hard,
                        now,
                    )
                    .unwrap()
            })
            .collect();
        db.ensure_participants(&people).await.unwrap();
        let limit = super::IDLE_INTERVAL * 3;
        let mut waited = Duration::ZERO;
        while size() < before + 64 * 1024 {
            assert!(waited < limit, "the participants were not checkpointed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
    }

    /// 16 MiB of mail against a 1 MiB bound: the log never stays past the
    /// bound for long, and is emptied once the writes stop.
    #[tokio::test]
    async fn the_log_is_kept_under_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let limit = 1 << 20;
        let db =
            SqliteStorage::migrated_with_wal_limit(dir.path(), Duration::from_secs(5), limit).await;
        let wal = dir.path().join("t.db-wal");
        let size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
        let mut largest_after_a_pause = 0;
        for i in 0..64 {
            let message = AcceptedMessage {
                content: vec![b'x'; 256 * 1024].into(),
                ..AcceptedMessage::sample(&format!("m{i}"), 0)
            };
            db.apply(&[Write::Accept(Box::new(message))]).await.unwrap();
            if i % 8 == 7 {
                // The checkpointer's turn (it runs every 200 ms).
                tokio::time::sleep(Duration::from_millis(450)).await;
                largest_after_a_pause = largest_after_a_pause.max(size());
            }
        }
        // A commit or two may land between a checkpoint and the look.
        assert!(
            largest_after_a_pause <= limit + 600 * 1024,
            "log at {largest_after_a_pause} bytes, bound {limit}"
        );
        let mut waited = Duration::ZERO;
        while size() > 0 {
            assert!(
                waited < super::IDLE_INTERVAL * 3,
                "an idle log is emptied ({} bytes left)",
                size()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
    }

    /// What a purge frees goes back to the file system, past a tenth kept
    /// for the next writes.
    #[tokio::test]
    async fn compacting_returns_freed_pages() {
        use crate::storage::Maintenance;
        let (db, dir) = migrated().await;
        let path = dir.path().join("t.db");
        for i in 0..32 {
            let message = AcceptedMessage {
                content: vec![b'x'; 256 * 1024].into(),
                ..AcceptedMessage::sample(&format!("m{i}"), 0)
            };
            db.apply(&[Write::Accept(Box::new(message))]).await.unwrap();
        }
        db.compact(true).await.unwrap();
        let full = std::fs::metadata(&path).unwrap().len();
        assert!(full > 8 << 20, "{full}");
        sqlx::query("DELETE FROM messages")
            .execute(&mut *db.writer().await.unwrap())
            .await
            .unwrap();
        db.compact(true).await.unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after < full / 4, "{full} bytes before, {after} after");
        let wal = std::fs::metadata(dir.path().join("t.db-wal")).map_or(0, |m| m.len());
        assert_eq!(wal, 0, "the log is emptied");
    }
}
