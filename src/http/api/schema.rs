//! How the API's document describes the JSON the storage and webhook layers
//! serialize: a timeline entry and its parts, and a webhook event. Those
//! types know nothing of OpenAPI; these stand in for them in the document
//! (under the same names), and a test holds each to the JSON the real type
//! writes, so the two cannot drift apart.

#![allow(dead_code)] // Read by utoipa's derive only.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::alias::{MaskMode, Role};
use crate::service::OrderEvent;
use crate::storage::{DeliveryState, WebhookEventKind};

/// An alias as the timeline shows it: never the real address.
#[derive(Serialize, ToSchema)]
#[schema(as = AliasRef)]
pub struct AliasRefDoc {
    email_alias: String,
    alias_mask_type: MaskMode,
    role: Role,
}

/// SPF, DKIM and DMARC of a received message, as RFC 8601 result words
/// (pass, fail, softfail, neutral, none, temperror, permerror).
#[derive(Serialize, ToSchema)]
#[schema(as = AuthSummary)]
pub struct AuthSummaryDoc {
    spf: String,
    dkim: String,
    dmarc: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryStatus)]
pub struct DeliveryStatusDoc {
    to: String,
    state: DeliveryStateDoc,
    attempts: u32,
    last_reply: Option<String>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = TimelineEntry)]
pub struct TimelineEntryDoc {
    id: String,
    date: DateTime<Utc>,
    from: Option<AliasRefDoc>,
    to: Vec<AliasRefDoc>,
    subject: String,
    first_words: String,
    has_attachment: bool,
    attachment_names: Vec<String>,
    deliveries: Vec<DeliveryStatusDoc>,
    /// The reply given when the message was refused at the door.
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    /// Why it was refused, machine-readable (`unauthenticated_store`,
    /// `spam`, `virus`, `bulk`, `attachment`, `blocked`, `dmarc`,
    /// `ended_alias`, `undeliverable`); for an event, the status that
    /// decided it (`5.1.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// What the door marked an accepted message with: `spam` (rspamd said
    /// so and the store marks), `unscanned` (the scanner gave no verdict),
    /// `unverified` (it claimed a participant's address without
    /// authenticating for it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<String>,
    /// Who sent it, as checked on arrival (SPF, DKIM, DMARC).
    #[serde(skip_serializing_if = "Option::is_none")]
    authentication: Option<AuthSummaryDoc>,
    /// For an entry about the order rather than a message:
    /// `participant.undeliverable` (the participant in `to`).
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    /// A refusal: how many times the same sender was refused for the same
    /// recipients within the hour after `date` (1: once; repeats add no
    /// entry and no webhook event).
    repeats: u32,
    /// A refusal repeated: when it was last refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<DateTime<Utc>>,
}

/// The JSON body of a webhook request.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEvent)]
pub struct WebhookEventDoc {
    /// Unique per event; the same on every retry of it.
    id: String,
    #[serde(rename = "type")]
    kind: WebhookEventKindDoc,
    /// When the change happened.
    created_at: DateTime<Utc>,
    store: String,
    order: String,
    /// The timeline entry concerned, as `GET /v1/orders/{order}/timeline` shows it.
    entry: TimelineEntryDoc,
}

/// A text with one of `values`: how the document shows an enum written
/// as a word, its words taken from the type itself.
fn words(values: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .into()
}

/// `DeliveryState` in the document.
#[derive(Serialize)]
pub struct DeliveryStateDoc;

impl PartialSchema for DeliveryStateDoc {
    fn schema() -> RefOr<Schema> {
        words(DeliveryState::ALL.map(DeliveryState::as_str))
    }
}

impl ToSchema for DeliveryStateDoc {
    fn name() -> Cow<'static, str> {
        "DeliveryState".into()
    }
}

/// `WebhookEventKind` in the document.
#[derive(Serialize)]
pub struct WebhookEventKindDoc;

impl PartialSchema for WebhookEventKindDoc {
    fn schema() -> RefOr<Schema> {
        words(WebhookEventKind::ALL.map(WebhookEventKind::as_str))
    }
}

impl ToSchema for WebhookEventKindDoc {
    fn name() -> Cow<'static, str> {
        "WebhookEventKind".into()
    }
}

/// `OrderEvent` in the document.
#[derive(Serialize)]
pub struct OrderEventDoc;

impl PartialSchema for OrderEventDoc {
    fn schema() -> RefOr<Schema> {
        words(OrderEvent::ALL.map(OrderEvent::as_str))
    }
}

impl ToSchema for OrderEventDoc {
    fn name() -> Cow<'static, str> {
        "OrderEvent".into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use serde_json::Value;

    use crate::alias::{MaskMode, Role};
    use crate::storage::{
        AliasRef, AuthSummary, DeliveryState, DeliveryStatus, TimelineEntry, WebhookEventKind,
    };
    use crate::webhook::WebhookEvent;

    /// The property names the document gives `schema`.
    fn documented(schema: &str) -> BTreeSet<String> {
        let doc: Value = serde_json::from_str(super::super::openapi::json()).unwrap();
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} is in the document"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn enum_values(schema: &str) -> Vec<String> {
        let doc: Value = serde_json::from_str(super::super::openapi::json()).unwrap();
        serde_json::from_value(doc["components"]["schemas"][schema]["enum"].clone()).unwrap()
    }

    #[test]
    fn the_document_describes_the_json_the_relay_writes() {
        let alias = AliasRef {
            email_alias: "a@ct.test".into(),
            alias_mask_type: MaskMode::Hard,
            role: Role::Store,
        };
        // Every optional field set, so every key is written.
        let entry = TimelineEntry {
            id: "e".into(),
            date: Utc::now(),
            from: Some(alias.clone()),
            to: vec![alias.clone()],
            subject: "s".into(),
            first_words: "w".into(),
            has_attachment: true,
            attachment_names: vec!["a.pdf".into()],
            deliveries: vec![DeliveryStatus {
                to: "a@ct.test".into(),
                state: DeliveryState::Retrying,
                attempts: 1,
                last_reply: Some("451".into()),
                updated_at: Utc::now(),
            }],
            refused: Some("550".into()),
            reason: Some("spam".into()),
            flags: vec!["spam".into()],
            authentication: Some(AuthSummary {
                spf: "pass".into(),
                dkim: "none".into(),
                dmarc: "none".into(),
            }),
            event: Some("participant.undeliverable".into()),
            repeats: 2,
            last: Some(Utc::now()),
        };
        let event = WebhookEvent {
            id: "w".into(),
            kind: WebhookEventKind::DeliveryUpdated,
            created_at: Utc::now(),
            store: "acme".into(),
            order: "o".into(),
            entry: entry.clone(),
        };
        let entry_json = serde_json::to_value(&entry).unwrap();
        assert_eq!(keys(&entry_json), documented("TimelineEntry"));
        assert_eq!(keys(&entry_json["from"]), documented("AliasRef"));
        assert_eq!(
            keys(&entry_json["deliveries"][0]),
            documented("DeliveryStatus")
        );
        assert_eq!(
            keys(&entry_json["authentication"]),
            documented("AuthSummary")
        );
        assert_eq!(
            keys(&serde_json::to_value(&event).unwrap()),
            documented("WebhookEvent")
        );

        let states = [
            DeliveryState::Queued,
            DeliveryState::Retrying,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ];
        let written: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
        assert_eq!(written, enum_values("DeliveryState"));
        let kinds = [
            WebhookEventKind::MessageAccepted,
            WebhookEventKind::MessageRefused,
            WebhookEventKind::DeliveryUpdated,
            WebhookEventKind::ParticipantUndeliverable,
        ];
        let written: Vec<String> = kinds
            .iter()
            .map(|k| {
                serde_json::to_value(k)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(written, enum_values("WebhookEventKind"));
    }
}
