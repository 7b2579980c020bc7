//! `ct-relay alias import`: JSON lines on stdin, one JSON line out per line
//! in, in the same order. Three stages overlap: a thread reads and parses
//! stdin, a task makes the aliases (the HMAC work), and the main task
//! writes a batch per transaction and prints its results, so the database
//! is never waiting on the parsing. Creation is idempotent: re-importing
//! the same lines changes nothing and prints the same aliases. A bad line
//! gets `{"line": n, "error": …}` and the others go on.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use ct_relay::alias::{MaskMode, Participant, Role};
use ct_relay::service::{NewAlias, Scope, ServiceError, Services};
use ct_relay::storage::rfc3339_string;

/// Lines per transaction: a large one writes each index page it touches
/// once for many lines (a live relay's commits wait for it meanwhile,
/// a few hundred milliseconds).
const BATCH: usize = 20_000;
/// How often a long import says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

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

impl ImportLine {
    fn to_new_alias(&self) -> NewAlias {
        NewAlias {
            store: self.store.clone(),
            order: self.order.clone(),
            role: self.role,
            email: self.email.clone(),
            mode: self.mode,
        }
    }
}

/// A batch of input lines by line number, each parsed or not.
type Parsed = Vec<(usize, Result<ImportLine, String>)>;
/// A batch of input lines by line number, each made into a participant or not.
type Made = Vec<(usize, Result<Participant, String>)>;

/// The JSON line printed for a stored alias (as `alias create` prints it).
pub fn created(p: &Participant) -> serde_json::Value {
    json!({ "alias": p.alias, "mode": p.mode, "expires_at": rfc3339_string(p.expires_at) })
}

/// Exits 1 when any line failed, after all were read.
pub async fn import(services: Services) -> anyhow::Result<ExitCode> {
    let storage = services.storage.clone();
    let (parsed_tx, parsed_rx) = mpsc::channel::<Parsed>(2);
    let reader = std::thread::spawn(move || read_stdin(parsed_tx));
    let (made_tx, mut made_rx) = mpsc::channel::<Made>(1);
    let maker = tokio::spawn(make(parsed_rx, made_tx, services));

    let mut out = BufWriter::new(std::io::stdout());
    let mut progress = Progress::new();
    while let Some(batch) = made_rx.recv().await {
        // The participants move to storage; each line keeps its error, if any.
        let mut valid: Vec<Participant> = Vec::with_capacity(batch.len());
        let lines: Vec<(usize, Option<String>)> = batch
            .into_iter()
            .map(|(line, made)| match made {
                Ok(p) => {
                    valid.push(p);
                    (line, None)
                }
                Err(e) => (line, Some(e)),
            })
            .collect();
        let mut stored = match storage.ensure_participants(&valid).await {
            Ok(rows) => Ok(rows.into_iter()),
            Err(e) => Err(e.to_string()),
        };
        for (line, error) in lines {
            let outcome = match (error, &mut stored) {
                (Some(e), _) => Err(e),
                (None, Ok(rows)) => rows.next().ok_or_else(|| "not stored".to_string()),
                (None, Err(e)) => Err(format!("storage: {e}")),
            };
            let printed = match outcome {
                Ok(p) => {
                    progress.ok += 1;
                    let mut v = created(&p);
                    v["line"] = json!(line);
                    v
                }
                Err(error) => {
                    progress.failed += 1;
                    json!({ "line": line, "error": error })
                }
            };
            serde_json::to_writer(&mut out, &printed)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        progress.tick();
    }
    maker.await?;
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the stdin reader panicked"))??;
    // A bulk load leaves a long write-ahead log: empty it now.
    storage.compact(false).await?;
    progress.done();
    Ok(if progress.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Read and parse stdin a batch at a time; blank lines are skipped, a
/// line that is not UTF-8 is an error of its own.
fn read_stdin(batches: mpsc::Sender<Parsed>) -> anyhow::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut batch = Vec::with_capacity(BATCH);
    let mut bytes = Vec::new();
    let mut number = 0;
    loop {
        bytes.clear();
        if stdin
            .read_until(b'\n', &mut bytes)
            .context("cannot read stdin")?
            == 0
        {
            break;
        }
        number += 1;
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => serde_json::from_str(line).map_err(|e| format!("invalid JSON line: {e}")),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        batch.push((number, parsed));
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.blocking_send(full).is_err() {
                return Ok(()); // the writer stopped; it says why
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.blocking_send(batch);
    }
    Ok(())
}

/// Make each parsed line's participant, in the store's mode unless the
/// line names one, by the rules alias creation has everywhere.
async fn make(mut parsed: mpsc::Receiver<Parsed>, made: mpsc::Sender<Made>, services: Services) {
    while let Some(batch) = parsed.recv().await {
        let (numbers, items): (Vec<usize>, Vec<NewAlias>) = batch
            .iter()
            .filter_map(|(n, line)| line.as_ref().ok().map(|l| (*n, l.to_new_alias())))
            .unzip();
        let mut prepared = services
            .prepare_aliases(&Scope::all(), &items, Utc::now())
            .await
            .into_iter();
        let mut numbers = numbers.into_iter();
        let batch: Made = batch
            .into_iter()
            .map(|(n, line)| {
                let made = line.and_then(|_| {
                    debug_assert_eq!(numbers.next(), Some(n));
                    match prepared.next().expect("a result per parsed line") {
                        Ok(p) => Ok(p),
                        Err(ServiceError::Storage(e)) => Err(format!("storage: {e}")),
                        Err(e) => Err(e.to_string()),
                    }
                });
                (n, made)
            })
            .collect();
        if made.send(batch).await.is_err() {
            break;
        }
    }
}

/// Counts, and a line on stderr every few seconds while they grow.
struct Progress {
    ok: usize,
    failed: usize,
    started: Instant,
    said: Instant,
}

impl Progress {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            ok: 0,
            failed: 0,
            started: now,
            said: now,
        }
    }

    fn rate(&self) -> f64 {
        (self.ok + self.failed) as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    fn tick(&mut self) {
        if self.said.elapsed() >= PROGRESS_EVERY {
            self.said = Instant::now();
            eprintln!(
                "ct-relay: import: {} lines ({} failed), {:.0} lines/s",
                self.ok + self.failed,
                self.failed,
                self.rate()
            );
        }
    }

    fn done(&self) {
        eprintln!(
            "ct-relay: imported {} aliases, {} lines failed ({:.1} s, {:.0} lines/s)",
            self.ok,
            self.failed,
            self.started.elapsed().as_secs_f64(),
            self.rate()
        );
    }
}
