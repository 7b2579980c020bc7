//! The development transport: each delivery becomes `<delivery id>.eml` in a
//! folder, next to `<delivery id>.json` with its envelope. Files are written
//! to a temporary name, fsynced and renamed, so a crash never leaves half a
//! message, and a repeated attempt rewrites the same file instead of adding one.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{DeliveryEnvelope, Outcome, Transport, TransportError};

/// The development transport: each delivery is an `.eml` file with its envelope in a `.json` beside it.
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    /// Write into `dir`, creating it (0700; the files are 0600).
    pub fn new(dir: &Path) -> Result<Self, TransportError> {
        crate::private_files::create_dir(dir)
            .map_err(|e| TransportError::Dir(dir.display().to_string(), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = crate::private_files::create_file(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, envelope: &DeliveryEnvelope<'_>, message: &[u8]) -> Outcome {
        let dir = self.dir.clone();
        let id = envelope.delivery_id.to_string();
        let meta = serde_json::json!({
            "delivery_id": envelope.delivery_id,
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_to,
        });
        let message = message.to_vec();
        let written = tokio::task::spawn_blocking(move || {
            write_durably(&dir, &format!("{id}.json"), meta.to_string().as_bytes())?;
            write_durably(&dir, &format!("{id}.eml"), &message)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await;
        match written {
            Ok(Ok(())) => Outcome::Delivered {
                reply: format!("250 2.0.0 Ok: written to {}.eml", envelope.delivery_id),
            },
            // A full or read-only disk may clear up: retry, do not fail.
            Ok(Err(e)) => Outcome::Retry {
                reply: format!("451 4.3.0 cannot write to delivery.dir: {e}"),
            },
            Err(e) => Outcome::Retry {
                reply: format!("451 4.3.0 writer task failed: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_message_and_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTransport::new(dir.path()).unwrap();
        let env = DeliveryEnvelope {
            delivery_id: "D1",
            mail_from: "bounce@ct.test",
            rcpt_to: "someone@example.com",
        };
        let out = t.send(&env, b"Subject: x\r\n\r\nhi\r\n").await;
        assert!(matches!(out, Outcome::Delivered { .. }));
        assert_eq!(
            std::fs::read(dir.path().join("D1.eml")).unwrap(),
            b"Subject: x\r\n\r\nhi\r\n"
        );
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("D1.json")).unwrap()).unwrap();
        assert_eq!(meta["rcpt_to"], "someone@example.com");
        // The same delivery again replaces, never duplicates.
        t.send(&env, b"Subject: x\r\n\r\nhi\r\n").await;
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
