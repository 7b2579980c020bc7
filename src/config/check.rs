//! `ct-relay check-config`: every problem of a configuration at once, each
//! named by its key and placed at its file line or environment variable,
//! where `Settings::load` stops at the first.

use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue, Deserializer};

use super::{ConfigError, Settings, ENV_PREFIX};
use crate::private_files::{mode_granting, OTHERS_READ};
use crate::server::tls::TlsFiles;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The relay refuses to start with it.
    Error,
    /// The relay starts, but should not in production.
    Warning,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The setting, as `section.key`, when one is to blame.
    pub key: Option<String>,
    /// Where it was set: `file:line`, an environment variable, or the file
    /// alone when the key has its default.
    pub place: String,
    /// What is wrong.
    pub message: String,
}

/// What `check_config` found, in the order it looked.
#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    /// Every finding.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Findings of this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// Check the file at `path` with the overrides among `env` (the process's
/// variables): its syntax, every key and value, the rules between values,
/// the key, certificate and DKIM files, and secrets that are the shipped
/// development ones.
pub fn check_config(path: &Path, env: &[(String, String)]) -> CheckReport {
    let mut check = Check {
        path,
        text: String::new(),
        overrides: config::Map::new(),
        report: CheckReport::default(),
    };
    check.run(env);
    check.report
}

/// Variables that look meant for the relay but are not read: an override is
/// `CT_RELAY__SECTION__KEY`, with two underscores after `CT_RELAY`.
pub fn misspelled_overrides(env: &[(String, String)]) -> Vec<String> {
    env.iter()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_ascii_uppercase().starts_with(ENV_PREFIX)
                && !name.starts_with(&format!("{ENV_PREFIX}__"))
        })
        .cloned()
        .collect()
}

struct Check<'a> {
    path: &'a Path,
    text: String,
    overrides: config::Map<String, String>,
    report: CheckReport,
}

impl Check<'_> {
    fn run(&mut self, env: &[(String, String)]) {
        self.text = match std::fs::read_to_string(self.path) {
            Ok(text) => text,
            Err(e) => {
                let place = self.path.display().to_string();
                return self.error(None, place, format!("cannot read the file: {e}"));
            }
        };
        for name in misspelled_overrides(env) {
            self.error(
                None,
                name.clone(),
                format!("`{name}` is not read: overrides are spelled {ENV_PREFIX}__SECTION__KEY, two underscores after {ENV_PREFIX}"),
            );
        }
        let prefix = format!("{ENV_PREFIX}__");
        self.overrides = env
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .cloned()
            .collect();
        if !self.file_is_typed() || !self.overrides_are_typed() {
            return;
        }
        let mut settings = match Settings::read(self.path, Some(self.overrides.clone())) {
            Ok(settings) => settings,
            Err(e) => {
                let place = self.path.display().to_string();
                return self.error(None, place, chain(&e));
            }
        };
        if let Err(e) = settings.read_secret_files() {
            return self.error_naming_key(e);
        }
        for problem in settings.problems() {
            let place = self.place_of(&problem.key);
            self.error(Some(problem.key), place, problem.message);
        }
        self.files_and_keys(&settings);
        self.development_secrets(&settings);
    }

    /// Type the file alone, naming each bad key at its line: after a bad
    /// key the check goes on without it, so one run lists them all.
    fn file_is_typed(&mut self) -> bool {
        let text = self.text.clone();
        let mut table = match DeTable::parse(&text) {
            Ok(table) => table,
            Err(e) => {
                let place = self.place_of_span(e.span());
                self.error(None, place, first_line(e.message()));
                return false;
            }
        };
        let mut clean = true;
        for _ in 0..100 {
            let Err(e) = Settings::deserialize(Deserializer::from(table.clone())) else {
                break;
            };
            clean = false;
            let place = self.place_of_span(e.span());
            let message = first_line(e.message());
            let Some(key) = e.span().and_then(|span| locate(table.get_ref(), &span, "")) else {
                self.error(None, place, message);
                break;
            };
            if let Some(field) = missing_field(&message) {
                let key = if key.is_empty() {
                    field
                } else {
                    format!("{key}.{field}")
                };
                self.error(Some(key), place, message);
                break;
            }
            // The full key: `smtp.max_recipents`, not the field alone.
            let message = match message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
            {
                Some((_, rest)) => format!("unknown key `{key}`{rest}"),
                None => format!("{key}: {message}"),
            };
            self.error(Some(key.clone()), place, message);
            if !remove(table.get_mut(), &key) {
                break;
            }
        }
        // Tables are typed in name order; report in the file's.
        self.report
            .findings
            .sort_by_key(|f| line_of_place(&f.place));
        clean
    }

    /// Each override on top of the file alone, so a bad one is named.
    fn overrides_are_typed(&mut self) -> bool {
        let mut clean = true;
        for (name, value) in self.overrides.clone() {
            let one = config::Map::from([(name.clone(), value)]);
            if let Err(e) = Settings::read(self.path, Some(one)) {
                clean = false;
                self.error(Some(key_of_variable(&name)), name, chain(&e));
            }
        }
        clean
    }

    /// Files the configuration names, read as `serve` reads them.
    fn files_and_keys(&mut self, settings: &Settings) {
        if let Err(e) = settings.aliaser() {
            self.error_naming_key(e);
        }
        if let Err(e) = settings.dkim_signing() {
            self.error_naming_key(e);
        } else if let Err(e) = settings.arc_sealing() {
            self.error_naming_key(e);
        }
        match (&settings.smtp.tls_cert_file, &settings.smtp.tls_key_file) {
            (Some(cert), Some(key)) => {
                if let Err(e) = TlsFiles::load(cert, key) {
                    let place = self.place_of("smtp.tls_cert_file");
                    self.error(Some("smtp.tls_cert_file".into()), place, e.to_string());
                }
            }
            (None, None) => {}
            _ => {
                let place = self.place_of("smtp.tls_cert_file");
                self.error(
                    Some("smtp.tls_cert_file".into()),
                    place,
                    "smtp.tls_cert_file and smtp.tls_key_file go together".into(),
                );
            }
        }
        let key_files = [
            (
                "alias.hmac_key_file",
                settings.alias.hmac_key_file.as_deref(),
            ),
            (
                "storage.encryption_key_file",
                settings.storage.encryption_key_file.as_deref(),
            ),
            ("api.token_file", settings.api.token_file.as_deref()),
            ("smtp.tls_key_file", settings.smtp.tls_key_file.as_deref()),
            (
                "dkim.private_key_file",
                settings
                    .dkim
                    .as_ref()
                    .and_then(|d| d.private_key_file.as_deref()),
            ),
        ];
        for (key, file) in key_files {
            let Some(file) = file else { continue };
            if let Some(mode) = mode_granting(file, OTHERS_READ) {
                let place = self.place_of(key);
                self.warning(
                    key,
                    place,
                    format!(
                        "{key} {} is readable by every user (mode {mode:o}); make it 0600 or 0640",
                        file.display()
                    ),
                );
            }
        }
    }

    fn development_secrets(&mut self, settings: &Settings) {
        if settings.uses_development_key() {
            let place = self.place_of("alias.hmac_key");
            self.warning("alias.hmac_key", place, "alias.hmac_key is the shipped development key: anyone can make this relay's aliases; set a secret one".into());
        }
        if settings.storage.uses_development_encryption_key() {
            let place = self.place_of("storage.encryption_key");
            self.warning("storage.encryption_key", place, "storage.encryption_key is the shipped development key: the database can be read by anyone who has it; set a secret one".into());
        } else if settings.storage.encryption_key.is_empty() {
            let place = self.place_of("storage.encryption_key");
            self.warning("storage.encryption_key", place, "storage.encryption_key is not set: real addresses and messages are stored in clear".into());
        }
        if settings.uses_development_api_token() {
            let place = self.place_of("api.token");
            self.warning("api.token", place, "an API token is the shipped development token: anyone can call the API and log in to the console; set a secret one".into());
        }
        if !settings.auth.check {
            let place = self.place_of("auth.check");
            self.warning(
                "auth.check",
                place,
                "auth.check = false: anyone may write as any participant; development only".into(),
            );
        }
    }

    /// Where `key` was set: its override, its line in the file, or the file.
    fn place_of(&self, key: &str) -> String {
        let variable = variable_of_key(key);
        if self.overrides.contains_key(&variable) {
            return variable;
        }
        let span = DeTable::parse(&self.text)
            .ok()
            .and_then(|table| span_of(table.get_ref(), key));
        self.place_of_span(span)
    }

    fn place_of_span(&self, span: Option<Range<usize>>) -> String {
        match span {
            Some(span) => {
                let before = &self.text[..span.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                format!("{}:{line}", self.path.display())
            }
            None => self.path.display().to_string(),
        }
    }

    /// An error whose message starts with the key it is about.
    fn error_naming_key(&mut self, e: ConfigError) {
        let message = match e {
            ConfigError::Invalid(m) => m,
            other => chain(&other),
        };
        let key = message
            .split([' ', ':', '['])
            .next()
            .filter(|word| word.contains('.'))
            .map(str::to_string);
        let place = match &key {
            Some(key) => self.place_of(key),
            None => self.path.display().to_string(),
        };
        self.error(key, place, message);
    }

    fn error(&mut self, key: Option<String>, place: String, message: String) {
        self.report.findings.push(Finding {
            severity: Severity::Error,
            key,
            place,
            message,
        });
    }

    fn warning(&mut self, key: &str, place: String, message: String) {
        self.report.findings.push(Finding {
            severity: Severity::Warning,
            key: Some(key.to_string()),
            place,
            message,
        });
    }
}

/// The dotted key whose name or value holds `span`, the deepest one; the
/// empty key when only the whole file does.
fn locate(table: &DeTable<'_>, span: &Range<usize>, prefix: &str) -> Option<String> {
    let holds = |outer: Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let mut holding_table = None;
    for (name, value) in table.iter() {
        let key = if prefix.is_empty() {
            name.get_ref().to_string()
        } else {
            format!("{prefix}.{}", name.get_ref())
        };
        if let DeValue::Table(inner) = value.get_ref() {
            // A header table's span may cover only its header line.
            match locate(inner, span, &key) {
                Some(deeper) if deeper != key => return Some(deeper),
                _ if holds(name.span()) || holds(value.span()) => holding_table = Some(key),
                _ => {}
            }
        } else if holds(name.span()) || holds(value.span()) {
            return Some(key);
        }
    }
    holding_table.or_else(|| Some(prefix.to_string()))
}

/// Where the dotted `key` is named in the file.
fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let (first, rest) = match key.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (key, None),
    };
    let (name, value) = table.get_key_value(first)?;
    match (rest, value.get_ref()) {
        (Some(rest), DeValue::Table(inner)) => span_of(inner, rest).or(Some(name.span())),
        _ => Some(name.span()),
    }
}

/// Take the dotted `key` out of the table; false when it is not there.
fn remove(table: &mut DeTable<'_>, key: &str) -> bool {
    match key.split_once('.') {
        None => table.remove(key).is_some(),
        Some((first, rest)) => match table.get_mut(first).map(|v| v.get_mut()) {
            Some(DeValue::Table(inner)) => remove(inner, rest),
            _ => false,
        },
    }
}

/// `missing field `x`` → `x`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// `CT_RELAY__SMTP__MAX_RECIPIENTS` → `smtp.max_recipients`.
fn key_of_variable(name: &str) -> String {
    name.trim_start_matches(ENV_PREFIX)
        .trim_start_matches("__")
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join(".")
}

/// `smtp.max_recipients` → `CT_RELAY__SMTP__MAX_RECIPIENTS`.
fn variable_of_key(key: &str) -> String {
    format!(
        "{ENV_PREFIX}__{}",
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// The line of a `file:line` place (0 for others, which come first).
fn line_of_place(place: &str) -> usize {
    place
        .rsplit_once(':')
        .and_then(|(_, line)| line.parse().ok())
        .unwrap_or(0)
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
