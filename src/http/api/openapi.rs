//! The OpenAPI document, generated from the handlers' annotations. A copy
//! is kept in the repo (`docs/openapi.json`); a test keeps it current.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::schema::{
    AliasRefDoc, AuthSummaryDoc, DeliveryStateDoc, DeliveryStatusDoc, OrderEventDoc,
    TimelineEntryDoc, WebhookEventDoc, WebhookEventKindDoc,
};
use super::types::*;
use super::{blocks, protection, routes, settings};
use crate::alias::{MaskMode, Role};
use crate::policy::settings::{AttachmentPolicy, AttachmentsUpdate};
use crate::policy::{BulkMail, SpamAction};

#[derive(OpenApi)]
#[openapi(
    info(title = "ct-relay API", description = "Order aliases, store settings, timelines and messages of ct-relay. A store with a webhook_url receives each timeline change as a signed POST whose body is a WebhookEvent (see components)."),
    paths(
        routes::healthz, routes::readyz, routes::metrics, routes::openapi,
        routes::create_aliases, routes::bulk_create, routes::order_event, routes::timeline,
        routes::show_alias, routes::change_address, routes::disable_alias, settings::get_settings, settings::put_settings,
        blocks::list_blocks, blocks::block_sender, blocks::unblock_sender, protection::show_hold,
        protection::hold_order, protection::release_order, protection::export_subject, protection::erase_subject, protection::reveal_alias, routes::message,
    ),
    components(schemas(
        ErrorBody, Health, Readiness, CreateAliases, AliasCreated, AliasPair, OrderAliases, BulkItem, BulkRequest,
        BulkResult, BulkResponse, AliasInfo, AddressChange, AliasDisabled, StoreSettings, SettingsUpdate, OrderEventDoc,
        OrderEventRequest, OrderEventResult, Timeline, TimelineEntryDoc, AliasRefDoc, DeliveryStatusDoc,
        DeliveryStateDoc, AuthSummaryDoc, MaskMode, Role, WebhookEventDoc, WebhookEventKindDoc, SpamAction, BulkMail, AttachmentPolicy,
        AttachmentsUpdate, BlockRequest, Blocks, OrderHold, SubjectExportDoc, SubjectOrderDoc, SubjectAliasDoc,
        SubjectErasureDoc, ErasedCountsDoc, HeldOrderDoc, RevealRequest, RevealedAlias,
    )),
    modifiers(&BearerAuth, &ResponseDescriptions),
    security(("bearer" = [])),
)]
/// The OpenAPI document of the API, from the handlers' annotations.
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// OpenAPI requires a description on every response: the status's reason
/// phrase, where the handler gave none.
struct ResponseDescriptions;

impl Modify for ResponseDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(r) = response {
                        if r.description.is_empty() {
                            r.description = status
                                .parse::<u16>()
                                .ok()
                                .and_then(|c| axum::http::StatusCode::from_u16(c).ok())
                                .and_then(|c| c.canonical_reason())
                                .unwrap_or("Response")
                                .to_string();
                        }
                    }
                }
            }
        }
    }
}

/// The document as served at `/v1/openapi.json`.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serializes")
            + "\n"
    })
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the generated document; regenerate it with
    /// `UPDATE_OPENAPI=1 cargo test openapi`.
    #[test]
    fn committed_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, super::json()).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::json(),
            "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test openapi"
        );
    }
}
