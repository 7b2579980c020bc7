//! `ct-relay check-config`: findings on stderr, one a line as
//! `place: severity: message`, and the report as JSON on stdout.

use std::path::Path;
use std::process::ExitCode;

use ct_relay::config::{check_config, Severity};

/// Exit status: 0 clean, 1 when the relay would refuse to start, 2 when it
/// would start with warnings (what a packaged unit refuses).
pub fn run(path: &Path) -> ExitCode {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let report = check_config(path, &env);
    for f in &report.findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        eprintln!("{}: {severity}: {}", f.place, f.message);
    }
    let errors = report.count(Severity::Error);
    let warnings = report.count(Severity::Warning);
    super::report::print(&serde_json::json!({
        "config": path,
        "errors": errors,
        "warnings": warnings,
        "findings": report.findings,
    }));
    if errors > 0 {
        ExitCode::from(1)
    } else if warnings > 0 {
        ExitCode::from(2)
    } else {
        eprintln!("{}: configuration OK", path.display());
        ExitCode::SUCCESS
    }
}

/// Why the configuration could not be loaded, placed: the errors
/// `check-config` finds, each at its `file:line` or variable with the full
/// key; else `error` as it was.
pub fn placed(path: &Path, error: ct_relay::config::ConfigError) -> anyhow::Error {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let report = check_config(path, &env);
    let errors: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.place, f.message))
        .collect();
    if errors.is_empty() {
        error.into()
    } else {
        anyhow::anyhow!("{}", errors.join("\n"))
    }
}
