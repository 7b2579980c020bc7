//! The store console: server-rendered pages (askama) under `/console` on
//! the HTTP listener, for shop operators and ops. Login with an API token
//! (a signed session cookie, see `session`), the store's mask setting and
//! policy, an order's conversation and its blocked senders, a message's
//! masked copy, and the delivery queue. No JavaScript and no external
//! assets; every form carries a CSRF token.

mod blocks;
mod holds;
mod orders;
mod policy;
mod queue;
mod session;
mod settings;

use askama::Template;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::HttpState;
use crate::service::ServiceError;
use crate::storage::StorageError;

pub use session::Session;

/// Everything but the stylesheet is the page itself: no scripts, no frames.
const POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("console.css");

/// The console's routes, for `crate::http::app` to serve.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/orders") }),
        )
        .route("/console/console.css", get(stylesheet))
        .route(
            "/console/login",
            get(settings::login_page).post(settings::log_in),
        )
        .route("/console/logout", post(settings::log_out))
        .route(
            "/console/settings",
            get(settings::settings_page).post(settings::save_settings),
        )
        .route("/console/settings/policy", post(policy::save_policy))
        .route("/console/orders", get(orders::orders_page))
        .route("/console/orders/{order}/blocks", post(blocks::change_block))
        .route("/console/orders/{order}/hold", post(holds::change_hold))
        .route("/console/messages/{id}", get(orders::message_page))
        .route("/console/queue", get(queue::queue_page))
        .route("/console/queue/{id}/retry", post(queue::retry))
        .layer(axum::middleware::map_response(protect))
}

/// Headers on every console response: the content policy, no caching of
/// pages with order data, no sniffing, no referrer.
async fn protect(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The header's navigation, for pages behind the login.
pub struct Nav {
    /// The page shown, to mark it in the navigation.
    pub page: &'static str,
    /// The session's CSRF token, for the log-out form.
    pub csrf: String,
    /// The store the login is limited to, if any.
    pub store: Option<String>,
}

impl Nav {
    fn new(page: &'static str, session: &Session) -> Option<Self> {
        Some(Self {
            page,
            csrf: session.csrf.clone(),
            store: session.store.clone(),
        })
    }
}

/// A rendered page with `status`.
fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

/// After a form: see the result at `to` (303, so a reload does not post again).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

/// A time as the pages show it, and as `<time datetime>` gives it.
fn shown_time(t: chrono::DateTime<chrono::Utc>) -> (String, String) {
    (
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        crate::storage::rfc3339_string(t),
    )
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    title: String,
    nav: Option<Nav>,
    message: String,
    back: String,
}

/// A page that could not be shown: its status and a sentence saying why.
pub struct ConsoleError {
    status: StatusCode,
    message: String,
    nav: Option<Nav>,
    back: &'static str,
}

impl ConsoleError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            nav: None,
            back: "/console",
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// A form posted without this session's CSRF token.
    fn stale_form() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This form is out of date or came from another site. Go back, reload the page and try again.",
        )
    }

    /// Show the navigation of `session` on the error page.
    fn within(mut self, page: &'static str, session: &Session) -> Self {
        self.nav = Nav::new(page, session);
        self
    }
}

impl From<StorageError> for ConsoleError {
    fn from(e: StorageError) -> Self {
        tracing::warn!(error = %e, "console: storage error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is not answering. Try again in a moment.",
        )
    }
}

impl From<ServiceError> for ConsoleError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Storage(e) => e.into(),
            ServiceError::Forbidden(_)
            | ServiceError::NotFound(_)
            | ServiceError::NoSuchOrder(_) => Self::not_found(e.to_string()),
            other => Self::new(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST => "Not understood",
            _ => "Not available",
        };
        page(
            self.status,
            &ErrorPage {
                title: title.into(),
                nav: self.nav,
                message: self.message,
                back: self.back.into(),
            },
        )
    }
}

/// A store or order id as the API accepts them, or a 400 page naming it.
fn valid_id(id: &str, what: &'static str) -> Result<(), ConsoleError> {
    crate::alias::validate_id(id, what)
        .map_err(|e| ConsoleError::new(StatusCode::BAD_REQUEST, e.to_string()))
}
