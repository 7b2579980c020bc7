//! API errors: always JSON `{"error": code, "message": text}` with the status
//! that fits, including for bodies axum could not parse.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::alias::AliasError;
use crate::service::ServiceError;
use crate::storage::StorageError;

/// An API error: a status and the JSON body `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A machine-readable code (`invalid`, `not_found`, …).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Seconds to wait, sent as `Retry-After` (with `429`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// `401`: no valid bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
    /// `429`: this client failed to authenticate too often; wait `secs`.
    pub fn too_many_failures(secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many failed authentications from this address; try again in {secs} s"),
            )
        }
    }
    /// `403`: the token may not act for `store`.
    pub fn forbidden(store: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not act for store `{store}`"),
        )
    }
    /// `404`, naming what was not found.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    /// `400`: the request cannot be read as asked.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl ApiError {
    /// The JSON body.
    pub fn body(&self) -> super::types::ErrorBody {
        super::types::ErrorBody {
            error: self.code.to_string(),
            message: self.message.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(self.body());
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::warn!(error = %e, "API request failed on storage");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage unavailable, try again later",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            ServiceError::BadRequest(m) => Self::bad_request(m),
            ServiceError::Forbidden(store) => Self::forbidden(&store),
            ServiceError::NotFound(m) => Self::not_found(m),
            ServiceError::NoSuchOrder(order) => Self::not_found(format!("no order `{order}`")),
            ServiceError::AmbiguousOrder { order, .. } => Self::new(
                StatusCode::CONFLICT,
                "ambiguous",
                format!("order `{order}` exists in several stores; pass ?store="),
            ),
            ServiceError::UnknownCursor(after) => {
                Self::bad_request(format!("`after` names no entry of this timeline: {after}"))
            }
            ServiceError::Storage(e) => e.into(),
        }
    }
}

impl From<AliasError> for ApiError {
    fn from(e: AliasError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            // Over axum's body limit (2 MiB).
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match status {
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            _ => "bad_request",
        };
        Self::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}
