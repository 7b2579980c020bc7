//! The endpoints of DESIGN.md section 5.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::error::ApiError;
use super::ApiState;
use crate::alias::{validate_id, MaskMode, Participant, Role};
use crate::storage::{rfc3339_string, OrderExpiry};

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/orders/{order}/aliases", post(create_aliases))
        .route("/v1/orders/{order}/events", post(order_event))
        .route("/v1/orders/{order}/timeline", get(timeline))
        .route("/v1/aliases/{alias}", get(show_alias).delete(disable_alias))
        .route(
            "/v1/stores/{store}/settings",
            get(get_settings).put(put_settings),
        )
        .route("/v1/messages/{id}", get(message))
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

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and the SMTP listener is up.
async fn readyz(State(state): State<ApiState>) -> Response {
    let database = state.storage.ping().await.is_ok();
    let smtp = state.smtp_up.load(std::sync::atomic::Ordering::SeqCst);
    let status = if database && smtp {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
                       "database": database, "smtp": smtp });
    (status, Json(body)).into_response()
}

/// Prometheus text format. The queue gauges are read at scrape time.
async fn metrics(State(state): State<ApiState>) -> Response {
    if let Ok((depth, oldest)) = state.storage.queue_stats().await {
        let age = oldest.and_then(|t| (Utc::now() - t).to_std().ok());
        crate::telemetry::queue(depth, age);
    }
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn alias_json(p: &Participant) -> Value {
    json!({ "alias": p.alias, "mode": p.mode, "expires_at": rfc3339_string(p.expires_at) })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAliases {
    store: String,
    customer_email: String,
    #[serde(default)]
    store_email: Option<String>,
}

/// Both aliases of an order in the store's mask mode. Idempotent: the same
/// request gives the same aliases.
async fn create_aliases(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<CreateAliases>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "store": req.store,
        "order": order,
        "aliases": {
            "customer": alias_json(&stored[0]),
            "store": stored.get(1).map(alias_json),
        }
    })))
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OrderEvent {
    Invoiced,
    Canceled,
    Reopened,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderEventRequest {
    store: String,
    event: OrderEvent,
}

/// Invoiced or canceled: the order's aliases end after `alias.end_grace`
/// (never later than they would anyway). Reopened: they work again for
/// `alias.reopen_window`.
async fn order_event(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<OrderEventRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
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
    tracing::info!(store = %req.store, order = %order, event = ?req.event, aliases = changed, "order event");
    Ok(Json(json!({
        "store": req.store,
        "order": order,
        "event": req.event_name(),
        "aliases_changed": changed,
        "aliases_end_at": rfc3339_string(at),
    })))
}

impl OrderEventRequest {
    fn event_name(&self) -> &'static str {
        match self.event {
            OrderEvent::Invoiced => "invoiced",
            OrderEvent::Canceled => "canceled",
            OrderEvent::Reopened => "reopened",
        }
    }
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
async fn show_alias(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = find_visible(&state, &caller, &alias).await?;
    Ok(Json(json!({
        "alias": p.alias,
        "store": p.store,
        "order": p.order,
        "role": p.role,
        "mode": p.mode,
        "created_at": rfc3339_string(p.created_at),
        "expires_at": rfc3339_string(p.expires_at),
        "disabled": p.disabled,
        "active": p.is_active(Utc::now()),
    })))
}

async fn disable_alias(
    State(state): State<ApiState>,
    caller: Caller,
    Path(alias): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = find_visible(&state, &caller, &alias).await?;
    state.storage.disable_alias(&p.alias, Utc::now()).await?;
    tracing::info!(alias = %p.alias, "alias disabled via API");
    Ok(Json(json!({ "alias": p.alias, "disabled": true })))
}

fn settings_json(store: &str, mode: MaskMode) -> Json<Value> {
    Json(json!({ "store": store, "mask_mode": mode }))
}

async fn get_settings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(store): Path<String>,
) -> Result<Json<Value>, ApiError> {
    validate_id(&store, "store id")?;
    caller.allow(&store)?;
    Ok(settings_json(
        &store,
        state.storage.store_mode(&store).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mask_mode: MaskMode,
}

/// Applies to aliases created from now on.
async fn put_settings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(store): Path<String>,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(req) = body?;
    validate_id(&store, "store id")?;
    caller.allow(&store)?;
    state.storage.set_store_mode(&store, req.mask_mode).await?;
    Ok(settings_json(&store, req.mask_mode))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    #[serde(default)]
    store: Option<String>,
}

async fn timeline(
    State(state): State<ApiState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let store = match (q.store, &caller.store) {
        (Some(s), _) => {
            caller.allow(&s)?;
            s
        }
        (None, Some(mine)) => mine.clone(),
        (None, None) => {
            let mut stores = state.storage.stores_with_order(&order).await?;
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
    };
    let entries = state.storage.timeline(&store, &order).await?;
    Ok(Json(
        json!({ "store": store, "order": order, "entries": entries }),
    ))
}

/// The masked message as stored, `message/rfc822`.
async fn message(
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
