//! `ct-relay alias …`: create, import, show, disable.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use chrono::Utc;
use clap::Subcommand;
use serde_json::json;

use ct_relay::config::Settings;
use ct_relay::storage::{rfc3339_string, Storage};

use super::import::{created, import};
use super::report::print;

#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create (or fetch, if it exists) the alias of one participant.
    Create {
        #[arg(long)]
        store: String,
        #[arg(long)]
        order: String,
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "customer", value_parser = ["customer", "store", "contact"])]
        role: String,
        /// Default: the store's mask mode.
        #[arg(long, value_parser = ["hard", "soft"])]
        mode: Option<String>,
    },
    /// Read JSON lines {"store","order","role","email","mode"?} on stdin; print one JSON line each.
    Import,
    Show {
        alias: String,
    },
    /// Stop an alias from receiving mail (550 5.1.1 from now on).
    Disable {
        alias: String,
    },
}

pub async fn run(
    cmd: AliasCommand,
    settings: &Settings,
    storage: Arc<dyn Storage>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AliasCommand::Create {
            store,
            order,
            email,
            role,
            mode,
        } => {
            let aliaser = settings.aliaser()?;
            let mode = match mode {
                Some(m) => m.parse()?,
                None => storage.store_mode(&store).await?,
            };
            let p = aliaser.participant(&store, &order, role.parse()?, &email, mode, Utc::now())?;
            let stored = storage.ensure_participants(&[p]).await?;
            print(&created(&stored[0]));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Import => import(settings.aliaser()?, storage).await,
        AliasCommand::Show { alias } => match storage.find_alias(&alias).await? {
            Some(p) => {
                print(&json!({
                    "alias": p.alias,
                    "store": p.store,
                    "order": p.order,
                    "role": p.role,
                    "mode": p.mode,
                    "email": p.email,
                    "created_at": rfc3339_string(p.created_at),
                    "expires_at": rfc3339_string(p.expires_at),
                    "disabled": p.disabled,
                    "active": p.is_active(Utc::now()),
                }));
                Ok(ExitCode::SUCCESS)
            }
            None => bail!("no alias `{alias}`"),
        },
        AliasCommand::Disable { alias } => {
            if !storage.disable_alias(&alias, Utc::now()).await? {
                bail!("no alias `{alias}`");
            }
            print(&json!({ "alias": alias.to_lowercase(), "disabled": true }));
            Ok(ExitCode::SUCCESS)
        }
    }
}
