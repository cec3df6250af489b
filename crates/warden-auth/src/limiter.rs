//! Brute-force protection for sign-in and token requests: failures are counted per account
//! and per address over a window; each failure past a threshold adds a growing delay, and too
//! many lock the key out for a while. Counters live in memory, per instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting this long (zero for a clean record).
    Proceed(Duration),
    /// Refuse without checking the credentials.
    Locked { retry_after: Duration },
}

#[derive(Debug, Default)]
pub struct Limiter {
    config: LimiterConfig,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict for the worst of `keys` (e.g. `account:alice@x` and `addr:10.0.0.1`).
    pub fn check(&self, keys: &[String], now: Instant) -> Verdict {
        let Ok(mut map) = self.entries.lock() else {
            // A poisoned lock means a panic elsewhere; refuse rather than stop limiting.
            return Verdict::Locked {
                retry_after: self.config.lockout_for,
            };
        };
        let mut worst = Verdict::Proceed(Duration::ZERO);
        for key in keys {
            let Some(e) = map.get_mut(key) else { continue };
            if now.duration_since(e.first) > self.config.window
                && e.locked_until.is_none_or(|u| u <= now)
            {
                map.remove(key);
                continue;
            }
            if let Some(until) = e.locked_until
                && until > now
            {
                return Verdict::Locked {
                    retry_after: until - now,
                };
            }
            let over = e.failures.saturating_sub(self.config.free_failures);
            if over > 0 {
                let delay = Duration::from_millis(250u64.saturating_mul(1 << over.min(10)))
                    .min(self.config.max_delay);
                if let Verdict::Proceed(d) = worst
                    && delay > d
                {
                    worst = Verdict::Proceed(delay);
                }
            }
        }
        worst
    }

    /// Records a failure; returns the keys that just became locked, so they can be logged.
    pub fn fail(&self, keys: &[String], now: Instant) -> Vec<String> {
        let Ok(mut map) = self.entries.lock() else {
            return Vec::new();
        };
        let mut locked = Vec::new();
        for key in keys {
            let e = map.entry(key.clone()).or_insert(Entry {
                failures: 0,
                first: now,
                locked_until: None,
            });
            if now.duration_since(e.first) > self.config.window {
                *e = Entry {
                    failures: 0,
                    first: now,
                    locked_until: None,
                };
            }
            e.failures += 1;
            if e.failures == self.config.lockout_after {
                e.locked_until = Some(now + self.config.lockout_for);
                locked.push(key.clone());
            }
        }
        locked
    }

    /// A success clears the account's record (not the address's: one good password must
    /// not wash out a spray of guesses from the same address).
    pub fn succeed(&self, account_key: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(account_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock_out() {
        let l = Limiter::new(LimiterConfig::default());
        let keys = vec!["account:a@x".to_string(), "addr:1.2.3.4".to_string()];
        let t0 = Instant::now();
        assert_eq!(l.check(&keys, t0), Verdict::Proceed(Duration::ZERO));
        for _ in 0..3 {
            assert!(l.fail(&keys, t0).is_empty());
        }
        assert_eq!(l.check(&keys, t0), Verdict::Proceed(Duration::ZERO));
        l.fail(&keys, t0);
        assert_eq!(
            l.check(&keys, t0),
            Verdict::Proceed(Duration::from_millis(500))
        );
        l.fail(&keys, t0);
        assert_eq!(
            l.check(&keys, t0),
            Verdict::Proceed(Duration::from_millis(1000))
        );
        let mut locked = Vec::new();
        for _ in 0..5 {
            locked.extend(l.fail(&keys, t0));
        }
        assert_eq!(
            locked, keys,
            "both the account and the address lock at the 10th failure"
        );
        assert!(matches!(l.check(&keys, t0), Verdict::Locked { .. }));
        // Another account from the same address is locked too; the same account from
        // elsewhere as well.
        assert!(matches!(
            l.check(&["account:b@x".into(), "addr:1.2.3.4".into()], t0),
            Verdict::Locked { .. }
        ));
        assert!(matches!(
            l.check(&["account:a@x".into(), "addr:9.9.9.9".into()], t0),
            Verdict::Locked { .. }
        ));
        // After the lockout, the slate is clean.
        let later = t0 + Duration::from_secs(16 * 60);
        assert_eq!(l.check(&keys, later), Verdict::Proceed(Duration::ZERO));
    }

    #[test]
    fn success_clears_the_account_only() {
        let l = Limiter::new(LimiterConfig::default());
        let keys = vec!["account:a@x".to_string(), "addr:1.2.3.4".to_string()];
        let t0 = Instant::now();
        for _ in 0..5 {
            l.fail(&keys, t0);
        }
        l.succeed("account:a@x");
        assert_eq!(l.check(&keys[..1], t0), Verdict::Proceed(Duration::ZERO));
        assert_ne!(l.check(&keys[1..], t0), Verdict::Proceed(Duration::ZERO));
    }
}
