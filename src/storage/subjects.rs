//! A data subject: every participant row with one real address, for the
//! export of what is held about a person (LGPD art. 18, GDPR art. 15) and
//! its erasure. Rows are found by the address's blind index under each
//! configured key (`encryption`), or by the address itself where a row
//! was stored in clear.

use super::rows::{self};
use super::sql::{SqlConn, Stmt};
use super::{schema, Keyring, Participant, Result};

/// `WHERE` text matching `participants` rows whose address is `email` (any
/// case), with placeholders from `$first` on, and the values to bind in
/// their order.
pub(crate) fn address_is(keys: &Keyring, email: &str, first: usize) -> (String, Vec<String>) {
    let lookups = keys.lookups(email);
    let n = lookups.len();
    let clear = format!(
        "({} IS NULL AND lower(email) = lower(${}))",
        schema::EMAIL_INDEX,
        first + n
    );
    let sql = match n {
        0 => clear,
        _ => {
            let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
            format!(
                "({} IN ({}) OR {clear})",
                schema::EMAIL_INDEX,
                list.join(", ")
            )
        }
    };
    let mut values = lookups;
    values.push(email.trim().to_string());
    (sql, values)
}

/// Every participant with the address `email` (any case), in `store` when
/// given, oldest first.
pub(crate) async fn participants_with(
    conn: &mut impl SqlConn,
    keys: &Keyring,
    email: &str,
    store: Option<&str>,
) -> Result<Vec<Participant>> {
    let (matching, values) = address_is(keys, email, 2);
    let sql = format!(
        "SELECT {} FROM participants
         WHERE {matching} AND (CAST($1 AS TEXT) IS NULL OR store = $1)
         ORDER BY created_at, alias_key",
        schema::PARTICIPANT
    );
    let stmt = values
        .into_iter()
        .fold(Stmt::new(sql).opt_text(store), |s, v| s.text(v));
    let rows = conn.fetch_all(stmt).await?;
    rows.iter().map(|r| rows::participant(r, keys)).collect()
}
