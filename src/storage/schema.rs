//! The columns each query reads, per table, named once. `rows` turns rows
//! of these columns into the storage types; the queries select them with
//! `format!`. The tables themselves are the migrations' (one set per
//! database, `migrations/sqlite/` and `migrations/postgres/`).

/// `participants`: a participant of an order, as `rows::participant` reads it.
pub const PARTICIPANT: &str =
    "alias, store, order_id, role, email, mode, created_at, expires_at, disabled_at, blocked_at, \
     undeliverable_at";

/// The blind index of a participant's sealed address (`encryption`), read
/// out of the `email` column; NULL for an address stored in clear. An
/// expression index on exactly this text serves lookups by address.
pub const EMAIL_INDEX: &str =
    "(CASE WHEN substr(email, 1, 7) = 'enc:v1:' THEN substr(email, 8, 41) END)";

/// The columns `participants` rows are inserted with, in placeholder order.
pub const PARTICIPANT_INSERT: &str =
    "alias_key, alias, store, order_id, role, email, mode, created_at, expires_at";

/// `deliveries`: a delivery as the queue runner works it (`rows::delivery_job`).
pub const DELIVERY_JOB: &str =
    "id, message_id, rcpt_alias, rcpt_email, mail_from, attempts, created_at";

/// `deliveries`: a delivery as a timeline shows it (`rows::delivery_status`),
/// with the message it belongs to.
pub const DELIVERY_STATUS: &str = "message_id, rcpt_alias, state, attempts, last_reply, updated_at";

/// `deliveries` joined to `messages` as `d` and `m`: a line of the queue
/// (`rows::queue_entry`).
pub const QUEUE_ENTRY: &str = "d.id, d.message_id, m.store, m.order_id, d.sender_alias, \
     d.rcpt_alias, d.state, d.attempts, d.next_attempt_at, d.last_reply, d.lease_owner, d.held_at, \
     m.received_at";

/// `messages`: a stored message with its order.
pub const MESSAGE: &str = "store, order_id, return_path, received_at, content, erasure";

/// `timeline_entries`: an entry as a timeline shows it (`rows::timeline_entry`).
pub const TIMELINE_ENTRY: &str = "id, at, message_id, from_alias, to_aliases, subject, \
     first_words, attachment_names, refused, reason, flags, authentication, event, repeats, last_at";

/// `stores`: a store's settings (`settings::store_config`).
pub const STORE: &str = "mask_mode, webhook_url, webhook_secret, policy, retention_ms";

/// `webhook_events`: an event as the dispatcher sends it.
pub const WEBHOOK_JOB: &str = "id, store, order_id, entry_id, kind, attempts, created_at";
