//! The limit stage of a tool call: the project's `limits` (token buckets per user, role,
//! client, organisation, user and tool, writes per user; daily call quotas) decide whether an
//! authenticated call may go ahead, before anything else is done for it.
//!
//! The buckets live behind [`CallLimiter`], which the server implements over the state store
//! (shared by every instance). Buckets are taken most specific first and the first that is
//! empty refuses the call, so a user held back by their own limit does not drain their
//! organisation's. A limiter that cannot answer refuses the call.
//!
//! Refusals are counted (`warden.calls.limited`, by limit) and recorded in a bounded way: the
//! first refusal under a bucket in a minute is recorded, with the number refused since the
//! last record; the rest of that minute are only counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use futures::future::BoxFuture;
use serde_json::json;

use crate::identity::Principal;
use crate::project::{Access, Bucket, CallLimits, Tool};

/// Calls refused by a limit, by `limit` (`limits.per_user`, ...).
pub const CALLS_LIMITED: &str = "warden.calls.limited";

/// How a quota's bucket refills: not at all within its day (the key changes every day).
const QUOTA_RATE_PER_SEC: f64 = 1e-6;
/// Buckets whose refusals are tallied for recording, at most; past it the tally starts over.
const MAX_TALLIED: usize = 10_000;

/// A token bucket as the limiter takes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_sec: f64,
}

impl From<Bucket> for Rate {
    fn from(b: Bucket) -> Self {
        Rate {
            burst: b.burst,
            per_sec: f64::from(b.per_minute) / 60.0,
        }
    }
}

/// Shared token buckets (implemented over the state store by the server).
pub trait CallLimiter: Send + Sync + std::fmt::Debug {
    /// Takes one call from bucket `key`; `Ok(None)` when it may go ahead, `Ok(Some(wait))`
    /// when the bucket is empty for that long. An error refuses the call.
    fn take(
        &self,
        key: String,
        rate: Rate,
        now: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<Option<Duration>, String>>;

    /// Takes `n` from bucket `key` however many it holds (usage known after the call: rows).
    fn debit(
        &self,
        key: String,
        rate: Rate,
        n: u64,
        now: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<(), String>>;

    /// Calls bucket `key` holds now, without taking any (for `warden why`).
    fn left(
        &self,
        key: String,
        rate: Rate,
        now: DateTime<Utc>,
    ) -> BoxFuture<'static, Result<f64, String>>;
}

/// One limit that applies to a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Where it is written: `limits.per_user`, `limits.tools.search_vendors`, ...
    pub name: String,
    /// The bucket's key in the limiter.
    pub key: String,
    pub rate: Rate,
    /// For a daily quota: when it resets.
    pub resets_at: Option<DateTime<Utc>>,
}

impl Applied {
    /// `120 a minute (60 at once) per user`, `5000 a day per organisation (resets ...)`.
    pub fn describe(&self) -> String {
        match self.resets_at {
            Some(at) => format!(
                "{} calls a day, reset at {}",
                self.rate.burst,
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => self.rate.describe(),
        }
    }
}

impl Rate {
    /// `120 calls a minute, 60 at once`.
    pub fn describe(&self) -> String {
        format!(
            "{} calls a minute, {} at once",
            (self.per_sec * 60.0).round(),
            self.burst
        )
    }
}

/// A call refused by a limit.
#[derive(Debug, Clone)]
pub struct Limited {
    pub limit: String,
    pub describe: String,
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds to wait, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

impl std::fmt::Display for Limited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate limit reached: {} ({}); retry in {} s",
            self.limit,
            self.describe,
            self.retry_after_secs()
        )
    }
}

/// The next 00:00 UTC after `now`.
fn next_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.date_naive() + chrono::Days::new(1);
    tomorrow
        .and_hms_opt(0, 0, 0)
        .map_or(now + chrono::Duration::days(1), |t| t.and_utc())
}

/// The bucket of a daily quota: `kind` (`calls`, `rows_returned`, `rows_written`) for the
/// day of `now`, per user when `user` is given, else per organisation.
fn quota_key(now: DateTime<Utc>, kind: &str, org: &str, user: Option<&str>) -> String {
    let day = format!("{:04}{:02}{:02}", now.year(), now.month(), now.day());
    match user {
        Some(u) => format!("quota:{day}:{kind}:user:{org}:{u}"),
        None => format!("quota:{day}:{kind}:org:{org}"),
    }
}

/// Every daily quota in `limits` for `org` (with `user`: that user's), for the day of `now`:
/// what `warden log --usage` shows.
pub fn daily_quotas(
    limits: &CallLimits,
    org: &str,
    user: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Applied> {
    let who = if user.is_some() { "user" } else { "org" };
    let pick = |per_user: Option<u64>, per_org: Option<u64>| {
        if user.is_some() { per_user } else { per_org }
    };
    [
        (
            "calls",
            pick(limits.calls_per_user_per_day, limits.calls_per_org_per_day),
        ),
        (
            "rows_returned",
            pick(
                limits.rows_returned_per_user_per_day,
                limits.rows_returned_per_org_per_day,
            ),
        ),
        (
            "rows_written",
            pick(
                limits.rows_written_per_user_per_day,
                limits.rows_written_per_org_per_day,
            ),
        ),
    ]
    .into_iter()
    .filter_map(|(kind, n)| {
        n.map(|n| Applied {
            name: format!("limits.daily.{kind}_per_{who}"),
            key: quota_key(now, kind, org, user),
            rate: Rate {
                burst: u32::try_from(n).unwrap_or(u32::MAX),
                per_sec: QUOTA_RATE_PER_SEC,
            },
            resets_at: Some(next_midnight(now)),
        })
    })
    .collect()
}

/// Every limit that applies to `caller` calling `tool` at `now`, most specific first.
pub fn applicable(
    limits: &CallLimits,
    caller: &Principal,
    tool: &Tool,
    now: DateTime<Utc>,
) -> Vec<Applied> {
    let org = &caller.org;
    let user = &caller.user_id;
    let mut out = Vec::new();
    let mut rate = |name: String, key: String, b: Bucket| {
        out.push(Applied {
            name,
            key,
            rate: b.into(),
            resets_at: None,
        });
    };
    if let Some((_, b)) = limits.tools.iter().find(|(t, _)| t == &tool.name) {
        rate(
            format!("limits.tools.{}", tool.name),
            format!("call:tool:{org}:{user}:{}", tool.name),
            *b,
        );
    }
    if tool.access == Access::Write
        && let Some(b) = limits.writes_per_user
    {
        rate(
            "limits.writes_per_user".into(),
            format!("call:writes:{org}:{user}"),
            b,
        );
    }
    match limits.roles.iter().find(|(r, _)| *r == caller.role) {
        Some((r, b)) => rate(
            format!("limits.roles.{}", r.as_str()),
            format!("call:user:{org}:{user}"),
            *b,
        ),
        None => {
            if let Some(b) = limits.per_user {
                rate(
                    "limits.per_user".into(),
                    format!("call:user:{org}:{user}"),
                    b,
                );
            }
        }
    }
    if let Some(b) = limits.per_client
        && !caller.credential.is_empty()
    {
        let cred = &caller.credential;
        rate(
            "limits.per_client".into(),
            format!("call:client:{org}:{cred}"),
            b,
        );
    }
    if let Some(b) = limits.per_org {
        rate("limits.per_org".into(), format!("call:org:{org}"), b);
    }
    let resets_at = Some(next_midnight(now));
    let mut quota = |name: &str, key: String, n: u64| {
        out.push(Applied {
            name: name.into(),
            key,
            rate: Rate {
                burst: u32::try_from(n).unwrap_or(u32::MAX),
                per_sec: QUOTA_RATE_PER_SEC,
            },
            resets_at,
        });
    };
    if let Some(n) = limits.calls_per_user_per_day {
        quota(
            "limits.daily.calls_per_user",
            quota_key(now, "calls", org, Some(user)),
            n,
        );
    }
    if let Some(n) = limits.calls_per_org_per_day {
        quota(
            "limits.daily.calls_per_org",
            quota_key(now, "calls", org, None),
            n,
        );
    }
    out
}

/// The daily row quotas that apply to `caller` calling `tool` at `now`: rows returned for a
/// read tool, rows written for a write tool. A call may start while each has a row left; the
/// rows it returned or changed are taken after it ran (see [`debit`]).
pub fn row_quotas(
    limits: &CallLimits,
    caller: &Principal,
    tool: &Tool,
    now: DateTime<Utc>,
) -> Vec<Applied> {
    let org = &caller.org;
    let user = &caller.user_id;
    let (kind, per_user, per_org) = match tool.access {
        Access::Read => (
            "rows_returned",
            limits.rows_returned_per_user_per_day,
            limits.rows_returned_per_org_per_day,
        ),
        Access::Write => (
            "rows_written",
            limits.rows_written_per_user_per_day,
            limits.rows_written_per_org_per_day,
        ),
    };
    let mut out = Vec::new();
    for (who, key, n) in [
        ("user", quota_key(now, kind, org, Some(user)), per_user),
        ("org", quota_key(now, kind, org, None), per_org),
    ] {
        if let Some(n) = n {
            out.push(Applied {
                name: format!("limits.daily.{kind}_per_{who}"),
                key,
                rate: Rate {
                    burst: u32::try_from(n).unwrap_or(u32::MAX),
                    per_sec: QUOTA_RATE_PER_SEC,
                },
                resets_at: Some(next_midnight(now)),
            });
        }
    }
    out
}

/// Whether each row quota in `quotas` has a row left; the first that has none refuses.
pub async fn check_rows(
    limiter: &dyn CallLimiter,
    quotas: &[Applied],
    now: DateTime<Utc>,
) -> Result<(), Result<(Limited, String), String>> {
    for q in quotas {
        let left = limiter
            .left(q.key.clone(), q.rate, now)
            .await
            .map_err(Err)?;
        if left < 1.0 {
            let retry_after = q
                .resets_at
                .and_then(|at| (at - now).to_std().ok())
                .unwrap_or(Duration::from_secs(1));
            metrics::counter!(CALLS_LIMITED, "limit" => q.name.clone()).increment(1);
            return Err(Ok((
                Limited {
                    limit: q.name.clone(),
                    describe: format!(
                        "{} rows a day, reset at {}",
                        q.rate.burst,
                        q.resets_at.map_or_else(String::new, |t| t
                            .format("%Y-%m-%d %H:%M UTC")
                            .to_string())
                    ),
                    retry_after,
                },
                q.key.clone(),
            )));
        }
    }
    Ok(())
}

/// Takes the `rows` a call returned or changed from each row quota.
pub async fn debit(limiter: &dyn CallLimiter, quotas: &[Applied], rows: u64, now: DateTime<Utc>) {
    if rows == 0 {
        return;
    }
    for q in quotas {
        if let Err(e) = limiter.debit(q.key.clone(), q.rate, rows, now).await {
            tracing::error!(limit = %q.name, error = %e, "could not count a call's rows against its quota");
        }
    }
}

/// Takes one call from every bucket in `applied`, in order, stopping at the first that is
/// empty. `Err(Err(reason))` when the limiter cannot answer.
pub async fn take(
    limiter: &dyn CallLimiter,
    applied: &[Applied],
    now: DateTime<Utc>,
) -> Result<(), Result<(Limited, String), String>> {
    for a in applied {
        match limiter.take(a.key.clone(), a.rate, now).await {
            Ok(None) => {}
            Ok(Some(wait)) => {
                // A quota is empty until it resets, whatever the bucket says.
                let retry_after = match a.resets_at {
                    Some(at) => (at - now).to_std().unwrap_or(wait),
                    None => wait,
                };
                metrics::counter!(CALLS_LIMITED, "limit" => a.name.clone()).increment(1);
                return Err(Ok((
                    Limited {
                        limit: a.name.clone(),
                        describe: a.describe(),
                        retry_after,
                    },
                    a.key.clone(),
                )));
            }
            Err(e) => return Err(Err(e)),
        }
    }
    Ok(())
}

/// Refusals per bucket per minute, so that a flood leaves one record a minute per bucket.
#[derive(Debug, Default)]
pub(super) struct Tally(Mutex<HashMap<String, (i64, u64)>>);

impl Tally {
    /// Counts a refusal under `key`; `Some(n)` when it is to be recorded (`n` refusals under
    /// this key went unrecorded before it), `None` when only counted.
    pub(super) fn refused(&self, key: &str, now: DateTime<Utc>) -> Option<u64> {
        let minute = now.timestamp() / 60;
        let mut t = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.len() >= MAX_TALLIED && !t.contains_key(key) {
            t.clear();
        }
        let e = t.entry(key.to_string()).or_insert((i64::MIN, 0));
        if e.0 == minute {
            e.1 += 1;
            None
        } else {
            let skipped = e.1;
            *e = (minute, 0);
            Some(skipped)
        }
    }
}

/// The detail of a recorded refusal.
pub(super) fn detail(l: &Limited, unrecorded_before: u64) -> serde_json::Value {
    json!({
        "limit": l.limit,
        "retry_after_seconds": l.retry_after_secs(),
        "refused_unrecorded_before": unrecorded_before,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_quota_resets_at_the_next_midnight_utc() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T23:59:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(next_midnight(now).to_rfc3339(), "2026-12-03T00:00:00+00:00");
    }

    #[test]
    fn a_flood_is_recorded_once_a_minute_per_bucket() {
        let t = Tally::default();
        let now = Utc::now();
        assert_eq!(t.refused("a", now), Some(0));
        assert_eq!(t.refused("a", now), None);
        assert_eq!(t.refused("a", now), None);
        assert_eq!(t.refused("b", now), Some(0));
        assert_eq!(t.refused("a", now + chrono::Duration::seconds(61)), Some(2));
    }
}
