//! Failure counters for sign-in and token requests, shared by every instance on this store.
//!
//! The store keeps the counters; the caller's limiter decides what they mean. A failure is
//! one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` per statement (up to two keys), so
//! concurrent failures from any number of instances are each counted exactly once, and the
//! failure that reaches the threshold is the one that sets the lock. Keys arrive already
//! hashed by the caller; the store never sees an email.

use chrono::{DateTime, Utc};

use super::rows::millis;
use super::{Backend, Store};
use crate::StoreError;

/// One key's counter, as the store holds it after a read or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    pub key: String,
    /// Failures since the window began.
    pub failures: u32,
    /// When the window ends; after it (and any lock), the counter is dead.
    pub window_ends_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

impl FailureCount {
    /// Whether the counter still counts at `now`: its window has not ended, or it is locked.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.window_ends_at >= now || self.locked_until.is_some_and(|u| u > now)
    }
}

/// How one failure at `now` changes a counter: the caller's policy as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRule {
    pub now: DateTime<Utc>,
    /// The end of a window that begins with this failure.
    pub window_ends_at: DateTime<Utc>,
    /// The failure that brings the count to exactly this many locks the key...
    pub lockout_after: u32,
    /// ...until then.
    pub locked_until: DateTime<Utc>,
}

/// The statement for one or two keys. The counter starts again (at 1, lock cleared) when its
/// window has ended and it is not locked; otherwise it grows by one, and the failure that
/// makes it exactly `lockout_after` sets the lock. Every `SET` expression reads the row as it
/// was before this statement, on both backends.
///
/// `$1` key, `$2` end of a new window, `$3` now, `$4` lock of a new row (NULL unless one
/// failure locks), `$5` lockout threshold, `$6` lock end, `$7` second key.
macro_rules! count_failure {
    ($values:literal) => {
        concat!(
            "INSERT INTO auth_failures (limit_key, failures, window_ends_at, locked_until) VALUES ",
            $values,
            " ON CONFLICT (limit_key) DO UPDATE SET \
             failures = CASE WHEN auth_failures.window_ends_at < $3 \
                 AND (auth_failures.locked_until IS NULL OR auth_failures.locked_until <= $3) \
                 THEN 1 ELSE auth_failures.failures + 1 END, \
             window_ends_at = CASE WHEN auth_failures.window_ends_at < $3 \
                 AND (auth_failures.locked_until IS NULL OR auth_failures.locked_until <= $3) \
                 THEN excluded.window_ends_at ELSE auth_failures.window_ends_at END, \
             locked_until = CASE WHEN auth_failures.window_ends_at < $3 \
                 AND (auth_failures.locked_until IS NULL OR auth_failures.locked_until <= $3) \
                 THEN excluded.locked_until \
                 WHEN auth_failures.failures + 1 = $5 THEN $6 \
                 ELSE auth_failures.locked_until END \
             RETURNING limit_key, failures, window_ends_at, locked_until"
        )
    };
}

const COUNT_ONE: &str = count_failure!("($1, 1, $2, $4)");
const COUNT_TWO: &str = count_failure!("($1, 1, $2, $4), ($7, 1, $2, $4)");

const READ: &str = "SELECT limit_key, failures, window_ends_at, locked_until \
     FROM auth_failures WHERE limit_key IN ($1, $2)";

const CLEAR: &str = "DELETE FROM auth_failures WHERE limit_key = $1";

// Bounded, so that a purge after a flood of distinct keys is never one long statement.
// How many went is read from RETURNING (see `confirm::USE` on affected-row counts).
const PURGE: &str = "DELETE FROM auth_failures WHERE limit_key IN (\
     SELECT limit_key FROM auth_failures \
     WHERE window_ends_at < $1 AND (locked_until IS NULL OR locked_until <= $1) \
     LIMIT $2) RETURNING limit_key";

#[derive(sqlx::FromRow)]
struct Row {
    limit_key: String,
    failures: i64,
    window_ends_at: i64,
    locked_until: Option<i64>,
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        entity: "auth failure",
        detail: format!("timestamp {ms} is out of range"),
    })
}

impl TryFrom<Row> for FailureCount {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<Self, StoreError> {
        Ok(FailureCount {
            failures: u32::try_from(r.failures).map_err(|_| StoreError::Corrupt {
                entity: "auth failure",
                detail: format!("count {}", r.failures),
            })?,
            window_ends_at: time(r.window_ends_at)?,
            locked_until: r.locked_until.map(time).transpose()?,
            key: r.limit_key,
        })
    }
}

fn counts(rows: Vec<Row>) -> Result<Vec<FailureCount>, StoreError> {
    rows.into_iter().map(FailureCount::try_from).collect()
}

impl Store {
    /// The stored counters for `keys` (one statement per two keys), live or dead; keys with
    /// no row are absent.
    pub async fn failure_counts(&self, keys: &[&str]) -> Result<Vec<FailureCount>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for pair in keys.chunks(2) {
            let (a, b) = match *pair {
                [a, b] => (a, b),
                [a] => (a, a),
                _ => continue,
            };
            let rows: Vec<Row> = on_pool!(self, pool => sqlx::query_as(READ)
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await)?;
            found.extend(counts(rows)?);
        }
        Ok(found)
    }

    /// Counts one failure for each of `keys` under `rule` and returns the counters as they
    /// now stand. Atomic per key across instances: no failure is lost or counted twice.
    pub async fn count_failure(
        &self,
        keys: &[&str],
        rule: &FailureRule,
    ) -> Result<Vec<FailureCount>, StoreError> {
        // One order for every caller, so two statements never wait on each other's rows.
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let first_locks = (rule.lockout_after <= 1).then(|| millis(rule.locked_until));
        let mut after = Vec::with_capacity(sorted.len());
        for pair in sorted.chunks(2) {
            let (sql, first, second) = match *pair {
                [a, b] => (COUNT_TWO, a, Some(b)),
                [a] => (COUNT_ONE, a, None),
                _ => continue,
            };
            let rows: Vec<Row> = on_pool!(self, pool => {
                let q = sqlx::query_as(sql)
                    .bind(first)
                    .bind(millis(rule.window_ends_at))
                    .bind(millis(rule.now))
                    .bind(first_locks)
                    .bind(i64::from(rule.lockout_after))
                    .bind(millis(rule.locked_until));
                let q = match second {
                    Some(second) => q.bind(second),
                    None => q,
                };
                q.fetch_all(pool).await
            })?;
            after.extend(counts(rows)?);
        }
        Ok(after)
    }

    /// Forgets `key`'s counter (a success that clears it).
    pub async fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(CLEAR)
            .bind(key)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Deletes up to `limit` counters that are dead at `now` (window over, not locked).
    /// Returns how many were deleted.
    pub async fn purge_failures(&self, now: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let gone: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(PURGE)
            .bind(millis(now))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(gone.len() as u64)
    }
}
