//! Making participants: creation is idempotent. The same (store, order,
//! role, email) gives the same alias and row, also when the store's mask
//! mode changed since the alias was made (a participant keeps the form its
//! first mail went out with), and an alias already stored is returned as it
//! is, with its first creation time.

/// `ensure_participants_in_one_transaction` for `$storage`. `order_lock`,
/// when some, is run with (store, order) first, so that two creations for
/// one order on several nodes take turns.
macro_rules! impl_participants {
    ($storage:ident, $db:ty, order_lock: $order_lock:expr $(,)?) => {
        const _: () = {
            use $crate::alias::Participant;
            use $crate::storage::rows::{self, to_ms, PARTICIPANT_COLUMNS};
            use $crate::storage::Result;

            impl $storage {
                pub(crate) async fn ensure_participants_in_one_transaction(
                    &self,
                    ps: &[Participant],
                ) -> Result<Vec<Participant>> {
                    let mut writer = self.writer().await?;
                    let mut tx = sqlx::Connection::begin(&mut *writer).await?;
                    let order_lock: Option<&str> = $order_lock;
                    let mut stored = Vec::with_capacity(ps.len());
                    for p in ps {
                        if let Some(lock) = order_lock {
                            sqlx::query(lock).bind(&p.store).bind(&p.order).execute(&mut *tx).await?;
                        }
                        let made = match Self::same_participant(&mut *tx, p).await? {
                            Some(earlier) => earlier,
                            None => Self::insert_participant(&mut *tx, p).await?,
                        };
                        stored.push(made);
                    }
                    tx.commit().await?;
                    Ok(stored)
                }

                /// The row made earlier for `p`'s store, order, role and
                /// email (compared case-insensitively), in whatever mode.
                async fn same_participant(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    p: &Participant,
                ) -> Result<Option<Participant>> {
                    let sql = format!(
                        "SELECT {PARTICIPANT_COLUMNS} FROM participants
                         WHERE store = $1 AND order_id = $2 AND role = $3 ORDER BY created_at"
                    );
                    let found = sqlx::query(&sql)
                        .bind(&p.store)
                        .bind(&p.order)
                        .bind(p.role.as_str())
                        .fetch_all(&mut *conn)
                        .await?;
                    let email = p.email.to_lowercase();
                    for row in &found {
                        let earlier = rows::participant(row)?;
                        if earlier.email.to_lowercase() == email {
                            return Ok(Some(earlier));
                        }
                    }
                    Ok(None)
                }

                /// Insert `p` unless its alias exists (a soft alias does not
                /// name the role), and return the stored row.
                async fn insert_participant(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    p: &Participant,
                ) -> Result<Participant> {
                    sqlx::query(
                        "INSERT INTO participants (alias_key, alias, store, order_id, role, email, mode, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (alias_key) DO NOTHING",
                    )
                    .bind(p.key())
                    .bind(&p.alias)
                    .bind(&p.store)
                    .bind(&p.order)
                    .bind(p.role.as_str())
                    .bind(&p.email)
                    .bind(p.mode.as_str())
                    .bind(to_ms(p.created_at))
                    .bind(to_ms(p.expires_at))
                    .execute(&mut *conn)
                    .await?;
                    let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE alias_key = $1");
                    let row = sqlx::query(&sql).bind(p.key()).fetch_one(&mut *conn).await?;
                    rows::participant(&row)
                }
            }
        };
    };
}

pub(crate) use impl_participants;
