//! Who may act for which store: a token for every store, or one limited to
//! a single store. The API's bearer tokens and the console's logins (which
//! are opened with the same tokens) both end up as a `Scope`.

use super::{Result, ServiceError};
use crate::alias::{constant_time_eq, validate_store_id};
use crate::config::ApiToken;

/// The stores a caller may act for: all of them, or one.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// The one store the caller's token is limited to; `None` for every store.
    pub store: Option<String>,
    /// Who the caller is, as the audit of reveals names them: `cli:<user>`,
    /// `api:<store or *>:<token fingerprint>`, `console:<store or *>`.
    pub actor: String,
}

impl Scope {
    /// Every store: the command line, or a token without a store.
    pub fn all() -> Self {
        Self {
            store: None,
            actor: "cli".into(),
        }
    }

    /// The scope a configured token gives; its actor names the token by
    /// the first 8 hex digits of its SHA-256, never by the token.
    pub fn of(token: &ApiToken) -> Self {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(token.token.expose().as_bytes()));
        Self {
            store: token.store.clone(),
            actor: format!(
                "api:{}:{}",
                token.store.as_deref().unwrap_or("*"),
                &digest[..8]
            ),
        }
    }

    /// `Invalid` unless `store` is a well-formed store id, `Forbidden`
    /// unless this caller may act for it: the check every rule that acts
    /// for a named store makes first.
    pub fn allow(&self, store: &str) -> Result<()> {
        validate_store_id(store)?;
        match &self.store {
            Some(mine) if mine != store => Err(ServiceError::Forbidden(store.to_string())),
            _ => Ok(()),
        }
    }

    /// Whether `store`'s data may be shown. Where a refusal would reveal
    /// that something exists, callers answer "not found" instead.
    pub fn sees(&self, store: &str) -> bool {
        self.store.as_deref().is_none_or(|mine| mine == store)
    }
}

/// The configured token matching `presented`, if any (compared in constant
/// time, so the comparison does not tell how much of a guess was right).
pub fn find_token<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    tokens
        .iter()
        .find(|t| constant_time_eq(t.token.expose(), presented))
}

/// Two tokens for tests: `admin-token-0123456789` for every store and
/// `acme-token-0123456789` for `acme`.
#[cfg(test)]
pub(crate) fn test_tokens() -> Vec<ApiToken> {
    use crate::config::Secret;
    vec![
        ApiToken {
            token: Secret::new("admin-token-0123456789"),
            store: None,
        },
        ApiToken {
            token: Secret::new("acme-token-0123456789"),
            store: Some("acme".into()),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_store_limits() {
        let tokens = test_tokens();
        assert!(find_token(&tokens, "nope").is_none());
        let admin = Scope::of(find_token(&tokens, "admin-token-0123456789").unwrap());
        assert!(admin.allow("any").is_ok());
        let acme = Scope::of(find_token(&tokens, "acme-token-0123456789").unwrap());
        assert!(acme.allow("acme").is_ok());
        assert!(matches!(
            acme.allow("shop2"),
            Err(ServiceError::Forbidden(s)) if s == "shop2"
        ));
        assert!(!acme.sees("shop2"));
    }
}
