//! Read-side commands: store, timeline.

use std::process::ExitCode;

use anyhow::bail;
use chrono::Utc;
use serde_json::json;

use ct_relay::alias::validate_store_id;
use ct_relay::service::{Scope, ServiceError, Services, SettingsChange};

use super::StoreCommand;

pub fn print(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string(value).expect("JSON output serializes")
    );
}

pub async fn store(cmd: StoreCommand, services: Services) -> anyhow::Result<ExitCode> {
    let storage = &services.storage;
    match cmd {
        StoreCommand::SetMode { store, mode } => {
            validate_store_id(&store)?;
            storage.set_store_mode(&store, mode.parse()?).await?;
            print(&storage.store_summary(&store).await?);
        }
        StoreCommand::Show { store } => print(&storage.store_summary(&store).await?),
        StoreCommand::SetRetention { store, retention } => {
            let retention = match retention.as_str() {
                "global" => None,
                text => Some(humantime::parse_duration(text).map_err(|e| {
                    anyhow::anyhow!("retention `{text}`: {e} (a duration such as 30d, or `global`)")
                })?),
            };
            let change = SettingsChange {
                retention: Some(retention),
                ..SettingsChange::default()
            };
            let config = services
                .change_settings(&Scope::all(), &store, change, Utc::now())
                .await?;
            let shown = |d: std::time::Duration| humantime::format_duration(d).to_string();
            print(&json!({
                "store": store,
                "retention": config.retention.map(shown),
                "global": shown(services.max_retention),
            }));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which part of a timeline to print.
pub struct Page {
    pub limit: Option<u32>,
    pub after: Option<String>,
}

pub async fn timeline(
    order: &str,
    store: Option<String>,
    page: Page,
    services: Services,
) -> anyhow::Result<ExitCode> {
    let store = match services
        .order_store(&Scope::all(), store.as_deref(), order)
        .await
    {
        Ok(store) => store,
        Err(e @ ServiceError::AmbiguousOrder { .. }) => bail!("{e}; pass --store"),
        Err(e) => return Err(e.into()),
    };
    let after = page.after.as_deref();
    let found = match page.limit {
        Some(limit) => services
            .timeline_page(&store, order, after, limit)
            .await
            .map(|p| (p.entries, p.next)),
        None => services
            .timeline_rest(&store, order, after)
            .await
            .map(|all| (all, None)),
    };
    let (entries, next) = match found {
        Ok(found) => found,
        Err(ServiceError::UnknownCursor(after)) => {
            bail!("--after names no entry of the timeline of order `{order}`: {after}")
        }
        Err(e) => return Err(e.into()),
    };
    print(&json!({ "store": store, "order": order, "entries": entries, "next": next }));
    Ok(ExitCode::SUCCESS)
}
