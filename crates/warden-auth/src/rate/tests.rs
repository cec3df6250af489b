#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("state.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (dir, store)
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_800_000_000_000 + ms).unwrap()
}

#[test]
fn the_grant_is_an_eighth_of_the_burst_within_bounds() {
    let g = |burst| grant_size(Rule::per_minute(burst, 60));
    assert_eq!(g(1), 1);
    assert_eq!(g(7), 1);
    assert_eq!(g(20), 2);
    assert_eq!(g(64), 8);
    assert_eq!(g(10_000), MAX_GRANT);
}

#[tokio::test]
async fn the_burst_is_admitted_then_refused_with_when_to_retry() {
    let (_dir, store) = store().await;
    let limiter = SharedLimiter::new(store.clone());
    // 20 at once, 60 a minute (one a second), leased 2 at a time.
    let rule = Rule::per_minute(20, 60);
    for i in 0..20 {
        assert_eq!(
            limiter.admit("k", rule, at(0)).await.unwrap(),
            Admission::Allowed,
            "request {i}"
        );
    }
    let Admission::Limited { retry_after } = limiter.admit("k", rule, at(0)).await.unwrap() else {
        panic!("the 21st is refused");
    };
    assert_eq!(retry_after, Duration::from_secs(1));
    // Refused locally meanwhile, until the bucket has a token again.
    assert!(matches!(
        limiter.admit("k", rule, at(999)).await.unwrap(),
        Admission::Limited { .. }
    ));
    assert_eq!(
        limiter.admit("k", rule, at(1000)).await.unwrap(),
        Admission::Allowed
    );
    // Another key has its own bucket.
    assert_eq!(
        limiter.admit("other", rule, at(1000)).await.unwrap(),
        Admission::Allowed
    );
}

#[tokio::test]
async fn instances_share_the_bucket_and_never_exceed_it() {
    let (_dir, store) = store().await;
    let instances: Vec<SharedLimiter> = (0..3).map(|_| SharedLimiter::new(store.clone())).collect();
    // 64 at once (leases of 8), refilled once a day.
    let rule = Rule {
        rate_per_sec: 1.0 / 86_400.0,
        burst: 64,
    };
    let mut allowed = 0;
    for i in 0..300 {
        let l = &instances[i % 3];
        if l.admit("shared", rule, at(i as i64)).await.unwrap() == Admission::Allowed {
            allowed += 1;
        }
    }
    // Never more than the burst; at most 3 × (8 − 1) stranded in the leases.
    assert!(allowed <= 64, "{allowed}");
    assert!(allowed >= 64 - 3 * 7, "{allowed}");
}

#[tokio::test]
async fn a_lease_expires_so_an_idle_instance_gives_its_tokens_up() {
    let (_dir, store) = store().await;
    let a = SharedLimiter::new(store.clone());
    let b = SharedLimiter::new(store.clone());
    let rule = Rule {
        rate_per_sec: 1.0 / 86_400.0,
        burst: 16,
    };
    // `a` takes 1; asked again within the lease's life it is busy, so it leases 2 and uses
    // 1; the other stays with `a` for at most LEASE_TTL.
    assert_eq!(a.admit("k", rule, at(0)).await.unwrap(), Admission::Allowed);
    assert_eq!(a.admit("k", rule, at(1)).await.unwrap(), Admission::Allowed);
    for _ in 0..13 {
        assert_eq!(
            b.admit("k", rule, at(10)).await.unwrap(),
            Admission::Allowed
        );
    }
    assert!(matches!(
        b.admit("k", rule, at(10)).await.unwrap(),
        Admission::Limited { .. }
    ));
    assert_eq!(
        a.admit("k", rule, at(500)).await.unwrap(),
        Admission::Allowed
    );
    // After the lease, `a` must ask the store again, which is empty.
    assert!(matches!(
        a.admit("k", rule, at(500 + 1000)).await.unwrap(),
        Admission::Limited { .. }
    ));
}

#[tokio::test]
async fn a_store_that_cannot_answer_refuses() {
    let (_dir, store) = store().await;
    let limiter = SharedLimiter::new(store.clone());
    store.close().await;
    assert!(
        limiter
            .admit("k", Rule::per_minute(10, 10), at(0))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_local_map_is_bounded() {
    let (_dir, store) = store().await;
    let limiter = SharedLimiter::with_max_keys(store, 10);
    let rule = Rule::per_minute(100, 100);
    for i in 0..50 {
        limiter.admit(&format!("k{i}"), rule, at(i)).await.unwrap();
        assert!(limiter.len() <= 10, "{}", limiter.len());
    }
}

#[tokio::test]
async fn a_caller_slower_than_a_lease_is_counted_one_token_a_request() {
    let (_dir, store) = store().await;
    let a = SharedLimiter::new(store.clone());
    let rule = Rule {
        rate_per_sec: 1.0 / 86_400.0,
        burst: 16,
    };
    // One request every two seconds: no lease outlives its use, so all 16 are admitted.
    for n in 0..16 {
        assert_eq!(
            a.admit("k", rule, at(n * 2_000)).await.unwrap(),
            Admission::Allowed,
            "request {n}"
        );
    }
    assert!(matches!(
        a.admit("k", rule, at(40_000)).await.unwrap(),
        Admission::Limited { .. }
    ));
}
