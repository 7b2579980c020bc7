//! Making participants: creation is idempotent. The same (store, order,
//! role, email) gives the same alias and row, also when the store's mask
//! mode changed since the alias was made (a participant keeps the form its
//! first mail went out with), and an alias already stored is returned as it
//! is, with its first creation time.
//!
//! One call is one transaction and a handful of statements whatever its
//! size (a bulk import sends thousands): the rows already made for the
//! call's orders are read at once, the new ones inserted with multi-row
//! statements, and what is stored read back by alias.

/// Placeholders `($1, …, $k), ($k+1, …)` for `rows` rows of `columns`;
/// `(?, …), (?, …)` when `numbered` is false.
pub(crate) fn value_rows(rows: usize, columns: usize, numbered: bool) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| match numbered {
                    true => format!("${}", r * columns + c),
                    false => "?".to_string(),
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders `$1, …, $n` of an `IN` list.
pub(crate) fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ensure_participants_in_one_transaction` for `$storage`, which has
/// `lock_orders(conn, &[(store, order)])`: takes turns with other nodes
/// creating participants of the same orders (a no-op with one writer).
/// `$rows` rows go in one statement, with numbered placeholders when
/// `$numbered` (SQLite's driver looks each numbered value up by its name,
/// in time growing with the statement's values: it gets `?` instead).
macro_rules! impl_participants {
    ($storage:ident, $db:ty, rows_per_statement: $rows:expr, numbered: $numbered:expr $(,)?) => {
        const _: () = {
            use std::collections::HashMap;

            use $crate::alias::Participant;
            use $crate::storage::participants::{list, value_rows};

            const ROWS_PER_STATEMENT: usize = $rows;
            use $crate::storage::rows::{self, to_ms, PARTICIPANT_COLUMNS};
            use $crate::storage::{Result, StorageError};

            /// What makes two participants the same person in an order.
            type Person = (String, String, &'static str, String);

            fn person(p: &Participant) -> Person {
                (p.store.clone(), p.order.clone(), p.role.as_str(), p.email.to_lowercase())
            }

            impl $storage {
                pub(crate) async fn ensure_participants_in_one_transaction(
                    &self,
                    ps: &[Participant],
                ) -> Result<Vec<Participant>> {
                    if ps.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut writer = self.writer().await?;
                    let mut tx = Self::begin_write(&mut writer).await?;
                    let mut orders: Vec<(&str, &str)> =
                        ps.iter().map(|p| (p.store.as_str(), p.order.as_str())).collect();
                    orders.sort_unstable();
                    orders.dedup();
                    Self::lock_orders(&mut *tx, &orders).await?;

                    // The earliest row of each person already in these orders.
                    let mut made: HashMap<Person, Participant> = HashMap::new();
                    let mut ids: Vec<&str> = orders.iter().map(|(_, o)| *o).collect();
                    ids.dedup();
                    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                        let sql = format!(
                            "SELECT {PARTICIPANT_COLUMNS} FROM participants
                             WHERE order_id IN ({}) ORDER BY created_at",
                            list(chunk.len())
                        );
                        let mut query = sqlx::query(&sql);
                        for id in chunk {
                            query = query.bind(*id);
                        }
                        for row in &query.fetch_all(&mut *tx).await? {
                            let earlier = rows::participant(row)?;
                            made.entry(person(&earlier)).or_insert(earlier);
                        }
                    }

                    // The rest, once each, inserted unless their alias exists.
                    let mut first: HashMap<Person, usize> = HashMap::new();
                    let mut new: Vec<&Participant> = Vec::new();
                    for p in ps {
                        let who = person(p);
                        if !made.contains_key(&who) && !first.contains_key(&who) {
                            first.insert(who, new.len());
                            new.push(p);
                        }
                    }
                    // Inserted rows hold what was made. A statement that
                    // inserted fewer rows than it had met aliases that exist
                    // (or two made with one alias): its rows are read back.
                    let mut stored: HashMap<String, Participant> = HashMap::new();
                    for chunk in new.chunks(ROWS_PER_STATEMENT) {
                        let sql = format!(
                            "INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at, expires_at)
                             VALUES {} ON CONFLICT (alias_key) DO NOTHING",
                            value_rows(chunk.len(), 9, $numbered)
                        );
                        let mut query = sqlx::query(&sql);
                        for p in chunk {
                            query = query
                                .bind(p.key())
                                .bind(&p.alias)
                                .bind(&p.store)
                                .bind(&p.order)
                                .bind(p.role.as_str())
                                .bind(&p.email)
                                .bind(p.mode.as_str())
                                .bind(to_ms(p.created_at))
                                .bind(to_ms(p.expires_at));
                        }
                        if query.execute(&mut *tx).await?.rows_affected() == chunk.len() as u64 {
                            for p in chunk {
                                let row = Participant {
                                    created_at: rows::from_ms(to_ms(p.created_at))?,
                                    expires_at: rows::from_ms(to_ms(p.expires_at))?,
                                    disabled: false,
                                    blocked: false,
                                    ..(*p).clone()
                                };
                                stored.insert(p.key(), row);
                            }
                        }
                    }
                    let others: Vec<String> =
                        new.iter().map(|p| p.key()).filter(|k| !stored.contains_key(k)).collect();
                    for chunk in others.chunks(ROWS_PER_STATEMENT) {
                        let sql = format!(
                            "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key IN ({})",
                            list(chunk.len())
                        );
                        let mut query = sqlx::query(&sql);
                        for key in chunk {
                            query = query.bind(key);
                        }
                        for row in &query.fetch_all(&mut *tx).await? {
                            let p = rows::participant(row)?;
                            stored.insert(p.key(), p);
                        }
                    }
                    tx.commit().await?;

                    ps.iter()
                        .map(|p| {
                            let who = person(p);
                            let found = match made.get(&who) {
                                Some(earlier) => Some(earlier),
                                None => first.get(&who).and_then(|&i| stored.get(&new[i].key())),
                            };
                            found.cloned().ok_or_else(|| {
                                StorageError::Corrupt(format!("alias {} not stored", p.alias))
                            })
                        })
                        .collect()
                }
            }
        };
    };
}

pub(crate) use impl_participants;

#[cfg(test)]
mod tests {
    #[test]
    fn value_rows_number_every_placeholder() {
        assert_eq!(super::value_rows(2, 3, true), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::value_rows(1, 2, false), "(?, ?)");
        assert_eq!(super::list(3), "$1, $2, $3");
    }
}
