//! DKIM: a key made by `ct-relay dkim generate` signs what the relay
//! delivers, and mail-auth verifies the delivered message against the DNS
//! record the command printed. From is an alias under the signing domain,
//! so the signature aligns for DMARC.

mod common;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{wait_until, Backend, Relay, Sink, SmtpClient};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

/// The DNS the verifier sees: only what the test put there.
#[derive(Default)]
struct Zone(Mutex<HashMap<String, Txt>>);

impl ResolverCache<String, Txt> for Zone {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }
    fn insert(&self, key: String, value: Txt, _valid_until: Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

async fn delivered_mail_carries_a_signature_that_verifies(backend: Backend) {
    for algorithm in ["ed25519", "rsa"] {
        let sink = Sink::start().await;
        let mut relay = Relay::with_smarthost(backend, sink.addr);
        let key_file = relay.dir.path().join("dkim.pem");
        let key_path = key_file.to_str().unwrap().to_string();
        let made = relay.cli(&[
            "dkim",
            "generate",
            "--selector",
            "s1",
            "--algorithm",
            algorithm,
            "--out",
            &key_path,
        ]);
        assert_eq!(made["dns_name"], "s1._domainkey.ct.test");
        let txt = made["dns_txt"].as_str().unwrap().to_string();
        assert!(
            !made.to_string().contains("PRIVATE KEY"),
            "the key is not printed"
        );
        relay.set_env("CT_RELAY__DKIM__SELECTOR", "s1");
        relay.set_env("CT_RELAY__DKIM__PRIVATE_KEY_FILE", &key_path);
        let alias = relay.create_alias("acme", "8001-01", "customer", "buyer@example.com");
        relay.start().await;

        let message = format!(
            "From: Shop <sac@acme-store.com>\r\nTo: {alias}\r\nSubject: Signed\r\n\
             Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@acme-store.com>\r\n\r\n\
             Body line one.\r\nBody line two.\r\n"
        );
        let mut c = SmtpClient::ready(relay.smtp).await;
        assert_eq!(
            c.send_mail("sac@acme-store.com", &[&alias], &message)
                .await
                .code,
            250
        );
        assert!(wait_until(Duration::from_secs(10), || sink.received().len() == 1).await);
        let delivered = sink.received()[0].data.clone();
        assert!(delivered.starts_with(b"DKIM-Signature: "), "{algorithm}");

        let zone = Zone::default();
        for name in ["s1._domainkey.ct.test.", "s1._domainkey.ct.test"] {
            zone.insert(
                name.into(),
                Txt::from(DomainKey::parse(txt.as_bytes()).expect("the printed record parses")),
                Instant::now() + Duration::from_secs(60),
            );
        }
        let verifier =
            MessageAuthenticator::new(ResolverConfig::default(), ResolverOpts::default()).unwrap();
        let parsed = AuthenticatedMessage::parse(&delivered).unwrap();
        let results = verifier
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&zone))
            .await;
        assert_eq!(results.len(), 1, "{algorithm}");
        assert_eq!(results[0].result(), &DkimResult::Pass, "{algorithm}");
        let from = String::from_utf8_lossy(&delivered)
            .lines()
            .find(|l| l.starts_with("From:"))
            .unwrap()
            .to_string();
        assert!(
            from.contains("@ct.test>"),
            "From is an alias under d=: {from}"
        );

        // A changed body no longer verifies.
        let mut tampered = delivered.clone();
        let at = tampered.windows(8).position(|w| w == b"line two").unwrap();
        tampered[at] = b'L';
        let parsed = AuthenticatedMessage::parse(&tampered).unwrap();
        let results = verifier
            .verify_dkim(Parameters::new(&parsed).with_txt_cache(&zone))
            .await;
        assert_ne!(
            results[0].result(),
            &DkimResult::Pass,
            "{algorithm}: a tampered body"
        );
    }
}

async fn an_unusable_key_stops_the_relay_with_a_clear_error(backend: Backend) {
    let sink = Sink::start().await;
    let relay = Relay::with_smarthost(backend, sink.addr);
    let bad = relay.dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let bad = bad.to_str().unwrap().to_string();
    let missing = relay
        .dir
        .path()
        .join("missing.pem")
        .to_str()
        .unwrap()
        .to_string();
    for (path, says) in [(bad.as_str(), "PEM"), (missing.as_str(), "missing.pem")] {
        let relay = relay
            .another_node()
            .env("CT_RELAY__DKIM__SELECTOR", "s1")
            .env("CT_RELAY__DKIM__PRIVATE_KEY_FILE", path);
        let (ok, _, err) = relay.cli_raw(&["serve"], None);
        assert!(!ok && err.contains(says), "{err}");
    }
}

on_both_backends!(
    delivered_mail_carries_a_signature_that_verifies,
    an_unusable_key_stops_the_relay_with_a_clear_error,
);
