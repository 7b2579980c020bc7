//! The reading connections: WAL lets them run beside the writer. Handed
//! out and taken back in place. sqlx's pool checks each connection it gets
//! back with a round trip to the driver's thread, from a task of its own:
//! two more thread wake-ups for every recipient check, the hottest read.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::storage::{Result, StorageError};

pub(super) struct Readers {
    /// Open connections not in use; the last one given back goes out first,
    /// so a light load keeps one connection (and its thread) warm.
    idle: Mutex<Vec<SqliteConnection>>,
    /// One per connection that may be open.
    permits: Semaphore,
    options: SqliteConnectOptions,
    /// How long a read waits for a connection (`storage.busy_timeout`).
    wait: Duration,
}

/// A reading connection, given back when dropped.
pub(crate) struct Reader<'a> {
    conn: Option<SqliteConnection>,
    readers: &'a Readers,
    _permit: SemaphorePermit<'a>,
}

impl Readers {
    pub(super) fn new(options: SqliteConnectOptions, max: usize, wait: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Semaphore::new(max),
            options,
            wait,
        }
    }

    pub(super) async fn get(&self) -> Result<Reader<'_>> {
        let busy = || StorageError::Unavailable("no reading connection came free in time".into());
        let permit = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let idle = self.idle.lock().expect("not poisoned").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => SqliteConnection::connect_with(&self.options).await?,
        };
        Ok(Reader {
            conn: Some(conn),
            readers: self,
            _permit: permit,
        })
    }
}

impl Deref for Reader<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().expect("until dropped")
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().expect("until dropped")
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        // A read dropped mid-way is harmless: the driver finishes or resets
        // the statement before it runs the next command on this connection.
        if let Some(conn) = self.conn.take() {
            self.readers.idle.lock().expect("not poisoned").push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn connections_are_reused_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let readers = Readers::new(options, 2, Duration::from_millis(100));
        let a = readers.get().await.unwrap();
        let b = readers.get().await.unwrap();
        assert!(readers.get().await.is_err(), "a third waits, then gives up");
        drop(a);
        drop(b);
        assert_eq!(readers.idle.lock().unwrap().len(), 2);
        let mut c = readers.get().await.unwrap();
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert_eq!(
            readers.idle.lock().unwrap().len(),
            1,
            "taken from the idle ones"
        );
    }
}
