//! Prometheus metrics: the names ct-relay exports and the one place that
//! records them. `/metrics` renders them (see `api`).

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// SMTP sessions opened.
pub const SESSIONS_TOTAL: &str = "ct_relay_smtp_sessions_total";
/// SMTP sessions open now.
pub const SESSIONS_OPEN: &str = "ct_relay_smtp_sessions_open";
/// Messages answered `250`.
pub const MESSAGES_ACCEPTED: &str = "ct_relay_messages_accepted_total";
/// By `reason`: the enhanced status code of the refusal (5.1.1 unknown alias,
/// 5.7.1 relaying, 4.3.0 storage, 5.3.4 size, 5.6.0 framing, 5.4.6 loop, …).
pub const MESSAGES_REFUSED: &str = "ct_relay_smtp_refusals_total";
/// Delivery attempts by outcome.
pub const DELIVERIES: &str = "ct_relay_delivery_attempts_total";
/// Deliveries not yet final.
pub const QUEUE_DEPTH: &str = "ct_relay_queue_depth";
/// Age of the oldest delivery not yet final.
pub const QUEUE_OLDEST: &str = "ct_relay_queue_oldest_age_seconds";
/// Writes per group commit.
pub const COMMIT_WRITES: &str = "ct_relay_commit_batch_writes";
/// Time per group commit.
pub const COMMIT_SECONDS: &str = "ct_relay_commit_seconds";
/// Webhook requests by `outcome`: sent, retry, failed.
pub const WEBHOOK_SENDS: &str = "ct_relay_webhook_sends_total";
/// Header fields removed while masking, by `reason`: `envelope` (Return-Path,
/// Delivered-To, … of earlier deliveries), `verdict` (another host's
/// Authentication-Results naming a participant, or claiming the relay's
/// own authserv-id), `arc`, `signature`, `unparsable` (a line that is no
/// field), `unmaskable`.
pub const HEADER_FIELDS_REMOVED: &str = "ct_relay_header_fields_removed_total";
/// Fields where only the last line of defence found a participant's
/// address, by `field` (the field's name when the relay knows it, else
/// `other`): each is a case for a new masking rule.
pub const HEADER_LEAKS_FIXED: &str = "ct_relay_header_leaks_fixed_total";
/// Mail the policy stage turned away, by `reason` (the timeline's reason
/// for refusals; `auth_undecided`, `scan_failed`, `greylisted`,
/// `rate_limited` for the temporary ones), one per message.
pub const POLICY_REFUSALS: &str = "ct_relay_policy_refusals_total";
/// Accepted copies marked by the policy stage, by `flag` (`spam`,
/// `unscanned`, `unverified`).
pub const POLICY_MARKS: &str = "ct_relay_policy_marks_total";
/// Scans by `outcome` (clean, spam, reject, virus, later, failed), and how
/// long they took.
pub const SCANS: &str = "ct_relay_scans_total";
/// Time per scan.
pub const SCAN_SECONDS: &str = "ct_relay_scan_seconds";
/// Webhook events not yet sent.
pub const WEBHOOK_BACKLOG: &str = "ct_relay_webhook_backlog";
/// Age of the oldest event not yet sent.
pub const WEBHOOK_OLDEST: &str = "ct_relay_webhook_oldest_age_seconds";
/// SQLite: the write-ahead log's size on disk after the last checkpoint,
/// and the truncating checkpoints run to keep it under `storage.wal_limit_mib`.
pub const WAL_BYTES: &str = "ct_relay_storage_wal_bytes";
/// Truncating checkpoints run.
pub const WAL_TRUNCATIONS: &str = "ct_relay_storage_wal_truncations_total";
/// MTA-STS: policies not met (`mode`: enforce, testing), fetches failed.
pub const MTA_STS_FAILURES: &str = "ct_relay_mta_sts_failures_total";
/// See `MTA_STS_FAILURES`.
pub const MTA_STS_FETCH_FAILURES: &str = "ct_relay_mta_sts_fetch_failures_total";
/// Participants marked undeliverable after hard bounces.
pub const UNDELIVERABLE: &str = "ct_relay_participants_undeliverable_total";

/// Wrong or missing API tokens and refused console logins.
pub const AUTH_FAILURES: &str = "ct_relay_http_auth_failures_total";

/// Always 1, with the running version as its label.
pub const BUILD_INFO: &str = "ct_relay_build_info";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the recorder once per process; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(COMMIT_WRITES.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(COMMIT_SECONDS.into()),
                        &[
                            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(SCAN_SECONDS.into()),
                        &[
                            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
                        ],
                    )
                })
                .and_then(PrometheusBuilder::install_recorder)
                .inspect(|_| describe())
                // Only fails when another recorder is installed: render nothing then.
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle())
        })
        .clone()
}

/// The `# HELP` line of every metric, and `ct_relay_build_info`.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(SESSIONS_TOTAL, "SMTP sessions opened.");
    describe_gauge!(SESSIONS_OPEN, "SMTP sessions open now.");
    describe_counter!(MESSAGES_ACCEPTED, "Messages answered 250.");
    describe_counter!(
        MESSAGES_REFUSED,
        "SMTP refusals by reason, the enhanced status code of the reply."
    );
    describe_counter!(
        DELIVERIES,
        "Delivery attempts by outcome: delivered, retrying, failed."
    );
    describe_gauge!(QUEUE_DEPTH, "Deliveries not yet final.");
    describe_gauge!(
        QUEUE_OLDEST,
        Unit::Seconds,
        "Age of the oldest delivery not yet final."
    );
    describe_histogram!(COMMIT_WRITES, "Writes per group commit.");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Time per group commit.");
    describe_counter!(
        WEBHOOK_SENDS,
        "Webhook requests by outcome: sent, retry, failed."
    );
    describe_counter!(
        HEADER_FIELDS_REMOVED,
        "Header fields removed while masking, by reason."
    );
    describe_counter!(
        HEADER_LEAKS_FIXED,
        "Fields where only the last check found a participant's address, by field."
    );
    describe_counter!(
        POLICY_REFUSALS,
        "Messages the policy stage refused or deferred, by reason."
    );
    describe_counter!(
        POLICY_MARKS,
        "Accepted copies marked by the policy stage, by flag."
    );
    describe_counter!(
        SCANS,
        "rspamd scans by outcome: clean, spam, reject, virus, later, failed."
    );
    describe_histogram!(SCAN_SECONDS, Unit::Seconds, "Time per rspamd scan.");
    describe_gauge!(WEBHOOK_BACKLOG, "Webhook events not yet sent.");
    describe_gauge!(
        WEBHOOK_OLDEST,
        Unit::Seconds,
        "Age of the oldest webhook event not yet sent."
    );
    describe_gauge!(
        WAL_BYTES,
        Unit::Bytes,
        "SQLite write-ahead log size after the last checkpoint."
    );
    describe_counter!(
        WAL_TRUNCATIONS,
        "Truncating checkpoints of the SQLite write-ahead log."
    );
    describe_counter!(
        MTA_STS_FAILURES,
        "MX hosts or connections an MTA-STS policy did not allow, by mode."
    );
    describe_counter!(
        MTA_STS_FETCH_FAILURES,
        "MTA-STS policies that could not be fetched."
    );
    describe_counter!(
        UNDELIVERABLE,
        "Participants marked undeliverable after hard bounces."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Wrong or missing API tokens and refused console logins."
    );
    describe_gauge!(
        BUILD_INFO,
        "The running version, as the label version; always 1."
    );
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Count a session opened.
pub fn session_opened() {
    counter!(SESSIONS_TOTAL).increment(1);
    gauge!(SESSIONS_OPEN).increment(1.0);
}

/// Count a session closed.
pub fn session_closed() {
    gauge!(SESSIONS_OPEN).decrement(1.0);
}

/// Count a message refused, by its enhanced status code.
pub fn refused(status: &str) {
    counter!(MESSAGES_REFUSED, "reason" => status.to_owned()).increment(1);
}

/// Count a message accepted.
pub fn accepted() {
    counter!(MESSAGES_ACCEPTED).increment(1);
}

/// Count what masking fixed and removed.
pub fn header_masking(report: &crate::masking::Report) {
    for &reason in &report.removed {
        counter!(HEADER_FIELDS_REMOVED, "reason" => reason).increment(1);
    }
    for &field in &report.leaks_fixed {
        counter!(HEADER_LEAKS_FIXED, "field" => field).increment(1);
    }
}

/// Count a refusal of the policy stage, by reason.
pub fn policy_refused(reason: crate::policy::Reason) {
    counter!(POLICY_REFUSALS, "reason" => reason.as_str()).increment(1);
}

/// Count the marks the policy stage put on a message.
pub fn policy_marked(flags: &[String]) {
    for flag in flags {
        counter!(POLICY_MARKS, "flag" => flag.clone()).increment(1);
    }
}

/// Count a scan and its time.
pub fn scanned(outcome: &'static str, took: Duration) {
    counter!(SCANS, "outcome" => outcome).increment(1);
    histogram!(SCAN_SECONDS).record(took.as_secs_f64());
}

/// Count a delivery attempt by outcome.
pub fn delivery_attempt(outcome: &'static str) {
    counter!(DELIVERIES, "outcome" => outcome).increment(1);
}

/// Count an MX host or connection an MTA-STS policy did not allow.
pub fn mta_sts_failure(mode: &'static str) {
    counter!(MTA_STS_FAILURES, "mode" => mode).increment(1);
}

/// Count a policy that could not be fetched.
pub fn mta_sts_fetch_failed() {
    counter!(MTA_STS_FETCH_FAILURES).increment(1);
}

/// Count a failed authentication over HTTP.
pub fn auth_failure() {
    counter!(AUTH_FAILURES).increment(1);
}

/// Count a participant marked undeliverable.
pub fn participant_undeliverable() {
    counter!(UNDELIVERABLE).increment(1);
}

/// Record a group commit's size and time.
pub fn commit(writes: usize, took: Duration) {
    histogram!(COMMIT_WRITES).record(writes as f64);
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
}

/// Set the queue gauges (read at scrape time).
pub fn queue(depth: u64, oldest: Option<Duration>) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
    gauge!(QUEUE_OLDEST).set(oldest.map_or(0.0, |d| d.as_secs_f64()));
}

/// Count a webhook send by outcome.
pub fn webhook_send(outcome: &'static str) {
    counter!(WEBHOOK_SENDS, "outcome" => outcome).increment(1);
}

/// Set the webhook backlog gauges (read at scrape time).
pub fn webhook_backlog(pending: u64, oldest: Option<Duration>) {
    gauge!(WEBHOOK_BACKLOG).set(pending as f64);
    gauge!(WEBHOOK_OLDEST).set(oldest.map_or(0.0, |d| d.as_secs_f64()));
}

/// Set the write-ahead log's size.
pub fn wal(bytes: u64) {
    gauge!(WAL_BYTES).set(bytes as f64);
}

/// Count a truncating checkpoint.
pub fn wal_truncated() {
    counter!(WAL_TRUNCATIONS).increment(1);
}
