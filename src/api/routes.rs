//! The endpoints of DESIGN.md section 5. Each carries its OpenAPI
//! description (`utoipa::path`), from which `/v1/openapi.json` is made.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use super::ApiState;
use super::{blocks, settings};
use crate::alias::{validate_id, Participant, Role};
use crate::storage::{rfc3339_string, OrderExpiry};

/// Most items in one bulk request.
pub const MAX_BULK: usize = 1000;
/// Timeline page size: default and most.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = crate::storage::PAGE_MAX as usize;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/orders/{order}/aliases", post(create_aliases))
        .route("/v1/orders/{order}/events", post(order_event))
        .route("/v1/orders/{order}/timeline", get(timeline))
        .route("/v1/aliases/bulk", post(bulk_create))
        .route("/v1/aliases/{alias}", get(show_alias).delete(disable_alias))
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
        .route("/v1/messages/{id}", get(message))
        .merge(crate::console::router())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .with_state(state)
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready: the database answers and the SMTP listener is up.
#[utoipa::path(get, path = "/readyz", security(()),
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let database = state.storage.ping().await.is_ok();
    let smtp = state.smtp_up.load(std::sync::atomic::Ordering::SeqCst);
    let ready = database && smtp;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" }.into(),
        database,
        smtp,
    };
    (status, Json(body))
}

/// Prometheus text format. The queue gauges are read at scrape time.
#[utoipa::path(get, path = "/metrics", security(()),
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    if let Ok((depth, oldest)) = state.storage.queue_stats().await {
        let age = oldest.and_then(|t| (Utc::now() - t).to_std().ok());
        crate::telemetry::queue(depth, age);
    }
    if let Ok((pending, oldest)) = state.storage.webhook_backlog().await {
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
#[utoipa::path(post, path = "/v1/orders/{order}/aliases", params(("order" = String, Path)),
    request_body = CreateAliases,
    responses((status = 200, body = OrderAliases), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_aliases(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<CreateAliases>, JsonRejection>,
) -> Result<Json<OrderAliases>, ApiError> {
    let Json(req) = body?;
    validate_id(&req.store, "store id")?;
    caller.allow(&req.store)?;
    let mode = state.storage.store_mode(&req.store).await?;
    let now = Utc::now();
    let mut wanted = vec![state.aliaser.participant(
        &req.store,
        &order,
        Role::Customer,
        &req.customer_email,
        mode,
        now,
    )?];
    if let Some(email) = &req.store_email {
        wanted.push(state.aliaser.participant(
            &req.store,
            &order,
            Role::Store,
            email,
            mode,
            now,
        )?);
    }
    let stored = state.storage.ensure_participants(&wanted).await?;
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
    State(state): State<ApiState>,
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
    let now = Utc::now();
    let mut prepared: Vec<Result<Participant, ApiError>> = Vec::with_capacity(req.items.len());
    for item in &req.items {
        let one = async {
            validate_id(&item.store, "store id")?;
            caller.allow(&item.store)?;
            let mode = match item.mode {
                Some(m) => m,
                None => state.storage.store_mode(&item.store).await?,
            };
            Ok::<_, ApiError>(state.aliaser.participant(
                &item.store,
                &item.order,
                item.role,
                &item.email,
                mode,
                now,
            )?)
        };
        prepared.push(one.await);
    }
    let valid: Vec<Participant> = prepared
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let mut stored = state.storage.ensure_participants(&valid).await?.into_iter();
    let results: Vec<BulkResult> = prepared
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(_) => BulkResult {
                index,
                alias: stored.next().as_ref().map(AliasCreated::from),
                error: None,
            },
            Err(e) => BulkResult {
                index,
                alias: None,
                error: Some(e.body()),
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
#[utoipa::path(post, path = "/v1/orders/{order}/events", params(("order" = String, Path)),
    request_body = OrderEventRequest,
    responses((status = 200, body = OrderEventResult), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn order_event(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<OrderEventRequest>, JsonRejection>,
) -> Result<Json<OrderEventResult>, ApiError> {
    let Json(req) = body?;
    validate_id(&req.store, "store id")?;
    caller.allow(&req.store)?;
    let now = Utc::now();
    let expiry = match req.event {
        OrderEvent::Invoiced | OrderEvent::Canceled => {
            OrderExpiry::NoLaterThan(now + state.end_grace)
        }
        OrderEvent::Reopened => OrderExpiry::Until(now + state.reopen_window),
    };
    if state
        .storage
        .order_participants(&req.store, &order)
        .await?
        .is_empty()
    {
        return Err(ApiError::not_found(format!(
            "no order `{order}` in store `{}`",
            req.store
        )));
    }
    let changed = state
        .storage
        .set_order_expiry(&req.store, &order, expiry)
        .await?;
    let (OrderExpiry::NoLaterThan(at) | OrderExpiry::Until(at)) = expiry;
    tracing::info!(store = %req.store, order = %order, event = req.event.as_str(), aliases = changed, "order event");
    Ok(Json(OrderEventResult {
        store: req.store,
        order,
        event: req.event.as_str().into(),
        aliases_changed: changed,
        aliases_end_at: rfc3339_string(at),
    }))
}

async fn find_visible(
    state: &ApiState,
    caller: &Caller,
    alias: &str,
) -> Result<Participant, ApiError> {
    match state.storage.find_alias(alias).await? {
        Some(p) if caller.sees(&p.store) => Ok(p),
        _ => Err(ApiError::not_found(format!("no alias `{alias}`"))),
    }
}

/// The alias's participant, by role: never the real address.
#[utoipa::path(get, path = "/v1/aliases/{alias}", params(("alias" = String, Path)),
    responses((status = 200, body = AliasInfo), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn show_alias(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<AliasInfo>, ApiError> {
    let p = find_visible(&state, &caller, &alias).await?;
    Ok(Json(AliasInfo {
        active: p.is_active(Utc::now()),
        created_at: rfc3339_string(p.created_at),
        expires_at: rfc3339_string(p.expires_at),
        alias: p.alias,
        store: p.store,
        order: p.order,
        role: p.role,
        mode: p.mode,
        disabled: p.disabled,
    }))
}

/// Stop an alias: mail to it is refused with 550 5.1.1 from now on.
#[utoipa::path(delete, path = "/v1/aliases/{alias}", params(("alias" = String, Path)),
    responses((status = 200, body = AliasDisabled), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_alias(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<AliasDisabled>, ApiError> {
    let p = find_visible(&state, &caller, &alias).await?;
    state.storage.disable_alias(&p.alias, Utc::now()).await?;
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
    store: Option<String>,
    /// Entries per page (1 to 1000, default 100).
    #[serde(default)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// The order's conversation, oldest first, a page at a time.
#[utoipa::path(get, path = "/v1/orders/{order}/timeline", params(("order" = String, Path), TimelineQuery),
    responses((status = 200, body = Timeline), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Timeline>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {PAGE_MAX}"
        )));
    }
    let store = order_store(&state, &caller, q.store, &order).await?;
    let Some(page) = state
        .storage
        .timeline_page(&store, &order, q.after.as_deref(), limit as u32)
        .await?
    else {
        let after = q.after.unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "`after` names no entry of this timeline: {after}"
        )));
    };
    Ok(Json(Timeline {
        store,
        order,
        entries: page.entries,
        next: page.next,
    }))
}

/// The store an order belongs to: the one named (and allowed), the
/// caller's own, or the only store with that order id.
pub(super) async fn order_store(
    state: &ApiState,
    caller: &Caller,
    named: Option<String>,
    order: &str,
) -> Result<String, ApiError> {
    Ok(match (named, &caller.store) {
        (Some(s), _) => {
            validate_id(&s, "store id")?;
            caller.allow(&s)?;
            s
        }
        (None, Some(mine)) => mine.clone(),
        (None, None) => {
            let mut stores = state.storage.stores_with_order(order).await?;
            match stores.len() {
                0 => return Err(ApiError::not_found(format!("no order `{order}`"))),
                1 => stores.remove(0),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "ambiguous",
                        format!("order `{order}` exists in several stores; pass ?store="),
                    ))
                }
            }
        }
    })
}

/// The masked message as stored.
#[utoipa::path(get, path = "/v1/messages/{id}", params(("id" = String, Path)),
    responses((status = 200, content_type = "message/rfc822", body = String), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn message(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.storage.message(&id).await? {
        Some(m) if caller.sees(&m.store) => Ok((
            [(header::CONTENT_TYPE, "message/rfc822")],
            Bytes::from(m.content),
        )
            .into_response()),
        _ => Err(ApiError::not_found(format!("no message `{id}`"))),
    }
}
