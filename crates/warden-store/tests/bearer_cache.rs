//! Bearer lookups made through one store handle (a serving instance, caching on PostgreSQL)
//! see every change made through another (the CLI, or another instance) on the next lookup
//! after the change is announced: revocations of keys, grants and clients, a demotion, a
//! removal and a disabled account. On SQLite nothing is cached and the same holds trivially.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::on_each_backend_with_url;
use warden_store::{Role, Scopes, Store};

/// Polls `check` until it holds, for at most a second; returns how long it took.
async fn within_a_second<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: the serving instance still answers from before the change"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn changes_made_elsewhere_reach_the_serving_instance_on_the_next_lookup() {
    on_each_backend_with_url(|serving, url| async move {
        serving.listen_for_auth_changes();
        let postgres = serving.backend_name() == "postgres";
        if postgres {
            let started = Instant::now();
            while !serving.bearer_cache_live() {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "the cache never went live"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            assert!(
                !serving.bearer_cache_live(),
                "SQLite lookups are never cached"
            );
        }
        // Another program on the same state store.
        let cli = Store::connect(&url).await.unwrap();
        let now = Utc::now();
        let later = now + chrono::Duration::hours(1);
        let org = serving.create_org("acme", "Acme").await.unwrap();
        let mut users = Vec::new();
        for n in 0..4 {
            let u = serving
                .create_user(&format!("u{n}@acme.test"), "U")
                .await
                .unwrap();
            serving
                .set_membership(org.id, u.id, Role::Member)
                .await
                .unwrap();
            users.push(u);
        }
        let at0 = format!("{:064x}", 100);
        let at1 = format!("{:064x}", 101);
        let key = |n: usize| format!("{n:064x}");
        for (n, u) in users.iter().enumerate() {
            serving
                .create_api_key(&key(n), "wdn_k_x", org.id, u.id, "k", Scopes::READ, now)
                .await
                .unwrap();
        }
        let client = serving
            .create_client("c", &["http://127.0.0.1:9/cb".into()], now)
            .await
            .unwrap();
        let other_client = serving
            .create_client("d", &["http://127.0.0.1:9/cb".into()], now)
            .await
            .unwrap();
        let grant = serving
            .create_grant(
                org.id,
                users[0].id,
                &client.id,
                Scopes::READ,
                Role::Member,
                "r",
                now,
            )
            .await
            .unwrap();
        let by_client = serving
            .create_grant(
                org.id,
                users[1].id,
                &other_client.id,
                Scopes::READ,
                Role::Member,
                "r",
                now,
            )
            .await
            .unwrap();
        serving
            .insert_access_token(&at0, &grant.id, now, later)
            .await
            .unwrap();
        serving
            .insert_access_token(&at1, &by_client.id, now, later)
            .await
            .unwrap();

        // Warm: each looked up twice, the second from the cache on PostgreSQL.
        for _ in 0..2 {
            for n in 0..4 {
                assert!(serving.api_key_identity(&key(n)).await.unwrap().is_some());
            }
            for t in [&at0, &at1] {
                assert!(
                    serving
                        .access_token_identity(t, Utc::now())
                        .await
                        .unwrap()
                        .is_some()
                );
            }
        }

        let mut waits = Vec::new();
        // A revoked key.
        let (k0, ..) = serving.api_key_identity(&key(0)).await.unwrap().unwrap();
        assert!(
            cli.revoke_api_key(org.id, &k0.id, Utc::now())
                .await
                .unwrap()
        );
        waits.push(
            within_a_second("key revoked", || async {
                serving.api_key_identity(&key(0)).await.unwrap().is_none()
            })
            .await,
        );
        // A demotion: the key's live role follows.
        cli.change_role(org.id, users[1].id, Role::Guest)
            .await
            .unwrap();
        waits.push(
            within_a_second("member demoted", || async {
                serving.api_key_identity(&key(1)).await.unwrap().unwrap().2 == Some(Role::Guest)
            })
            .await,
        );
        // A removal: the member's keys there are revoked with the membership.
        assert!(cli.remove_membership(org.id, users[2].id).await.unwrap());
        waits.push(
            within_a_second("member removed", || async {
                serving.api_key_identity(&key(2)).await.unwrap().is_none()
            })
            .await,
        );
        // A disabled account.
        cli.set_user_disabled(users[3].id, Some(Utc::now()))
            .await
            .unwrap();
        waits.push(
            within_a_second("user disabled", || async {
                serving
                    .api_key_identity(&key(3))
                    .await
                    .unwrap()
                    .unwrap()
                    .1
                    .user_disabled
            })
            .await,
        );
        // A revoked grant, and a revoked client.
        assert!(
            cli.revoke_grant(&grant.id, "test", Utc::now())
                .await
                .unwrap()
        );
        waits.push(
            within_a_second("grant revoked", || async {
                serving
                    .access_token_identity(&at0, Utc::now())
                    .await
                    .unwrap()
                    .is_none()
            })
            .await,
        );
        assert!(
            cli.revoke_client(&other_client.id, Utc::now())
                .await
                .unwrap()
        );
        waits.push(
            within_a_second("client revoked", || async {
                serving
                    .access_token_identity(&at1, Utc::now())
                    .await
                    .unwrap()
                    .is_none()
            })
            .await,
        );
        eprintln!("change to refusal at the serving instance: {waits:?}");
        cli.close().await;
    })
    .await;
}
