//! The order view's Block / Unblock buttons: a sender blocked for an
//! order has its mail refused (`policy::blocks`, shared with the API).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::session::Session;
use super::settings::{form_store, urlencode};
use super::{see_other, valid_id, ConsoleError};
use crate::http::HttpState;
use crate::policy::blocks::{self, BlockError};

#[derive(Deserialize)]
pub struct BlockForm {
    csrf: String,
    store: String,
    /// The sender's alias.
    sender: String,
    /// `block` or `unblock`.
    action: String,
}

pub async fn change_block(
    State(state): State<HttpState>,
    session: Session,
    Path(order): Path<String>,
    Form(form): Form<BlockForm>,
) -> Result<Response, ConsoleError> {
    let store = form_store(&session, &form.csrf, &form.store, "orders")?;
    valid_id(&order, "order id").map_err(|e| e.within("orders", &session))?;
    let now = Utc::now();
    let key = (store.as_str(), order.as_str());
    let storage = state.services.storage.as_ref();
    let done = match form.action.as_str() {
        "block" => blocks::block(storage, &state.services.aliaser, key, &form.sender, now).await,
        "unblock" => {
            blocks::unblock(storage, &state.services.aliaser, key, &form.sender, now).await
        }
        other => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("Block or unblock, not {other}."),
            )
            .within("orders", &session))
        }
    };
    match done {
        Ok(_) => Ok(see_other(&format!(
            "/console/orders?order={}&store={}#participants",
            urlencode(&order),
            urlencode(&store)
        ))),
        Err(BlockError::Storage(e)) => Err(ConsoleError::from(e).within("orders", &session)),
        Err(e) => Err(ConsoleError::not_found(format!("{e}.")).within("orders", &session)),
    }
}
