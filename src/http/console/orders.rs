//! An order's conversation, and one message's masked copy.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use mail_parser::MimeHeaders;
use serde::Deserialize;

use super::session::Session;
use super::settings::chosen_store;
use super::{page, shown_time, valid_id, ConsoleError, Nav};
use crate::http::HttpState;
use crate::service::ServiceError;
use crate::storage::{AliasRef, TimelineEntry, UNDELIVERABLE_EVENT};

/// Most of a message's body shown on its page; the raw copy is below it.
const BODY_CHARS: usize = 100_000;
/// Timeline entries per page of the order view.
const ENTRIES_PER_PAGE: u32 = 50;

#[derive(Template)]
#[template(path = "console/orders.html")]
struct OrdersPage {
    title: String,
    nav: Option<Nav>,
    order: String,
    store: String,
    ask_store: bool,
    problem: Option<String>,
    conversation: Option<Conversation>,
}

struct Conversation {
    store: String,
    order: String,
    csrf: String,
    entries: Vec<Entry>,
    participants: Vec<Member>,
    /// This page starts after an entry (it is not the first page).
    paged: bool,
    /// The last entry shown, when more follow: the next page's cursor.
    next: Option<String>,
    /// The order's legal hold: since when, and why.
    hold: Option<(String, String)>,
}

/// A participant as the page shows it: alias, role, whether blocked.
struct Member {
    alias: String,
    role: &'static str,
    blocked: bool,
    active: bool,
}

/// A timeline entry as the page shows it: aliases with roles, never a
/// real address (the timeline holds none).
struct Entry {
    id: String,
    date: String,
    date_iso: String,
    from: Option<Person>,
    to: Vec<Person>,
    subject: String,
    first_words: String,
    attachments: Vec<String>,
    refused: Option<String>,
    reason: Option<String>,
    /// A refusal repeated within the hour: how often, and when last.
    repeats: Option<(u32, String)>,
    flags: Vec<String>,
    deliveries: Vec<Delivery>,
    /// An entry about the order, not a message: a participant made
    /// undeliverable by hard bounces.
    undeliverable: bool,
}

struct Person {
    alias: String,
    role: &'static str,
}

struct Delivery {
    to: String,
    state: &'static str,
    attempts: u32,
    last_reply: Option<String>,
}

impl From<&AliasRef> for Person {
    fn from(a: &AliasRef) -> Self {
        Self {
            alias: a.email_alias.clone(),
            role: a.role.as_str(),
        }
    }
}

impl From<TimelineEntry> for Entry {
    fn from(e: TimelineEntry) -> Self {
        let (date, date_iso) = shown_time(e.date);
        Self {
            date,
            date_iso,
            from: e.from.as_ref().map(Person::from),
            to: e.to.iter().map(Person::from).collect(),
            subject: e.subject,
            first_words: e.first_words,
            attachments: e.attachment_names,
            refused: e.refused,
            reason: e.reason,
            repeats: e
                .last
                .filter(|_| e.repeats > 1)
                .map(|last| (e.repeats, shown_time(last).0)),
            flags: e.flags,
            undeliverable: e.event.as_deref() == Some(UNDELIVERABLE_EVENT),
            deliveries: e
                .deliveries
                .into_iter()
                .map(|d| Delivery {
                    to: d.to,
                    state: d.state.as_str(),
                    attempts: d.attempts,
                    last_reply: d.last_reply,
                })
                .collect(),
            id: e.id,
        }
    }
}

#[derive(Deserialize)]
pub struct OrderQuery {
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    store: Option<String>,
    /// Show the entries after this one (the previous page's last).
    #[serde(default)]
    after: Option<String>,
}

pub async fn orders_page(
    State(state): State<HttpState>,
    session: Session,
    Query(q): Query<OrderQuery>,
) -> Result<Response, ConsoleError> {
    let order = q
        .order
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let mut view = OrdersPage {
        title: "Orders".into(),
        nav: Nav::new("orders", &session),
        order: order.clone(),
        store: q.store.clone().unwrap_or_default(),
        ask_store: session.store.is_none(),
        problem: None,
        conversation: None,
    };
    if order.is_empty() {
        return Ok(page(StatusCode::OK, &view));
    }
    valid_id(&order, "order id").map_err(|e| e.within("orders", &session))?;
    let unavailable = |e| ConsoleError::from(e).within("orders", &session);
    let store = match chosen_store(&session, q.store.as_deref(), "orders")? {
        Some(store) => store,
        None => match state
            .services
            .order_store(&session.scope(), None, &order)
            .await
        {
            Ok(store) => store,
            Err(ServiceError::NoSuchOrder(_)) => {
                view.problem = Some(format!("No order {order}."));
                return Ok(page(StatusCode::NOT_FOUND, &view));
            }
            Err(ServiceError::AmbiguousOrder { stores, .. }) => {
                view.problem = Some(format!(
                    "Order {order} is in several stores ({}): say which.",
                    stores.join(", ")
                ));
                return Ok(page(StatusCode::CONFLICT, &view));
            }
            Err(e) => return Err(ConsoleError::from(e).within("orders", &session)),
        },
    };
    let shown = match state
        .services
        .timeline_page(&store, &order, q.after.as_deref(), ENTRIES_PER_PAGE)
        .await
    {
        Ok(shown) => shown,
        Err(ServiceError::UnknownCursor(after)) => {
            view.problem = Some(format!(
                "The timeline of order {order} has no entry {after}: start from its first page."
            ));
            return Ok(page(StatusCode::BAD_REQUEST, &view));
        }
        Err(e) => return Err(ConsoleError::from(e).within("orders", &session)),
    };
    let participants = state
        .services
        .storage
        .order_participants(&store, &order)
        .await
        .map_err(unavailable)?;
    if shown.entries.is_empty() && participants.is_empty() && q.after.is_none() {
        view.problem = Some(format!("No order {order} in store {store}."));
        return Ok(page(StatusCode::NOT_FOUND, &view));
    }
    let hold = state
        .services
        .storage
        .find_hold(&store, &order)
        .await
        .map_err(unavailable)?
        .map(|h| (h.held_at.format("%Y-%m-%d %H:%M UTC").to_string(), h.reason));
    let now = chrono::Utc::now();
    view.conversation = Some(Conversation {
        store,
        order,
        csrf: session.csrf.clone(),
        entries: shown.entries.into_iter().map(Entry::from).collect(),
        participants: participants
            .iter()
            .map(|p| Member {
                alias: p.alias.clone(),
                role: p.role.as_str(),
                blocked: p.blocked,
                active: p.is_active(now),
            })
            .collect(),
        paged: q.after.is_some(),
        next: shown.next,
        hold,
    });
    Ok(page(StatusCode::OK, &view))
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage {
    title: String,
    nav: Option<Nav>,
    store: String,
    order: String,
    headers: Vec<(&'static str, String)>,
    attachments: Vec<String>,
    body: String,
    raw: String,
    size: usize,
}

/// The masked copy as stored: its address fields, text and attachments'
/// names, and the whole message as text below.
pub async fn message_page(
    State(state): State<HttpState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let message = state
        .services
        .storage
        .message(&id)
        .await
        .map_err(|e| ConsoleError::from(e).within("orders", &session))?
        .filter(|m| session.sees(&m.store))
        .ok_or_else(|| {
            ConsoleError::not_found(format!("No message {id}.")).within("orders", &session)
        })?;
    let parsed = crate::mime::parse(&message.content);
    let mut headers = Vec::new();
    let mut attachments = Vec::new();
    let mut body = String::new();
    let mut subject = String::new();
    if let Some(m) = &parsed {
        for name in ["From", "To", "Cc", "Reply-To", "Date"] {
            if let Some(raw) = m.header_raw(name) {
                headers.push((name, raw.trim().to_string()));
            }
        }
        subject = m.subject().unwrap_or_default().to_string();
        headers.insert(0, ("Subject", subject.clone()));
        attachments = m
            .attachments()
            .filter_map(|a| a.attachment_name().map(str::to_string))
            .collect();
        body = m
            .body_text(0)
            .map(|t| t.chars().take(BODY_CHARS).collect())
            .unwrap_or_default();
    }
    Ok(page(
        StatusCode::OK,
        &MessagePage {
            title: if subject.is_empty() {
                "(no subject)".into()
            } else {
                subject
            },
            nav: Nav::new("orders", &session),
            store: message.store,
            order: message.order,
            headers,
            attachments,
            body,
            size: message.content.len(),
            raw: String::from_utf8_lossy(&message.content).into_owned(),
        },
    ))
}
