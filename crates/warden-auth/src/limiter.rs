//! Brute-force protection for sign-in and token requests: failures are counted per account
//! and per address over a window; each failure past a threshold adds a growing delay, and too
//! many lock the key out for a while.
//!
//! This module is the policy only, with no memory and no clock: the counters live in the
//! state store (`warden_store::Store::count_failure`), shared by every instance, and the
//! time is always passed in. `server/limits.rs` joins the two.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use warden_store::{FailureCount, FailureRule};

/// The name of the key, in the state store, under which counter keys are hashed.
pub const KEY_NAME: &str = "auth_failures";

#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    /// Failures counted within this window.
    pub window: Duration,
    /// Failures allowed before delays start.
    pub free_failures: u32,
    /// Failures within the window that lock the key out.
    pub lockout_after: u32,
    pub lockout_for: Duration,
    pub max_delay: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            free_failures: 3,
            lockout_after: 10,
            lockout_for: Duration::from_secs(15 * 60),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting this long (zero for a clean record).
    Proceed(Duration),
    /// Refuse without checking the credentials.
    Locked { retry_after: Duration },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Limiter {
    config: LimiterConfig,
}

fn later(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX)
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self { config }
    }

    /// The verdict for the worst of `counts` (e.g. those of `account:...` and `addr:...`):
    /// locked if any is locked (for the longest lock), else the longest delay.
    pub fn verdict(&self, counts: &[FailureCount], now: DateTime<Utc>) -> Verdict {
        let mut locked = None;
        let mut delay = Duration::ZERO;
        for c in counts.iter().filter(|c| c.is_live(now)) {
            if let Some(until) = c.locked_until
                && until > now
            {
                let left = (until - now).to_std().unwrap_or(Duration::ZERO);
                locked = Some(locked.map_or(left, |l: Duration| l.max(left)));
                continue;
            }
            delay = delay.max(self.delay(c.failures));
        }
        match locked {
            Some(retry_after) => Verdict::Locked { retry_after },
            None => Verdict::Proceed(delay),
        }
    }

    /// The wait before an attempt after `failures` failures in the window: none for the free
    /// ones, then 500 ms, doubling, up to `max_delay`.
    pub fn delay(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.config.free_failures);
        if over == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(250u64.saturating_mul(1 << over.min(10))).min(self.config.max_delay)
    }

    /// How the store counts a failure at `now`: a new window if the old one is over, and a
    /// lock set by the failure that reaches `lockout_after`.
    pub fn rule(&self, now: DateTime<Utc>) -> FailureRule {
        FailureRule {
            now,
            window_ends_at: later(now, self.config.window),
            lockout_after: self.config.lockout_after,
            locked_until: later(now, self.config.lockout_for),
        }
    }

    /// Whether this counter was locked by the failure that produced it (so it is logged and
    /// recorded once, by the instance that counted it).
    pub fn just_locked(&self, after: &FailureCount) -> bool {
        after.failures == self.config.lockout_after && after.locked_until.is_some()
    }
}

/// The key as stored: its kind (`account`, `addr`, ...) and an HMAC-SHA-256 of the whole key
/// under the store's shared `secret`, so the table is not a list of who tried to sign in.
pub fn stored_key(secret: &[u8; 32], key: &str) -> Option<String> {
    let kind = key.split_once(':').map_or("key", |(kind, _)| kind);
    // HMAC accepts keys of any length: this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(b"warden auth failures v1\0");
    mac.update(key.as_bytes());
    Some(format!(
        "{kind}:{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests;
