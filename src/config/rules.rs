//! The rules a configuration's values must keep beyond their types: each
//! broken rule is a [`Problem`] naming its key, so `serve` can refuse with the
//! first and `check-config` can list them all.

use super::{ConfigError, Settings, TransportKind, MIN_TOKEN_LEN};

/// One broken rule: the dotted key it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting, as `section.key` (the first one named when several are).
    pub key: String,
    /// What is wrong; it names the key too, so it reads alone.
    pub message: String,
}

impl Settings {
    /// Every broken rule, in the order of the file's sections.
    pub fn problems(&self) -> Vec<Problem> {
        let mut found = Vec::new();
        let mut problem = |key: &str, message: String| {
            found.push(Problem {
                key: key.to_string(),
                message,
            })
        };
        if self.alias.domain.is_empty() || self.alias.domain.contains('@') {
            problem(
                "alias.domain",
                format!("alias.domain `{}` is not a domain", self.alias.domain),
            );
        }
        if let Err(e) = self.alias_ttl() {
            problem("alias.ttl", message(e));
        }
        if let Err(e) = self.storage.keyring() {
            problem("storage.encryption_key", message(e));
        }
        if self.delivery.transport == TransportKind::Smarthost && self.delivery.smarthost.is_none()
        {
            problem(
                "delivery.smarthost",
                "delivery.transport = \"smarthost\" needs delivery.smarthost = \"host:port\""
                    .into(),
            );
        }
        if self.api.listen.is_some() {
            let tokens = self.api.all_tokens();
            if tokens.is_empty() {
                problem(
                    "api.token",
                    "api.listen is set but there is no api.token (or api.tokens)".into(),
                );
            }
            if tokens
                .iter()
                .any(|t| t.token.expose().len() < MIN_TOKEN_LEN)
            {
                problem(
                    "api.token",
                    format!("every API token must have at least {MIN_TOKEN_LEN} characters"),
                );
            }
            for store in tokens.iter().filter_map(|t| t.store.as_deref()) {
                if let Err(e) = crate::alias::validate_store_id(store) {
                    problem("api.tokens", format!("api.tokens: {e}"));
                }
            }
        }
        if self.storage.commit_batch == 0 {
            problem(
                "storage.commit_batch",
                "storage.commit_batch must be at least 1".into(),
            );
        }
        let d = &self.delivery;
        if d.workers == 0 {
            problem(
                "delivery.workers",
                "delivery.workers must be at least 1".into(),
            );
        }
        if d.retry_initial.is_zero() || d.retry_max < d.retry_initial {
            problem(
                "delivery.retry_initial",
                "delivery.retry_initial must be > 0 and <= delivery.retry_max".into(),
            );
        }
        if d.lease <= d.timeout * 11 {
            problem(
                "delivery.lease",
                format!(
                    "delivery.lease ({}) must exceed 11 × delivery.timeout ({}): one attempt may take that long",
                    humantime::format_duration(d.lease),
                    humantime::format_duration(d.timeout)
                ),
            );
        }
        if d.heartbeat.is_zero() {
            problem(
                "delivery.heartbeat",
                "delivery.heartbeat must be above zero".into(),
            );
        }
        if d.destination_concurrency == 0 {
            problem(
                "delivery.destination_concurrency",
                "delivery.destination_concurrency must be at least 1".into(),
            );
        }
        for (name, own) in &d.destinations {
            if name.is_empty() || *name != name.to_ascii_lowercase() {
                problem(
                    "delivery.destinations",
                    format!("delivery.destinations: `{name}` must be a lowercase domain"),
                );
            }
            if own.concurrency == Some(0) {
                problem(
                    "delivery.destinations",
                    format!("delivery.destinations.\"{name}\".concurrency must be at least 1"),
                );
            }
        }
        for addr in &d.nameservers {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                problem(
                    "delivery.nameservers",
                    format!("delivery.nameservers: `{addr}` is not ip:port"),
                );
            }
        }
        let w = &self.webhook;
        if w.workers == 0 || w.retry_initial.is_zero() || w.retry_max < w.retry_initial {
            problem(
                "webhook.workers",
                "webhook.workers must be at least 1, webhook.retry_initial > 0 and <= webhook.retry_max"
                    .into(),
            );
        }
        if w.lease <= w.timeout * 2 {
            problem(
                "webhook.lease",
                "webhook.lease must exceed twice webhook.timeout".into(),
            );
        }
        if let Err(e) = self.scan.validate() {
            let message = message(e);
            let key = if message.starts_with("scan.timeout") {
                "scan.timeout"
            } else {
                "scan.rspamd_url"
            };
            problem(key, message);
        }
        found
    }

    /// The first broken rule as an error; `serve` refuses to start with it.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(p) => Err(ConfigError::Invalid(p.message)),
            None => Ok(()),
        }
    }
}

/// The message of a rule's error, without the "invalid configuration value"
/// its Display adds.
fn message(e: ConfigError) -> String {
    match e {
        ConfigError::Invalid(m) => m,
        other => other.to_string(),
    }
}
