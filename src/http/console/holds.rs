//! The order view's legal hold: put the order on hold with a reason, or
//! lift it (`service::holds`, shared with the API and the command line).

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
use crate::service::ServiceError;

#[derive(Deserialize)]
pub struct HoldForm {
    csrf: String,
    store: String,
    /// `hold` or `release`.
    action: String,
    /// Why (to hold; 1 to 500 characters).
    #[serde(default)]
    reason: String,
}

pub async fn change_hold(
    State(state): State<HttpState>,
    session: Session,
    Path(order): Path<String>,
    Form(form): Form<HoldForm>,
) -> Result<Response, ConsoleError> {
    let store = form_store(&session, &form.csrf, &form.store, "orders")?;
    valid_id(&order, "order id").map_err(|e| e.within("orders", &session))?;
    let key = (store.as_str(), order.as_str());
    let scope = session.scope();
    let done = match form.action.as_str() {
        "hold" => state
            .services
            .hold_order(&scope, key, &form.reason, Utc::now())
            .await
            .map(|_| ()),
        "release" => state.services.release_order(&scope, key).await.map(|_| ()),
        other => {
            return Err(ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!("Hold or release, not {other}."),
            )
            .within("orders", &session))
        }
    };
    match done {
        Ok(()) => Ok(see_other(&format!(
            "/console/orders?order={}&store={}#hold",
            urlencode(&order),
            urlencode(&store)
        ))),
        Err(ServiceError::Invalid(m)) => Err(ConsoleError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Not held: {m}."),
        )
        .within("orders", &session)),
        Err(ServiceError::Storage(e)) => Err(ConsoleError::from(e).within("orders", &session)),
        Err(e) => Err(ConsoleError::not_found(format!("{e}.")).within("orders", &session)),
    }
}
