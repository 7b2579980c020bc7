//! Spam and malware scanning through rspamd's HTTP protocol (`POST
//! /checkv2`). Malware is found by rspamd's antivirus module (clamd
//! behind it), which reports it as a symbol (`CLAM_VIRUS` by default) and
//! its own failure to scan as another (`CLAM_VIRUS_FAIL`).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{OnScanError, ScanSettings};

use super::settings::{SpamAction, StorePolicy};
use super::{replies, Decision, Marks, Reason};

/// What the scanner made of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanOutcome {
    /// rspamd's `no action`.
    Clean,
    /// `add header` or `rewrite subject`: spam, to be marked (or refused,
    /// as the store says).
    Spam {
        /// rspamd's score.
        score: f64,
        /// The score rspamd counts as spam.
        required: f64,
    },
    /// `reject`.
    Reject {
        /// rspamd's score.
        score: f64,
    },
    /// The antivirus found something; its name, as clamd calls it.
    Virus {
        /// The malware's name.
        name: String,
    },
    /// `soft reject` or `greylist`: come back later.
    Later,
    /// No verdict: unreachable, too slow, an answer that makes no sense, or
    /// the antivirus could not scan. Never taken for clean silently.
    Failed(String),
}

/// Who sends what to whom, as rspamd wants to know it. Recipients are
/// aliases: real addresses go to no one.
pub struct ScanMeta<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// The client's HELO.
    pub helo: &'a str,
    /// The envelope sender as given.
    pub mail_from: &'a str,
    /// The recipients' aliases.
    pub rcpts: &'a [String],
    /// The relay's queue id, for rspamd's log.
    pub queue_id: &'a str,
}

impl ScanOutcome {
    /// The metric's label.
    pub fn label(&self) -> &'static str {
        match self {
            ScanOutcome::Clean => "clean",
            ScanOutcome::Spam { .. } => "spam",
            ScanOutcome::Reject { .. } => "reject",
            ScanOutcome::Virus { .. } => "virus",
            ScanOutcome::Later => "later",
            ScanOutcome::Failed(_) => "failed",
        }
    }
}

/// rspamd's HTTP client (`POST /checkv2`), with the timeout and the symbols
/// that mean malware or a failed antivirus. The policy stage calls `scan`.
pub struct Scanner {
    client: reqwest::Client,
    url: String,
    virus_symbols: Vec<String>,
    failure_symbols: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Answer {
    action: String,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    #[serde(default)]
    symbols: std::collections::HashMap<String, Symbol>,
}

#[derive(Debug, Deserialize)]
struct Symbol {
    #[serde(default)]
    options: Vec<String>,
}

impl Scanner {
    /// A scanner for `settings`, or `None` when no `scan.rspamd_url` is set.
    pub fn new(settings: &ScanSettings) -> Result<Option<Self>, String> {
        let Some(base) = &settings.rspamd_url else {
            return Ok(None);
        };
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("scan: cannot build the HTTP client: {e}"))?;
        Ok(Some(Self {
            client,
            url: format!("{}/checkv2", base.as_str().trim_end_matches('/')),
            virus_symbols: settings.virus_symbols.clone(),
            failure_symbols: settings.failure_symbols.clone(),
        }))
    }

    /// rspamd's verdict on `message`; any failure is `Failed`, never an error.
    pub async fn scan(&self, message: &[u8], meta: &ScanMeta<'_>) -> ScanOutcome {
        let mut request = self
            .client
            .post(&self.url)
            .header("Ip", meta.ip.to_string())
            .header("Helo", header_safe(meta.helo))
            .header("Queue-Id", header_safe(meta.queue_id))
            .header("From", header_safe(meta.mail_from))
            .body(message.to_vec());
        for rcpt in meta.rcpts {
            request = request.header("Rcpt", header_safe(rcpt));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return ScanOutcome::Failed("timed out".into()),
            Err(e) if e.is_connect() => return ScanOutcome::Failed("unreachable".into()),
            Err(_) => return ScanOutcome::Failed("request failed".into()),
        };
        if !response.status().is_success() {
            return ScanOutcome::Failed(format!("HTTP {}", response.status().as_u16()));
        }
        match response.bytes().await {
            Ok(body) => self.read(&body),
            Err(e) if e.is_timeout() => ScanOutcome::Failed("timed out".into()),
            Err(_) => ScanOutcome::Failed("answer cut short".into()),
        }
    }

    /// rspamd's answer, read.
    fn read(&self, body: &[u8]) -> ScanOutcome {
        read_answer(body, &self.virus_symbols, &self.failure_symbols)
    }
}

/// What an rspamd `/checkv2` answer says: malware when a symbol of
/// `virus_symbols` is in it, no verdict when one of `failure_symbols` is or
/// the answer makes no sense, else rspamd's action.
pub fn read_answer(
    body: &[u8],
    virus_symbols: &[String],
    failure_symbols: &[String],
) -> ScanOutcome {
    let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
        return ScanOutcome::Failed("an answer that is not rspamd's".into());
    };
    if let Some((name, symbol)) = answer
        .symbols
        .iter()
        .find(|(name, _)| virus_symbols.contains(name))
    {
        let found = symbol
            .options
            .first()
            .cloned()
            .unwrap_or_else(|| name.clone());
        return ScanOutcome::Virus {
            name: found
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(100)
                .collect(),
        };
    }
    if answer.symbols.keys().any(|n| failure_symbols.contains(n)) {
        return ScanOutcome::Failed("the antivirus could not scan".into());
    }
    match answer.action.as_str() {
        "no action" => ScanOutcome::Clean,
        "add header" | "rewrite subject" => ScanOutcome::Spam {
            score: answer.score,
            required: answer.required_score,
        },
        "reject" => ScanOutcome::Reject {
            score: answer.score,
        },
        "soft reject" | "greylist" => ScanOutcome::Later,
        _ => ScanOutcome::Failed("an action rspamd does not have".into()),
    }
}

/// The scan rule: the scanner's verdict under the store's spam setting
/// and `scan.on_error`. `None`: accepted (perhaps marked).
pub fn judge(
    outcome: &ScanOutcome,
    policy: &StorePolicy,
    on_error: OnScanError,
    marks: &mut Marks,
) -> Option<Decision> {
    let refuse = |reply, reason| Some(Decision::Refuse { reply, reason });
    match outcome {
        ScanOutcome::Clean => None,
        ScanOutcome::Spam { score, .. } => match policy.spam {
            SpamAction::Mark => {
                marks.spam = Some(*score);
                None
            }
            SpamAction::Refuse => refuse(replies::spam(), Reason::Spam),
        },
        ScanOutcome::Reject { .. } => refuse(replies::spam(), Reason::Spam),
        ScanOutcome::Virus { name } => refuse(replies::virus(name), Reason::Virus),
        ScanOutcome::Later => Some(Decision::Later {
            reply: replies::greylisted(),
            reason: Reason::Greylisted,
        }),
        ScanOutcome::Failed(_) => match on_error {
            OnScanError::Tempfail => Some(Decision::Later {
                reply: replies::scan_failed(),
                reason: Reason::ScanFailed,
            }),
            OnScanError::Accept => {
                marks.unscanned = true;
                None
            }
        },
    }
}

/// A value fit for an HTTP header: printable ASCII, bounded.
fn header_safe(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> Scanner {
        let settings = ScanSettings {
            rspamd_url: Some("http://127.0.0.1:1".parse().unwrap()),
            ..ScanSettings::default()
        };
        Scanner::new(&settings).unwrap().unwrap()
    }

    #[test]
    fn rspamd_answers_are_read() {
        let s = scanner();
        let read = |json: &str| s.read(json.as_bytes());
        assert_eq!(
            read(r#"{"action":"no action","score":0.5,"required_score":15}"#),
            ScanOutcome::Clean
        );
        assert_eq!(
            read(r#"{"action":"add header","score":7.5,"required_score":15}"#),
            ScanOutcome::Spam {
                score: 7.5,
                required: 15.0
            }
        );
        assert_eq!(
            read(r#"{"action":"reject","score":1000}"#),
            ScanOutcome::Reject { score: 1000.0 }
        );
        assert_eq!(read(r#"{"action":"greylist"}"#), ScanOutcome::Later);
        assert_eq!(read(r#"{"action":"soft reject"}"#), ScanOutcome::Later);
        assert_eq!(
            read(r#"{"action":"reject","symbols":{"CLAM_VIRUS":{"options":["Eicar-Signature"]}}}"#),
            ScanOutcome::Virus {
                name: "Eicar-Signature".into()
            }
        );
        assert!(matches!(
            read(r#"{"action":"no action","symbols":{"CLAM_VIRUS_FAIL":{}}}"#),
            ScanOutcome::Failed(_)
        ));
    }

    #[test]
    fn garbage_is_no_verdict() {
        let s = scanner();
        for body in [
            "",
            "{",
            "[]",
            r#"{"action":"wave through"}"#,
            "<html>502</html>",
        ] {
            assert!(
                matches!(s.read(body.as_bytes()), ScanOutcome::Failed(_)),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_scanner_is_no_verdict() {
        let meta = ScanMeta {
            ip: "127.0.0.1".parse().unwrap(),
            helo: "h",
            mail_from: "",
            rcpts: &[],
            queue_id: "q",
        };
        assert!(matches!(
            scanner().scan(b"x", &meta).await,
            ScanOutcome::Failed(_)
        ));
    }

    #[test]
    fn verdicts_under_the_store_setting_and_on_error() {
        let mark = StorePolicy::default();
        let refuse = StorePolicy {
            spam: SpamAction::Refuse,
            ..StorePolicy::default()
        };
        let spam = ScanOutcome::Spam {
            score: 7.5,
            required: 15.0,
        };
        let judged = |o: &ScanOutcome, p: &StorePolicy, e: OnScanError| {
            let mut marks = Marks::default();
            let d = judge(o, p, e, &mut marks);
            (
                d.map(|d| match d {
                    Decision::Refuse { reply, reason } | Decision::Later { reply, reason } => {
                        (reply.to_string()[..9].to_string(), reason)
                    }
                    Decision::Accept(_) => unreachable!(),
                }),
                marks,
            )
        };
        let tf = OnScanError::Tempfail;
        assert_eq!(
            judged(&ScanOutcome::Clean, &mark, tf),
            (None, Marks::default())
        );
        let (d, marks) = judged(&spam, &mark, tf);
        assert_eq!((d, marks.spam), (None, Some(7.5)));
        assert_eq!(
            judged(&spam, &refuse, tf).0,
            Some(("550 5.7.1".into(), Reason::Spam))
        );
        let virus = ScanOutcome::Virus {
            name: "Eicar".into(),
        };
        assert_eq!(
            judged(&virus, &mark, tf).0,
            Some(("550 5.7.1".into(), Reason::Virus))
        );
        assert_eq!(
            judged(&ScanOutcome::Later, &mark, tf).0,
            Some(("451 4.7.1".into(), Reason::Greylisted))
        );
        let failed = ScanOutcome::Failed("timed out".into());
        assert_eq!(
            judged(&failed, &mark, tf).0,
            Some(("451 4.7.0".into(), Reason::ScanFailed))
        );
        let (d, marks) = judged(&failed, &mark, OnScanError::Accept);
        assert_eq!((d, marks.unscanned), (None, true));
    }
}
