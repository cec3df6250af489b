//! Write confirmations: minted when a write is previewed, used once when it is confirmed.

use chrono::{DateTime, TimeDelta, Utc};

use super::rows::millis;
use super::{Backend, Store};
use crate::StoreError;
use crate::model::validate_token_hash;

/// What a confirmation token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub user_id: String,
    pub org: String,
    pub tool: String,
    pub args_hash: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

const INSERT: &str = "INSERT INTO confirmations \
     (token_hash, user_id, org, tool, args_hash, created_at, expires_at, used_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)";
const GET: &str = "SELECT user_id, org, tool, args_hash, expires_at, used_at FROM confirmations WHERE token_hash = $1";
// Single use: only an unused, unexpired token is marked.
// RETURNING decides single use, not the affected-row count (see `oauth::REVOKE_ACCESS_TOKEN`).
const USE: &str = "UPDATE confirmations SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING token_hash";
const PURGE: &str = "DELETE FROM confirmations WHERE expires_at < $1";

/// Expired confirmations are kept this long (to tell "expired" from "unknown"), then deleted.
const RETENTION: TimeDelta = TimeDelta::hours(1);

#[derive(sqlx::FromRow)]
struct Row {
    user_id: String,
    org: String,
    tool: String,
    args_hash: String,
    expires_at: i64,
    used_at: Option<i64>,
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        entity: "confirmation",
        detail: format!("timestamp {ms}"),
    })
}

impl Store {
    pub async fn insert_confirmation(
        &self,
        hash: &str,
        c: &Confirmation,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        validate_token_hash(hash)?;
        on_pool!(self, pool => sqlx::query(INSERT)
            .bind(hash)
            .bind(&c.user_id)
            .bind(&c.org)
            .bind(&c.tool)
            .bind(&c.args_hash)
            .bind(millis(now))
            .bind(millis(c.expires_at))
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The confirmation with this hash, used or not.
    pub async fn confirmation(&self, hash: &str) -> Result<Option<Confirmation>, StoreError> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, Row>(GET).bind(hash).fetch_optional(pool).await)?;
        row.map(|r| {
            Ok(Confirmation {
                user_id: r.user_id,
                org: r.org,
                tool: r.tool,
                args_hash: r.args_hash,
                expires_at: time(r.expires_at)?,
                used_at: r.used_at.map(time).transpose()?,
            })
        })
        .transpose()
    }

    /// Marks a confirmation used; false if it was already used, expired or unknown.
    /// Atomic: a confirmation is used at most once.
    pub async fn use_confirmation(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let used: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(USE)
            .bind(hash)
            .bind(millis(now))
            .fetch_optional(pool)
            .await)?;
        Ok(used.is_some())
    }

    /// Deletes confirmations that expired more than an hour before `now`.
    pub async fn purge_confirmations(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let n = on_pool!(self, pool => sqlx::query(PURGE)
            .bind(millis(now - RETENTION))
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?;
        Ok(n)
    }
}
