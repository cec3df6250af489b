//! Abuse limits on the endpoints anyone may call: a request rate per client address for each
//! endpoint family (`/register`, `/authorize`, `/token`, `/revoke`, sign-in), kept in the state
//! store's shared token buckets through a [`SharedLimiter`], so that every instance enforces
//! one limit. Keys are `{endpoint}-addr:` + a keyed hash of the address (no address is stored
//! in the clear). A refusal is counted (`warden.auth.rate_limited`) and recorded in a bounded
//! way (`flood.rs`). A limit that cannot be checked refuses.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use warden_core::project::Bucket;

use super::AuthServer;
use super::flood::Limit;
use crate::limiter;
use crate::rate::{Admission, Rule};

/// Refusals by an abuse limit, by `endpoint` and `limit` (`rate`,
/// `unused_clients_per_address`, `unused_clients_total`).
pub const RATE_LIMITED: &str = "warden.auth.rate_limited";

/// Full buckets are deleted at most this often per instance, this many at a time.
const PURGE_EVERY_MS: i64 = 60_000;
const PURGE_BATCH: u32 = 1_000;

/// An endpoint family limited per address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Register,
    /// `GET` and `POST /authorize`.
    Authorize,
    Token,
    Revoke,
    /// `/login`, `/login/magic`.
    SignIn,
}

impl Endpoint {
    /// The path named in the trail and the metric.
    pub fn path(self) -> &'static str {
        match self {
            Self::Register => "/register",
            Self::Authorize => "/authorize",
            Self::Token => "/token",
            Self::Revoke => "/revoke",
            Self::SignIn => "/login",
        }
    }

    fn key_kind(self) -> &'static str {
        match self {
            Self::Register => "register-addr",
            Self::Authorize => "authorize-addr",
            Self::Token => "token-rate-addr",
            Self::Revoke => "revoke-addr",
            Self::SignIn => "sign-in-rate-addr",
        }
    }
}

/// Why a request from an address was refused before it was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AbuseRefusal {
    /// Over the limit: try again after `retry_after`.
    #[error("Too many requests from your address; try again in {} seconds.", whole_seconds(*.retry_after))]
    TooMany { retry_after: Duration },
    /// The limit cannot be checked (the state store is unreachable), so nothing goes through.
    #[error("This service is temporarily unavailable; try again in a minute.")]
    Unavailable,
}

/// Seconds, rounded up (as `Retry-After` says them).
pub fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

fn rule(b: Bucket) -> Rule {
    Rule::per_minute(b.burst, b.per_minute)
}

impl AuthServer {
    fn bucket(&self, endpoint: Endpoint) -> Bucket {
        let l = &self.abuse_limits;
        match endpoint {
            Endpoint::Register => l.register,
            Endpoint::Authorize => l.authorize,
            Endpoint::Token => l.token,
            Endpoint::Revoke => l.revoke,
            Endpoint::SignIn => l.sign_in,
        }
    }

    /// The address's key as stored: `{kind}:` + HMAC of the address under the store's key.
    pub(super) async fn address_key(&self, kind: &str, addr: &str) -> Option<String> {
        let secret = self
            .failure_key
            .get_or_try_init(|| self.store.server_key(limiter::KEY_NAME))
            .await
            .map_err(|e| tracing::error!(error = %e, "cannot read the limiter key"))
            .ok()?;
        limiter::stored_key(secret, &format!("{kind}:{addr}"))
    }

    /// Whether a request from `addr` (an IP address) to `endpoint` may be handled now.
    pub async fn admit_address(&self, endpoint: Endpoint, addr: &str) -> Result<(), AbuseRefusal> {
        let now = Utc::now();
        let Some(key) = self.address_key(endpoint.key_kind(), addr).await else {
            return Err(AbuseRefusal::Unavailable);
        };
        let admission = self
            .rate
            .admit(&key, rule(self.bucket(endpoint)), now)
            .await;
        self.purge_buckets_now_and_then(now).await;
        match admission {
            Ok(Admission::Allowed) => Ok(()),
            Ok(Admission::Limited { retry_after }) => {
                self.note_refusal(endpoint, Limit::Rate, addr).await;
                Err(AbuseRefusal::TooMany { retry_after })
            }
            Err(e) => {
                tracing::error!(error = %e, endpoint = endpoint.path(), "cannot check a rate limit; refusing");
                Err(AbuseRefusal::Unavailable)
            }
        }
    }

    /// Counts and records (boundedly) a request refused by an abuse limit.
    pub(super) async fn note_refusal(&self, endpoint: Endpoint, limit: Limit, addr: &str) {
        metrics::counter!(RATE_LIMITED, "endpoint" => endpoint.path(), "limit" => limit.name())
            .increment(1);
        self.floods.refused(endpoint.path(), limit, addr).await;
    }

    async fn purge_buckets_now_and_then(&self, now: DateTime<Utc>) {
        let now_ms = now.timestamp_millis();
        let last = self.last_bucket_purge.0.load(Ordering::Relaxed);
        if now_ms - last < PURGE_EVERY_MS
            || self
                .last_bucket_purge
                .0
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.store.purge_full_buckets(now_ms, PURGE_BATCH).await {
            tracing::warn!(error = %e, "could not delete full rate buckets");
        }
    }
}
