//! MTA-STS (RFC 8461) for the mx transport: a recipient domain that
//! publishes `_mta-sts.<domain>` TXT (`v=STSv1; id=…`) serves its policy
//! at `https://mta-sts.<domain>/.well-known/mta-sts.txt`. Under `enforce`,
//! mail goes only to MX hosts the policy names and only over STARTTLS with
//! a certificate valid for that host (else it waits and is retried);
//! under `testing` it is delivered as before and what `enforce` would
//! have refused is logged and counted. Policies are cached for their
//! `max_age` and fetched again when the TXT record's id changes; a cached
//! policy outlives a vanished TXT record or a failed fetch (RFC 8461 5.1).
//! A domain found without a policy (no record, or a policy that could not
//! be fetched) is asked again after five minutes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::MtaSts as StsRecord;

/// A policy file larger than this is refused (RFC 8461 3.3 suggests 64 KiB).
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// The longest `max_age` honoured (RFC 8461 3.2: 31557600 s).
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Fetching the policy may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A domain found without a policy is asked again after this long: most
/// domains have none, and one question per delivery would be waste. A
/// policy published meanwhile applies from the next question on.
const NO_POLICY_FOR: Duration = Duration::from_secs(300);

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only to matching MX hosts, only over verified TLS.
    Enforce,
    /// Deliver as usual; report what `enforce` would refuse.
    Testing,
    /// No policy (a domain withdrawing one).
    None,
}

/// A recipient domain's policy file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `mode:`.
    pub mode: Mode,
    /// `mx:` patterns, lowercase: a host name, or `*.` and a domain (one
    /// leftmost label).
    pub mx: Vec<String>,
    /// `max_age:`, capped.
    pub max_age: Duration,
}

impl Policy {
    /// The policy in `text` (RFC 8461 3.2): `key: value` lines, CRLF or LF.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode `{other}`")),
                    })
                }
                "max_age" => {
                    let secs: u64 = value.parse().map_err(|_| "max_age is not a number")?;
                    max_age = Some(Duration::from_secs(secs.min(MAX_AGE_LIMIT)));
                }
                "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("not an STSv1 policy".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Self { mode, mx, max_age })
    }

    /// Whether MX host `host` is one the policy names (RFC 8461 4.1).
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == domain),
                None => *pattern == host,
            })
    }
}

struct Cached {
    id: String,
    policy: Arc<Policy>,
    until: Instant,
}

/// A domain's policy as last seen: one in force, or none until a time.
enum Seen {
    Policy(Cached),
    Nothing(Instant),
}

/// Finds, fetches and caches recipient domains' policies.
pub struct MtaSts {
    resolver: TokioResolver,
    port: u16,
    extra_ca_pem: Option<Vec<u8>>,
    cache: Mutex<HashMap<String, Seen>>,
}

impl MtaSts {
    /// Policies looked up with `resolver`, fetched from port `port` (443;
    /// tests use another), trusting the public roots and `extra_ca_pem`.
    pub fn new(resolver: TokioResolver, port: u16, extra_ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            resolver,
            port,
            extra_ca_pem,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The policy of `domain` in force now, if it has one.
    pub async fn policy(&self, domain: &str) -> Option<Arc<Policy>> {
        let now = Instant::now();
        let cached = match self.cache.lock().expect("mta-sts cache").get(domain) {
            Some(Seen::Nothing(until)) if *until > now => return None,
            Some(Seen::Policy(c)) if c.until > now => Some((c.id.clone(), c.policy.clone())),
            _ => None,
        };
        let Some(id) = self.record_id(domain).await else {
            return self.keep_or_forget(domain, cached, now);
        };
        if let Some((cached_id, policy)) = &cached {
            if *cached_id == id {
                return Some(policy.clone());
            }
        }
        match self.fetch(domain).await {
            Ok(policy) => {
                let policy = Arc::new(policy);
                let until = Instant::now() + policy.max_age;
                self.cache.lock().expect("mta-sts cache").insert(
                    domain.to_string(),
                    Seen::Policy(Cached {
                        id,
                        policy: policy.clone(),
                        until,
                    }),
                );
                tracing::info!(mode = ?policy.mode, "MTA-STS policy fetched");
                Some(policy)
            }
            Err(e) => {
                tracing::info!(error = %e, "MTA-STS policy not fetched");
                crate::telemetry::mta_sts_fetch_failed();
                self.keep_or_forget(domain, cached, now)
            }
        }
    }

    /// No policy found or fetched now: the cached one stays in force (RFC
    /// 8461 5.1); without one, the domain is not asked again for
    /// `NO_POLICY_FOR`, rather than at every delivery.
    fn keep_or_forget(
        &self,
        domain: &str,
        cached: Option<(String, Arc<Policy>)>,
        now: Instant,
    ) -> Option<Arc<Policy>> {
        if cached.is_none() {
            self.cache
                .lock()
                .expect("mta-sts cache")
                .insert(domain.to_string(), Seen::Nothing(now + NO_POLICY_FOR));
        }
        cached.map(|(_, policy)| policy)
    }

    /// The id of the domain's `_mta-sts` record, if it publishes one.
    async fn record_id(&self, domain: &str) -> Option<String> {
        let name = format!("_mta-sts.{}.", domain.trim_end_matches('.'));
        let lookup = self.resolver.txt_lookup(name).await.ok()?;
        lookup.iter().find_map(|txt| {
            let text: Vec<u8> = txt.iter().flat_map(|part| part.iter().copied()).collect();
            StsRecord::parse(&text).ok().map(|r| r.id)
        })
    }

    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
        let ip = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|_| "the policy host has no address".to_string())?
            .iter()
            .next()
            .ok_or("the policy host has no address")?;
        let mut client = reqwest::Client::builder()
            .resolve(&host, SocketAddr::new(ip, self.port))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .https_only(true);
        if let Some(pem) = &self.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
                client = client.add_root_certificate(cert);
            }
        }
        let client = client.build().map_err(|e| e.to_string())?;
        let url = if self.port == 443 {
            format!("https://{host}/.well-known/mta-sts.txt")
        } else {
            format!("https://{host}:{}/.well-known/mta-sts.txt", self.port)
        };
        let response = client.get(url).send().await.map_err(|e| {
            // The error's text would name the domain; its kind is enough.
            if e.is_timeout() {
                "the fetch timed out".to_string()
            } else if e.is_connect() {
                "no HTTPS connection (refused, or a certificate not valid for the host)".into()
            } else {
                "the fetch failed".into()
            }
        })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let media = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !media.to_ascii_lowercase().starts_with("text/plain") {
            return Err(format!("served as `{media}`, not text/plain"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_POLICY_BYTES as u64)
        {
            return Err("the policy is too large".into());
        }
        let body = response.bytes().await.map_err(|_| "the body was cut")?;
        if body.len() > MAX_POLICY_BYTES {
            return Err("the policy is too large".into());
        }
        Policy::parse(&String::from_utf8_lossy(&body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_as_rfc_8461_writes_them() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n\
             mx: backupmx.example.com.\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, Duration::from_secs(604_800));
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MAIL.example.com."));
        assert!(p.matches("mx1.example.net"));
        assert!(!p.matches("a.b.example.net"), "one label only");
        assert!(!p.matches("example.net"));
        assert!(p.matches("backupmx.example.com"));
        assert!(!p.matches("evil.example.org"));
        let testing = Policy::parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n");
        assert_eq!(testing.unwrap().mode, Mode::Testing);
        let long = Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!(long.max_age, Duration::from_secs(MAX_AGE_LIMIT));
    }

    #[test]
    fn broken_policies_are_refused() {
        for text in [
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: soon\n",
            "<html>not a policy</html>",
        ] {
            assert!(Policy::parse(text).is_err(), "{text}");
        }
    }
}
