//! Shared token buckets and the cap and purge of never-used clients, on each backend (see
//! `common`): a bucket refills at its rate up to its burst, grants `want`, one or nothing,
//! says when to retry, and many concurrent takers never get more than it held; full buckets
//! are purged in bounded batches; capped registrations stop exactly at the cap, per address
//! and in all, even when concurrent; the purge of unused clients spares used and young ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::on_each_backend;
use warden_store::{ClientCap, Registration, Role, Scopes, Store};

const T0: i64 = 1_800_000_000_000;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(T0 + ms).unwrap()
}

#[tokio::test]
async fn a_bucket_refills_at_its_rate_up_to_its_burst() {
    on_each_backend(|store| async move {
        // 10 tokens, 2 a second.
        let take = |want: u32, ms: i64| {
            let store = store.clone();
            async move {
                store
                    .take_tokens("k", 2.0, 10.0, want, T0 + ms)
                    .await
                    .unwrap()
            }
        };
        let first = take(4, 0).await;
        assert_eq!((first.granted, first.left), (4, 6.0));
        assert_eq!(take(4, 0).await.granted, 4);
        // 2 left: not 4, but one.
        let one = take(4, 0).await;
        assert_eq!((one.granted, one.left), (1, 1.0));
        assert_eq!(take(4, 0).await.granted, 1);
        let none = take(1, 0).await;
        assert_eq!(none.granted, 0);
        // One token comes in 500 ms.
        assert_eq!(none.retry_after, Some(Duration::from_millis(500)));
        assert_eq!(take(1, 499).await.granted, 0);
        assert_eq!(take(1, 500).await.granted, 1);
        // A long pause refills to the burst, no further.
        let full = take(10, 3_600_000).await;
        assert_eq!((full.granted, full.left), (10, 0.0));
        // A clock behind the bucket's refills nothing.
        assert_eq!(take(1, 1_000).await.granted, 0);
        // Another key is another bucket.
        let other = store.take_tokens("k2", 2.0, 10.0, 3, T0).await.unwrap();
        assert_eq!((other.granted, other.left), (3, 7.0));
        // Nonsense rules are refused, not stored.
        assert!(store.take_tokens("k", 0.0, 10.0, 1, T0).await.is_err());
        assert!(store.take_tokens("k", 1.0, 0.5, 1, T0).await.is_err());
        assert!(store.take_tokens("k", 1.0, 10.0, 0, T0).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_takers_never_get_more_than_the_burst() {
    on_each_backend(|store| async move {
        const TAKERS: usize = 200;
        // A refill of one token a day: within the test, the burst is all there is.
        let rate = 1.0 / 86_400.0;
        let tasks: Vec<_> = (0..TAKERS)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let want = 1 + (i % 4) as u32;
                    store
                        .take_tokens("flood", rate, 50.0, want, T0 + (i % 7) as i64)
                        .await
                        .unwrap()
                        .granted
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 50, "exactly the burst, none lost and none extra");
        let after = store
            .take_tokens("flood", rate, 50.0, 1, T0 + 10)
            .await
            .unwrap();
        assert_eq!(after.granted, 0);
    })
    .await;
}

#[tokio::test]
async fn full_buckets_are_purged_in_bounded_batches() {
    on_each_backend(|store| async move {
        // Five buckets emptied at T0 (1 token a second, burst 10: full again at T0 + 10 s),
        // one emptied 5 s later.
        for i in 0..5 {
            store
                .take_tokens(&format!("old{i}"), 1.0, 10.0, 10, T0)
                .await
                .unwrap();
        }
        store
            .take_tokens("late", 1.0, 10.0, 10, T0 + 5_000)
            .await
            .unwrap();
        assert_eq!(store.purge_full_buckets(T0 + 9_000, 100).await.unwrap(), 0);
        let now = T0 + 10_001;
        assert_eq!(store.purge_full_buckets(now, 3).await.unwrap(), 3);
        assert_eq!(store.purge_full_buckets(now, 100).await.unwrap(), 2);
        // The late one is not full yet: it keeps its state.
        assert_eq!(
            store
                .take_tokens("late", 1.0, 10.0, 10, now)
                .await
                .unwrap()
                .granted,
            1
        );
        // A purged bucket is a full one.
        let fresh = store.take_tokens("old0", 1.0, 10.0, 10, now).await.unwrap();
        assert_eq!(fresh.granted, 10);
    })
    .await;
}

const CAP: ClientCap = ClientCap {
    per_address: 3,
    total: 5,
};

async fn register(store: &Store, from: &str, cap: ClientCap, now: DateTime<Utc>) -> Registration {
    store
        .create_client_capped("App", &["http://127.0.0.1/cb".into()], from, cap, now)
        .await
        .unwrap()
}

#[tokio::test]
async fn unused_clients_are_capped_per_address_and_in_all() {
    on_each_backend(|store| async move {
        for i in 0..3 {
            let r = register(&store, "addr:a", CAP, at(i * 1000)).await;
            assert!(matches!(r, Registration::Registered(_)), "{r:?}");
        }
        // The fourth from the same address is refused, naming its oldest client.
        assert_eq!(
            register(&store, "addr:a", CAP, at(5000)).await,
            Registration::AddressFull { oldest: at(0) }
        );
        // Another address may, until there are five in all.
        assert!(matches!(
            register(&store, "addr:b", CAP, at(5000)).await,
            Registration::Registered(_)
        ));
        let Registration::Registered(used) = register(&store, "addr:b", CAP, at(5000)).await else {
            panic!("the fifth client is allowed");
        };
        assert_eq!(
            register(&store, "addr:c", CAP, at(5000)).await,
            Registration::TotalFull
        );
        // A client someone authorized no longer counts.
        let org = store.create_org("acme", "Acme").await.unwrap();
        let user = store.create_user("a@acme.example", "A").await.unwrap();
        store
            .create_grant(
                org.id,
                user.id,
                &used.id,
                Scopes::READ,
                Role::Member,
                "http://127.0.0.1/mcp",
                at(6000),
            )
            .await
            .unwrap();
        assert!(matches!(
            register(&store, "addr:c", CAP, at(7000)).await,
            Registration::Registered(_)
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_stop_exactly_at_the_cap() {
    on_each_backend(|store| async move {
        let cap = ClientCap {
            per_address: 7,
            total: 1000,
        };
        let tasks: Vec<_> = (0..60)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { register(&store, "addr:flood", cap, at(0)).await })
            })
            .collect();
        let mut registered = 0;
        for t in tasks {
            if let Registration::Registered(_) = t.await.unwrap() {
                registered += 1;
            }
        }
        assert_eq!(registered, 7);
    })
    .await;
}

#[tokio::test]
async fn the_purge_spares_used_and_young_clients() {
    on_each_backend(|store| async move {
        let big = ClientCap {
            per_address: 100,
            total: 100,
        };
        let mut old = Vec::new();
        for _ in 0..4 {
            let Registration::Registered(c) = register(&store, "addr:a", big, at(0)).await else {
                panic!("registered");
            };
            old.push(c);
        }
        let Registration::Registered(young) = register(&store, "addr:a", big, at(3_600_000)).await
        else {
            panic!("registered");
        };
        // One old client was authorized, then its grant revoked: it was used all the same.
        let org = store.create_org("acme", "Acme").await.unwrap();
        let user = store.create_user("a@acme.example", "A").await.unwrap();
        let grant = store
            .create_grant(
                org.id,
                user.id,
                &old[0].id,
                Scopes::READ,
                Role::Member,
                "http://127.0.0.1/mcp",
                at(1000),
            )
            .await
            .unwrap();
        store
            .revoke_grant(&grant.id, "test", at(2000))
            .await
            .unwrap();
        let cutoff = at(0) + TimeDelta::minutes(30);
        assert_eq!(store.purge_unused_clients(cutoff, 2).await.unwrap(), 2);
        assert_eq!(store.purge_unused_clients(cutoff, 100).await.unwrap(), 1);
        assert_eq!(store.purge_unused_clients(cutoff, 100).await.unwrap(), 0);
        assert!(store.client(&old[0].id).await.unwrap().is_some(), "used");
        assert!(store.client(&young.id).await.unwrap().is_some(), "young");
        for c in &old[1..] {
            assert!(store.client(&c.id).await.unwrap().is_none());
        }
    })
    .await;
}
