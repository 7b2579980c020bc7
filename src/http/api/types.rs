//! Request and response bodies of the API. Their schemas go into the
//! OpenAPI document; requests refuse unknown fields.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::alias::{MaskMode, Participant, Role};
use crate::policy::settings::{AttachmentPolicy, AttachmentsUpdate};
use crate::policy::{BulkMail, PolicyUpdate, SpamAction};
use crate::service;
use crate::storage::{rfc3339_string, AliasRef, TimelineEntry};

/// Every error: a stable code and a sentence for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// unauthorized, forbidden, not_found, bad_request, invalid, ambiguous,
    /// method_not_allowed, unavailable
    pub error: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// ready or not_ready
    pub status: String,
    /// The database answers a read.
    pub database: bool,
    /// Storage takes a write (false on a full disk, a read-only database,
    /// a writer stuck past the busy timeout): mail would get 451 4.3.0.
    pub writable: bool,
    pub smtp: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAliases {
    #[schema(pattern = "^[a-z0-9._-]{1,128}$")]
    pub store: String,
    pub customer_email: String,
    #[serde(default)]
    pub store_email: Option<String>,
}

/// An alias as created.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasCreated {
    pub alias: String,
    pub mode: MaskMode,
    /// RFC 3339
    pub expires_at: String,
}

impl From<&Participant> for AliasCreated {
    fn from(p: &Participant) -> Self {
        Self {
            alias: p.alias.clone(),
            mode: p.mode,
            expires_at: rfc3339_string(p.expires_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasPair {
    pub customer: AliasCreated,
    /// Present when `store_email` was given.
    pub store: Option<AliasCreated>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderAliases {
    pub store: String,
    pub order: String,
    pub aliases: AliasPair,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    #[schema(pattern = "^[a-z0-9._-]{1,128}$")]
    pub store: String,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub order: String,
    pub role: Role,
    pub email: String,
    /// Default: the store's mask mode.
    #[serde(default)]
    pub mode: Option<MaskMode>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// At most 1000.
    pub items: Vec<BulkItem>,
}

/// One result per item, in order: the alias, or why the item was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasCreated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub created: usize,
    pub failed: usize,
    pub results: Vec<BulkResult>,
}

/// An alias and whom it stands for, by role; never the real address.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasInfo {
    pub alias: String,
    pub store: String,
    pub order: String,
    pub role: Role,
    pub mode: MaskMode,
    pub created_at: String,
    pub expires_at: String,
    pub disabled: bool,
    pub active: bool,
    /// Its mailbox hard-bounced: mail to the alias is refused until the
    /// address is changed (`PATCH /v1/aliases/{alias}`).
    pub undeliverable: bool,
}

/// `POST /v1/aliases/{alias}/reveal`: why the real address is needed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// 1 to 500 characters, written to the audit with the caller's token.
    pub reason: String,
}

/// An alias with its participant's real address, as revealed (and audited).
#[derive(Debug, Serialize, ToSchema)]
pub struct RevealedAlias {
    pub alias: AliasInfo,
    /// The participant's real address.
    pub email: String,
}

/// Everything held about one address (`GET /v1/subjects/{email}`): the
/// document's view of `service::subjects::SubjectExport`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubjectExport)]
pub struct SubjectExportDoc {
    /// The address asked about.
    pub email: String,
    /// Each order the address takes part in, oldest first.
    pub orders: Vec<SubjectOrderDoc>,
}

/// One order of the subject.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubjectOrder)]
pub struct SubjectOrderDoc {
    pub store: String,
    pub order: String,
    /// The order is on legal hold.
    pub held: bool,
    /// The subject's aliases in the order.
    pub aliases: Vec<SubjectAliasDoc>,
    /// The timeline entries from or to one of those aliases, oldest first.
    #[schema(value_type = Vec<super::schema::TimelineEntryDoc>)]
    pub entries: Vec<TimelineEntry>,
}

/// One of the subject's aliases.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubjectAlias)]
pub struct SubjectAliasDoc {
    pub alias: String,
    pub role: Role,
    pub mode: MaskMode,
    pub created_at: String,
    pub expires_at: String,
    pub disabled: bool,
    pub blocked: bool,
    pub undeliverable: bool,
}

/// What erasing an address did (`DELETE /v1/subjects/{email}`): the
/// document's view of `storage::Erasure`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubjectErasure)]
pub struct SubjectErasureDoc {
    /// What was erased; all zero for an unknown or already erased address.
    pub erased: ErasedCountsDoc,
    /// Orders left as they were because they are on legal hold.
    pub held: Vec<HeldOrderDoc>,
}

/// The counts of an erasure.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ErasedCounts)]
pub struct ErasedCountsDoc {
    /// Orders whose data of the person was erased.
    pub orders: u64,
    /// Participant rows that lost the address (one per alias).
    pub participants: u64,
    /// Of those, aliases that were still working and now stop.
    pub aliases: u64,
    /// Stored messages whose text was deleted.
    pub messages: u64,
    /// Messages whose text is deleted when their other deliveries end.
    pub messages_pending: u64,
    /// The person's queued deliveries cancelled.
    pub deliveries_cancelled: u64,
    /// Timeline entries rewritten.
    pub timeline_entries: u64,
}

/// An order an erasure skipped: it is on legal hold.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = HeldOrder)]
pub struct HeldOrderDoc {
    pub store: String,
    pub order: String,
    /// Why it is held.
    pub reason: String,
}

/// An order's legal hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderHold {
    pub store: String,
    pub order: String,
    /// On hold: the purge keeps everything of the order.
    pub held: bool,
    /// Since when (RFC 3339), when held.
    pub held_at: Option<String>,
    /// Why, when held.
    pub reason: Option<String>,
}

/// A participant's new real address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressChange {
    pub email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AliasDisabled {
    pub alias: String,
    pub disabled: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StoreSettings {
    pub store: String,
    pub mask_mode: MaskMode,
    /// Where the store's timeline events are POSTed; null when none.
    pub webhook_url: Option<String>,
    /// The secret signing each webhook request (`CT-Relay-Signature`).
    pub webhook_secret: Option<String>,
    /// Mail claiming the store's address must pass SPF or DKIM aligned
    /// with its From domain (or come from an approved sender or a trusted
    /// network), else `550 5.7.1`.
    pub require_authenticated_store: bool,
    /// Addresses and domains (an ERP, a carrier) that may write as any
    /// participant when SPF or DKIM vouches for them; also the higher rate
    /// budget.
    pub approved_senders: Vec<String>,
    /// Mail rspamd would mark as spam: delivered with `X-Spam: Yes` and a
    /// `spam` flag (`mark`), or refused `550 5.7.1` (`refuse`).
    pub spam: SpamAction,
    /// Bulk or list mail to a buyer's alias: `refuse` (`550 5.7.1`) or
    /// `deliver`.
    pub bulk_mail: BulkMail,
    pub attachments: AttachmentPolicy,
    /// How long the store's mail and timelines are kept (`30days`), when
    /// shorter than the relay's `storage.retention`; null: that.
    pub retention: Option<String>,
}

impl From<crate::storage::StoreConfig> for StoreSettings {
    fn from(c: crate::storage::StoreConfig) -> Self {
        let (webhook_url, webhook_secret) = c.webhook.map(|w| (w.url, w.secret)).unzip();
        let p = c.policy;
        Self {
            store: c.store,
            mask_mode: c.mask_mode,
            webhook_url,
            webhook_secret,
            require_authenticated_store: p.require_authenticated_store,
            approved_senders: p.approved_senders,
            spam: p.spam,
            bulk_mail: p.bulk_mail,
            attachments: p.attachments,
            retention: c
                .retention
                .map(|d| humantime::format_duration(d).to_string()),
        }
    }
}

/// Fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    /// Applies to aliases created from now on.
    #[serde(default)]
    pub mask_mode: Option<MaskMode>,
    /// An http(s) URL to receive the store's webhook events; null removes
    /// the webhook (its unsent events are dropped).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub webhook_url: Option<Option<String>>,
    /// 16 to 256 printable characters; only with `webhook_url`. Left out, the
    /// current secret is kept, or a new one is made.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub require_authenticated_store: Option<bool>,
    /// Replaces the list: at most 200 addresses (`local@domain`) or
    /// domains (which take their subdomains too).
    #[serde(default)]
    pub approved_senders: Option<Vec<String>>,
    #[serde(default)]
    pub spam: Option<SpamAction>,
    #[serde(default)]
    pub bulk_mail: Option<BulkMail>,
    /// Fields left out stay as they are.
    #[serde(default)]
    pub attachments: Option<AttachmentsUpdate>,
    /// How long the store's mail and timelines are kept (`30d`, `12h`), at
    /// most the relay's `storage.retention`; null: that.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub retention: Option<Option<String>>,
}

impl SettingsUpdate {
    /// The policy fields it changes, if any.
    pub fn policy(&self) -> Option<PolicyUpdate> {
        let update = PolicyUpdate {
            require_authenticated_store: self.require_authenticated_store,
            approved_senders: self.approved_senders.clone(),
            spam: self.spam,
            bulk_mail: self.bulk_mail,
            attachments: self.attachments.clone(),
        };
        (!update.is_empty()).then_some(update)
    }
}

/// `POST /v1/orders/{order}/blocks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    #[schema(pattern = "^[a-z0-9._-]{1,128}$")]
    pub store: String,
    /// The sender's alias, or its address.
    pub sender: String,
}

/// An order's blocked senders (or those a request changed), as aliases.
#[derive(Debug, Serialize, ToSchema)]
pub struct Blocks {
    pub store: String,
    pub order: String,
    #[schema(value_type = Vec<super::schema::AliasRefDoc>)]
    pub senders: Vec<AliasRef>,
}

/// A field that is present, even as null, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl From<BulkItem> for service::NewAlias {
    fn from(item: BulkItem) -> Self {
        Self {
            store: item.store,
            order: item.order,
            role: item.role,
            email: item.email,
            mode: item.mode,
        }
    }
}

impl TryFrom<SettingsUpdate> for service::SettingsChange {
    type Error = String;

    fn try_from(req: SettingsUpdate) -> Result<Self, String> {
        let retention = match &req.retention {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(Some(
                humantime::parse_duration(text).map_err(|e| format!("retention `{text}`: {e}"))?,
            )),
        };
        Ok(Self {
            policy: req.policy(),
            mask_mode: req.mask_mode,
            webhook_url: req.webhook_url,
            webhook_secret: req.webhook_secret,
            retention,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderEventRequest {
    #[schema(pattern = "^[a-z0-9._-]{1,128}$")]
    pub store: String,
    #[schema(value_type = super::schema::OrderEventDoc)]
    pub event: service::OrderEvent,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderEventResult {
    pub store: String,
    pub order: String,
    pub event: String,
    pub aliases_changed: u64,
    /// Invoiced/canceled: the aliases end no later than this; reopened: they work until this.
    pub aliases_end_at: String,
}

/// A page of an order's timeline, oldest entry first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub store: String,
    pub order: String,
    #[schema(value_type = Vec<super::schema::TimelineEntryDoc>)]
    pub entries: Vec<TimelineEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}
