use super::*;

fn shipped() -> String {
    std::fs::read_to_string(super::super::DEFAULT_CONFIG).unwrap()
}

fn check_text(text: &str, env: &[(&str, &str)]) -> (CheckReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (check_config(&path, &env), dir)
}

fn errors(report: &CheckReport) -> Vec<(Option<String>, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            (
                f.key.clone(),
                f.place.rsplit('/').next().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn shipped_config_has_only_development_warnings() {
    let (report, _dir) = check_text(&shipped(), &[]);
    assert_eq!(report.count(Severity::Error), 0, "{report:#?}");
    let warned: Vec<_> = report
        .findings
        .iter()
        .filter_map(|f| f.key.clone())
        .collect();
    assert_eq!(
        warned,
        ["alias.hmac_key", "storage.encryption_key", "api.token"],
        "{report:#?}"
    );
    assert!(report.findings[0]
        .place
        .ends_with(&format!("relay.toml:{}", line_of(&shipped(), "hmac_key ="))));
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
}

/// Two misspelled keys and a bad duration: all three named at their lines,
/// not only the first.
#[test]
fn every_bad_key_is_named_at_its_line() {
    let text = shipped()
        .replace("max_recipients = 100", "max_recipents = 100")
        .replacen("retry_max = \"1h\"", "retry_max = \"an hour\"", 1)
        + "\n[typo]\nx = 1\n";
    let (report, _dir) = check_text(&text, &[]);
    let found = errors(&report);
    assert_eq!(
        found,
        [
            (
                Some("smtp.max_recipents".into()),
                format!("relay.toml:{}", line_of(&text, "max_recipents"))
            ),
            (
                Some("delivery.retry_max".into()),
                format!("relay.toml:{}", line_of(&text, "retry_max"))
            ),
            (
                Some("typo".into()),
                format!("relay.toml:{}", line_of(&text, "[typo]"))
            ),
        ],
        "{report:#?}"
    );
    assert!(
        report.findings[0]
            .message
            .starts_with("unknown key `smtp.max_recipents`, expected"),
        "the full key: {report:#?}"
    );
}

#[test]
fn syntax_and_missing_fields_are_placed() {
    let (report, _dir) = check_text("[smtp]\nlisten = \n", &[]);
    assert_eq!(
        errors(&report),
        [(None, "relay.toml:2".into())],
        "{report:#?}"
    );
    let text = shipped().replace("hostname = \"ct-relay.localhost\"", "");
    let (report, _dir) = check_text(&text, &[]);
    assert_eq!(errors(&report)[0].0.as_deref(), Some("smtp.hostname"));
}

#[test]
fn overrides_are_checked_and_named() {
    let (report, _dir) = check_text(
        &shipped(),
        &[
            ("CT_RELAY__SMTP__MAX_RECIPENTS", "5"),
            ("CT_RELAY_SMTP__LISTEN", "127.0.0.1:25"),
            ("CT_RELAY__DELIVERY__LEASE", "1s"),
            ("PATH", "/usr/bin"),
        ],
    );
    let found = errors(&report);
    assert_eq!(found.len(), 2, "{report:#?}");
    assert_eq!(found[0].1, "CT_RELAY_SMTP__LISTEN");
    assert_eq!(
        found[1],
        (
            Some("smtp.max_recipents".into()),
            "CT_RELAY__SMTP__MAX_RECIPENTS".into()
        )
    );
    // With the typo gone, the rule between lease and timeout is checked and
    // placed at the variable that broke it.
    let (report, _dir) = check_text(&shipped(), &[("CT_RELAY__DELIVERY__LEASE", "1s")]);
    assert_eq!(
        errors(&report),
        [(
            Some("delivery.lease".into()),
            "CT_RELAY__DELIVERY__LEASE".into()
        )],
        "{report:#?}"
    );
    assert!(report.findings[0].message.contains("11 ×"));
}

#[test]
fn key_files_must_be_readable_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("hmac.key");
    std::fs::write(&key, "k".repeat(40)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = shipped().replace(
        "hmac_key = \"DEVELOPMENT-ONLY-KEY-do-not-use-in-production-0123456789\"",
        &format!("hmac_key_file = \"{}\"", key.display()),
    );
    let (report, _d) = check_text(&text, &[]);
    let first = &report.findings[0];
    assert_eq!(first.severity, Severity::Warning);
    assert!(first.message.contains("mode 644"), "{report:#?}");
    std::fs::remove_file(&key).unwrap();
    let (report, _d) = check_text(&text, &[]);
    assert_eq!(
        errors(&report),
        [(
            Some("alias.hmac_key_file".into()),
            format!("relay.toml:{}", line_of(&text, "hmac_key_file"))
        )],
        "{report:#?}"
    );
}
