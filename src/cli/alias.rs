//! `ct-relay alias …`: create, import, show, set-address, disable.

use std::process::ExitCode;

use chrono::Utc;
use clap::Subcommand;
use serde_json::json;

use ct_relay::service::{NewAlias, Scope, Services};
use ct_relay::storage::rfc3339_string;

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
    /// The alias's participant: store, order, role, state.
    Show { alias: String },
    /// Give the alias's participant a new real address (hard aliases only);
    /// one made undeliverable by hard bounces takes mail again.
    SetAddress {
        alias: String,
        /// The new real address.
        #[arg(long)]
        email: String,
    },
    /// Stop an alias from receiving mail (550 5.1.1 from now on).
    Disable { alias: String },
}

pub async fn run(cmd: AliasCommand, services: Services) -> anyhow::Result<ExitCode> {
    let everyone = Scope::all();
    match cmd {
        AliasCommand::Create {
            store,
            order,
            email,
            role,
            mode,
        } => {
            let item = NewAlias {
                store,
                order,
                role: role.parse()?,
                email,
                mode: mode.map(|m| m.parse()).transpose()?,
            };
            let p = services.create_alias(&everyone, item, Utc::now()).await?;
            print(&created(&p));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Import => import(services).await,
        AliasCommand::Show { alias } => {
            let p = services.alias(&everyone, &alias).await?;
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
                "undeliverable": p.undeliverable,
                "active": p.is_active(Utc::now()),
            }));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::SetAddress { alias, email } => {
            let p = services.change_address(&everyone, &alias, &email).await?;
            print(&json!({ "alias": p.alias, "undeliverable": p.undeliverable }));
            Ok(ExitCode::SUCCESS)
        }
        AliasCommand::Disable { alias } => {
            let p = services
                .disable_alias(&everyone, &alias, Utc::now())
                .await?;
            print(&json!({ "alias": p.alias, "disabled": true }));
            Ok(ExitCode::SUCCESS)
        }
    }
}
