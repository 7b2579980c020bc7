//! What the storage code shared by both databases is written against: a
//! statement with its arguments (`Stmt`), a connection that runs one
//! (`SqlConn`, implemented by sqlx's SQLite and PostgreSQL connections),
//! and a backend (`Backend`): where its connections come from, how it
//! begins a write, and the few pieces of SQL that differ. The shared code
//! is ordinary generic code over `Backend` (`queries`, `outbox`, `settings`,
//! `timeline`, `door`, `nodes`, `notices`, `participants`); SQL both
//! databases accept is written once, with `$n` placeholders (SQLite reads
//! them too).

use std::borrow::Cow;
use std::future::Future;
use std::ops::DerefMut;

use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use super::rows::Columns;
use super::{BatchWriter, Maintenance, Result};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// Text, or NULL.
    Text(Option<String>),
    /// An integer (times are milliseconds), or NULL.
    Int(Option<i64>),
    /// A boolean (an integer in SQLite).
    Bool(bool),
    /// Bytes (stored messages).
    Bytes(Vec<u8>),
}

/// A statement and its arguments, in placeholder order.
#[derive(Debug, Clone)]
pub struct Stmt<'s> {
    sql: Cow<'s, str>,
    args: Vec<Arg>,
}

impl<'s> Stmt<'s> {
    /// `sql` with no arguments bound yet.
    pub fn new(sql: impl Into<Cow<'s, str>>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Bind text.
    pub fn text(self, value: impl Into<String>) -> Self {
        self.arg(Arg::Text(Some(value.into())))
    }

    /// Bind text or NULL.
    pub fn opt_text(self, value: Option<impl Into<String>>) -> Self {
        self.arg(Arg::Text(value.map(Into::into)))
    }

    /// Bind an integer.
    pub fn int(self, value: i64) -> Self {
        self.arg(Arg::Int(Some(value)))
    }

    /// Bind an integer or NULL.
    pub fn opt_int(self, value: Option<i64>) -> Self {
        self.arg(Arg::Int(value))
    }

    /// Bind a boolean.
    pub fn bool(self, value: bool) -> Self {
        self.arg(Arg::Bool(value))
    }

    /// Bind bytes.
    pub fn bytes(self, value: impl Into<Vec<u8>>) -> Self {
        self.arg(Arg::Bytes(value.into()))
    }

    fn arg(mut self, arg: Arg) -> Self {
        self.args.push(arg);
        self
    }

    /// The statement as sqlx runs it, its arguments bound in order.
    fn query<DB>(&self) -> sqlx::query::Query<'_, DB, <DB as Database>::Arguments<'_>>
    where
        DB: Database,
        for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
        for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
        for<'q> bool: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    {
        let mut query = sqlx::query(&self.sql);
        for arg in &self.args {
            query = match arg {
                Arg::Text(v) => query.bind(v.clone()),
                Arg::Int(v) => query.bind(*v),
                Arg::Bool(v) => query.bind(*v),
                Arg::Bytes(v) => query.bind(v.clone()),
            };
        }
        query
    }
}

/// A connection the shared storage code runs statements on.
pub(crate) trait SqlConn: Send {
    /// A result row, read by column name.
    type Row: Columns + Send + Sync;

    /// Run `stmt`; how many rows it changed.
    fn execute<'a>(&'a mut self, stmt: Stmt<'a>) -> impl Future<Output = Result<u64>> + Send + 'a;

    /// Every row `stmt` returns.
    fn fetch_all<'a>(
        &'a mut self,
        stmt: Stmt<'a>,
    ) -> impl Future<Output = Result<Vec<Self::Row>>> + Send + 'a;

    /// The first row `stmt` returns, if any.
    fn fetch_optional<'a>(
        &'a mut self,
        stmt: Stmt<'a>,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send + 'a;

    /// The one row `stmt` returns (an error when there is none).
    fn fetch_one<'a>(
        &'a mut self,
        stmt: Stmt<'a>,
    ) -> impl Future<Output = Result<Self::Row>> + Send + 'a {
        async move {
            self.fetch_optional(stmt)
                .await?
                .ok_or_else(|| sqlx::Error::RowNotFound.into())
        }
    }
}

impl<C, DB> SqlConn for C
where
    C: sqlx::Connection<Database = DB>,
    DB: Database<Connection = C>,
    for<'c> &'c mut C: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    <DB as Database>::Row: Columns,
    <DB as Database>::QueryResult: RowsAffected,
{
    type Row = <DB as Database>::Row;

    async fn execute<'a>(&'a mut self, stmt: Stmt<'a>) -> Result<u64> {
        Ok(stmt.query::<DB>().execute(self).await?.count())
    }

    async fn fetch_all<'a>(&'a mut self, stmt: Stmt<'a>) -> Result<Vec<Self::Row>> {
        Ok(stmt.query::<DB>().fetch_all(self).await?)
    }

    async fn fetch_optional<'a>(&'a mut self, stmt: Stmt<'a>) -> Result<Option<Self::Row>> {
        Ok(stmt.query::<DB>().fetch_optional(self).await?)
    }
}

/// What the shared storage code needs from a database backend.
pub(crate) trait Backend: BatchWriter + Maintenance + Send + Sync + Sized + 'static {
    /// The driver's connection.
    type Conn: SqlConn;
    /// A connection lent for reads, given back when dropped.
    type Reader<'a>: DerefMut<Target = Self::Conn> + Send
    where
        Self: 'a;
    /// A connection lent for writes, given back when dropped.
    type Writer<'a>: DerefMut<Target = Self::Conn> + Send
    where
        Self: 'a;
    /// A write transaction: rolled back when dropped without `commit`.
    type Tx<'c>: DerefMut<Target = Self::Conn> + Send;

    /// True when one process owns the database: a lease found at start is
    /// a dead process's.
    const SINGLE_NODE: bool;
    /// What claiming appends to its row selection: `FOR UPDATE SKIP LOCKED`
    /// where several nodes claim at once.
    const CLAIM_LOCK: &'static str;
    /// The larger of two values (`MAX` in SQLite, `GREATEST` in PostgreSQL).
    const GREATEST: &'static str;
    /// Rows per multi-row insert, and whether its placeholders are numbered
    /// (`$n`) or not (`?`, which SQLite's driver binds without a lookup).
    const ROWS_PER_STATEMENT: usize;
    /// See `ROWS_PER_STATEMENT`.
    const NUMBERED_PLACEHOLDERS: bool;

    /// The keys addresses and message text are sealed with.
    fn keyring(&self) -> &super::Keyring;
    /// A connection for reads.
    fn reader(&self) -> impl Future<Output = Result<Self::Reader<'_>>> + Send;
    /// The connection for a write, once it is this caller's turn.
    fn writer(&self) -> impl Future<Output = Result<Self::Writer<'_>>> + Send;
    /// Begin a write transaction on `conn`.
    fn begin_write(conn: &mut Self::Conn) -> impl Future<Output = Result<Self::Tx<'_>>> + Send;
    /// Commit `tx`.
    fn commit(tx: Self::Tx<'_>) -> impl Future<Output = Result<()>> + Send;
    /// Take turns with other nodes creating participants of these orders
    /// (sorted), until the transaction ends.
    fn lock_orders(
        conn: &mut Self::Conn,
        orders: &[(&str, &str)],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Apply this backend's migrations.
    fn run_migrations(&self) -> impl Future<Output = Result<()>> + Send;
}

/// How many rows a statement changed, as each driver reports it.
pub trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn count(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn count(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn count(&self) -> u64 {
        self.rows_affected()
    }
}
