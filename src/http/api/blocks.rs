//! Senders blocked for an order: `POST /v1/orders/{order}/blocks`,
//! `DELETE /v1/orders/{order}/blocks/{sender}`, and the list. The sender is
//! named by its alias or by its address; answers name aliases only.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::types::*;
use crate::alias::Participant;
use crate::http::HttpState;
use crate::service::BlockChange;
use crate::storage::AliasRef;

fn answer(store: String, order: String, senders: Vec<Participant>) -> Json<Blocks> {
    Json(Blocks {
        store,
        order,
        senders: senders.iter().map(AliasRef::from).collect(),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// Needed when several stores have this order id (token not limited to one store).
    #[serde(default)]
    #[param(pattern = "^[a-z0-9._-]{1,128}$")]
    store: Option<String>,
}

/// The order's blocked senders.
#[utoipa::path(get, path = "/v1/orders/{order}/blocks", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), BlocksQuery),
    responses((status = 200, body = Blocks), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_blocks(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    query: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Json<Blocks>, ApiError> {
    let Query(q) = query?;
    let (store, senders) = state
        .services
        .blocked_senders(&caller, q.store.as_deref(), &order)
        .await?;
    Ok(answer(store, order, senders))
}

/// Block a sender for the order: its mail to the order's aliases is
/// refused with `550 5.7.1` and shows on the timeline as `blocked`. By
/// address, every participant with it is blocked, and an address that is
/// no participant yet becomes a blocked contact. Idempotent.
#[utoipa::path(post, path = "/v1/orders/{order}/blocks", params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$")),
    request_body = BlockRequest,
    responses((status = 200, body = Blocks), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn block_sender(
    State(state): State<HttpState>,
    caller: Caller,
    Path(order): Path<String>,
    body: Result<Json<BlockRequest>, JsonRejection>,
) -> Result<Json<Blocks>, ApiError> {
    let Json(req) = body?;
    let key = (req.store.as_str(), order.as_str());
    let senders = state
        .services
        .change_block(&caller, key, &req.sender, BlockChange::Block, Utc::now())
        .await?;
    Ok(answer(req.store, order, senders))
}

/// Lift a block: the sender's mail is taken again.
#[utoipa::path(delete, path = "/v1/orders/{order}/blocks/{sender}",
    params(("order" = String, Path, pattern = "^[A-Za-z0-9._-]{1,128}$"), ("sender" = String, Path, description = "The sender's alias or address."), BlocksQuery),
    responses((status = 200, body = Blocks), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn unblock_sender(
    State(state): State<HttpState>,
    caller: Caller,
    Path((order, sender)): Path<(String, String)>,
    query: Result<Query<BlocksQuery>, QueryRejection>,
) -> Result<Json<Blocks>, ApiError> {
    let Query(q) = query?;
    let store = state
        .services
        .order_store(&caller, q.store.as_deref(), &order)
        .await?;
    let key = (store.as_str(), order.as_str());
    let senders = state
        .services
        .change_block(&caller, key, &sender, BlockChange::Unblock, Utc::now())
        .await?;
    Ok(answer(store, order, senders))
}
