//! Bearer tokens, each allowed every store or one.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::http::auth_failures::client_of;
use crate::http::HttpState;
use crate::service::{find_token, Scope};

/// Who is calling: the scope of the bearer token presented.
pub type Caller = Scope;

/// The caller a presented token makes, if it is a configured one.
pub fn find(tokens: &[crate::config::ApiToken], presented: &str) -> Option<Caller> {
    find_token(tokens, presented).map(Scope::of)
}

impl FromRequestParts<HttpState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &HttpState,
    ) -> Result<Self, Self::Rejection> {
        let client = client_of(&parts.extensions);
        if let Some(secs) = state.auth_failures.wait_for(client) {
            return Err(ApiError::too_many_failures(secs));
        }
        let found = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|presented| find(&state.tokens.current(), presented.trim()));
        found.ok_or_else(|| {
            state.auth_failures.record(client, "API token");
            ApiError::unauthorized()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::access::test_tokens;

    #[test]
    fn a_token_for_another_store_is_forbidden() {
        let tokens = test_tokens();
        assert!(find(&tokens, "nope").is_none());
        let acme = find(&tokens, "acme-token-0123456789").unwrap();
        assert_eq!(ApiError::from(acme.allow("shop2").unwrap_err()).status, 403);
    }
}
