//! A data subject's rights and an order's legal hold: `GET|DELETE
//! /v1/subjects/{email}` (the export, the erasure), `PUT|GET|DELETE
//! /v1/orders/{order}/hold?store=S` (a held order is kept past retention:
//! the purge skips it).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use crate::http::HttpState;
use crate::service::subjects::SubjectExport;
use crate::storage::{rfc3339_string, Erasure, Hold};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HoldQuery {
    /// The order's store.
    #[param(pattern = "^[a-z0-9._-]{1,128}$")]
    store: String,
    /// Why the order is held (PUT only; 1 to 500 characters).
    #[serde(default)]
    reason: Option<String>,
}

fn held(store: String, order: String, hold: Option<Hold>) -> Json<OrderHold> {
    Json(OrderHold {
        store,
        order,
        held: hold.is_some(),
        held_at: hold.as_ref().map(|h| rfc3339_string(h.held_at)),
        reason: hold.map(|h| h.reason),
    })
}

/// Put the order on legal hold: the purge keeps its aliases, messages and
/// timeline, whatever their age, until the hold is lifted. Idempotent: an
/// order already held keeps its first hold.
#[utoipa::path(put, path = "/v1/orders/{order}/hold", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), HoldQuery),
    responses((status = 200, body = OrderHold), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn hold_order(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<HoldQuery>, QueryRejection>,
) -> Result<Json<OrderHold>, ApiError> {
    let Query(q) = query?;
    let reason = q.reason.unwrap_or_default();
    let hold = state
        .services
        .hold_order(&caller, (&q.store, &order), &reason, Utc::now())
        .await?;
    Ok(held(q.store, order, Some(hold)))
}

/// Whether the order is on legal hold.
#[utoipa::path(get, path = "/v1/orders/{order}/hold", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), HoldQuery),
    responses((status = 200, body = OrderHold), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn show_hold(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<HoldQuery>, QueryRejection>,
) -> Result<Json<OrderHold>, ApiError> {
    let Query(q) = query?;
    let hold = state
        .services
        .order_hold(&caller, (&q.store, &order))
        .await?;
    Ok(held(q.store, order, hold))
}

/// Lift the order's legal hold: the purge treats it as any other again.
#[utoipa::path(delete, path = "/v1/orders/{order}/hold", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), HoldQuery),
    responses((status = 200, body = OrderHold), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn release_order(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<HoldQuery>, QueryRejection>,
) -> Result<Json<OrderHold>, ApiError> {
    let Query(q) = query?;
    state
        .services
        .release_order(&caller, (&q.store, &order))
        .await?;
    Ok(held(q.store, order, None))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubjectQuery {
    /// Only this store's orders (a token limited to one store sees its own only).
    #[serde(default)]
    #[param(pattern = "^[a-z0-9._-]{1,128}$")]
    store: Option<String>,
}

/// Everything held about one person, found by their real address: each
/// order they take part in, their aliases there, and the timeline entries
/// from or to them (LGPD art. 18, GDPR art. 15). An unknown address has no
/// orders; a malformed one is a 400.
#[utoipa::path(get, path = "/v1/subjects/{email}", params(("email" = String, Path), SubjectQuery),
    responses((status = 200, body = SubjectExportDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_subject(
    State(state): State<HttpState>,
    caller: Caller,
    Path(email): Path<String>,
    query: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<Json<SubjectExport>, ApiError> {
    let Query(q) = query?;
    let export = state
        .services
        .export_subject(&caller, &email, q.store.as_deref())
        .await?;
    Ok(Json(export))
}

/// Erase one person, found by their real address, from every order not on
/// legal hold (LGPD art. 18 VI, GDPR art. 17): their aliases stop working
/// and are renamed, the address is removed from every row, their queued
/// deliveries are cancelled and the text of the messages to or from them
/// is deleted; the timeline keeps its entries, without their content.
/// Idempotent: an unknown address is a 200 with zero counts; a malformed
/// one is a 400. Orders on hold are named in `held` and left as they are.
#[utoipa::path(delete, path = "/v1/subjects/{email}", params(("email" = String, Path), SubjectQuery),
    responses((status = 200, body = SubjectErasureDoc), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn erase_subject(
    State(state): State<HttpState>,
    caller: Caller,
    Path(email): Path<String>,
    query: Result<Query<SubjectQuery>, QueryRejection>,
) -> Result<Json<Erasure>, ApiError> {
    let Query(q) = query?;
    let erasure = state
        .services
        .erase_subject(&caller, &email, q.store.as_deref())
        .await?;
    Ok(Json(erasure))
}

/// The alias's real address, for a reason: the reveal is written to the
/// audit (`ct-relay audit list`) with the caller's token (by fingerprint)
/// before the address is returned. A token limited to one store finds no
/// alias of another store (404).
#[utoipa::path(post, path = "/v1/aliases/{alias}/reveal", params(("alias" = String, Path)),
    request_body = RevealRequest,
    responses((status = 200, body = RevealedAlias), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reveal_alias(
    State(state): State<HttpState>,
    caller: Caller,
    Path(alias): Path<String>,
    body: Result<Json<RevealRequest>, JsonRejection>,
) -> Result<Json<RevealedAlias>, ApiError> {
    let Json(req) = body?;
    let p = state
        .services
        .reveal(&caller, &alias, &caller.actor, &req.reason, Utc::now())
        .await?;
    let email = p.email.clone();
    Ok(Json(RevealedAlias {
        alias: super::routes::alias_info(p),
        email,
    }))
}
