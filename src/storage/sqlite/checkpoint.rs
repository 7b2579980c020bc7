//! WAL checkpoints off the writer's path. SQLite's own checkpoint runs in
//! the commit that crosses its threshold: that commit copies the log into
//! the database file and waits for its fsync (about 10 ms on the test
//! machine, every 4 MB of log), and every session waiting on the group
//! commit waits with it. The writer connection has it turned off; this task
//! runs a passive checkpoint, which never blocks the writer, on a reading
//! connection soon after group commits, and every few seconds whatever
//! was written (the API's and the CLI's writes do not go through the group
//! commit, and a node that takes no mail must not grow its log forever).

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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

impl Checkpointer {
    /// Checkpoints on a connection of its own, opened with `options`.
    pub(super) fn start(options: SqliteConnectOptions) -> Self {
        let due = Arc::new(Notify::new());
        let task = tokio::spawn(run(options, due.clone()));
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

async fn run(options: SqliteConnectOptions, due: Arc<Notify>) {
    let mut conn: Option<SqliteConnection> = None;
    loop {
        let _ = tokio::time::timeout(IDLE_INTERVAL, due.notified()).await;
        let result = match conn.as_mut() {
            Some(c) => checkpoint(c).await,
            None => match SqliteConnection::connect_with(&options).await {
                Ok(c) => checkpoint(conn.insert(c)).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            // Another process (a CLI command) may be checkpointing: next time.
            tracing::debug!(error = %e, "checkpoint did not run");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .await
        .map(|_| ())
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
}
