//! The execute stage's SQLite reads: a tool's statement bound, stepped and decoded to JSON
//! on a [`warden_sqlite::Readers`] connection (first on the calling thread within
//! [`INLINE_BUDGET`], else on a reader thread under the real deadline), with the deadline
//! and a caller's cancellation reaching SQLite through its progress handler, as on the
//! write path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};
pub use warden_sqlite::{INLINE_BUDGET, Readers};

use super::{ExecError, Limits, QueryOutput, SQLITE_PROGRESS_OPS, SqlValue};

/// Runs one read statement and decodes its rows. `cancel` interrupts it; the call then
/// waits for the thread to let go of the statement before returning.
pub(super) async fn run(
    readers: &Readers,
    sql: &str,
    args: &[SqlValue],
    limits: Limits,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<QueryOutput, ExecError> {
    if !cancel.is_cancelled()
        && limits.timeout > INLINE_BUDGET
        && let Some(out) = readers.try_inline(|c| query(c, sql, args, limits.max_rows))
    {
        return Ok(out);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (sql, args, halt) = (sql.to_string(), args.to_vec(), stop.clone());
    let answer = readers.hand_off(move |conn| read(conn, &sql, &args, limits, &halt));
    tokio::pin!(answer);
    let answered = tokio::select! {
        r = &mut answer => r,
        () = cancel.cancelled() => {
            stop.store(true, Ordering::Relaxed);
            answer.await
        }
    };
    answered.unwrap_or_else(|| Err(closed()))
}

fn closed() -> ExecError {
    ExecError::Database("the data source is closed, or its reader failed on this statement".into())
}

/// One read tool statement under its deadline and the caller's `stop`.
fn read(
    conn: &Connection,
    sql: &str,
    args: &[SqlValue],
    limits: Limits,
    stop: &Arc<AtomicBool>,
) -> Result<QueryOutput, ExecError> {
    let expired = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + limits.timeout;
    let armed = {
        let (stop, expired) = (stop.clone(), expired.clone());
        conn.progress_handler(
            SQLITE_PROGRESS_OPS,
            Some(move || {
                let late = Instant::now() >= deadline;
                if late {
                    expired.store(true, Ordering::Relaxed);
                }
                late || stop.load(Ordering::Relaxed)
            }),
        )
    };
    // Without the handler there is no deadline: refuse rather than run unbounded.
    let result = match armed.map_err(db_error) {
        Err(e) => Err(e),
        Ok(()) => query(conn, sql, args, limits.max_rows),
    };
    let result = match result {
        Err(_) if stop.load(Ordering::Relaxed) => Err(ExecError::Cancelled),
        Err(_) if expired.load(Ordering::Relaxed) => Err(ExecError::Timeout(limits.timeout)),
        other => other,
    };
    let _ = conn.progress_handler(SQLITE_PROGRESS_OPS, None::<fn() -> bool>);
    result
}

fn query(
    conn: &Connection,
    sql: &str,
    args: &[SqlValue],
    max_rows: usize,
) -> Result<QueryOutput, ExecError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_error)?;
    for (i, a) in args.iter().enumerate() {
        let at = i + 1;
        let bound = match a {
            SqlValue::Null(_) => stmt.raw_bind_parameter(at, rusqlite::types::Null),
            SqlValue::Int(v) => stmt.raw_bind_parameter(at, v),
            SqlValue::Float(v) => stmt.raw_bind_parameter(at, v),
            SqlValue::Text(v) => stmt.raw_bind_parameter(at, v.as_str()),
            SqlValue::Bool(v) => stmt.raw_bind_parameter(at, v),
        };
        bound.map_err(db_error)?;
    }
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut out = QueryOutput::default();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(db_error)? {
        if out.rows.len() == max_rows {
            out.truncated = true;
            break;
        }
        let mut map = Map::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let value = match row.get_ref(i).map_err(db_error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(v) => Value::from(v),
                ValueRef::Real(v) => Value::from(v),
                ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => Value::String(s.to_string()),
                    Err(e) => {
                        return Err(ExecError::Database(format!(
                            "cannot read column '{name}': {e}"
                        )));
                    }
                },
                ValueRef::Blob(bytes) => Value::String(super::decode::base64(bytes)),
            };
            map.insert(name.clone(), value);
        }
        out.rows.push(map);
    }
    Ok(out)
}

fn db_error(e: rusqlite::Error) -> ExecError {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => ExecError::Database(message),
        other => ExecError::Database(other.to_string()),
    }
}
