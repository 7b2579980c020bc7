//! Bearer tokens, each allowed every store or one.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::ApiState;
use crate::alias::constant_time_eq;
use crate::config::ApiToken;

/// Who is calling: the store their token is limited to, if any.
#[derive(Debug, Clone)]
pub struct Caller {
    pub store: Option<String>,
}

impl Caller {
    /// 403 unless this caller may act for `store`.
    pub fn allow(&self, store: &str) -> Result<(), ApiError> {
        match &self.store {
            Some(mine) if mine != store => Err(ApiError::forbidden(store)),
            _ => Ok(()),
        }
    }

    /// Whether `store`'s data may be shown (used where a refusal would
    /// reveal that something exists: the caller gets 404 instead).
    pub fn sees(&self, store: &str) -> bool {
        self.store.as_deref().is_none_or(|mine| mine == store)
    }
}

pub fn find(tokens: &[ApiToken], presented: &str) -> Option<Caller> {
    find_token(tokens, presented).map(|t| Caller {
        store: t.store.clone(),
    })
}

/// The configured token matching `presented`, if any (compared in
/// constant time). The console's login looks tokens up with it too.
pub fn find_token<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    tokens
        .iter()
        .find(|t| constant_time_eq(t.token.expose(), presented))
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(ApiError::unauthorized)?;
        find(&state.tokens, presented.trim()).ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn tokens_and_store_limits() {
        let tokens = vec![
            ApiToken {
                token: Secret::new("admin-token-0123456789"),
                store: None,
            },
            ApiToken {
                token: Secret::new("acme-token-0123456789"),
                store: Some("acme".into()),
            },
        ];
        assert!(find(&tokens, "nope").is_none());
        let admin = find(&tokens, "admin-token-0123456789").unwrap();
        assert!(admin.allow("any").is_ok());
        let acme = find(&tokens, "acme-token-0123456789").unwrap();
        assert!(acme.allow("acme").is_ok());
        assert_eq!(acme.allow("shop2").unwrap_err().status, 403);
        assert!(!acme.sees("shop2"));
    }
}
