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
        /// The store's id (lowercase letters, digits, `-`).
        #[arg(long)]
        store: String,
        /// The order's id in the store.
        #[arg(long)]
        order: String,
        /// The participant's real address (never printed back).
        #[arg(long)]
        email: String,
        /// customer: the buyer; store: the shop itself; contact: a third
        /// party (carrier, ERP) writing about the order.
        #[arg(long, default_value = "customer", value_parser = ["customer", "store", "contact"])]
        role: String,
        /// Default: the store's mask mode.
        #[arg(long, value_parser = ["hard", "soft"])]
        mode: Option<String>,
    },
    /// Read JSON lines {"store","order","role","email","mode"?} on stdin; print one JSON line each.
    Import,
    /// The alias's participant: store, order, role, state; its real
    /// address only with --reveal and --reason, and every reveal is
    /// audited (`ct-relay audit list`).
    Show {
        /// The alias, as mail is sent to it.
        alias: String,
        /// Print the real address too.
        #[arg(long, requires = "reason")]
        reveal: bool,
        /// Why the address is needed (written to the audit).
        #[arg(long, requires = "reveal")]
        reason: Option<String>,
    },
    /// Give the alias's participant a new real address (hard aliases only);
    /// one made undeliverable by hard bounces takes mail again.
    SetAddress {
        /// The alias, as mail is sent to it.
        alias: String,
        /// The new real address.
        #[arg(long)]
        email: String,
    },
    /// Stop an alias from receiving mail (550 5.1.1 from now on).
    Disable {
        /// The alias, as mail is sent to it.
        alias: String,
    },
}

/// Who runs the command, for the audit: the login name, else the user id.
fn operator() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {}", process_uid()))
}

/// The process's user id, as /proc tells it.
fn process_uid() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
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
        AliasCommand::Show {
            alias,
            reveal,
            reason,
        } => {
            let p = match (reveal, reason) {
                (true, Some(reason)) => {
                    let actor = format!("cli:{}", operator());
                    services
                        .reveal(&everyone, &alias, &actor, &reason, Utc::now())
                        .await?
                }
                _ => services.alias(&everyone, &alias).await?,
            };
            let mut shown = json!({
                "alias": p.alias,
                "store": p.store,
                "order": p.order,
                "role": p.role,
                "mode": p.mode,
                "created_at": rfc3339_string(p.created_at),
                "expires_at": rfc3339_string(p.expires_at),
                "disabled": p.disabled,
                "undeliverable": p.undeliverable,
                "active": p.is_active(Utc::now()),
            });
            if reveal {
                shown["email"] = json!(p.email);
            }
            print(&shown);
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
