//! Logging in and out, and the store's settings page (the mask setting
//! here, the policy form in `policy`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::policy::PolicyView;
use super::session::{self, Session, LIFETIME, LOGIN_COOKIE, SESSION_COOKIE};
use super::{page, see_other, ConsoleError, Nav};
use crate::alias::{MaskMode, Role};
use crate::http::auth_failures::ClientAddr;
use crate::http::HttpState;
use crate::service::SettingsChange;

/// How long the login form stays good.
const LOGIN_FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    title: String,
    nav: Option<Nav>,
    csrf: String,
    problem: Option<String>,
}

/// The login form, with a fresh CSRF token in a cookie of its own (a
/// session does not exist yet), so another site cannot log a browser in.
pub async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, None)
}

fn login_form(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let csrf = session::random_hex();
    let cookie = session::set_cookie(headers, LOGIN_COOKIE, &csrf, LOGIN_FORM_LIFETIME);
    let mut response = page(
        status,
        &LoginPage {
            title: "Log in".into(),
            nav: None,
            csrf,
            problem: problem.map(str::to_string),
        },
    );
    session::add_cookie(&mut response, &cookie);
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    csrf: String,
}

pub async fn log_in(
    State(state): State<HttpState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::alias::constant_time_eq(expected, &form.csrf) {
        return login_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The login form had expired. Please log in again."),
        );
    }
    if let Some(secs) = state.auth_failures.wait_for(client) {
        let text = format!("Too many failed logins from this address. Try again in {secs} s.");
        let mut response = login_form(&headers, StatusCode::TOO_MANY_REQUESTS, Some(&text));
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
        return response;
    }
    let tokens = state.tokens.current();
    let Some(token) = crate::service::find_token(&tokens, form.token.trim()) else {
        state.auth_failures.record(client, "console login");
        return login_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
        );
    };
    tracing::info!(
        store = token.store.as_deref().unwrap_or("(all)"),
        client = %client,
        "console login"
    );
    let value = session::open(&state.services.aliaser, token);
    let mut response = see_other("/console/orders");
    let cookies = [
        session::set_cookie(&headers, SESSION_COOKIE, &value, LIFETIME),
        session::set_cookie(&headers, LOGIN_COOKIE, "", std::time::Duration::ZERO),
    ];
    for c in cookies {
        session::add_cookie(&mut response, &c);
    }
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn log_out(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    if !session.check_csrf(&form.csrf) {
        return Err(ConsoleError::stale_form().within("orders", &session));
    }
    let mut response = see_other("/console/login");
    let gone = session::set_cookie(&headers, SESSION_COOKIE, "", std::time::Duration::ZERO);
    session::add_cookie(&mut response, &gone);
    Ok(response)
}

#[derive(Template)]
#[template(path = "console/pick_store.html")]
pub struct PickStore {
    pub title: String,
    pub nav: Option<Nav>,
    pub action: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    title: String,
    nav: Option<Nav>,
    csrf: String,
    store: String,
    mode: &'static str,
    saved: bool,
    saved_policy: bool,
    hard_example: String,
    soft_example: String,
    policy: PolicyView,
}

#[derive(Deserialize)]
pub struct StoreQuery {
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    saved: Option<String>,
}

/// The store this session works on: its token's, or the one asked for.
/// `None`: an unlimited token that has not said which.
pub fn chosen_store(
    session: &Session,
    asked: Option<&str>,
    page: &'static str,
) -> Result<Option<String>, ConsoleError> {
    let asked = asked.map(str::trim).filter(|s| !s.is_empty());
    match (&session.store, asked) {
        (Some(mine), Some(other)) if mine != other => Err(ConsoleError::not_found(format!(
            "There is no store {other} for this login."
        ))
        .within(page, session)),
        (Some(mine), _) => Ok(Some(mine.clone())),
        (None, Some(store)) => {
            crate::alias::validate_store_id(store)
                .map_err(|e| ConsoleError::new(StatusCode::BAD_REQUEST, e.to_string()))
                .map_err(|e| e.within(page, session))?;
            Ok(Some(store.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// A posted form's store, once its CSRF token is this session's: the
/// store the session may work on, or a page saying why not.
pub fn form_store(
    session: &Session,
    csrf: &str,
    store: &str,
    page: &'static str,
) -> Result<String, ConsoleError> {
    if !session.check_csrf(csrf) {
        return Err(ConsoleError::stale_form().within(page, session));
    }
    chosen_store(session, Some(store), page)?.ok_or_else(|| {
        ConsoleError::new(StatusCode::BAD_REQUEST, "Which store?").within(page, session)
    })
}

pub async fn settings_page(
    State(state): State<HttpState>,
    session: Session,
    Query(q): Query<StoreQuery>,
) -> Result<Response, ConsoleError> {
    let Some(store) = chosen_store(&session, q.store.as_deref(), "settings")? else {
        return Ok(page(
            StatusCode::OK,
            &PickStore {
                title: "Store settings".into(),
                nav: Nav::new("settings", &session),
                action: "/console/settings".into(),
            },
        ));
    };
    let config = state
        .services
        .storage
        .store_config(&store)
        .await
        .map_err(|e| ConsoleError::from(e).within("settings", &session))?;
    let example = |mode| {
        state
            .services
            .aliaser
            .participant(
                &store,
                "1234567890123-01",
                Role::Customer,
                "john.doe@example.com",
                mode,
                Utc::now(),
            )
            .map(|p| p.alias)
            .unwrap_or_default()
    };
    Ok(page(
        StatusCode::OK,
        &SettingsPage {
            title: "Store settings".into(),
            nav: Nav::new("settings", &session),
            csrf: session.csrf.clone(),
            hard_example: example(MaskMode::Hard),
            soft_example: example(MaskMode::Soft),
            store,
            mode: config.mask_mode.as_str(),
            saved: q.saved.as_deref().is_some_and(|s| s != "policy"),
            saved_policy: q.saved.as_deref() == Some("policy"),
            policy: PolicyView::from(&config.policy),
        },
    ))
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    store: String,
    mask_mode: String,
}

pub async fn save_settings(
    State(state): State<HttpState>,
    session: Session,
    Form(form): Form<SettingsForm>,
) -> Result<Response, ConsoleError> {
    let store = form_store(&session, &form.csrf, &form.store, "settings")?;
    let mode: MaskMode = form.mask_mode.parse().map_err(|_| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "The mask type must be hard or soft, not {}.",
                form.mask_mode
            ),
        )
        .within("settings", &session)
    })?;
    let change = SettingsChange {
        mask_mode: Some(mode),
        ..SettingsChange::default()
    };
    state
        .services
        .change_settings(&session.scope(), &store, change, Utc::now())
        .await
        .map_err(|e| ConsoleError::from(e).within("settings", &session))?;
    Ok(see_other(&format!(
        "/console/settings?store={}&saved=1",
        urlencode(&store)
    )))
}

/// Store and order ids are `[A-Za-z0-9._-]`, safe in a query as they are;
/// anything else is encoded anyway.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
