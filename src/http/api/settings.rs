//! Store settings: the mask mode, the webhook and the store's policy.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use chrono::Utc;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use crate::http::HttpState;

#[utoipa::path(get, path = "/v1/stores/{store}/settings", params(("store" = String, Path, pattern = "^[a-z0-9._-]{1,128}$")),
    responses((status = 200, body = StoreSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<HttpState>,
    caller: Caller,
    Path(store): Path<String>,
) -> Result<Json<StoreSettings>, ApiError> {
    Ok(Json(
        state.services.store_settings(&caller, &store).await?.into(),
    ))
}

/// Change the mask mode (for aliases created from now on), the webhook and
/// what the store's aliases take (authentication, approved senders, spam,
/// bulk mail, attachments); fields left out stay as they are.
/// Each webhook request is a POST of a `WebhookEvent`, signed with
/// `CT-Relay-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
#[utoipa::path(put, path = "/v1/stores/{store}/settings", params(("store" = String, Path, pattern = "^[a-z0-9._-]{1,128}$")),
    request_body = SettingsUpdate,
    responses((status = 200, body = StoreSettings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<HttpState>,
    caller: Caller,
    Path(store): Path<String>,
    body: Result<Json<SettingsUpdate>, JsonRejection>,
) -> Result<Json<StoreSettings>, ApiError> {
    let Json(req) = body?;
    let change = req.try_into().map_err(|e: String| {
        ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid", e)
    })?;
    let config = state
        .services
        .change_settings(&caller, &store, change, Utc::now())
        .await?;
    Ok(Json(config.into()))
}
