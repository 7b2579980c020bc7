use super::*;

#[test]
fn shipped_default_config_loads() {
    let s = Settings::load(Path::new(DEFAULT_CONFIG)).unwrap();
    assert_eq!(s.delivery.transport, TransportKind::File);
    assert!(s.storage.url.starts_with("sqlite:"));
    assert!(s.uses_development_key());
    s.aliaser().unwrap();
}

#[test]
fn short_key_is_a_clear_error() {
    let mut s = Settings::load(Path::new(DEFAULT_CONFIG)).unwrap();
    s.alias.hmac_key = Secret::new("short");
    let err = s.aliaser().unwrap_err().to_string();
    assert!(err.contains("at least 32"), "{err}");
    s.alias.hmac_key = Secret::default();
    assert!(s.aliaser().unwrap_err().to_string().contains("not set"));
}

#[test]
fn secrets_are_not_in_debug_output() {
    let s = Settings::load(Path::new(DEFAULT_CONFIG)).unwrap();
    let printed = format!("{s:?}");
    assert!(!printed.contains(DEV_KEY_MARKER), "{printed}");
    assert!(printed.contains("<redacted>"));
}

#[test]
fn unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = std::fs::read_to_string(DEFAULT_CONFIG).unwrap() + "\n[typo]\nx = 1\n";
    std::fs::write(&path, text).unwrap();
    let err = Settings::load(&path).unwrap_err();
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("typo"), "{cause}");
}

/// A lease shorter than one attempt could take, or no heartbeat, is
/// refused at start with the key named.
#[test]
fn delivery_lease_and_heartbeat_are_checked() {
    let mut s = Settings::load(Path::new(DEFAULT_CONFIG)).unwrap();
    s.delivery.lease = Duration::from_secs(1);
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("delivery.lease") && err.contains("11"),
        "{err}"
    );
    s.delivery.lease = Duration::from_secs(900);
    s.delivery.heartbeat = Duration::ZERO;
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("delivery.heartbeat"), "{err}");
    s.delivery.heartbeat = Duration::from_secs(10);
    s.validate().unwrap();
}

#[test]
fn transport_names_are_the_ones_the_config_takes() {
    for kind in [
        TransportKind::File,
        TransportKind::Smarthost,
        TransportKind::Mx,
    ] {
        let parsed: TransportKind = serde_json::from_value(kind.as_str().into()).unwrap();
        assert_eq!(parsed, kind);
    }
}
