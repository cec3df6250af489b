//! The limiter's memory: sign-in and token failures counted in the state store, so that
//! every instance on one store keeps the same limits. `crate::limiter` decides; this file
//! hashes the keys, asks the store (one statement for a check, one for a failure) and
//! clears an account's counter on success. A store that cannot answer refuses the attempt.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

use super::{AuthServer, InternalError};
use crate::limiter::{self, Limiter, Verdict};

/// Dead counters are deleted at most this often per instance...
const PURGE_EVERY_MS: i64 = 60_000;
/// ...and at most this many at a time.
const PURGE_BATCH: u32 = 1_000;

/// Which limiter a key is counted under (each has its own policy).
#[derive(Debug, Clone, Copy)]
pub(super) enum Limit {
    /// Password sign-in and sign-in link requests.
    SignIn,
    /// Failed requests at the token endpoint.
    Token,
}

/// When this instance last purged dead counters (unix ms).
#[derive(Debug, Default)]
pub(super) struct LastPurge(pub(super) AtomicI64);

impl AuthServer {
    fn limiter(&self, limit: Limit) -> &Limiter {
        match limit {
            Limit::SignIn => &self.logins,
            Limit::Token => &self.token_failures,
        }
    }

    /// The keys as the store keeps them (see [`limiter::stored_key`]).
    pub(super) async fn stored_keys(&self, keys: &[String]) -> Result<Vec<String>, InternalError> {
        let secret = self
            .failure_key
            .get_or_try_init(|| self.store.server_key(limiter::KEY_NAME))
            .await?;
        keys.iter()
            .map(|k| {
                limiter::stored_key(secret, k)
                    .ok_or_else(|| InternalError::Other("cannot hash a limiter key".into()))
            })
            .collect()
    }

    /// The verdict for an attempt under `keys` at `now`. An error means the attempt must be
    /// refused: the limits cannot be checked.
    pub(super) async fn limit_check(
        &self,
        limit: Limit,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Verdict, InternalError> {
        let stored = self.stored_keys(keys).await?;
        let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
        let counts = self.store.failure_counts(&refs).await?;
        Ok(self.limiter(limit).verdict(&counts, now))
    }

    /// Counts a failure under each of `keys`; returns those this failure locked (each lock is
    /// reported by exactly one instance, the one whose failure reached the threshold).
    pub(super) async fn limit_failure(
        &self,
        limit: Limit,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, InternalError> {
        let limiter = self.limiter(limit);
        let stored = self.stored_keys(keys).await?;
        let refs: Vec<&str> = stored.iter().map(String::as_str).collect();
        let after = self.store.count_failure(&refs, &limiter.rule(now)).await?;
        self.purge_now_and_then(now).await;
        Ok(keys
            .iter()
            .zip(&stored)
            .filter(|(_, s)| after.iter().any(|a| &a.key == *s && limiter.just_locked(a)))
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// Forgets the counter under `key` (a sign-in succeeded). A failure here only leaves the
    /// account counted for longer, so it is logged, not returned.
    pub(super) async fn limit_clear(&self, key: &str) {
        let cleared = async {
            let stored = self.stored_keys(&[key.to_string()]).await?;
            for k in &stored {
                self.store.clear_failures(k).await?;
            }
            Ok::<_, InternalError>(())
        };
        if let Err(e) = cleared.await {
            tracing::error!(error = %e, "could not clear a sign-in failure counter");
        }
    }

    async fn purge_now_and_then(&self, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let last = self.last_purge.0.load(Ordering::Relaxed);
        if now_ms - last < PURGE_EVERY_MS
            || self
                .last_purge
                .0
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.store.purge_failures(now, PURGE_BATCH).await {
            tracing::warn!(error = %e, "could not delete old sign-in failure counters");
        }
    }
}
