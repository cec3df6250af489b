//! Execute: runs a tool's compiled statement against the project's own data source.
//!
//! Pipeline position: after every check has passed (authorization, arguments, input policy
//! and, for writes, confirmation), before the output policy. Every way in takes an
//! [`crate::authz::Permit`], which only the authorize stage can make.
//!
//! Guarantees that hold whatever the SQL says:
//! - values are bound, never spliced into the text (see [`sql`]);
//! - a read tool runs on a read-only connection (SQLite opened read-only, PostgreSQL in a
//!   `READ ONLY` transaction), so a read tool cannot change data even if its SQL tries;
//! - a write tool runs in one transaction that commits only if the statement finishes in
//!   time; a timeout, an error or a cancellation rolls it back, so nothing is half-written;
//! - every statement has a deadline (`data.query_timeout_ms`).

mod decode;
pub mod sql;
mod sqlite_read;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use serde_json::{Map, Value};
use sqlx::Either;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio_util::sync::CancellationToken;

use crate::authz::Permit;
use crate::project::{Access, DataConfig, DataLocation, ParamType};
pub use sql::Statement;

/// A value ready to bind. A null keeps its declared type so PostgreSQL can plan with it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null(ParamType),
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

impl SqlValue {
    /// Converts a checked JSON argument of the declared type.
    pub fn from_json(v: &Value, ty: ParamType) -> Self {
        match (v, ty) {
            (Value::Bool(b), _) => Self::Bool(*b),
            (Value::Number(n), ParamType::Integer) => n.as_i64().map_or(Self::Null(ty), Self::Int),
            (Value::Number(n), _) => n.as_f64().map_or(Self::Null(ty), Self::Float),
            (Value::String(s), _) => Self::Text(s.clone()),
            (Value::Null, _) => Self::Null(ty),
            (other, _) => Self::Text(other.to_string()),
        }
    }
}

/// What a statement produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryOutput {
    pub rows: Vec<Map<String, Value>>,
    /// More rows existed than `data.max_rows`; they were not read.
    pub truncated: bool,
    pub rows_affected: u64,
    /// SQLite's rowid of the last row an `INSERT` added, when the statement inserted.
    pub last_insert_id: Option<i64>,
}

/// Runs between a write's statement and its COMMIT, with what the statement did; an `Err`
/// rolls the write back. The audit trail uses it to make the call's record durable before
/// the change can exist.
pub type Gate =
    Box<dyn FnOnce(&QueryOutput) -> futures::future::BoxFuture<'static, Result<(), String>> + Send>;

/// Many rows for one table, inserted in one transaction: `per` rows at a time with `many`
/// (whose positions are `per` rows' values in turn), the rest one by one with `single`.
#[derive(Debug)]
pub struct Batch {
    pub single: Statement,
    pub many: Statement,
    pub per: usize,
    /// What each row's values are: `single` names them so, `many` as `r<i>_<column>`.
    pub columns: Vec<String>,
    /// Values every row shares, by name (the caller's organisation).
    pub fixed: Vec<(String, SqlValue)>,
    pub rows: Vec<Vec<SqlValue>>,
    /// Told how many rows are in so far, after each statement.
    pub progress: Option<tokio::sync::watch::Sender<u64>>,
    /// The deadline for the whole batch (longer than one statement's).
    pub timeout: Duration,
}

/// What one transaction runs.
enum Work<'a> {
    /// One statement, borrowed where the work runs on the caller's task (PostgreSQL).
    One(Cow<'a, Statement>, Cow<'a, [SqlValue]>),
    Batch(Batch),
}

impl Work<'_> {
    /// The work for a task of its own (a SQLite write).
    fn into_owned(self) -> Work<'static> {
        match self {
            Work::One(stmt, args) => {
                Work::One(Cow::Owned(stmt.into_owned()), Cow::Owned(args.into_owned()))
            }
            Work::Batch(b) => Work::Batch(b),
        }
    }
}

/// What happens at the end of a write's transaction.
enum Finish {
    Commit,
    /// Commit only if the gate agrees.
    Gated(Gate),
    Rollback,
}

impl Finish {
    fn commits(&self) -> bool {
        !matches!(self, Self::Rollback)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the query took longer than {} ms and was stopped; narrow the request (add filters or a lower limit) and try again", .0.as_millis())]
    Timeout(Duration),
    #[error("the request was cancelled before the query finished; nothing was changed")]
    Cancelled,
    #[error("the database rejected the query: {0}")]
    Database(String),
    #[error(
        "column '{column}' has type {ty}, which Warden cannot return; cast it in the tool's SQL (e.g. CAST(x AS TEXT))"
    )]
    UnsupportedType { column: String, ty: String },
    #[error("cannot open the data source: {0}")]
    Connect(String),
    /// The write's gate refused; the write was rolled back.
    #[error("{0}")]
    Refused(String),
    /// A write path was given a read permit; nothing ran.
    #[error(
        "a write statement needs a write permit, and this call was allowed to read only; nothing was changed"
    )]
    NotPermitted,
}

impl ExecError {
    /// This error with the database's own message left out (it may repeat a value bound in
    /// the statement, e.g. `invalid input syntax for type uuid: "..."`), keeping the rows
    /// a batch's error names.
    pub fn withheld(self) -> Self {
        match self {
            Self::Database(m) => {
                let rows = m
                    .split_once(": ")
                    .map(|(head, _)| head)
                    .filter(|h| h.starts_with("row ") || h.starts_with("one of rows "));
                Self::Database(format!(
                    "{}the database refused the statement; its message is withheld because the call carries sensitive values",
                    rows.map(|r| format!("{r}: ")).unwrap_or_default()
                ))
            }
            other => other,
        }
    }
}

/// The connection pools for one project's data.
#[derive(Debug, Clone)]
pub enum DataSource {
    Sqlite {
        read: Arc<sqlite_read::Readers>,
        write: SqlitePool,
        limits: Limits,
    },
    Postgres {
        pool: PgPool,
        limits: Limits,
    },
}

/// How many connections a pool holds, and how many of them are idle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u64,
    pub idle: u64,
}

impl std::iter::Sum for PoolStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| Self {
            size: a.size + b.size,
            idle: a.idle + b.idle,
        })
    }
}

impl DataSource {
    /// The sqlx pool's connections (SQLite: the write pool; reads run on reader threads of
    /// their own, which are not a pool).
    pub fn pools(&self) -> PoolStats {
        let (size, idle) = match self {
            Self::Sqlite { write, .. } => (write.size(), write.num_idle()),
            Self::Postgres { pool, .. } => (pool.size(), pool.num_idle()),
        };
        PoolStats {
            size: u64::from(size),
            idle: idle as u64,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    pub max_rows: usize,
}

/// Instructions between SQLite progress callbacks: small enough to stop within a
/// millisecond or so, large enough to cost nothing measurable.
pub(crate) const SQLITE_PROGRESS_OPS: i32 = 4_000;

impl DataSource {
    pub async fn open(cfg: &DataConfig) -> Result<Self, ExecError> {
        let limits = Limits {
            timeout: cfg.query_timeout,
            max_rows: cfg.max_rows,
        };
        match &cfg.location {
            DataLocation::Sqlite(path) => {
                if !path.exists() {
                    return Err(ExecError::Connect(format!(
                        "the SQLite file {} does not exist (data.sqlite is relative to the project file)",
                        path.display()
                    )));
                }
                let base = SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(cfg.query_timeout)
                    .foreign_keys(true);
                // One writer avoids SQLITE_BUSY between our own writes; WAL lets reads run
                // beside it.
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        base.clone()
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Full),
                    )
                    .await
                    .map_err(|e| ExecError::Connect(e.to_string()))?;
                let (path, conns, busy) = (path.clone(), cfg.max_connections, cfg.query_timeout);
                let read = tokio::task::spawn_blocking(move || {
                    sqlite_read::Readers::open(&path, conns, busy)
                })
                .await
                .map_err(|e| ExecError::Connect(format!("cannot open the readers: {e}")))?
                .map_err(ExecError::Connect)?;
                Ok(Self::Sqlite {
                    read: Arc::new(read),
                    write,
                    limits,
                })
            }
            DataLocation::Postgres(url) => {
                let pool = PgPoolOptions::new()
                    .max_connections(cfg.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(|e| ExecError::Connect(redact_url(&e.to_string(), url)))?;
                Ok(Self::Postgres { pool, limits })
            }
        }
    }

    pub fn limits(&self) -> Limits {
        match self {
            Self::Sqlite { limits, .. } | Self::Postgres { limits, .. } => *limits,
        }
    }

    /// Runs one statement with the access `permit` allows: a read permit runs it on a
    /// read-only connection; a write commits only on success. `cancel` stops it early.
    pub async fn run(
        &self,
        permit: &Permit,
        stmt: &Statement,
        args: &[SqlValue],
        cancel: &CancellationToken,
    ) -> Result<QueryOutput, ExecError> {
        self.execute(stmt, args, permit.access(), cancel, Finish::Commit)
            .await
    }

    /// [`DataSource::run`] for a read that may return up to `max_rows` rows (an export),
    /// instead of `data.max_rows`.
    pub async fn run_capped(
        &self,
        permit: &Permit,
        stmt: &Statement,
        args: &[SqlValue],
        cancel: &CancellationToken,
        max_rows: usize,
    ) -> Result<QueryOutput, ExecError> {
        let mut limits = self.limits();
        limits.max_rows = max_rows;
        let work = Work::One(Cow::Borrowed(stmt), Cow::Borrowed(args));
        self.run_work(limits, work, permit.access(), cancel, Finish::Commit)
            .await
    }

    /// Runs a write statement whose COMMIT waits for `gate`: if the gate fails, the write is
    /// rolled back and [`ExecError::Refused`] carries the gate's reason.
    pub async fn run_gated(
        &self,
        permit: &Permit,
        stmt: &Statement,
        args: &[SqlValue],
        cancel: &CancellationToken,
        gate: Gate,
    ) -> Result<QueryOutput, ExecError> {
        write_permit(permit)?;
        self.execute(stmt, args, Access::Write, cancel, Finish::Gated(gate))
            .await
    }

    /// Inserts a batch of rows in one transaction whose COMMIT waits for `gate`, like
    /// [`DataSource::run_gated`]; an error names the rows of the statement that failed, and
    /// nothing is written.
    pub async fn run_batch_gated(
        &self,
        permit: &Permit,
        batch: Batch,
        cancel: &CancellationToken,
        gate: Gate,
    ) -> Result<QueryOutput, ExecError> {
        write_permit(permit)?;
        let mut limits = self.limits();
        limits.timeout = batch.timeout;
        self.run_work(
            limits,
            Work::Batch(batch),
            Access::Write,
            cancel,
            Finish::Gated(gate),
        )
        .await
    }

    /// Runs a write statement in a transaction that is always rolled back: what the write
    /// would do (rows affected, `RETURNING` rows), with nothing changed.
    pub async fn dry_run(
        &self,
        permit: &Permit,
        stmt: &Statement,
        args: &[SqlValue],
        cancel: &CancellationToken,
    ) -> Result<QueryOutput, ExecError> {
        write_permit(permit)?;
        self.execute(stmt, args, Access::Write, cancel, Finish::Rollback)
            .await
    }

    async fn execute(
        &self,
        stmt: &Statement,
        args: &[SqlValue],
        access: Access,
        cancel: &CancellationToken,
        finish: Finish,
    ) -> Result<QueryOutput, ExecError> {
        let work = Work::One(Cow::Borrowed(stmt), Cow::Borrowed(args));
        self.run_work(self.limits(), work, access, cancel, finish)
            .await
    }

    /// Runs `work` in one transaction with the access given: a SQLite read on a reader, a
    /// SQLite write in a task that owns its connection, PostgreSQL on the caller's task.
    async fn run_work(
        &self,
        limits: Limits,
        work: Work<'_>,
        access: Access,
        cancel: &CancellationToken,
        finish: Finish,
    ) -> Result<QueryOutput, ExecError> {
        match self {
            Self::Sqlite { read, .. } if access == Access::Read => match &work {
                Work::One(stmt, args) => {
                    sqlite_read::run(read, &stmt.text, args, limits, cancel).await
                }
                // Only writes come in batches.
                Work::Batch(_) => Err(ExecError::NotPermitted),
            },
            Self::Sqlite { write, .. } => {
                let stop = Arc::new(AtomicBool::new(false));
                let mut task = tokio::spawn(run_sqlite(
                    write.clone(),
                    work.into_owned(),
                    limits,
                    stop.clone(),
                    finish,
                ));
                let joined = tokio::select! {
                    r = &mut task => r,
                    () = cancel.cancelled() => {
                        // Interrupt, then wait for the task to roll back and release.
                        stop.store(true, Ordering::Relaxed);
                        task.await
                    }
                };
                joined.map_err(|e| ExecError::Database(format!("the query task failed: {e}")))?
            }
            Self::Postgres { pool, .. } => {
                // PostgreSQL enforces the deadline (statement_timeout); this is the backstop
                // for a stuck connection. Dropping the transaction rolls it back.
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => Err(ExecError::Cancelled),
                    r = tokio::time::timeout(limits.timeout + Duration::from_secs(1),
                                             run_postgres(pool, work, access, limits, finish)) => {
                        r.unwrap_or(Err(ExecError::Timeout(limits.timeout)))
                    }
                }
            }
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite { read, write, .. } => {
                read.close().await;
                write.close().await;
            }
            Self::Postgres { pool, .. } => pool.close().await,
        }
    }
}

/// A write path refuses a read permit: it would run with more than was allowed.
fn write_permit(permit: &Permit) -> Result<(), ExecError> {
    if permit.access() == Access::Write {
        Ok(())
    } else {
        Err(ExecError::NotPermitted)
    }
}

fn redact_url(message: &str, url: &str) -> String {
    message.replace(url, "<data.postgres>")
}

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                SqlValue::Null(ParamType::Integer) => q.bind(None::<i64>),
                SqlValue::Null(ParamType::Number) => q.bind(None::<f64>),
                SqlValue::Null(ParamType::Boolean) => q.bind(None::<bool>),
                SqlValue::Null(ParamType::String | ParamType::Object | ParamType::Array) => {
                    q.bind(None::<String>)
                }
                SqlValue::Int(v) => q.bind(*v),
                SqlValue::Float(v) => q.bind(*v),
                SqlValue::Text(v) => q.bind(v.clone()),
                SqlValue::Bool(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Reads the result stream: rows up to `max_rows` (then marks truncation and stops) and the
/// affected-row count.
// `fetch_many` is deprecated only for multi-statement strings; `sql::compile` guarantees one
// statement, and it is the one call that yields both rows and the affected-row count.
macro_rules! collect {
    ($stream:expr, $decode:path, $last_id:path, $limits:expr) => {{
        let mut out = QueryOutput::default();
        #[allow(deprecated)]
        let mut stream = $stream;
        while let Some(item) = stream.try_next().await.map_err(db_error)? {
            match item {
                Either::Left(done) => {
                    out.rows_affected += done.rows_affected();
                    out.last_insert_id = $last_id(&done);
                }
                Either::Right(row) => {
                    if out.rows.len() == $limits.max_rows {
                        out.truncated = true;
                        break;
                    }
                    out.rows.push($decode(&row)?);
                }
            }
        }
        out
    }};
}

/// Runs a batch's statements in the open transaction `$tx`, counting rows and telling its
/// progress; the first error (naming its rows) stops it.
macro_rules! run_batch {
    ($tx:ident, $b:ident) => {{
        let mut out = QueryOutput::default();
        let mut r = Ok(());
        for (first, stmt, args) in batch_jobs($b) {
            let q = bind_all!(sqlx::query(sqlx::AssertSqlSafe(stmt.text.as_str())), &args);
            match q.execute(&mut *$tx).await {
                Ok(done) => out.rows_affected += done.rows_affected(),
                Err(e) => {
                    r = Err(batch_error($b, first, &stmt, db_error(e)));
                    break;
                }
            }
            if let Some(p) = &$b.progress {
                let _ = p.send(out.rows_affected);
            }
        }
        r.map(|()| out)
    }};
}

/// Runs one write statement on SQLite (reads go to [`sqlite_read`]). Called in its own task
/// that owns the connection, so a caller that goes away cannot drop a transaction half-way:
/// the task always reaches its commit or rollback. `stop` asks it to interrupt the statement early.
async fn run_sqlite(
    pool: SqlitePool,
    work: Work<'static>,
    limits: Limits,
    stop: Arc<AtomicBool>,
    finish: Finish,
) -> Result<QueryOutput, ExecError> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let deadline = Instant::now() + limits.timeout;
    let armed = Arc::new(AtomicBool::new(true));
    let expired = Arc::new(AtomicBool::new(false));
    {
        let (armed, expired, stop) = (armed.clone(), expired.clone(), stop.clone());
        let mut handle = conn.lock_handle().await.map_err(db_error)?;
        // Interrupts only the tool's statement: it is disarmed before the COMMIT or ROLLBACK
        // that follows, which must never be interrupted.
        handle.set_progress_handler(SQLITE_PROGRESS_OPS, move || {
            if !armed.load(Ordering::Acquire) {
                return true;
            }
            let late = Instant::now() >= deadline;
            if late {
                expired.store(true, Ordering::Relaxed);
            }
            !(late || stop.load(Ordering::Relaxed))
        });
    }
    let mut healthy = true;
    let result = {
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(db_error)?;
        let out = match &work {
            Work::One(stmt, args) => {
                let q = bind_all!(
                    sqlx::query(sqlx::AssertSqlSafe(stmt.text.as_str())),
                    args.iter()
                );
                async {
                    Ok(collect!(
                        q.fetch_many(&mut *tx),
                        decode::sqlite_row,
                        sqlite_last_id,
                        limits
                    ))
                }
                .await
            }
            Work::Batch(b) => run_batch!(tx, b),
        };
        armed.store(false, Ordering::Release);
        // The gate runs with the write lock held and the statement done, before COMMIT.
        let out = match (out, finish) {
            (Ok(out), Finish::Gated(gate)) => match gate(&out).await {
                Ok(()) => Ok((out, true)),
                Err(reason) => Err(ExecError::Refused(reason)),
            },
            (Ok(out), f) => Ok((out, f.commits())),
            (Err(e), _) => Err(e),
        };
        match out {
            Ok((out, false)) => {
                healthy = tx.rollback().await.is_ok();
                if healthy {
                    Ok(out)
                } else {
                    Err(ExecError::Database(
                        "the dry run could not be rolled back".into(),
                    ))
                }
            }
            Ok((out, true)) => match tx.commit().await {
                Ok(()) => Ok(out),
                Err(e) => {
                    healthy = false;
                    Err(db_error(e))
                }
            },
            Err(e) => {
                // SQLite itself rolls back on some errors (an interrupt, for one), in which
                // case this ROLLBACK fails; either way the transaction is gone.
                healthy = tx.rollback().await.is_ok();
                Err(e)
            }
        }
    };
    if let Ok(mut handle) = conn.lock_handle().await {
        handle.remove_progress_handler();
    }
    if !healthy {
        // The driver may still believe a transaction is open; never hand this connection
        // to another call.
        conn.close_on_drop();
    }
    match result {
        Err(e @ ExecError::Refused(_)) => Err(e),
        Err(_) if stop.load(Ordering::Relaxed) => Err(ExecError::Cancelled),
        Err(_) if expired.load(Ordering::Relaxed) => Err(ExecError::Timeout(limits.timeout)),
        other => other,
    }
}

async fn run_postgres(
    pool: &PgPool,
    work: Work<'_>,
    access: Access,
    limits: Limits,
    finish: Finish,
) -> Result<QueryOutput, ExecError> {
    let begin = if access == Access::Read {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    let mut tx = pool.begin_with(begin).await.map_err(db_error)?;
    // Bound, and local to this transaction.
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(limits.timeout.as_millis().to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let outcome = match &work {
        Work::One(stmt, args) => {
            let q = bind_all!(
                sqlx::query(sqlx::AssertSqlSafe(stmt.text.as_str())),
                args.iter()
            );
            async {
                Ok::<_, ExecError>(collect!(
                    q.fetch_many(&mut *tx),
                    decode::pg_row,
                    pg_last_id,
                    limits
                ))
            }
            .await
        }
        Work::Batch(b) => run_batch!(tx, b),
    };
    let out = match outcome {
        Ok(out) => out,
        Err(ExecError::Database(m)) if m.contains("statement timeout") => {
            return Err(ExecError::Timeout(limits.timeout));
        }
        Err(e) => return Err(e),
    };
    match finish {
        Finish::Commit => tx.commit().await.map_err(db_error)?,
        Finish::Gated(gate) => match gate(&out).await {
            Ok(()) => tx.commit().await.map_err(db_error)?,
            Err(reason) => {
                tx.rollback().await.map_err(db_error)?;
                return Err(ExecError::Refused(reason));
            }
        },
        Finish::Rollback => tx.rollback().await.map_err(db_error)?,
    }
    Ok(out)
}

/// Where a statement's position takes its value from, in a batch.
#[derive(Clone, Copy)]
enum Slot {
    /// Row `i` of the statement's rows, column `c`.
    Row(usize, usize),
    Fixed(usize),
    Null,
}

/// Each position of `stmt` (rows prefixed `r<i>_` when `many`) as a slot.
fn plan(stmt: &Statement, b: &Batch, many: bool) -> Vec<Slot> {
    stmt.names
        .iter()
        .map(|n| {
            if let Some(k) = b.fixed.iter().position(|(f, _)| f == n) {
                return Slot::Fixed(k);
            }
            let (row, col) = if many {
                match n
                    .strip_prefix('r')
                    .and_then(|r| r.split_once('_'))
                    .and_then(|(i, c)| i.parse::<usize>().ok().map(|i| (i, c)))
                {
                    Some(x) => x,
                    None => return Slot::Null,
                }
            } else {
                (0, n.as_str())
            };
            b.columns
                .iter()
                .position(|c| c == col)
                .map_or(Slot::Null, |c| Slot::Row(row, c))
        })
        .collect()
}

fn fill(plan: &[Slot], b: &Batch, rows: &[Vec<SqlValue>]) -> Vec<SqlValue> {
    plan.iter()
        .map(|s| match *s {
            Slot::Row(i, c) => rows
                .get(i)
                .and_then(|r| r.get(c))
                .cloned()
                .unwrap_or(SqlValue::Null(ParamType::String)),
            Slot::Fixed(k) => b
                .fixed
                .get(k)
                .map_or(SqlValue::Null(ParamType::String), |f| f.1.clone()),
            Slot::Null => SqlValue::Null(ParamType::String),
        })
        .collect()
}

/// A batch's statements in order: `(index of its first row, statement, values)`.
fn batch_jobs(b: &Batch) -> impl Iterator<Item = (usize, Statement, Vec<SqlValue>)> + '_ {
    let per = b.per.max(1);
    let full = b.rows.len() / per * per;
    let many_plan = plan(&b.many, b, true);
    let single_plan = plan(&b.single, b, false);
    let many = b.rows[..full]
        .chunks(per)
        .enumerate()
        .map(move |(i, chunk)| (i * per, b.many.clone(), fill(&many_plan, b, chunk)));
    let single = b.rows[full..].iter().enumerate().map(move |(i, row)| {
        (
            full + i,
            b.single.clone(),
            fill(&single_plan, b, std::slice::from_ref(row)),
        )
    });
    many.chain(single)
}

/// A database error of one of a batch's statements, naming its rows (1-based).
fn batch_error(b: &Batch, first: usize, stmt: &Statement, e: ExecError) -> ExecError {
    let n = if stmt.text == b.many.text { b.per } else { 1 };
    let (from, to) = (first + 1, first + n);
    match e {
        ExecError::Database(m) if n == 1 => ExecError::Database(format!("row {from}: {m}")),
        ExecError::Database(m) => ExecError::Database(format!("one of rows {from} to {to}: {m}")),
        other => other,
    }
}

fn sqlite_last_id(done: &sqlx::sqlite::SqliteQueryResult) -> Option<i64> {
    Some(done.last_insert_rowid()).filter(|id| *id != 0)
}

fn pg_last_id(_: &sqlx::postgres::PgQueryResult) -> Option<i64> {
    None
}

fn db_error(e: sqlx::Error) -> ExecError {
    match e {
        sqlx::Error::Database(d) => ExecError::Database(d.message().to_string()),
        other => ExecError::Database(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
