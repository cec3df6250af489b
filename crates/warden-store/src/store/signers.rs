//! The audit signers: the public keys whose checkpoints verify, and the endorsements between
//! them. Several instances on one state store each sign with their own key; which keys an
//! auditor trusts follows from a key the auditor holds, through endorsements only signing
//! keys can make, never from the database's say-so.

use super::rows::now_millis;
use super::{Backend, Store};
use crate::error::StoreError;

/// A registered checkpoint signer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct AuditSigner {
    /// The key's short id, as checkpoints name it.
    pub key_id: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// Milliseconds since the epoch.
    pub added_at: i64,
    pub added_by: String,
}

/// One signer vouching for another.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Endorsement {
    pub endorser: String,
    pub endorsee: String,
    /// The endorser's signature over [`endorsement_message`] of the endorsee, hex.
    pub signature: String,
}

/// What an endorsement signs: the endorsee's key id and public key.
pub fn endorsement_message(key_id: &str, public_key: &str) -> Vec<u8> {
    format!("warden-audit-signer/1|{key_id}|{public_key}").into_bytes()
}

const LIST: &str =
    "SELECT key_id, public_key, added_at, added_by FROM audit_signers ORDER BY added_at, key_id";
const ADD: &str = "INSERT INTO audit_signers (key_id, public_key, added_at, added_by) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (key_id) DO NOTHING";
/// Only into an empty table: the first instance's own key, and only one can win.
const ADD_FIRST: &str = "INSERT INTO audit_signers (key_id, public_key, added_at, added_by) \
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM audit_signers)";
const REMOVE: &str = "DELETE FROM audit_signers WHERE key_id = $1";
const REMOVE_ENDORSEMENTS: &str =
    "DELETE FROM audit_endorsements WHERE endorser = $1 OR endorsee = $1";
const ENDORSE: &str = "INSERT INTO audit_endorsements (endorser, endorsee, signature) \
     VALUES ($1, $2, $3) ON CONFLICT (endorser, endorsee) DO NOTHING";
const ENDORSEMENTS: &str = "SELECT endorser, endorsee, signature FROM audit_endorsements \
     ORDER BY endorser, endorsee";

impl Store {
    /// Every registered signer, oldest first.
    pub async fn audit_signers(&self) -> Result<Vec<AuditSigner>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(LIST).fetch_all(pool).await)?)
    }

    /// Every endorsement between signers.
    pub async fn audit_endorsements(&self) -> Result<Vec<Endorsement>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(ENDORSEMENTS).fetch_all(pool).await)?)
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

    /// Records that `endorser` vouches for `endorsee` (kept if already there).
    pub async fn add_endorsement(
        &self,
        endorser: &str,
        endorsee: &str,
        signature: &str,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(ENDORSE)
            .bind(endorser)
            .bind(endorsee)
            .bind(signature)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Removes a signer and every endorsement by or of it; `false` if it was not registered.
    pub async fn remove_audit_signer(&self, key_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => sqlx::query(REMOVE_ENDORSEMENTS)
            .bind(key_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        let done = on_pool!(self, pool => sqlx::query(REMOVE)
            .bind(key_id)
            .execute(pool)
            .await
            .map(|d| d.rows_affected()))?;
        Ok(done > 0)
    }
}
