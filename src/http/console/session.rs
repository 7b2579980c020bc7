//! Console sessions: a signed cookie, so any node of a cluster (they share
//! the alias key) accepts it, and nothing is stored. The cookie names the
//! API token it was opened with by a keyed fingerprint, never the token:
//! a token taken out of the configuration ends its sessions. Each session
//! carries a random CSRF token that every form posts back.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::alias::{constant_time_eq, Aliaser};
use crate::config::ApiToken;
use crate::http::HttpState;

/// The session cookie, and the one that carries the login form's CSRF token.
pub const SESSION_COOKIE: &str = "ct_console";
pub const LOGIN_COOKIE: &str = "ct_console_login";
/// A session lasts a working day; then the operator logs in again.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

const TOKEN_LABEL: &str = "ct-console-token-v1";
const SESSION_LABEL: &str = "ct-console-session-v1";

/// A logged-in operator: the store their token is limited to, if any.
#[derive(Debug, Clone)]
pub struct Session {
    /// The store the login's token is limited to, if any.
    pub store: Option<String>,
    /// The token every form of this session posts back.
    pub csrf: String,
}

impl Session {
    /// Whether this session may see and change `store`.
    pub fn sees(&self, store: &str) -> bool {
        self.store.as_deref().is_none_or(|mine| mine == store)
    }

    /// The stores this session may act for, as the shared rules take it.
    pub fn scope(&self) -> crate::service::Scope {
        crate::service::Scope {
            store: self.store.clone(),
            actor: format!("console:{}", self.store.as_deref().unwrap_or("*")),
        }
    }

    /// The form's CSRF token is this session's.
    pub fn check_csrf(&self, posted: &str) -> bool {
        constant_time_eq(&self.csrf, posted)
    }
}

/// A keyed fingerprint of an API token: names it in a cookie without
/// revealing it.
fn fingerprint(aliaser: &Aliaser, token: &str) -> String {
    aliaser.sign(TOKEN_LABEL, &[token])[..24].to_string()
}

fn signature(aliaser: &Aliaser, token_id: &str, expires: &str, csrf: &str) -> String {
    aliaser.sign(SESSION_LABEL, &[token_id, expires, csrf])[..32].to_string()
}

/// Random hex, for CSRF tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}

/// The cookie value of a new session opened with `token`.
pub fn open(aliaser: &Aliaser, token: &ApiToken) -> String {
    let token_id = fingerprint(aliaser, token.token.expose());
    let expires = (Utc::now().timestamp() + LIFETIME.as_secs() as i64).to_string();
    let csrf = random_hex();
    let sig = signature(aliaser, &token_id, &expires, &csrf);
    format!("{token_id}.{expires}.{csrf}.{sig}")
}

/// The session a cookie value stands for: signed by this relay, not
/// expired, and opened with a token still configured.
pub fn verify(aliaser: &Aliaser, tokens: &[ApiToken], value: &str) -> Option<Session> {
    let mut parts = value.split('.');
    let (token_id, expires, csrf, sig) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !constant_time_eq(&signature(aliaser, token_id, expires, csrf), sig)
    {
        return None;
    }
    if expires.parse::<i64>().ok()? < Utc::now().timestamp() {
        return None;
    }
    let token = tokens
        .iter()
        .find(|t| constant_time_eq(&fingerprint(aliaser, t.token.expose()), token_id))?;
    Some(Session {
        store: token.store.clone(),
        csrf: csrf.to_string(),
    })
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for the console: only sent back to `/console`, never to
/// scripts or other sites; `Secure` when the request came over HTTPS (a
/// proxy in front says so in `X-Forwarded-Proto`).
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Duration) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    )
}

/// Add a `Set-Cookie` made by `set_cookie` to `response`.
pub fn add_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

/// Not logged in: to the login page.
pub struct LoginFirst;

impl IntoResponse for LoginFirst {
    fn into_response(self) -> Response {
        (StatusCode::SEE_OTHER, [(LOCATION, "/console/login")]).into_response()
    }
}

impl FromRequestParts<HttpState> for Session {
    type Rejection = LoginFirst;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, LoginFirst> {
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|value| verify(&state.services.aliaser, &state.tokens.current(), value))
            .ok_or(LoginFirst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alias::{AliasKey, Ttl};

    fn aliaser(key: u8) -> Aliaser {
        Aliaser::new(
            AliasKey::new(vec![key; 32]).unwrap(),
            "ct.test",
            "2 months".parse::<Ttl>().unwrap(),
        )
    }

    fn tokens() -> Vec<ApiToken> {
        crate::service::access::test_tokens()
    }

    #[test]
    fn a_session_keeps_its_token_scope_and_nothing_else_passes() {
        let a = aliaser(1);
        let tokens = tokens();
        let value = open(&a, &tokens[1]);
        assert!(
            !value.contains("acme-token"),
            "the token never goes into the cookie"
        );
        let session = verify(&a, &tokens, &value).expect("valid");
        assert_eq!(session.store.as_deref(), Some("acme"));
        assert!(session.sees("acme") && !session.sees("shop2"));
        assert!(session.check_csrf(&session.csrf.clone()));
        assert!(!session.check_csrf("guess"));

        // Another relay key, a changed character, a removed token: refused.
        assert!(verify(&aliaser(2), &tokens, &value).is_none());
        let mut forged = value.clone().into_bytes();
        forged[30] = if forged[30] == b'0' { b'1' } else { b'0' };
        assert!(verify(&a, &tokens, &String::from_utf8(forged).unwrap()).is_none());
        assert!(verify(&a, &tokens[..1], &value).is_none());
        assert!(verify(&a, &tokens, "x.y.z").is_none());
    }

    #[test]
    fn an_expired_session_is_refused() {
        let a = aliaser(1);
        let tokens = tokens();
        let token_id = fingerprint(&a, tokens[0].token.expose());
        let expires = (Utc::now().timestamp() - 1).to_string();
        let sig = signature(&a, &token_id, &expires, "c");
        assert!(verify(&a, &tokens, &format!("{token_id}.{expires}.c.{sig}")).is_none());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; ct_console=v.a.l.ue; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("v.a.l.ue"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
        let set = set_cookie(&headers, SESSION_COOKIE, "v", LIFETIME);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure")
        );
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(set_cookie(&headers, SESSION_COOKIE, "v", LIFETIME).ends_with("; Secure"));
    }
}
