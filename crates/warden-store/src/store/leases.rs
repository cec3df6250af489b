//! Leases for jobs that must run on one instance at a time: a row per job naming its holder
//! and until when. Taking one is a single statement, so two instances cannot both win; a
//! holder that dies simply lets its lease run out.

use super::{Backend, Store};
use crate::error::StoreError;

/// Takes the lease if it is free, expired, or already ours; returns the holder after.
const TAKE: &str = "INSERT INTO job_leases (name, holder, until) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
     WHERE job_leases.until <= $4 OR job_leases.holder = excluded.holder \
     RETURNING holder";
const RELEASE: &str = "UPDATE job_leases SET until = 0 WHERE name = $1 AND holder = $2";
const DROP: &str = "DELETE FROM job_leases WHERE name = $1 AND holder = $2";

impl Store {
    /// Takes (or renews) the lease on job `name` for `holder` until `until_ms`, if no other
    /// holder has it past `now_ms`. `true` when `holder` holds it now.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let got: Option<String> = on_pool!(self, pool => sqlx::query_scalar(TAKE)
            .bind(name)
            .bind(holder)
            .bind(until_ms)
            .bind(now_ms)
            .fetch_optional(pool)
            .await)?;
        Ok(got.as_deref() == Some(holder))
    }

    /// Gives the lease back early (only if `holder` has it).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(RELEASE)
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Gives a short-lived lease up and deletes its row (only if `holder` has it), for
    /// leases named after something unbounded (an account), so that rows do not pile up.
    pub async fn drop_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(DROP)
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
