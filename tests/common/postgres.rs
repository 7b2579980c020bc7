//! PostgreSQL databases for tests: each test makes its own on the server
//! `DATABASE_URL` names and drops it when the test ends, passed or failed,
//! so a run leaves no `ct_test_*` databases behind.

use std::process::Command;
use std::sync::Arc;

/// The PostgreSQL server tests use: `DATABASE_URL` (CI sets it), else the
/// local server.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of one test's own, dropped (its connections closed) when the
/// last holder lets go of it.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Create an empty database `ct_test_<ulid>`.
    pub fn create() -> Arc<Self> {
        let name = format!("ct_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        let out = psql(&format!("CREATE DATABASE {name}"));
        assert!(
            out.status.success(),
            "cannot create a test database on {} (is PostgreSQL running? set DATABASE_URL): {}",
            admin_url(),
            String::from_utf8_lossy(&out.stderr)
        );
        Arc::new(Self::named(&name))
    }

    /// A database something else creates (a script under test); dropped
    /// all the same if it exists when this goes.
    pub fn named(name: &str) -> Self {
        let admin = admin_url();
        let base = admin.split('?').next().unwrap();
        let base = &base[..base.rfind('/').unwrap()];
        Self {
            name: name.to_string(),
            url: format!("{base}/{name}"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE closes what a relay or a pool still holds open.
        let out = psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
        if !out.status.success() {
            eprintln!(
                "could not drop test database {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn psql(sql: &str) -> std::process::Output {
    Command::new("psql")
        .arg(admin_url())
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql (PostgreSQL's client) is needed by the PostgreSQL tests")
}
