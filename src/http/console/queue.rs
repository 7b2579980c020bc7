//! The delivery queue for ops: what waits or failed, with its last reply,
//! and a button to try a delivery again now.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::session::Session;
use super::settings::urlencode;
use super::{page, see_other, shown_time, ConsoleError, Nav};
use crate::http::HttpState;
use crate::storage::QueueEntry;

/// Deliveries shown at most, the next due first.
const SHOWN: u32 = 200;

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    title: String,
    nav: Option<Nav>,
    csrf: String,
    store: Option<String>,
    limit: u32,
    retried: Option<String>,
    entries: Vec<Row>,
}

struct Row {
    id: String,
    to: String,
    store: String,
    order: String,
    state: &'static str,
    attempts: u32,
    next: String,
    next_iso: String,
    last_reply: Option<String>,
}

impl From<QueueEntry> for Row {
    fn from(q: QueueEntry) -> Self {
        let (next, next_iso) = shown_time(q.next_attempt_at);
        Self {
            next,
            next_iso,
            state: q.shown_state(),
            id: q.id,
            to: q.to,
            store: q.store,
            order: q.order,
            attempts: q.attempts,
            last_reply: q.last_reply,
        }
    }
}

#[derive(Deserialize)]
pub struct QueueQuery {
    #[serde(default)]
    retried: Option<String>,
}

pub async fn queue_page(
    State(state): State<HttpState>,
    session: Session,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ConsoleError> {
    let entries = state
        .services
        .storage
        .queue_list(session.store.as_deref(), SHOWN)
        .await
        .map_err(|e| ConsoleError::from(e).within("queue", &session))?;
    Ok(page(
        StatusCode::OK,
        &QueuePage {
            title: "Queue".into(),
            nav: Nav::new("queue", &session),
            csrf: session.csrf.clone(),
            store: session.store.clone(),
            limit: SHOWN,
            retried: q.retried,
            entries: entries.into_iter().map(Row::from).collect(),
        },
    ))
}

#[derive(Deserialize)]
pub struct RetryForm {
    csrf: String,
}

pub async fn retry(
    State(state): State<HttpState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<RetryForm>,
) -> Result<Response, ConsoleError> {
    if !session.check_csrf(&form.csrf) {
        return Err(ConsoleError::stale_form().within("queue", &session));
    }
    let unavailable = |e| ConsoleError::from(e).within("queue", &session);
    let missing = || {
        ConsoleError::not_found(format!("No delivery {id} is waiting.")).within("queue", &session)
    };
    let job = state
        .services
        .storage
        .delivery(&id)
        .await
        .map_err(unavailable)?
        .ok_or_else(missing)?;
    let message = state
        .services
        .storage
        .message(&job.message_id)
        .await
        .map_err(unavailable)?;
    if !message.is_some_and(|m| session.sees(&m.store)) {
        return Err(missing());
    }
    if !state
        .services
        .storage
        .queue_retry(&id, Utc::now())
        .await
        .map_err(unavailable)?
    {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            format!("Delivery {id} was delivered already."),
        )
        .within("queue", &session));
    }
    state.queue_wake.notify_one();
    tracing::info!(delivery = %id, "retry asked in the console");
    Ok(see_other(&format!(
        "/console/queue?retried={}",
        urlencode(&id)
    )))
}
