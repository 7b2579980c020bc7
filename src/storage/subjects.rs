//! A data subject: every participant row with one real address, for the
//! export of what is held about a person (LGPD art. 18, GDPR art. 15).

use super::rows::{self};
use super::sql::{SqlConn, Stmt};
use super::{schema, Participant, Result};

/// Every participant with the address `email` (any case), in `store` when
/// given, oldest first. Reads the whole table: addresses are not indexed.
pub(crate) async fn participants_with(
    conn: &mut impl SqlConn,
    email: &str,
    store: Option<&str>,
) -> Result<Vec<Participant>> {
    let sql = format!(
        "SELECT {} FROM participants
         WHERE lower(email) = lower($1) AND (CAST($2 AS TEXT) IS NULL OR store = $2)
         ORDER BY created_at, alias_key",
        schema::PARTICIPANT
    );
    let rows = conn
        .fetch_all(Stmt::new(sql).text(email.trim()).opt_text(store))
        .await?;
    rows.iter().map(rows::participant).collect()
}
