//! The settings page's second form: what the store's order aliases take
//! (sender authentication, approved senders, spam, bulk mail,
//! attachments). Saved as the API's `PUT /v1/stores/{store}/settings`
//! saves it: validated, and applied field by field in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use serde::Deserialize;

use super::session::Session;
use super::settings::{form_store, urlencode};
use super::{see_other, ConsoleError};
use crate::http::HttpState;
use crate::policy::settings::AttachmentsUpdate;
use crate::policy::{BulkMail, PolicyUpdate, SpamAction, StorePolicy};
use crate::service::{ServiceError, SettingsChange};

const MIB: f64 = 1024.0 * 1024.0;

/// The policy as the form shows it.
pub struct PolicyView {
    pub require_authenticated_store: bool,
    pub approved_senders: String,
    pub spam: &'static str,
    pub bulk_mail: &'static str,
    pub max_count: u32,
    pub max_total_mib: String,
    pub blocked_extensions: String,
}

impl From<&StorePolicy> for PolicyView {
    fn from(p: &StorePolicy) -> Self {
        let mib = p.attachments.max_total_bytes as f64 / MIB;
        Self {
            require_authenticated_store: p.require_authenticated_store,
            approved_senders: p.approved_senders.join("\n"),
            spam: match p.spam {
                SpamAction::Mark => "mark",
                SpamAction::Refuse => "refuse",
            },
            bulk_mail: match p.bulk_mail {
                BulkMail::Refuse => "refuse",
                BulkMail::Deliver => "deliver",
            },
            max_count: p.attachments.max_count,
            max_total_mib: format!("{mib:.2}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            blocked_extensions: p.attachments.blocked_extensions.join(", "),
        }
    }
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    store: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    require_authenticated_store: Option<String>,
    #[serde(default)]
    approved_senders: String,
    spam: String,
    bulk_mail: String,
    max_count: String,
    max_total_mib: String,
    #[serde(default)]
    blocked_extensions: String,
}

fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl PolicyForm {
    fn update(&self) -> Result<PolicyUpdate, String> {
        let spam = match self.spam.as_str() {
            "mark" => SpamAction::Mark,
            "refuse" => SpamAction::Refuse,
            other => return Err(format!("Spam is marked or refused, not {other}.")),
        };
        let bulk_mail = match self.bulk_mail.as_str() {
            "refuse" => BulkMail::Refuse,
            "deliver" => BulkMail::Deliver,
            other => return Err(format!("Bulk mail is refused or delivered, not {other}.")),
        };
        let max_count: u32 = self.max_count.trim().parse().map_err(|_| {
            format!(
                "The most attachments is a whole number, not {}.",
                self.max_count
            )
        })?;
        let mib: f64 = self
            .max_total_mib
            .trim()
            .parse()
            .ok()
            .filter(|m: &f64| m.is_finite() && *m >= 0.0)
            .ok_or_else(|| {
                format!(
                    "The attachments' size is a number of MiB, not {}.",
                    self.max_total_mib
                )
            })?;
        Ok(PolicyUpdate {
            require_authenticated_store: Some(self.require_authenticated_store.is_some()),
            approved_senders: Some(list(&self.approved_senders)),
            spam: Some(spam),
            bulk_mail: Some(bulk_mail),
            attachments: Some(AttachmentsUpdate {
                max_count: Some(max_count),
                max_total_bytes: Some((mib * MIB).round() as u64),
                blocked_extensions: Some(list(&self.blocked_extensions)),
            }),
        })
    }
}

pub async fn save_policy(
    State(state): State<HttpState>,
    session: Session,
    Form(form): Form<PolicyForm>,
) -> Result<Response, ConsoleError> {
    let store = form_store(&session, &form.csrf, &form.store, "settings")?;
    let bad =
        |m: String| ConsoleError::new(StatusCode::BAD_REQUEST, m).within("settings", &session);
    let update = form.update().map_err(bad)?;
    let change = SettingsChange {
        policy: Some(update),
        ..SettingsChange::default()
    };
    state
        .services
        .change_settings(&session.scope(), &store, change, Utc::now())
        .await
        .map_err(|e| match e {
            ServiceError::Invalid(m) => bad(format!("Not saved: {m}.")),
            other => ConsoleError::from(other).within("settings", &session),
        })?;
    Ok(see_other(&format!(
        "/console/settings?store={}&saved=policy#policy",
        urlencode(&store)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(max_count: &str, mib: &str, senders: &str) -> PolicyForm {
        PolicyForm {
            csrf: String::new(),
            store: "acme".into(),
            require_authenticated_store: None,
            approved_senders: senders.into(),
            spam: "refuse".into(),
            bulk_mail: "deliver".into(),
            max_count: max_count.into(),
            max_total_mib: mib.into(),
            blocked_extensions: "exe, js\nvbs".into(),
        }
    }

    #[test]
    fn the_form_reads_as_a_full_update() {
        let p = form("3", "2.5", "erp.example\nnoreply@carrier.example")
            .update()
            .unwrap()
            .apply(&StorePolicy::default())
            .unwrap();
        assert!(!p.require_authenticated_store);
        assert_eq!(
            p.approved_senders,
            ["erp.example", "noreply@carrier.example"]
        );
        assert_eq!(
            (p.spam, p.bulk_mail),
            (SpamAction::Refuse, BulkMail::Deliver)
        );
        assert_eq!(p.attachments.max_count, 3);
        assert_eq!(p.attachments.max_total_bytes, 2_621_440);
        assert_eq!(p.attachments.blocked_extensions, ["exe", "js", "vbs"]);
        let shown = PolicyView::from(&p);
        assert_eq!(shown.max_total_mib, "2.5");
        assert_eq!(
            PolicyView::from(&StorePolicy::default()).max_total_mib,
            "10"
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(form("x", "1", "").update().unwrap_err().contains("x"));
        assert!(form("1", "-1", "").update().unwrap_err().contains("-1"));
        let e = form("1", "1", "not a domain")
            .update()
            .unwrap()
            .apply(&StorePolicy::default())
            .unwrap_err();
        assert!(e.to_string().contains("`not`"), "{e}");
    }
}
