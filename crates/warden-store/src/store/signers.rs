//! The audit signers: the public keys whose checkpoints verify. Several instances on one
//! state store each sign with their own key, so the trail's trust is this list, kept beside
//! it, rather than one key file.

use super::rows::now_millis;
use super::{Backend, Store};
use crate::error::StoreError;

/// A registered checkpoint signer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditSigner {
    /// The key's short id, as checkpoints name it.
    pub key_id: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// Milliseconds since the epoch.
    pub added_at: i64,
    pub added_by: String,
}

const LIST: &str =
    "SELECT key_id, public_key, added_at, added_by FROM audit_signers ORDER BY added_at, key_id";
const ADD: &str = "INSERT INTO audit_signers (key_id, public_key, added_at, added_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING";
/// Only into an empty table: the first instance's own key, and only one can win.
const ADD_FIRST: &str = "INSERT INTO audit_signers (key_id, public_key, added_at, added_by) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM audit_signers)";
const REMOVE: &str = "DELETE FROM audit_signers WHERE key_id = $1";

impl Store {
    /// Every registered signer, oldest first.
    pub async fn audit_signers(&self) -> Result<Vec<AuditSigner>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(LIST).fetch_all(pool).await)?)
    }

    /// Registers a signer; `false` if that key was already registered.
    pub async fn add_audit_signer(
        &self,
        key_id: &str,
        public_key: &str,
        added_by: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(ADD)
            .bind(key_id)
            .bind(public_key)
            .bind(now_millis())
            .bind(added_by)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?;
        Ok(done > 0)
    }

    /// Registers `key_id` only if no signer is registered yet (the first instance on a new
    /// state store); `true` if it was.
    pub async fn add_first_audit_signer(
        &self,
        key_id: &str,
        public_key: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(ADD_FIRST)
            .bind(key_id)
            .bind(public_key)
            .bind(now_millis())
            .bind("first instance")
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?;
        Ok(done > 0)
    }

    /// Removes a signer; `false` if it was not registered.
    pub async fn remove_audit_signer(&self, key_id: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(REMOVE)
            .bind(key_id)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?;
        Ok(done > 0)
    }
}
