//! Secrets in the configuration (the HMAC keys, API tokens, the DKIM key):
//! used and compared, never printed: `Debug` shows `<redacted>`. Each can
//! also come from a file (`…_file` keys), read once at start, so it need not
//! sit in the config file or the environment.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// A secret from the configuration: never shown by `Debug` or in logs.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret read from `path` (`key` names the setting in errors); a final
/// line break is not part of it.
pub fn read_secret_file(path: &Path, key: &str) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Invalid(format!("{key} {}: {e}", path.display())))?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{key} {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2-hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2-hunter2-hunter2");
    }

    #[test]
    fn files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret-value\n").unwrap();
        assert_eq!(
            read_secret_file(&path, "alias.hmac_key_file")
                .unwrap()
                .expose(),
            "s3cret-value"
        );
        std::fs::write(&path, "\n").unwrap();
        let err = read_secret_file(&path, "alias.hmac_key_file")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("alias.hmac_key_file") && err.contains("empty"),
            "{err}"
        );
        let err = read_secret_file(&dir.path().join("missing"), "api.token_file")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.token_file") && err.contains("missing"),
            "{err}"
        );
    }
}
