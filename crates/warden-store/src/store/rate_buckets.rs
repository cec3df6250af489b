//! Token buckets shared by every instance on this store.
//!
//! A bucket holds up to `burst` tokens and refills at `rate` tokens a second. Taking is one
//! `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`: the row is refilled for the time since
//! it was last touched, then what is granted is taken, in the same statement, so concurrent
//! takers on any number of instances never get more than the bucket held. A missing row is a
//! full bucket. Keys arrive already hashed by the caller where they name an address.
//!
//! What is granted: all `want` tokens if the bucket holds them, else one token if it holds
//! one, else none (then the caller is told how long until one is there). Whole tokens only,
//! so that a caller leasing a few at a time still gets single tokens near the end.

use std::time::Duration;

use super::{Backend, Store};
use crate::StoreError;

/// The refill: `tokens + elapsed * rate`, at most `burst`. Time never runs backwards for a
/// bucket (an instance whose clock is behind refills nothing).
/// `$2` rate per ms, `$3` burst, `$4` want, `$5` now (ms).
macro_rules! refilled {
    () => {
        "(CASE WHEN rate_buckets.tokens + (CASE WHEN $5 > rate_buckets.updated_at \
             THEN $5 - rate_buckets.updated_at ELSE 0 END) * $2 >= $3 THEN $3 \
         ELSE rate_buckets.tokens + (CASE WHEN $5 > rate_buckets.updated_at \
             THEN $5 - rate_buckets.updated_at ELSE 0 END) * $2 END)"
    };
}

/// What is taken from the refilled bucket: `want`, else one, else nothing.
macro_rules! taken {
    () => {
        concat!(
            "(CASE WHEN ",
            refilled!(),
            " >= $4 THEN $4 WHEN ",
            refilled!(),
            " >= 1 THEN 1 ELSE 0 END)"
        )
    };
}

/// `$1` key, `$6`, `$7`, `$8`: tokens left, tokens taken and `full_at` of a new (full) bucket.
/// Every `SET` expression reads the row as it was before this statement, on both backends.
const TAKE: &str = concat!(
    "INSERT INTO rate_buckets (bucket_key, tokens, updated_at, full_at, last_take) \
     VALUES ($1, $6, $5, $8, $7) \
     ON CONFLICT (bucket_key) DO UPDATE SET \
     tokens = ",
    refilled!(),
    " - ",
    taken!(),
    ", last_take = ",
    taken!(),
    ", updated_at = CASE WHEN $5 > rate_buckets.updated_at THEN $5 \
         ELSE rate_buckets.updated_at END, \
     full_at = (CASE WHEN $5 > rate_buckets.updated_at THEN $5 \
         ELSE rate_buckets.updated_at END) + CAST(($3 - (",
    refilled!(),
    " - ",
    taken!(),
    ")) / $2 AS BIGINT) + 1 \
     RETURNING tokens, last_take"
);

/// Takes `$4` tokens whatever is there, leaving at least none: for usage known only after
/// the fact (rows a call returned). `$6` is what a new (full) bucket keeps.
const DEBIT: &str = concat!(
    "INSERT INTO rate_buckets (bucket_key, tokens, updated_at, full_at, last_take) \
     VALUES ($1, $6, $5, $5 + CAST(($3 - $6) / $2 AS BIGINT) + 1, $4) \
     ON CONFLICT (bucket_key) DO UPDATE SET \
     tokens = CASE WHEN ",
    refilled!(),
    " - $4 > 0 THEN ",
    refilled!(),
    " - $4 ELSE 0 END, last_take = $4, \
     updated_at = CASE WHEN $5 > rate_buckets.updated_at THEN $5 \
         ELSE rate_buckets.updated_at END, \
     full_at = (CASE WHEN $5 > rate_buckets.updated_at THEN $5 \
         ELSE rate_buckets.updated_at END) + CAST($3 / $2 AS BIGINT) + 1"
);

// Bounded, like every purge here; how many went is read from RETURNING. A daily quota's
// bucket (`quota:DAY:...`) never refills, so it goes once its day is well past instead.
const PURGE: &str = "DELETE FROM rate_buckets WHERE bucket_key IN (\
     SELECT bucket_key FROM rate_buckets WHERE full_at <= $1 \
      OR (bucket_key LIKE 'quota:%' AND updated_at < $1 - 172800000) LIMIT $2) \
     RETURNING bucket_key";

/// The slowest refill accepted: one token in about 11.6 days.
pub const MIN_RATE_PER_SEC: f64 = 1e-6;
/// The largest bucket accepted.
pub const MAX_BURST: f64 = 1e9;

/// What one take got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TakeOutcome {
    /// Whole tokens granted: `want`, one, or none.
    pub granted: u32,
    /// Tokens left in the bucket after this take.
    pub left: f64,
    /// When nothing was granted: how long until one token is there.
    pub retry_after: Option<Duration>,
}

fn check(rate_per_sec: f64, burst: f64, want: u32) -> Result<(), StoreError> {
    if !(rate_per_sec.is_finite() && rate_per_sec >= MIN_RATE_PER_SEC) {
        return Err(StoreError::Invalid {
            field: "bucket rate",
            value: rate_per_sec.to_string(),
            rule: "use a rate of at least one token in about 11 days (1e-6 per second)",
        });
    }
    if !(burst.is_finite() && (1.0..=MAX_BURST).contains(&burst)) {
        return Err(StoreError::Invalid {
            field: "bucket burst",
            value: burst.to_string(),
            rule: "use a burst between 1 and 1e9 tokens",
        });
    }
    if want == 0 {
        return Err(StoreError::Invalid {
            field: "tokens wanted",
            value: "0".into(),
            rule: "ask for at least one token",
        });
    }
    Ok(())
}

/// `want`, one, or nothing, from `available` tokens (the rule the statement applies).
fn grant_from(available: f64, want: f64) -> f64 {
    if available >= want {
        want
    } else if available >= 1.0 {
        1.0
    } else {
        0.0
    }
}

impl Store {
    /// Takes tokens from the bucket `key` (`burst` tokens at most, refilled at
    /// `rate_per_sec`) at `now_ms` (unix ms): `want` if the bucket holds them, else one,
    /// else none, with how long until one is there. One atomic statement: any number of
    /// concurrent takers, on any number of instances, never get more than the bucket held.
    pub async fn take_tokens(
        &self,
        key: &str,
        rate_per_sec: f64,
        burst: f64,
        want: u32,
        now_ms: i64,
    ) -> Result<TakeOutcome, StoreError> {
        check(rate_per_sec, burst, want)?;
        let rate_ms = rate_per_sec / 1000.0;
        let want = f64::from(want);
        // A new row starts full.
        let new_take = grant_from(burst, want);
        let new_left = burst - new_take;
        let new_full_at = now_ms + ((burst - new_left) / rate_ms) as i64 + 1;
        let (left, taken): (f64, f64) = on_pool!(self, pool => sqlx::query_as(TAKE)
            .bind(key)
            .bind(rate_ms)
            .bind(burst)
            .bind(want)
            .bind(now_ms)
            .bind(new_left)
            .bind(new_take)
            .bind(new_full_at)
            .fetch_one(pool)
            .await)?;
        let granted = if taken >= 1.0 {
            taken.round() as u32
        } else {
            0
        };
        let retry_after = (granted == 0).then(|| {
            let ms = ((1.0 - left).max(0.0) / rate_ms).ceil().max(1.0);
            Duration::from_millis(ms.min(u64::MAX as f64) as u64)
        });
        Ok(TakeOutcome {
            granted,
            left,
            retry_after,
        })
    }

    /// Takes `n` tokens from bucket `key` however many it holds (it keeps at least none):
    /// usage counted after the fact, such as the rows a call returned.
    pub async fn debit_tokens(
        &self,
        key: &str,
        rate_per_sec: f64,
        burst: f64,
        n: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        check(rate_per_sec, burst, 1)?;
        let rate_ms = rate_per_sec / 1000.0;
        let n = n as f64;
        on_pool!(self, pool => sqlx::query(DEBIT)
            .bind(key)
            .bind(rate_ms)
            .bind(burst)
            .bind(n)
            .bind(now_ms)
            .bind((burst - n).max(0.0))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Tokens bucket `key` holds at `now_ms`, without taking any (a missing bucket is full).
    pub async fn peek_tokens(
        &self,
        key: &str,
        rate_per_sec: f64,
        burst: f64,
        now_ms: i64,
    ) -> Result<f64, StoreError> {
        const PEEK: &str = "SELECT tokens, updated_at FROM rate_buckets WHERE bucket_key = $1";
        let row: Option<(f64, i64)> = on_pool!(self, pool => sqlx::query_as(PEEK)
            .bind(key)
            .fetch_optional(pool)
            .await)?;
        Ok(match row {
            None => burst,
            Some((tokens, updated_at)) => {
                let elapsed = (now_ms - updated_at).max(0) as f64;
                (tokens + elapsed * rate_per_sec / 1000.0).min(burst)
            }
        })
    }

    /// Deletes up to `limit` buckets that are full at `now_ms` (a missing bucket is a full
    /// one, so nothing changes for their keys). Returns how many were deleted.
    pub async fn purge_full_buckets(&self, now_ms: i64, limit: u32) -> Result<u64, StoreError> {
        let gone: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(PURGE)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(gone.len() as u64)
    }
}
