//! The failure counters behind sign-in delays and lockouts, on each backend (see `common`):
//! concurrent failures are each counted once, the lock starts at the threshold and ends on
//! time, an old window starts again, and dead counters are purged in bounded batches.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::on_each_backend;
use warden_store::{FailureCount, FailureRule, Store};

const WINDOW: TimeDelta = TimeDelta::minutes(15);
const LOCK: TimeDelta = TimeDelta::minutes(15);

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// The sign-in policy's rule (window 15 min, lock at `lockout_after` for 15 min) at `now`.
fn rule(now: DateTime<Utc>, lockout_after: u32) -> FailureRule {
    FailureRule {
        now,
        window_ends_at: now + WINDOW,
        lockout_after,
        locked_until: now + LOCK,
    }
}

async fn fail(store: &Store, key: &str, now: DateTime<Utc>) -> FailureCount {
    let mut after = store.count_failure(&[key], &rule(now, 10)).await.unwrap();
    assert_eq!(after.len(), 1);
    after.remove(0)
}

async fn stored(store: &Store, key: &str) -> Option<FailureCount> {
    store.failure_counts(&[key]).await.unwrap().pop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_are_each_counted_once() {
    on_each_backend(|store| async move {
        const TASKS: u32 = 120;
        // Every task fails the same address; half of them the same account, the rest one
        // account each, so two-key statements overlap on one row in both orders of keys.
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let account = if i % 2 == 0 {
                        "account:shared".to_string()
                    } else {
                        format!("account:{i}")
                    };
                    let keys = [account.as_str(), "addr:shared"];
                    let keys = if i % 3 == 0 { [keys[1], keys[0]] } else { keys };
                    store.count_failure(&keys, &rule(t0(), 100)).await.unwrap()
                })
            })
            .collect();
        let mut seen_addr = Vec::new();
        let mut seen_account = Vec::new();
        for t in tasks {
            for c in t.await.unwrap() {
                match c.key.as_str() {
                    "addr:shared" => seen_addr.push(c),
                    "account:shared" => seen_account.push(c),
                    _ => assert_eq!(c.failures, 1, "{c:?}"),
                }
            }
        }
        // Each failure saw a different count: none lost, none counted twice.
        let mut counts: Vec<u32> = seen_addr.iter().map(|c| c.failures).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=TASKS).collect::<Vec<_>>());
        let mut counts: Vec<u32> = seen_account.iter().map(|c| c.failures).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=TASKS / 2).collect::<Vec<_>>());
        // Exactly one failure reached the threshold of 100 and set the lock.
        let lockers: Vec<_> = seen_addr.iter().filter(|c| c.failures == 100).collect();
        assert_eq!(lockers.len(), 1);
        assert_eq!(lockers[0].locked_until, Some(t0() + LOCK));
        assert!(
            seen_addr
                .iter()
                .all(|c| (c.failures >= 100) == c.locked_until.is_some())
        );
        let now = stored(&store, "addr:shared").await.unwrap();
        assert_eq!(now.failures, TASKS);
        assert_eq!(
            stored(&store, "account:shared").await.unwrap().failures,
            TASKS / 2
        );
    })
    .await;
}

#[tokio::test]
async fn the_lock_starts_at_the_threshold_and_ends_on_time() {
    on_each_backend(|store| async move {
        let key = "account:victim";
        for i in 1..10 {
            let c = fail(&store, key, t0() + TimeDelta::seconds(i)).await;
            assert_eq!(c.failures, u32::try_from(i).unwrap());
            assert_eq!(c.locked_until, None, "failure {i} must not lock");
            assert_eq!(c.window_ends_at, t0() + TimeDelta::seconds(1) + WINDOW);
        }
        let locked_at = t0() + TimeDelta::seconds(10);
        let tenth = fail(&store, key, locked_at).await;
        assert_eq!(tenth.failures, 10);
        assert_eq!(tenth.locked_until, Some(locked_at + LOCK));
        // A later failure (one that was already past its check) neither moves the lock nor
        // starts a new window.
        let eleventh = fail(&store, key, locked_at + TimeDelta::seconds(5)).await;
        assert_eq!(eleventh.failures, 11);
        assert_eq!(eleventh.locked_until, Some(locked_at + LOCK));
        assert_eq!(stored(&store, key).await, Some(eleventh.clone()));
        // While locked the counter is live even though its window has ended.
        let after_window = t0() + TimeDelta::seconds(1) + WINDOW + TimeDelta::seconds(1);
        assert!(after_window < locked_at + LOCK);
        assert!(eleventh.is_live(after_window));
        let still = fail(&store, key, after_window).await;
        assert_eq!(still.failures, 12, "no new window while locked");
        assert_eq!(still.locked_until, Some(locked_at + LOCK));
        // At the lock's last instant it still holds; a millisecond later the counter is
        // dead, and the next failure starts a new window with no lock.
        let end = locked_at + LOCK;
        assert!(still.is_live(end - TimeDelta::milliseconds(1)));
        assert!(!still.is_live(end));
        let fresh = fail(&store, key, end + TimeDelta::milliseconds(1)).await;
        assert_eq!(fresh.failures, 1);
        assert_eq!(fresh.locked_until, None);
        assert_eq!(
            fresh.window_ends_at,
            end + TimeDelta::milliseconds(1) + WINDOW
        );
    })
    .await;
}

#[tokio::test]
async fn a_window_that_has_ended_starts_again() {
    on_each_backend(|store| async move {
        let key = "addr:10.0.0.1";
        for _ in 0..5 {
            fail(&store, key, t0()).await;
        }
        // The window's last instant still counts...
        let c = fail(&store, key, t0() + WINDOW).await;
        assert_eq!(c.failures, 6);
        assert_eq!(c.window_ends_at, t0() + WINDOW);
        // ...the next does not.
        let later = t0() + WINDOW + TimeDelta::milliseconds(1);
        let c = fail(&store, key, later).await;
        assert_eq!(c.failures, 1);
        assert_eq!(c.window_ends_at, later + WINDOW);
        // A threshold of one locks on a fresh row too.
        let once = store
            .count_failure(&["addr:strict"], &rule(t0(), 1))
            .await
            .unwrap();
        assert_eq!(once[0].locked_until, Some(t0() + LOCK));
    })
    .await;
}

#[tokio::test]
async fn reads_and_clears_by_key() {
    on_each_backend(|store| async move {
        assert_eq!(
            store
                .failure_counts(&["account:a", "addr:b"])
                .await
                .unwrap(),
            vec![]
        );
        store
            .count_failure(&["account:a", "addr:b"], &rule(t0(), 10))
            .await
            .unwrap();
        store
            .count_failure(&["account:c"], &rule(t0(), 10))
            .await
            .unwrap();
        let mut both = store
            .failure_counts(&["account:a", "addr:b", "account:c"])
            .await
            .unwrap();
        both.sort_by(|x, y| x.key.cmp(&y.key));
        let keys: Vec<_> = both.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["account:a", "account:c", "addr:b"]);
        store.clear_failures("account:a").await.unwrap();
        assert_eq!(stored(&store, "account:a").await, None);
        assert_eq!(stored(&store, "addr:b").await.unwrap().failures, 1);
    })
    .await;
}

#[tokio::test]
async fn dead_counters_are_purged_in_bounded_batches() {
    on_each_backend(|store| async move {
        for i in 0..5 {
            fail(&store, &format!("addr:old{i}"), t0()).await;
        }
        let live_at = t0() + TimeDelta::minutes(10);
        fail(&store, "addr:recent", live_at).await;
        for _ in 0..10 {
            fail(&store, "account:locked", t0()).await;
        }
        let now = t0() + WINDOW + TimeDelta::seconds(1);
        assert_eq!(store.purge_failures(now, 3).await.unwrap(), 3);
        // The lock ended with its window (both at t0 + 15 min), so that counter is dead as
        // well: 5 old + 1 once locked = 6 dead, 3 left after the first batch.
        assert_eq!(store.purge_failures(now, 100).await.unwrap(), 3);
        assert_eq!(store.purge_failures(now, 100).await.unwrap(), 0);
        assert_eq!(stored(&store, "addr:old0").await, None);
        assert_eq!(stored(&store, "addr:recent").await.unwrap().failures, 1);
        // A lock that outlives its window keeps the counter.
        for _ in 0..10 {
            fail(&store, "account:late", now).await;
        }
        let long = store
            .count_failure(
                &["account:long"],
                &FailureRule {
                    locked_until: now + TimeDelta::hours(2),
                    ..rule(now, 1)
                },
            )
            .await
            .unwrap();
        assert_eq!(long[0].locked_until, Some(now + TimeDelta::hours(2)));
        let after_window = now + WINDOW + TimeDelta::seconds(1);
        // account:late's lock ends with its window, so only it (and addr:recent) go.
        assert_eq!(store.purge_failures(after_window, 100).await.unwrap(), 2);
        assert!(stored(&store, "account:long").await.is_some());
    })
    .await;
}
