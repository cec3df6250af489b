//! Rate limits shared by every instance on one state store, cheap on the hot path.
//!
//! Each limit is a token bucket kept in the state store (`Store::take_tokens`: one atomic
//! statement). A [`SharedLimiter`] does not go to the store for every request: it takes
//! [`grant_size`] tokens at a time and spends them locally (a lease), going back only when
//! its lease is used up or has expired ([`LEASE_TTL`], so an idle instance does not sit on
//! capacity). While a key is refused, it is refused locally until the bucket will have a
//! token again (nothing else can add one sooner).
//!
//! A key is leased several tokens only while it is busy (its last lease was used up before
//! it expired); otherwise one at a time, so a caller slower than the lease's life is counted
//! exactly.
//!
//! Error bound: tokens leave the shared bucket before they are used here, so the shared
//! limit (`burst` plus `rate` × time, whichever instances serve the requests) is never
//! exceeded. The error is under-admission only: each instance holds at most one lease per
//! key, of at most `grant − 1` unused tokens, so at most `instances × (grant − 1)` tokens
//! of a key are stranded at a time, and they expire with the lease.
//!
//! A store that cannot answer refuses ([`RateError`]): a limit that cannot be checked is not
//! let through. The local map is bounded ([`MAX_KEYS`]); evicting a key only forgets its
//! lease (under-admission again) or its local refusal (the next request asks the store).
//!
//! Generic over what is limited: the key is the caller's (hash it first if it names a person
//! or an address), the [`Rule`] is given with each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use warden_store::{Store, StoreError};

/// How long leased tokens may be used before they are given up.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// Keys held locally at most.
pub const MAX_KEYS: usize = 100_000;
/// Most tokens leased at once.
pub const MAX_GRANT: u32 = 16;

/// A token bucket: up to `burst` requests at once, refilled at `rate_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub rate_per_sec: f64,
    pub burst: u32,
}

impl Rule {
    /// `burst` at once, `per_minute` a minute after that.
    pub fn per_minute(burst: u32, per_minute: u32) -> Self {
        Self {
            rate_per_sec: f64::from(per_minute) / 60.0,
            burst,
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Over the limit: no token until then.
    Limited {
        retry_after: Duration,
    },
}

/// The limit could not be checked; the request must be refused.
#[derive(Debug, thiserror::Error)]
#[error("the rate limit cannot be checked: {0}")]
pub struct RateError(#[from] StoreError);

/// Most tokens leased at once for a fast bucket (a quarter second of its rate).
pub const MAX_FAST_GRANT: u32 = 4096;

/// Tokens taken from the shared bucket at a time: an eighth of the burst, at least one, and
/// at most [`MAX_GRANT`], or a quarter second of the rate for a fast bucket (up to
/// [`MAX_FAST_GRANT`]), so that a busy bucket costs one store write per many requests.
pub fn grant_size(rule: Rule) -> u32 {
    let by_rate = (rule.rate_per_sec / 4.0).clamp(0.0, f64::from(MAX_FAST_GRANT)) as u32;
    (rule.burst / 8).clamp(1, by_rate.max(MAX_GRANT))
}

/// One key's local state.
#[derive(Debug, Default)]
struct Local {
    /// Leased tokens not yet used...
    tokens: u32,
    /// ...usable until then (unix ms).
    lease_until: i64,
    /// Refused locally until then (unix ms): the bucket has no token before.
    refused_until: i64,
    last_used: i64,
}

impl Local {
    /// Answers from local state alone, if it can.
    fn admit(&mut self, now: i64) -> Option<Admission> {
        self.last_used = now;
        if now < self.refused_until {
            let ms = u64::try_from(self.refused_until - now).unwrap_or(1);
            return Some(Admission::Limited {
                retry_after: Duration::from_millis(ms),
            });
        }
        if self.tokens > 0 && now < self.lease_until {
            self.tokens -= 1;
            return Some(Admission::Allowed);
        }
        None
    }

    fn is_idle(&self, now: i64) -> bool {
        now >= self.lease_until && now >= self.refused_until
    }
}

#[derive(Debug, Default)]
struct Entry {
    local: Mutex<Local>,
    /// Held while this instance asks the store for this key: one lease at a time.
    refill: tokio::sync::Mutex<()>,
}

/// Admits requests under shared token buckets, leasing tokens from the state store.
#[derive(Debug)]
pub struct SharedLimiter {
    store: Store,
    keys: Mutex<HashMap<String, Arc<Entry>>>,
    max_keys: usize,
}

impl SharedLimiter {
    pub fn new(store: Store) -> Self {
        Self::with_max_keys(store, MAX_KEYS)
    }

    pub fn with_max_keys(store: Store, max_keys: usize) -> Self {
        Self {
            store,
            keys: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// Whether a request under `key` may go ahead at `now`, by `rule`.
    pub async fn admit(
        &self,
        key: &str,
        rule: Rule,
        now: DateTime<Utc>,
    ) -> Result<Admission, RateError> {
        self.admit_leasing(key, rule, grant_size(rule), now).await
    }

    /// As [`SharedLimiter::admit`], leasing `grant` tokens at a time (1 for a bucket that
    /// does not refill, such as a daily quota, whose stranded tokens would never come back).
    pub async fn admit_leasing(
        &self,
        key: &str,
        rule: Rule,
        grant: u32,
        now: DateTime<Utc>,
    ) -> Result<Admission, RateError> {
        let now_ms = now.timestamp_millis();
        let entry = self.entry(key, now_ms);
        if let Some(a) = lock(&entry.local).admit(now_ms) {
            return Ok(a);
        }
        let _refilling = entry.refill.lock().await;
        // Another request may have refilled while this one waited.
        if let Some(a) = lock(&entry.local).admit(now_ms) {
            return Ok(a);
        }
        // Lease several only for a key whose last lease was used up before it expired: a key
        // seen less often than that takes one token per request, so that leased tokens
        // expiring unused do not count against a slow caller.
        let busy = now_ms < lock(&entry.local).lease_until;
        let grant = if busy { grant } else { 1 };
        let got = self
            .store
            .take_tokens(
                key,
                rule.rate_per_sec,
                f64::from(rule.burst),
                grant.max(1),
                now_ms,
            )
            .await?;
        let mut local = lock(&entry.local);
        if got.granted == 0 {
            let wait = got.retry_after.unwrap_or(Duration::from_secs(1));
            local.refused_until = now_ms.saturating_add(millis(wait));
            return Ok(Admission::Limited { retry_after: wait });
        }
        local.tokens = got.granted - 1;
        local.lease_until = now_ms.saturating_add(millis(LEASE_TTL));
        Ok(Admission::Allowed)
    }

    /// Tokens bucket `key` holds in the store now (leases held by instances not counted).
    pub async fn left(&self, key: &str, rule: Rule, now: DateTime<Utc>) -> Result<f64, RateError> {
        Ok(self
            .store
            .peek_tokens(
                key,
                rule.rate_per_sec,
                f64::from(rule.burst),
                now.timestamp_millis(),
            )
            .await?)
    }

    /// Keys held locally now.
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, key: &str, now: i64) -> Arc<Entry> {
        let mut keys = lock(&self.keys);
        if let Some(e) = keys.get(key) {
            return e.clone();
        }
        if keys.len() >= self.max_keys {
            evict(&mut keys, now, self.max_keys);
        }
        let e = Arc::new(Entry::default());
        keys.insert(key.to_string(), e.clone());
        e
    }
}

/// Makes room: drops every idle key (no live lease or refusal), and if that is not enough,
/// the least recently used half.
fn evict(keys: &mut HashMap<String, Arc<Entry>>, now: i64, max: usize) {
    keys.retain(|_, e| !lock(&e.local).is_idle(now));
    if keys.len() < max {
        return;
    }
    let mut used: Vec<(i64, String)> = keys
        .iter()
        .map(|(k, e)| (lock(&e.local).last_used, k.clone()))
        .collect();
    used.sort_unstable();
    for (_, k) in used.into_iter().take(keys.len() - max / 2) {
        keys.remove(&k);
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A poisoned lock still holds consistent counters (no update spans a panic point).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;

/// The project's call limits (`warden_core::pipeline::limits`) over shared buckets.
#[derive(Debug)]
pub struct CallBuckets(pub Arc<SharedLimiter>);

/// Below this rate a bucket is a quota: it is leased one token at a time.
const QUOTA_RATE: f64 = 1e-3;

impl warden_core::pipeline::limits::CallLimiter for CallBuckets {
    fn take(
        &self,
        key: String,
        rate: warden_core::pipeline::limits::Rate,
        now: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'static, Result<Option<Duration>, String>> {
        let limiter = self.0.clone();
        Box::pin(async move {
            let rule = Rule {
                rate_per_sec: rate.per_sec,
                burst: rate.burst,
            };
            let grant = if rate.per_sec < QUOTA_RATE {
                1
            } else {
                grant_size(rule)
            };
            match limiter.admit_leasing(&key, rule, grant, now).await {
                Ok(Admission::Allowed) => Ok(None),
                Ok(Admission::Limited { retry_after }) => Ok(Some(retry_after)),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    fn debit(
        &self,
        key: String,
        rate: warden_core::pipeline::limits::Rate,
        n: u64,
        now: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'static, Result<(), String>> {
        let store = self.0.store.clone();
        Box::pin(async move {
            store
                .debit_tokens(
                    &key,
                    rate.per_sec,
                    f64::from(rate.burst),
                    n,
                    now.timestamp_millis(),
                )
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn left(
        &self,
        key: String,
        rate: warden_core::pipeline::limits::Rate,
        now: DateTime<Utc>,
    ) -> futures::future::BoxFuture<'static, Result<f64, String>> {
        let limiter = self.0.clone();
        Box::pin(async move {
            let rule = Rule {
                rate_per_sec: rate.per_sec,
                burst: rate.burst,
            };
            limiter
                .left(&key, rule, now)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
