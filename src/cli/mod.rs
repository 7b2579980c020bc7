//! Command definitions and dispatch. Every command prints JSON where it
//! prints data, and errors as one line on stderr with a non-zero exit.

mod alias;
mod check;
mod generate;
mod import;
mod logging;
mod queue;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use ct_relay::config::{Settings, DEFAULT_CONFIG};
use ct_relay::delivery::dkim::KeyAlgorithm;
use ct_relay::service::Services;
use ct_relay::storage::{self, Storage};

#[derive(Debug, Parser)]
#[command(
    name = "ct-relay",
    version,
    about = "Mail relay that masks e-mail addresses per order"
)]
pub struct Cli {
    /// Configuration file (TOML); keys can be overridden as CT_RELAY__SECTION__KEY.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: SMTP listener and delivery workers.
    Serve,
    /// Apply database migrations.
    Migrate,
    /// Create, import, show and disable aliases.
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Per-store settings.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Print an order's timeline, oldest entry first.
    Timeline {
        /// The order's id in its store.
        order: String,
        /// Needed only when two stores use the same order id.
        #[arg(long)]
        store: Option<String>,
        /// Print one page of this many entries (1 to 1000) and the cursor of
        /// the next; without it, every entry.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
        /// Start after this entry (a page's `next`).
        #[arg(long)]
        after: Option<String>,
    },
    /// Inspect and nudge the delivery queue.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Delete expired aliases and data past retention (serve does it hourly),
    /// then give freed space back to the file system (SQLite).
    Purge,
    /// DKIM keys for signing outgoing mail.
    #[command(subcommand)]
    Dkim(DkimCommand),
    /// The audit of reveals of real addresses.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Legal hold of an order: kept past retention until lifted.
    #[command(subcommand)]
    Order(OrderCommand),
    /// A data subject's rights: what is held about a person, erasing them.
    #[command(subcommand)]
    Subject(SubjectCommand),
    /// The keys real addresses and message text are sealed under at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the configuration file and CT_RELAY__* overrides without
    /// starting: every bad key with its file and line (or variable), rules
    /// between values, key and certificate files, development secrets.
    /// Exits 0 when clean, 1 on errors, 2 on warnings only.
    CheckConfig,
    /// Write the man pages or shell completions made from these commands.
    #[command(subcommand)]
    Generate(generate::GenerateCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Seal every stored address and message again under
    /// storage.encryption_key (in clear when it is unset), a batch at a
    /// time, while the relay serves. Start every relay with the new key
    /// (the old one in storage.encryption_old_keys) first; drop the old
    /// key from the configuration once this reports `"left": 0`.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100000))]
        batch: u32,
    },
}

#[derive(Debug, Subcommand)]
enum SubjectCommand {
    /// Every order, alias and timeline entry of one real address, as JSON.
    Export {
        /// The person's real address.
        #[arg(long)]
        email: String,
        /// Only this store's orders.
        #[arg(long)]
        store: Option<String>,
    },
    /// Erase one real address from every order not on legal hold: its
    /// aliases stop, the address is removed everywhere, the text of its
    /// messages is deleted. Prints what was erased and the held orders.
    Erase {
        /// The person's real address.
        #[arg(long)]
        email: String,
        /// Only this store's orders.
        #[arg(long)]
        store: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum OrderCommand {
    /// Put an order on legal hold: purge (and erasure) skip it.
    Hold {
        /// The order's id in its store.
        order: String,
        /// The order's store.
        #[arg(long)]
        store: String,
        /// Why (a dispute, a court order), 1 to 500 characters.
        #[arg(long)]
        reason: String,
    },
    /// Lift an order's legal hold.
    Release {
        /// The order's id in its store.
        order: String,
        /// The order's store.
        #[arg(long)]
        store: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Reveals of real addresses, newest first: who, when, which alias, why.
    List {
        /// Print at most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
enum DkimCommand {
    /// Make a key, write it to --out (mode 0600, never overwritten) and print
    /// the DNS TXT record to publish.
    Generate {
        /// The selector: the record goes at <selector>._domainkey.<alias.domain>.
        #[arg(long)]
        selector: String,
        /// The kind of key.
        #[arg(long, value_enum, default_value_t = KeyAlgorithm::Rsa)]
        algorithm: KeyAlgorithm,
        /// Where to write the private key (PEM).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Set the mask mode used for aliases created from now on.
    SetMode {
        /// The store's id.
        store: String,
        /// hard: 32-hex aliases; soft: readable ones spelling the address.
        #[arg(value_parser = ["hard", "soft"])]
        mode: String,
    },
    /// The store's mask mode and retention, as JSON.
    Show {
        /// The store's id.
        store: String,
    },
    /// Keep the store's mail and timelines for less than storage.retention
    /// (`30d`, `12h`), or `global` for as long as that.
    SetRetention {
        /// The store's id.
        store: String,
        /// A duration up to storage.retention, or `global`.
        retention: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::CheckConfig => return Ok(check::run(&cli.config)),
        Command::Generate(cmd) => return generate::run(cmd),
        _ => {}
    }
    let settings = Settings::load(&cli.config).map_err(|e| check::placed(&cli.config, e))?;
    if let Command::Dkim(DkimCommand::Generate {
        selector,
        algorithm,
        out,
    }) = &cli.command
    {
        return dkim_generate(&settings, selector, *algorithm, out);
    }
    if !matches!(cli.command, Command::Serve) {
        // `serve` logs it; the other commands say it here.
        let env: Vec<(String, String)> = std::env::vars().collect();
        for name in ct_relay::config::misspelled_overrides(&env) {
            eprintln!(
                "ct-relay: warning: {name} is not read: overrides are spelled CT_RELAY__SECTION__KEY"
            );
        }
    }
    logging::init(&settings.log, matches!(cli.command, Command::Serve))?;
    match cli.command {
        Command::Serve => {
            ct_relay::daemon::serve(settings, &cli.config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open(&settings).await?;
            report::print(&serde_json::json!({ "migrated": true }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Alias(cmd) => alias::run(cmd, services(&settings).await?).await,
        Command::Store(cmd) => report::store(cmd, services(&settings).await?).await,
        Command::Timeline {
            order,
            store,
            limit,
            after,
        } => {
            let page = report::Page { limit, after };
            report::timeline(&order, store, page, services(&settings).await?).await
        }
        Command::Queue(cmd) => queue::run(cmd, &settings, open(&settings).await?).await,
        Command::Dkim(_) | Command::CheckConfig | Command::Generate(_) => {
            unreachable!("handled above, without storage")
        }
        Command::Order(cmd) => {
            let services = services(&settings).await?;
            let everyone = ct_relay::service::Scope::all();
            let shown = match cmd {
                OrderCommand::Hold {
                    order,
                    store,
                    reason,
                } => {
                    let hold = services
                        .hold_order(&everyone, (&store, &order), &reason, chrono::Utc::now())
                        .await?;
                    serde_json::json!({ "store": store, "order": order, "held": true,
                        "held_at": storage::rfc3339_string(hold.held_at), "reason": hold.reason })
                }
                OrderCommand::Release { order, store } => {
                    let was = services.release_order(&everyone, (&store, &order)).await?;
                    serde_json::json!({ "store": store, "order": order, "held": false, "was_held": was })
                }
            };
            report::print(&shown);
            Ok(ExitCode::SUCCESS)
        }
        Command::Subject(SubjectCommand::Export { email, store }) => {
            let export = services(&settings)
                .await?
                .export_subject(&ct_relay::service::Scope::all(), &email, store.as_deref())
                .await?;
            report::print(&export);
            Ok(ExitCode::SUCCESS)
        }
        Command::Subject(SubjectCommand::Erase { email, store }) => {
            let erasure = services(&settings)
                .await?
                .erase_subject(&ct_relay::service::Scope::all(), &email, store.as_deref())
                .await?;
            report::print(&erasure);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(KeysCommand::Rotate { batch }) => {
            let storage = open(&settings).await?;
            let mut last = std::time::Instant::now();
            let rotation =
                storage::rotation::rotate(storage.as_ref(), batch, |table, read, resealed| {
                    if last.elapsed() >= std::time::Duration::from_secs(1) {
                        eprintln!(
                            "{}: {read} rows read, {resealed} sealed again",
                            table.name()
                        );
                        last = std::time::Instant::now();
                    }
                })
                .await?;
            report::print(&rotation);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::List { limit }) => {
            let reveals = open(&settings).await?.reveals(limit).await?;
            report::print(&serde_json::json!({ "reveals": reveals }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge => {
            let storage = open(&settings).await?;
            let removed = storage::purge::purge(storage.as_ref(), &settings.storage, true).await?;
            report::print(&removed);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn dkim_generate(
    settings: &Settings,
    selector: &str,
    algorithm: KeyAlgorithm,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if selector.is_empty() || selector.len() > 63 || !selector.chars().all(valid) {
        anyhow::bail!("--selector `{selector}` must be 1 to 63 letters, digits or hyphens");
    }
    let key = ct_relay::delivery::dkim::generate(algorithm)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it is never overwritten)", out.display()))?;
    file.write_all(key.private_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;
    let domain = &settings.alias.domain;
    report::print(&serde_json::json!({
        "domain": domain,
        "selector": selector,
        "private_key_file": out,
        "dns_name": format!("{selector}._domainkey.{domain}"),
        "dns_txt": key.txt,
        "config": format!("[dkim]\nselector = \"{selector}\"\nprivate_key_file = \"{}\"", out.display()),
    }));
    Ok(ExitCode::SUCCESS)
}

/// The rules shared with the HTTP API, over the configured storage.
async fn services(settings: &Settings) -> anyhow::Result<Services> {
    let aliaser = settings.aliaser()?;
    Ok(Services::new(settings, open(settings).await?, aliaser))
}

async fn open(settings: &Settings) -> anyhow::Result<Arc<dyn Storage>> {
    storage::open(&settings.storage)
        .await
        .context("cannot open storage")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `--help`, the man pages and the completions are made from these
    /// definitions: every command and argument says what it is.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let command = super::Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&command, "ct-relay", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
