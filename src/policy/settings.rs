//! A store's policy settings (docs/REFERENCE.md, "Trust at the door"): what its order aliases
//! take. Stored as one JSON value per store; a store never configured has
//! the defaults, which are the strict ones.

use serde::{Deserialize, Serialize};

/// What happens to mail rspamd would only mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SpamAction {
    /// Delivered with `X-Spam: Yes` and a spam flag on the timeline.
    #[default]
    Mark,
    /// Refused `550 5.7.1`.
    Refuse,
}

/// Bulk and list mail to a customer alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BulkMail {
    /// Refused with `550 5.7.1`.
    #[default]
    Refuse,
    /// Delivered as any other mail.
    Deliver,
}

/// File types a store refuses unless it says otherwise: programs, scripts,
/// shortcuts, disk images and Office files with macros.
pub const DEFAULT_BLOCKED_EXTENSIONS: &[&str] = &[
    "exe", "scr", "com", "pif", "bat", "cmd", "js", "jse", "vbs", "vbe", "wsf", "wsh", "ps1",
    "psm1", "sh", "jar", "msi", "msp", "cpl", "dll", "reg", "lnk", "hta", "iso", "img", "vhd",
    "vhdx", "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam", "sldm",
];

/// Attachment limits and refused types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentPolicy {
    /// Most attachments a message may have (nested messages and their
    /// attachments count).
    pub max_count: u32,
    /// Most bytes all attachments may have together, decoded.
    pub max_total_bytes: u64,
    /// File name extensions refused, lowercase, without the dot. A file
    /// whose content or declared type is one of these (a program named
    /// `invoice.pdf`) is refused too.
    pub blocked_extensions: Vec<String>,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        Self {
            max_count: 10,
            max_total_bytes: 10 * 1024 * 1024,
            blocked_extensions: DEFAULT_BLOCKED_EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }
    }
}

/// A store's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct StorePolicy {
    /// Mail claiming the store's address must authenticate (SPF or DKIM
    /// aligned with the From domain), else `550 5.7.1`.
    pub require_authenticated_store: bool,
    /// Addresses and domains (an ERP, a carrier) counted as authenticated
    /// for any participant, and given the higher rate budget.
    pub approved_senders: Vec<String>,
    /// What spam does: marked or refused.
    pub spam: SpamAction,
    /// What bulk and list mail to a buyer does.
    pub bulk_mail: BulkMail,
    /// Attachment limits and refused types.
    pub attachments: AttachmentPolicy,
}

impl Default for StorePolicy {
    fn default() -> Self {
        Self {
            require_authenticated_store: true,
            approved_senders: Vec::new(),
            spam: SpamAction::Mark,
            bulk_mail: BulkMail::Refuse,
            attachments: AttachmentPolicy::default(),
        }
    }
}

/// A change to a store's policy: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpdate {
    /// New `require_authenticated_store`.
    pub require_authenticated_store: Option<bool>,
    /// New approved senders (the whole list).
    pub approved_senders: Option<Vec<String>>,
    /// New spam action.
    pub spam: Option<SpamAction>,
    /// New bulk mail action.
    pub bulk_mail: Option<BulkMail>,
    /// Attachment settings to change.
    pub attachments: Option<AttachmentsUpdate>,
}

/// A change to the attachment settings; a field left out stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentsUpdate {
    /// The most attachments a message may have.
    pub max_count: Option<u32>,
    /// The most bytes its attachments may have, decoded.
    pub max_total_bytes: Option<u64>,
    /// The refused file extensions (replaces the list).
    pub blocked_extensions: Option<Vec<String>>,
}

/// Most entries in a store's lists.
pub const MAX_LIST: usize = 200;
/// The largest attachment budget a store may set.
pub const MAX_ATTACHMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Why a policy change was refused (the API answers `422` with it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// An approved sender that is neither an address nor a domain.
    #[error("approved_senders: `{0}` is neither an address (local@domain) nor a domain")]
    BadSender(String),
    /// An extension with characters other than letters and digits.
    #[error("attachments.blocked_extensions: `{0}` is not an extension (1 to 16 letters and digits, no dot)")]
    BadExtension(String),
    /// A list longer than allowed (which list).
    #[error("{0}: at most {MAX_LIST} entries")]
    TooMany(&'static str),
    /// A byte limit over the largest message.
    #[error("attachments.max_total_bytes: at most {MAX_ATTACHMENT_BYTES}")]
    TooBig,
    /// An attachment count limit over the largest allowed.
    #[error("attachments.max_count: at most 1000")]
    TooManyAttachments,
}

impl PolicyUpdate {
    /// True when the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &PolicyUpdate::default()
    }

    /// `current` with this update applied, validated and normalised
    /// (lowercase, deduplicated lists).
    pub fn apply(&self, current: &StorePolicy) -> Result<StorePolicy, PolicyError> {
        let mut p = current.clone();
        if let Some(v) = self.require_authenticated_store {
            p.require_authenticated_store = v;
        }
        if let Some(list) = &self.approved_senders {
            p.approved_senders = normalised(list, "approved_senders", sender_entry)?;
        }
        if let Some(v) = self.spam {
            p.spam = v;
        }
        if let Some(v) = self.bulk_mail {
            p.bulk_mail = v;
        }
        if let Some(a) = &self.attachments {
            if let Some(n) = a.max_count {
                if n > 1000 {
                    return Err(PolicyError::TooManyAttachments);
                }
                p.attachments.max_count = n;
            }
            if let Some(n) = a.max_total_bytes {
                if n > MAX_ATTACHMENT_BYTES {
                    return Err(PolicyError::TooBig);
                }
                p.attachments.max_total_bytes = n;
            }
            if let Some(list) = &a.blocked_extensions {
                p.attachments.blocked_extensions =
                    normalised(list, "attachments.blocked_extensions", extension_entry)?;
            }
        }
        Ok(p)
    }
}

fn normalised(
    list: &[String],
    what: &'static str,
    check: fn(&str) -> Result<String, PolicyError>,
) -> Result<Vec<String>, PolicyError> {
    if list.len() > MAX_LIST {
        return Err(PolicyError::TooMany(what));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for entry in list {
        let e = check(entry)?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn sender_entry(entry: &str) -> Result<String, PolicyError> {
    let e = entry.trim().to_lowercase();
    let ok = match e.rsplit_once('@') {
        Some((local, domain)) => crate::alias::is_dot_atom(local) && is_domain(domain),
        None => is_domain(&e),
    };
    if ok {
        Ok(e)
    } else {
        Err(PolicyError::BadSender(entry.chars().take(100).collect()))
    }
}

fn extension_entry(entry: &str) -> Result<String, PolicyError> {
    let e = entry.trim().to_lowercase();
    if !e.is_empty() && e.len() <= 16 && e.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(e)
    } else {
        Err(PolicyError::BadExtension(entry.chars().take(100).collect()))
    }
}

impl StorePolicy {
    /// Whether `address` (canonical) is an approved sender: listed itself,
    /// or at a listed domain or below it.
    pub fn approves(&self, address: &str) -> bool {
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        self.approved_senders
            .iter()
            .any(|entry| entry.contains('@') && entry.eq_ignore_ascii_case(address))
            || self.approves_domain(domain)
    }

    /// Whether `domain` is a listed domain or below one.
    pub fn approves_domain(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.approved_senders.iter().any(|entry| {
            !entry.contains('@')
                && (domain == *entry
                    || domain
                        .strip_suffix(entry.as_str())
                        .is_some_and(|rest| rest.ends_with('.')))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_strict_ones_and_serialise_as_design_says() {
        let json = serde_json::to_value(StorePolicy::default()).unwrap();
        assert_eq!(json["require_authenticated_store"], true);
        assert_eq!(json["spam"], "mark");
        assert_eq!(json["bulk_mail"], "refuse");
        assert_eq!(json["attachments"]["max_count"], 10);
        assert_eq!(json["attachments"]["max_total_bytes"], 10_485_760);
        assert!(json["attachments"]["blocked_extensions"]
            .as_array()
            .unwrap()
            .contains(&"exe".into()));
        // A stored value missing a field takes its default.
        let stored: StorePolicy = serde_json::from_str(r#"{"spam":"refuse"}"#).unwrap();
        assert_eq!(stored.spam, SpamAction::Refuse);
        assert!(stored.require_authenticated_store);
    }

    #[test]
    fn updates_change_only_what_they_name_and_are_validated() {
        let update: PolicyUpdate = serde_json::from_str(
            r#"{"approved_senders":["ERP.acme-store.com","noreply@Carrier.example","erp.acme-store.com"],
                "attachments":{"max_count":3}}"#,
        )
        .unwrap();
        let p = update.apply(&StorePolicy::default()).unwrap();
        assert_eq!(
            p.approved_senders,
            ["erp.acme-store.com", "noreply@carrier.example"]
        );
        assert_eq!(p.attachments.max_count, 3);
        assert_eq!(p.attachments.max_total_bytes, 10 * 1024 * 1024);
        for bad in [
            r#"{"approved_senders":["not a domain"]}"#,
            r#"{"attachments":{"blocked_extensions":[".exe"]}}"#,
            r#"{"attachments":{"max_total_bytes":99999999999}}"#,
        ] {
            let u: PolicyUpdate = serde_json::from_str(bad).unwrap();
            assert!(u.apply(&StorePolicy::default()).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<PolicyUpdate>(r#"{"spam":"maybe"}"#).is_err());
    }

    #[test]
    fn approved_senders_match_addresses_and_domains_below() {
        let p = PolicyUpdate {
            approved_senders: Some(vec![
                "erp.acme-store.com".into(),
                "noreply@carrier.example".into(),
            ]),
            ..Default::default()
        }
        .apply(&StorePolicy::default())
        .unwrap();
        assert!(p.approves("bot@erp.acme-store.com"));
        assert!(p.approves("bot@eu.erp.acme-store.com"));
        assert!(p.approves("noreply@carrier.example"));
        assert!(!p.approves("other@carrier.example"));
        assert!(!p.approves("bot@notreallyerp.acme-store.com"));
        assert!(!p.approves("bot@acme-store.com"));
    }
}
