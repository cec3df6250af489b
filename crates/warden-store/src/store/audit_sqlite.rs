//! The SQLite append path: one batch, one blocking job.
//!
//! Appending a batch is half a dozen statements (BEGIN, lock the heads, insert the records,
//! move the heads, checkpoints, COMMIT). Through sqlx each one is a round trip to the
//! connection's worker thread; here the whole transaction runs on one blocking thread with
//! its own connection and cached statements, and the writer task waits once. It writes
//! exactly what [`super::audit`]'s generic path writes (the same records, hashes and
//! checkpoints, in the same order), which PostgreSQL and in-memory SQLite stores still use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, TransactionBehavior, named_params};
use warden_core::audit::Event;

use super::audit::{
    Appended, INSERT_CHECKPOINT, INSERT_COLUMNS, LOCK_HEAD, SET_HEAD, chunk_len, due_checkpoints,
    heads_of, place,
};
use crate::StoreError;
use crate::audit::chain::{Checkpoint, GENESIS, Record};
use crate::audit::signer::Signer;

/// Statements the connection keeps prepared: the head lock, four insert sizes, the head
/// update and the checkpoint insert.
const STATEMENT_CACHE: usize = 16;

/// A connection of its own to the store's SQLite file, used only for appends.
#[derive(Debug)]
pub(crate) struct Appender {
    path: PathBuf,
    busy: std::time::Duration,
    /// `None` until first used, and again after a failure that may have left it inside a
    /// transaction: the next batch reopens it.
    conn: Arc<Mutex<Option<Connection>>>,
    /// Set by [`Store::close`](super::Store::close): appends are refused from then on.
    closed: Arc<AtomicBool>,
}

impl Appender {
    pub(crate) fn new(path: &Path, busy: std::time::Duration) -> Self {
        Self {
            path: path.to_path_buf(),
            busy,
            conn: Arc::new(Mutex::new(None)),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Refuses further appends, waits for one in progress, and closes the connection.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let conn = self.conn.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut slot = conn.lock().unwrap_or_else(|p| p.into_inner());
            *slot = None;
        })
        .await;
    }

    pub(crate) async fn append(
        &self,
        events: Vec<Event>,
        checkpoint: Option<(Arc<Signer>, Vec<String>)>,
    ) -> Result<Vec<Appended>, StoreError> {
        let (conn, path, busy) = (self.conn.clone(), self.path.clone(), self.busy);
        let closed = self.closed.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection in an unknown state.
            let mut slot = conn.lock().unwrap_or_else(|poisoned| {
                let mut slot = poisoned.into_inner();
                *slot = None;
                slot
            });
            if closed.load(Ordering::SeqCst) {
                return Err(StoreError::Sqlite("the store is closed".into()));
            }
            let c = match slot.as_mut() {
                Some(c) => c,
                None => slot.insert(open(&path, busy)?),
            };
            let result = append_batch(c, events, checkpoint.as_ref());
            if result.is_err() && !c.is_autocommit() {
                // The transaction's drop rolled back, unless the failure was the COMMIT
                // itself; never reuse a connection that is still inside one.
                if c.execute_batch("ROLLBACK").is_err() || !c.is_autocommit() {
                    *slot = None;
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("the audit append task failed: {e}")))?
    }
}

fn open(path: &Path, busy: std::time::Duration) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
    conn.busy_timeout(busy).map_err(sqlite_error)?;
    // `synchronous` is per connection: FULL makes each COMMIT durable, as on the pool.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .map_err(sqlite_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

pub(crate) fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message,
        other => other.to_string(),
    })
}

/// The generic path's statements use `$n` placeholders; SQLite numbers those by first
/// appearance, so they are bound by name here.
fn append_batch(
    conn: &mut Connection,
    events: Vec<Event>,
    checkpoint: Option<&(Arc<Signer>, Vec<String>)>,
) -> Result<Vec<Appended>, StoreError> {
    let mut chains = heads_of(&events);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    {
        let mut lock = tx.prepare_cached(LOCK_HEAD).map_err(sqlite_error)?;
        for (chain, head) in chains.iter_mut() {
            *head = lock
                .query_row(named_params! {"$1": chain, "$2": GENESIS}, |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sqlite_error)?;
        }
    }
    let (rows, placed) = place(events, &mut chains);
    insert_records(&tx, &rows)?;
    {
        let mut set = tx.prepare_cached(SET_HEAD).map_err(sqlite_error)?;
        for (chain, (seq, hash)) in &chains {
            set.execute(named_params! {"$1": chain, "$2": seq, "$3": hash})
                .map_err(sqlite_error)?;
        }
    }
    for cp in due_checkpoints(checkpoint, &chains) {
        insert_checkpoint(&tx, &cp)?;
    }
    tx.commit().map_err(sqlite_error)?;
    Ok(placed)
}

const RECORD_BINDS: usize = 26;

fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; RECORD_BINDS].join(", "));
    format!("{INSERT_COLUMNS}VALUES {}", vec![one; rows].join(", "))
}

fn insert_records(tx: &rusqlite::Transaction<'_>, rows: &[Record]) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_len(rest.len()));
        rest = tail;
        let mut stmt = tx
            .prepare_cached(&insert_sql(chunk.len()))
            .map_err(sqlite_error)?;
        let mut at = 0;
        let mut bind = |v: &dyn rusqlite::ToSql| {
            at += 1;
            stmt.raw_bind_parameter(at, v)
        };
        for r in chunk {
            for v in [
                &r.chain as &dyn rusqlite::ToSql,
                &r.seq,
                &r.ts,
                &r.request_id,
                &r.event,
                &r.org,
                &r.user_id,
                &r.user_email,
                &r.auth_method,
                &r.credential,
                &r.source,
                &r.remote_addr,
                &r.user_agent,
                &r.action,
                &r.params,
                &r.decision,
                &r.stage,
                &r.rule,
                &r.reason,
                &r.outcome,
                &r.duration_us,
                &r.affected,
                &r.detail,
                &r.trace_id,
                &r.prev_hash,
                &r.hash,
            ] {
                bind(v).map_err(sqlite_error)?;
            }
        }
        stmt.raw_execute().map_err(sqlite_error)?;
    }
    Ok(())
}

fn insert_checkpoint(tx: &rusqlite::Transaction<'_>, cp: &Checkpoint) -> Result<(), StoreError> {
    tx.prepare_cached(INSERT_CHECKPOINT)
        .and_then(|mut s| {
            s.execute(named_params! {
                "$1": cp.chain, "$2": cp.seq, "$3": cp.hash, "$4": cp.ts,
                "$5": cp.kind, "$6": cp.key_id, "$7": cp.signature,
            })
        })
        .map_err(sqlite_error)?;
    Ok(())
}
