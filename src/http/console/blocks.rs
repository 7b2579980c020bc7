//! The order view's Block / Unblock buttons: a sender blocked for an
//! order has its mail refused (`service::blocks`, shared with the API).

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
use crate::service::{BlockChange, ServiceError};

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
    let change = match form.action.as_str() {
        "block" => BlockChange::Block,
        "unblock" => BlockChange::Unblock,
        other => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("Block or unblock, not {other}."),
            )
            .within("orders", &session))
        }
    };
    let key = (store.as_str(), order.as_str());
    let done = state
        .services
        .change_block(&session.scope(), key, &form.sender, change, Utc::now())
        .await;
    match done {
        Ok(_) => Ok(see_other(&format!(
            "/console/orders?order={}&store={}#participants",
            urlencode(&order),
            urlencode(&store)
        ))),
        Err(ServiceError::Storage(e)) => Err(ConsoleError::from(e).within("orders", &session)),
        Err(e) => Err(ConsoleError::not_found(format!("{e}.")).within("orders", &session)),
    }
}
