//! Store settings: the mask mode, the webhook and the store's policy.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use super::ApiState;
use crate::alias::validate_id;
use crate::policy::StorePolicy;
use crate::storage::{StoreUpdate, WebhookChange};
use crate::webhook::address::check_url;

#[utoipa::path(get, path = "/v1/stores/{store}/settings", params(("store" = String, Path)),
    responses((status = 200, body = StoreSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn get_settings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(store): Path<String>,
) -> Result<Json<StoreSettings>, ApiError> {
    validate_id(&store, "store id")?;
    caller.allow(&store)?;
    Ok(Json(state.storage.store_config(&store).await?.into()))
}

/// Change the mask mode (for aliases created from now on), the webhook and
/// what the store's aliases take (authentication, approved senders, spam,
/// bulk mail, attachments); fields left out stay as they are.
/// Each webhook request is a POST of a `WebhookEvent`, signed with
/// `CT-Relay-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
#[utoipa::path(put, path = "/v1/stores/{store}/settings", params(("store" = String, Path)),
    request_body = SettingsUpdate,
    responses((status = 200, body = StoreSettings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_settings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(store): Path<String>,
    body: Result<Json<SettingsUpdate>, JsonRejection>,
) -> Result<Json<StoreSettings>, ApiError> {
    let Json(req) = body?;
    validate_id(&store, "store id")?;
    caller.allow(&store)?;
    let webhook = webhook_change(&req, state.allow_private_webhooks)?;
    let policy = req.policy();
    if let Some(update) = &policy {
        // Every error is in the update's own values: try it on the defaults.
        update.apply(&StorePolicy::default()).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
        })?;
    }
    if req.mask_mode.is_none() && matches!(webhook, WebhookChange::Keep) && policy.is_none() {
        return Ok(Json(state.storage.store_config(&store).await?.into()));
    }
    let update = StoreUpdate {
        mask_mode: req.mask_mode,
        webhook,
        policy,
    };
    let config = state
        .storage
        .update_store(&store, &update, Utc::now())
        .await?;
    tracing::info!(store = %store, mask_mode = config.mask_mode.as_str(),
        webhook = config.webhook.is_some(), approved_senders = config.policy.approved_senders.len(), "store settings changed via API");
    Ok(Json(config.into()))
}

fn webhook_change(req: &SettingsUpdate, allow_private: bool) -> Result<WebhookChange, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m);
    if let Some(secret) = &req.webhook_secret {
        if !matches!(req.webhook_url, Some(Some(_))) {
            return Err(invalid(
                "webhook_secret is set together with webhook_url".into(),
            ));
        }
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        if !(16..=256).contains(&secret.len()) || !printable {
            return Err(invalid(
                "webhook_secret must be 16 to 256 printable ASCII characters".into(),
            ));
        }
    }
    Ok(match &req.webhook_url {
        None => WebhookChange::Keep,
        Some(None) => WebhookChange::Remove,
        Some(Some(url)) => {
            let url = check_url(url, allow_private).map_err(invalid)?;
            WebhookChange::Set {
                url: url.to_string(),
                secret: req.webhook_secret.clone(),
                new_secret: crate::webhook::new_secret(),
            }
        }
    })
}
