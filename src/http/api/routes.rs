//! The API's endpoints (docs/REFERENCE.md, "HTTP API"). Each carries its
//! OpenAPI description (`utoipa::path`), from which `/v1/openapi.json` is made.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;

use crate::service::timelines::page_limit;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use super::{blocks, protection, settings};
use crate::alias::Participant;
use crate::http::HttpState;
use crate::service::NewAlias;
use crate::storage::rfc3339_string;

/// Most items in one bulk request.
pub const MAX_BULK: usize = 1000;

/// The API's routes, for `crate::http::app` to serve.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/orders/{order}/aliases", post(create_aliases))
        .route("/v1/orders/{order}/events", post(order_event))
        .route("/v1/orders/{order}/timeline", get(timeline))
        .route("/v1/aliases/bulk", post(bulk_create))
        .route(
            "/v1/aliases/{alias}",
            get(show_alias).patch(change_address).delete(disable_alias),
        )
        .route("/v1/aliases/{alias}/reveal", post(protection::reveal_alias))
        .route(
            "/v1/stores/{store}/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route(
            "/v1/orders/{order}/blocks",
            get(blocks::list_blocks).post(blocks::block_sender),
        )
        .route(
            "/v1/orders/{order}/blocks/{sender}",
            delete(blocks::unblock_sender),
        )
        .route(
            "/v1/orders/{order}/hold",
            get(protection::show_hold)
                .put(protection::hold_order)
                .delete(protection::release_order),
        )
        .route(
            "/v1/subjects/{email}",
            get(protection::export_subject).delete(protection::erase_subject),
        )
        .route("/v1/messages/{id}", get(message))
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready: the database answers, takes a write, and the SMTP listener is up.
#[utoipa::path(get, path = "/readyz", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Readiness>) {
    let storage = &state.services.storage;
    let database = storage.ping().await.is_ok();
    let writable = database && storage.probe_write(&state.node).await.is_ok();
    let smtp = state.smtp_up.load(std::sync::atomic::Ordering::SeqCst);
    let ready = database && writable && smtp;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        database,
        writable,
        smtp,
    };
    (status, Json(body))
}

/// Prometheus text format. The queue gauges are read at scrape time.
#[utoipa::path(get, path = "/metrics", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<HttpState>) -> Response {
    if let Ok((depth, oldest)) = state.services.storage.queue_stats().await {
        let age = oldest.and_then(|t| (Utc::now() - t).to_std().ok());
        crate::telemetry::queue(depth, age);
    }
    if let Ok((pending, oldest)) = state.services.storage.webhook_backlog().await {
        let age = oldest.and_then(|t| (Utc::now() - t).to_std().ok());
        crate::telemetry::webhook_backlog(pending, age);
    }
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/v1/openapi.json", security(()),
    responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::json(),
    )
        .into_response()
}

/// Both aliases of an order in the store's mask mode. Idempotent: the same
/// request gives the same aliases.
#[utoipa::path(post, path = "/v1/orders/{order}/aliases", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body = CreateAliases,
    responses((status = 200, body = OrderAliases), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_aliases(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<CreateAliases>, JsonRejection>,
) -> Result<Json<OrderAliases>, ApiError> {
    let Json(req) = body?;
    let stored = state
        .services
        .create_order_aliases(
            &caller,
            &req.store,
            &order,
            &req.customer_email,
            req.store_email.as_deref(),
            Utc::now(),
        )
        .await?;
    tracing::info!(store = %req.store, order = %order, customer = %stored[0].alias, "aliases created via API");
    Ok(Json(OrderAliases {
        store: req.store,
        order,
        aliases: AliasPair {
            customer: AliasCreated::from(&stored[0]),
            store: stored.get(1).map(AliasCreated::from),
        },
    }))
}

/// Many aliases at once (imports). Items are handled one by one: a bad item
/// gets its error in `results` and the others go on. Idempotent per item.
#[utoipa::path(post, path = "/v1/aliases/bulk", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn bulk_create(
    State(state): State<HttpState>,
    caller: Caller,
    body: Result<Json<BulkRequest>, JsonRejection>,
) -> Result<Json<BulkResponse>, ApiError> {
    let Json(req) = body?;
    if req.items.len() > MAX_BULK {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("at most {MAX_BULK} items per request"),
        ));
    }
    let items: Vec<NewAlias> = req.items.into_iter().map(NewAlias::from).collect();
    let made = state
        .services
        .create_aliases(&caller, &items, Utc::now())
        .await?;
    let results: Vec<BulkResult> = made
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(p) => BulkResult {
                index,
                alias: Some(AliasCreated::from(&p)),
                error: None,
            },
            Err(e) => BulkResult {
                index,
                alias: None,
                error: Some(ApiError::from(e).body()),
            },
        })
        .collect();
    let created = results.iter().filter(|r| r.alias.is_some()).count();
    Ok(Json(BulkResponse {
        created,
        failed: results.len() - created,
        results,
    }))
}

/// Invoiced or canceled: the order's aliases end after `alias.end_grace`
/// (never later than they would anyway). Reopened: they work again for
/// `alias.reopen_window`.
#[utoipa::path(post, path = "/v1/orders/{order}/events", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body = OrderEventRequest,
    responses((status = 200, body = OrderEventResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn order_event(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<OrderEventRequest>, JsonRejection>,
) -> Result<Json<OrderEventResult>, ApiError> {
    let Json(req) = body?;
    let outcome = state
        .services
        .order_event(&caller, &req.store, &order, req.event, Utc::now())
        .await?;
    Ok(Json(OrderEventResult {
        store: req.store,
        order,
        event: req.event.as_str().into(),
        aliases_changed: outcome.aliases_changed,
        aliases_end_at: rfc3339_string(outcome.aliases_end_at),
    }))
}

/// The alias's participant, by role: never the real address.
#[utoipa::path(get, path = "/v1/aliases/{alias}", params(("alias" = String, Path)),
    responses((status = 200, body = AliasInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_alias(
    State(state): State<HttpState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<AliasInfo>, ApiError> {
    let p = state.services.alias(&caller, &alias).await?;
    Ok(Json(alias_info(p)))
}

/// Give the alias's participant a new real address (hard aliases only: a
/// soft alias spells its address). A participant made undeliverable by
/// hard bounces takes mail again.
#[utoipa::path(patch, path = "/v1/aliases/{alias}", params(("alias" = String, Path)),
    request_body = AddressChange,
    responses((status = 200, body = AliasInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn change_address(
    State(state): State<HttpState>,
    caller: Caller,
    Path(alias): Path<String>,
    body: Result<Json<AddressChange>, JsonRejection>,
) -> Result<Json<AliasInfo>, ApiError> {
    let Json(req) = body?;
    let p = state
        .services
        .change_address(&caller, &alias, &req.email)
        .await?;
    tracing::info!(alias = %p.alias, "participant address changed via API");
    Ok(Json(alias_info(p)))
}

pub(super) fn alias_info(p: Participant) -> AliasInfo {
    AliasInfo {
        active: p.is_active(Utc::now()),
        created_at: rfc3339_string(p.created_at),
        expires_at: rfc3339_string(p.expires_at),
        alias: p.alias,
        store: p.store,
        order: p.order,
        role: p.role,
        mode: p.mode,
        disabled: p.disabled,
        undeliverable: p.undeliverable,
    }
}

/// Stop an alias: mail to it is refused with 550 5.1.1 from now on.
#[utoipa::path(delete, path = "/v1/aliases/{alias}", params(("alias" = String, Path)),
    responses((status = 200, body = AliasDisabled), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_alias(
    State(state): State<HttpState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<AliasDisabled>, ApiError> {
    let p = state
        .services
        .disable_alias(&caller, &alias, Utc::now())
        .await?;
    tracing::info!(alias = %p.alias, "alias disabled via API");
    Ok(Json(AliasDisabled {
        alias: p.alias,
        disabled: true,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// Needed when several stores have this order id (token not limited to one store).
    #[serde(default)]
    #[param(pattern = "^[a-z0-9._-]{1,128}$")]
    store: Option<String>,
    /// Entries per page (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// The order's conversation, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/orders/{order}/timeline", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), TimelineQuery),
    responses((status = 200, body = Timeline), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Timeline>, ApiError> {
    let Query(q) = query?;
    let limit = page_limit(q.limit)?;
    let store = state
        .services
        .order_store(&caller, q.store.as_deref(), &order)
        .await?;
    let page = state
        .services
        .timeline_page(&store, &order, q.after.as_deref(), limit)
        .await?;
    Ok(Json(Timeline {
        store,
        order,
        entries: page.entries,
        next: page.next,
    }))
}

/// The masked message as stored.
#[utoipa::path(get, path = "/v1/messages/{id}", params(("id" = String, Path)),
    responses((status = 200, content_type = "message/rfc822", body = String), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn message(
    State(state): State<HttpState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.services.storage.message(&id).await? {
        Some(m) if caller.sees(&m.store) && m.erased => Err(ApiError::new(
            StatusCode::GONE,
            "erased",
            format!("message `{id}` was erased at a data subject's request"),
        )),
        Some(m) if caller.sees(&m.store) => Ok((
            [(header::CONTENT_TYPE, "message/rfc822")],
            Bytes::from(m.content),
        )
            .into_response()),
        _ => Err(ApiError::not_found(format!("no message `{id}`"))),
    }
}
