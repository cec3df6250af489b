//! Secrets shared by every instance on one state store, created on first use.

use super::rows::now_millis;
use super::{Backend, Store};
use crate::error::StoreError;

const INSERT_KEY: &str = "INSERT INTO server_keys (name, secret, created_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO NOTHING";
const SELECT_KEY: &str = "SELECT secret FROM server_keys WHERE name = $1";

impl Store {
    /// The 256-bit secret called `name`. The first instance to ask creates it; every later
    /// call, on any instance, gets the same one (the insert is a no-op once it exists).
    pub async fn server_key(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let mut fresh = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut fresh[..]);
        on_pool!(self, pool => sqlx::query(INSERT_KEY)
            .bind(name)
            .bind(hex::encode(fresh))
            .bind(now_millis())
            .execute(pool)
            .await
            .map(|_| ()))?;
        let stored: String = on_pool!(self, pool => sqlx::query_scalar(SELECT_KEY)
            .bind(name)
            .fetch_one(pool)
            .await)?;
        hex::decode(stored.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| StoreError::Corrupt {
                entity: "server key",
                detail: format!("the secret '{name}' is not 64 hex digits"),
            })
    }
}
