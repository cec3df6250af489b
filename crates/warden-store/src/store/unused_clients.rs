//! Clients registered through `/register` that were never used: no grant was ever made for
//! them (no one completed an authorization). Anyone may register a client, so their number
//! is capped, per registering address and in total, and they are deleted once old enough.
//!
//! The cap is exact across instances: the counts and the insert run in one transaction that
//! first takes a lock row (`rate_buckets` key [`LOCK_KEY`]; on SQLite the write lock
//! `BEGIN IMMEDIATE` takes serializes them anyway). A registration already over the cap is
//! refused by a first count outside the transaction, so a flood does not queue on the lock.
//! The purge deletes only clients with no grant row; a grant refers to its client (foreign
//! key), so a grant made while the purge runs makes the purge fail rather than orphan it.

use chrono::{DateTime, Utc};

use super::rows::{ClientRow, encode_redirect_uris, millis};
use super::{Backend, BeginWrite, Store};
use crate::StoreError;
use crate::model::{ClientId, OAuthClient, validate_not_blank};

/// The row whose lock serializes capped registrations (it holds no bucket; a purge of full
/// buckets may delete it, and the next registration makes it again).
pub const LOCK_KEY: &str = "lock:client_registrations";

const LOCK: &str = "INSERT INTO rate_buckets (bucket_key, tokens, updated_at, full_at, last_take) \
     VALUES ($1, 0, $2, $2, 0) \
     ON CONFLICT (bucket_key) DO UPDATE SET updated_at = excluded.updated_at";

/// The condition that makes a client unused.
macro_rules! unused {
    () => {
        "NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = oauth_clients.id)"
    };
}

/// Unused clients registered from `$1`, and the oldest of them (ms).
const COUNT_FROM: &str = concat!(
    "SELECT COUNT(*), MIN(created_at) FROM oauth_clients WHERE registered_from = $1 AND ",
    unused!()
);

const COUNT_ALL: &str = concat!("SELECT COUNT(*) FROM oauth_clients WHERE ", unused!());

const INSERT: &str = "INSERT INTO oauth_clients \
     (id, name, redirect_uris, created_at, revoked_at, registered_from) \
     VALUES ($1, $2, $3, $4, NULL, $5) \
     RETURNING id, name, redirect_uris, created_at, revoked_at";

const PURGE: &str = concat!(
    "DELETE FROM oauth_clients WHERE id IN (\
     SELECT id FROM oauth_clients WHERE created_at < $1 AND ",
    unused!(),
    " LIMIT $2) AND ",
    unused!(),
    " RETURNING id"
);

/// How many unused clients may exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCap {
    /// Registered from one address.
    pub per_address: u32,
    /// In all.
    pub total: u32,
}

/// The outcome of a capped registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Registered(OAuthClient),
    /// The address has `per_address` unused clients; the oldest was registered then.
    AddressFull {
        oldest: DateTime<Utc>,
    },
    /// There are `total` unused clients.
    TotalFull,
}

fn verdict(from_address: (i64, Option<i64>), total: i64, cap: ClientCap) -> Option<Registration> {
    if from_address.0 >= i64::from(cap.per_address) {
        let oldest = from_address
            .1
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_default();
        return Some(Registration::AddressFull { oldest });
    }
    (total >= i64::from(cap.total)).then_some(Registration::TotalFull)
}

impl Store {
    /// Registers a client for `registered_from` (the caller's hashed address key) unless
    /// that address already has `cap.per_address` unused clients or there are `cap.total`.
    pub async fn create_client_capped(
        &self,
        name: &str,
        redirect_uris: &[String],
        registered_from: &str,
        cap: ClientCap,
        now: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        validate_not_blank("client name", name)?;
        if redirect_uris.is_empty() {
            return Err(StoreError::Invalid {
                field: "redirect URIs",
                value: "[]".to_owned(),
                rule: "register at least one redirect URI",
            });
        }
        for uri in redirect_uris {
            validate_not_blank("redirect URI", uri)?;
        }
        let id = ClientId::new_random().to_string();
        let uris = encode_redirect_uris(redirect_uris);
        let now = millis(now);
        on_pool!(self, pool => async {
            // Over the cap already: no need to queue for the lock.
            let from: (i64, Option<i64>) =
                sqlx::query_as(COUNT_FROM).bind(registered_from).fetch_one(pool).await?;
            let total: i64 = sqlx::query_scalar(COUNT_ALL).fetch_one(pool).await?;
            if let Some(refused) = verdict(from, total, cap) {
                return Ok(refused);
            }
            let mut tx = pool.begin_write().await?;
            sqlx::query(LOCK).bind(LOCK_KEY).bind(now).execute(&mut *tx).await?;
            let from: (i64, Option<i64>) = sqlx::query_as(COUNT_FROM)
                .bind(registered_from)
                .fetch_one(&mut *tx)
                .await?;
            let total: i64 = sqlx::query_scalar(COUNT_ALL).fetch_one(&mut *tx).await?;
            if let Some(refused) = verdict(from, total, cap) {
                tx.rollback().await?;
                return Ok(refused);
            }
            let row: ClientRow = sqlx::query_as(INSERT)
                .bind(&id)
                .bind(name)
                .bind(&uris)
                .bind(now)
                .bind(registered_from)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, StoreError>(Registration::Registered(row.try_into()?))
        }
        .await)
    }

    /// Deletes up to `limit` clients registered before `older_than` for which no grant was
    /// ever made. Returns how many were deleted.
    pub async fn purge_unused_clients(
        &self,
        older_than: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let gone: Vec<(String,)> = on_pool!(self, pool => sqlx::query_as(PURGE)
            .bind(millis(older_than))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await)?;
        Ok(gone.len() as u64)
    }
}
