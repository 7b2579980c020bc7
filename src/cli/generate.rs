//! `ct-relay generate`: man pages and shell completions made from the
//! command definitions, so they never drift from `--help`. The Debian
//! package installs what this writes (scripts/package.sh).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Subcommand};

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Write ct-relay.1 and one page per subcommand (ct-relay-alias-create.1, …).
    ManPages {
        /// The directory to write them in (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write completions for bash (ct-relay.bash), zsh (_ct-relay) and fish
    /// (ct-relay.fish).
    Completions {
        /// The directory to write them in (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: &GenerateCommand) -> anyhow::Result<ExitCode> {
    let written = match cmd {
        GenerateCommand::ManPages { out } => man_pages(out)?,
        GenerateCommand::Completions { out } => completions(out)?,
    };
    super::report::print(&serde_json::json!({ "written": written }));
    Ok(ExitCode::SUCCESS)
}

fn man_pages(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let command = super::Cli::command();
    clap_mangen::generate_to(command, out)
        .with_context(|| format!("cannot write man pages in {}", out.display()))?;
    let mut written: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    written.sort();
    Ok(written)
}

fn completions(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut command = super::Cli::command();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            clap_complete::generate_to(shell, &mut command, "ct-relay", out)
                .with_context(|| format!("cannot write {shell} completions in {}", out.display()))
        })
        .collect()
}
