//! `ct-relay alias …`: create, import, show, disable.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::Subcommand;
use serde::Deserialize;
use serde_json::json;

use ct_relay::alias::{Aliaser, MaskMode, Participant, Role};
use ct_relay::config::Settings;
use ct_relay::storage::{rfc3339_string, Storage};

use super::report::print;

/// Lines committed per transaction during import.
const IMPORT_CHUNK: usize = 500;

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
        AliasCommand::Import => import(&settings.aliaser()?, storage).await,
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

fn created(p: &Participant) -> serde_json::Value {
    json!({ "alias": p.alias, "mode": p.mode, "expires_at": rfc3339_string(p.expires_at) })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    store: String,
    order: String,
    role: Role,
    email: String,
    #[serde(default)]
    mode: Option<MaskMode>,
}

/// Bad lines are reported with their number and skipped; the batch goes on.
/// Exits 1 when any line failed, after all were read.
async fn import(aliaser: &Aliaser, storage: Arc<dyn Storage>) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut modes: HashMap<String, MaskMode> = HashMap::new();
    let mut chunk: Vec<(usize, Result<Participant, String>)> = Vec::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = prepare(&line, aliaser, storage.as_ref(), &mut modes).await;
        chunk.push((i + 1, parsed));
        if chunk.len() >= IMPORT_CHUNK {
            flush(&mut chunk, storage.as_ref(), &mut ok, &mut failed).await;
        }
    }
    flush(&mut chunk, storage.as_ref(), &mut ok, &mut failed).await;
    eprintln!("ct-relay: imported {ok} aliases, {failed} lines failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn prepare(
    line: &str,
    aliaser: &Aliaser,
    storage: &dyn Storage,
    modes: &mut HashMap<String, MaskMode>,
) -> Result<Participant, String> {
    let l: ImportLine =
        serde_json::from_str(line).map_err(|e| format!("invalid JSON line: {e}"))?;
    let mode = match l.mode {
        Some(m) => m,
        None => match modes.get(&l.store) {
            Some(m) => *m,
            None => {
                let m = storage
                    .store_mode(&l.store)
                    .await
                    .map_err(|e| e.to_string())?;
                modes.insert(l.store.clone(), m);
                m
            }
        },
    };
    aliaser
        .participant(&l.store, &l.order, l.role, &l.email, mode, Utc::now())
        .map_err(|e| e.to_string())
}

async fn flush(
    chunk: &mut Vec<(usize, Result<Participant, String>)>,
    storage: &dyn Storage,
    ok: &mut usize,
    failed: &mut usize,
) {
    let valid: Vec<Participant> = chunk
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().cloned())
        .collect();
    let mut stored = match storage.ensure_participants(&valid).await {
        Ok(rows) => Ok(rows.into_iter()),
        Err(e) => Err(e.to_string()),
    };
    for (line, result) in chunk.drain(..) {
        let outcome = match (result, &mut stored) {
            (Err(e), _) => Err(e),
            (Ok(_), Ok(rows)) => rows.next().ok_or_else(|| "not stored".to_string()),
            (Ok(_), Err(e)) => Err(format!("storage: {e}")),
        };
        match outcome {
            Ok(p) => {
                *ok += 1;
                let mut v = created(&p);
                v["line"] = json!(line);
                print(&v);
            }
            Err(error) => {
                *failed += 1;
                print(&json!({ "line": line, "error": error }));
            }
        }
    }
}
