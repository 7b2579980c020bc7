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
            use $crate::storage::placeholders::{list, value_rows};

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

                    // The rest, once each (with its lookup key), inserted
                    // unless their alias exists.
                    let people: Vec<Person> = ps.iter().map(person).collect();
                    let mut first: HashMap<&Person, usize> = HashMap::new();
                    let mut new: Vec<(&Participant, String)> = Vec::new();
                    for (p, who) in ps.iter().zip(&people) {
                        if !made.contains_key(who) && !first.contains_key(who) {
                            first.insert(who, new.len());
                            new.push((p, p.key()));
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
                        for (p, key) in chunk {
                            query = query
                                .bind(key.as_str())
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
                            for (p, key) in chunk {
                                let row = Participant {
                                    created_at: rows::from_ms(to_ms(p.created_at))?,
                                    expires_at: rows::from_ms(to_ms(p.expires_at))?,
                                    disabled: false,
                                    blocked: false,
                                    ..(*p).clone()
                                };
                                stored.insert(key.clone(), row);
                            }
                        }
                    }
                    let others: Vec<&str> = new
                        .iter()
                        .map(|(_, key)| key.as_str())
                        .filter(|key| !stored.contains_key(*key))
                        .collect();
                    for chunk in others.chunks(ROWS_PER_STATEMENT) {
                        let sql = format!(
                            "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key IN ({})",
                            list(chunk.len())
                        );
                        let mut query = sqlx::query(&sql);
                        for key in chunk {
                            query = query.bind(*key);
                        }
                        for row in &query.fetch_all(&mut *tx).await? {
                            let p = rows::participant(row)?;
                            stored.insert(p.key(), p);
                        }
                    }
                    tx.commit().await?;

                    ps.iter()
                        .zip(&people)
                        .map(|(p, who)| {
                            let found = match made.get(who) {
                                Some(earlier) => Some(earlier),
                                None => first.get(who).and_then(|&i| stored.get(&new[i].1)),
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
