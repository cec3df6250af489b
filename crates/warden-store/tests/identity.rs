//! Black-box tests of the identity half of the store: OAuth clients, grants,
//! codes, access and refresh tokens, API keys, browser sessions, magic links,
//! and the user and organization lookups the authorization server needs. On
//! each backend (see `common`). Time is always passed in, so expiry is tested
//! at exact boundaries without sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::on_each_backend;
use warden_store::{
    ClientId, CodeOutcome, Grant, GrantId, OAuthClient, OrgId, Organization, Role, RotateOutcome,
    Scope, Scopes, Store, StoreError, User, UserId,
};

const RESOURCE: &str = "https://warden.example.com/mcp";
const REDIRECT: &str = "http://127.0.0.1:33418/callback";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A fixed instant; tests move time with `t(seconds)`.
fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap() + TimeDelta::seconds(seconds)
}

/// A fresh token hash as callers pass them: 64 lowercase hex digits.
fn hash() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// An organization, a member of it and a registered client.
struct Fixture {
    org: Organization,
    user: User,
    client: OAuthClient,
}

async fn fixture(store: &Store, slug: &str) -> Fixture {
    let org = store.create_org(slug, "Org").await.unwrap();
    let user = store
        .create_user(&format!("member@{slug}.example"), "Member")
        .await
        .unwrap();
    store
        .set_membership(org.id, user.id, Role::Member)
        .await
        .unwrap();
    let client = store
        .create_client("Claude", &[REDIRECT.to_owned()], t(0))
        .await
        .unwrap();
    Fixture { org, user, client }
}

async fn grant(store: &Store, f: &Fixture, scopes: Scopes) -> Grant {
    store
        .create_grant(
            f.org.id,
            f.user.id,
            &f.client.id,
            scopes,
            Role::Member,
            RESOURCE,
            t(0),
        )
        .await
        .unwrap()
}

/// Issues a code for `grant`, valid for 60 s from t(0).
async fn code(store: &Store, grant: &GrantId) -> String {
    let code = hash();
    store
        .insert_code(&code, grant, REDIRECT, CHALLENGE, t(0), t(60))
        .await
        .unwrap();
    code
}

/// An access token valid for an hour and a refresh token valid for a day.
async fn tokens(store: &Store, grant: &GrantId) -> (String, String) {
    let (access, refresh) = (hash(), hash());
    store
        .insert_access_token(&access, grant, t(0), t(3600))
        .await
        .unwrap();
    store
        .insert_refresh_token(&refresh, grant, t(0), t(86_400))
        .await
        .unwrap();
    (access, refresh)
}

/// Rotates `old` at `now`, returning the outcome and the new hashes.
async fn rotate(store: &Store, old: &str, now: DateTime<Utc>) -> (RotateOutcome, String, String) {
    let (refresh, access) = (hash(), hash());
    let outcome = store
        .rotate_refresh_token(
            old,
            &refresh,
            &access,
            now,
            now + TimeDelta::hours(1),
            now + TimeDelta::days(30),
        )
        .await
        .unwrap();
    (outcome, refresh, access)
}

fn assert_invalid_hash<T: std::fmt::Debug>(result: Result<T, StoreError>, raw: &str) {
    match result {
        Err(err @ StoreError::Invalid { field, .. }) => {
            assert_eq!(field, "token hash");
            assert!(!err.to_string().contains(raw), "{err}");
        }
        other => panic!("expected Invalid token hash, got {other:?}"),
    }
}

#[tokio::test]
async fn clients_are_registered_and_found() {
    on_each_backend(|store| async move {
        let uris = vec![
            REDIRECT.to_owned(),
            "https://claude.ai/api/mcp/auth_callback?x=\"quoted\"".to_owned(),
        ];
        let client = store.create_client("Claude", &uris, t(5)).await.unwrap();
        assert_eq!(client.name, "Claude");
        assert_eq!(client.redirect_uris, uris);
        assert_eq!(client.created_at, t(5));
        assert_eq!(client.revoked_at, None);
        assert_eq!(store.client(&client.id).await.unwrap(), Some(client));
        assert_eq!(store.client(&ClientId::new_random()).await.unwrap(), None);

        for (name, uris) in [
            ("  ", vec![REDIRECT.to_owned()]),
            ("Claude", vec![]),
            ("Claude", vec![REDIRECT.to_owned(), String::new()]),
        ] {
            assert!(
                matches!(
                    store.create_client(name, &uris, t(0)).await,
                    Err(StoreError::Invalid { .. })
                ),
                "{name:?} {uris:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn grants_bind_scopes_role_and_resource() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let write_only = Scopes::NONE.with(Scope::Write);
        let g = store
            .create_grant(
                f.org.id,
                f.user.id,
                &f.client.id,
                write_only,
                Role::Admin,
                RESOURCE,
                t(1),
            )
            .await
            .unwrap();
        assert_eq!(
            (g.org_id, g.user_id, g.client_id),
            (f.org.id, f.user.id, f.client.id)
        );
        assert_eq!(g.scopes, write_only);
        assert!(g.scopes.allows_read());
        assert_eq!(g.role, Role::Admin);
        assert_eq!(g.resource, RESOURCE);
        assert_eq!((g.created_at, g.updated_at), (t(1), t(1)));
        assert!(g.is_active());
        assert_eq!(g.revoked_reason, None);
        assert_eq!(store.grant(&g.id).await.unwrap(), Some(g.clone()));
        assert_eq!(store.grant(&GrantId::new_random()).await.unwrap(), None);

        // Demotion at refresh time re-binds the role.
        assert!(
            store
                .set_grant_role(&g.id, Role::Guest, t(2))
                .await
                .unwrap()
        );
        let demoted = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(demoted.role, Role::Guest);
        assert_eq!((demoted.created_at, demoted.updated_at), (t(1), t(2)));

        // A revoked grant stays revoked and keeps its role.
        assert!(store.revoke_grant(&g.id, "test", t(3)).await.unwrap());
        assert!(
            !store
                .set_grant_role(&g.id, Role::Admin, t(4))
                .await
                .unwrap()
        );
        let revoked = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(revoked.role, Role::Guest);
        assert_eq!(revoked.revoked_at, Some(t(3)));
        assert_eq!(revoked.revoked_reason.as_deref(), Some("test"));
        assert!(!revoked.is_active());
        // The first reason stays.
        assert!(!store.revoke_grant(&g.id, "again", t(5)).await.unwrap());
        let still = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(still.revoked_reason.as_deref(), Some("test"));
        assert_eq!(still.revoked_at, Some(t(3)));
    })
    .await;
}

#[tokio::test]
async fn grants_need_existing_parents_and_some_scope() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let ghost_org = OrgId::new_random();
        let ghost_user = UserId::new_random();
        let ghost_client = ClientId::new_random();
        for (org, user, client, entity, id) in [
            (
                ghost_org,
                f.user.id,
                f.client.id,
                "organization",
                ghost_org.to_string(),
            ),
            (
                f.org.id,
                ghost_user,
                f.client.id,
                "user",
                ghost_user.to_string(),
            ),
            (
                f.org.id,
                f.user.id,
                ghost_client,
                "OAuth client",
                ghost_client.to_string(),
            ),
        ] {
            match store
                .create_grant(
                    org,
                    user,
                    &client,
                    Scopes::READ,
                    Role::Member,
                    RESOURCE,
                    t(0),
                )
                .await
            {
                Err(StoreError::NotFound { entity: e, id: i }) => {
                    assert_eq!((e, i), (entity, id));
                }
                other => panic!("expected NotFound {entity}, got {other:?}"),
            }
        }
        for (scopes, resource) in [(Scopes::NONE, RESOURCE), (Scopes::READ, " ")] {
            assert!(matches!(
                store
                    .create_grant(
                        f.org.id,
                        f.user.id,
                        &f.client.id,
                        scopes,
                        Role::Member,
                        resource,
                        t(0)
                    )
                    .await,
                Err(StoreError::Invalid { .. })
            ));
        }
        assert!(store.list_grants(f.org.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn code_is_single_use_and_replay_is_reported() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let c = code(&store, &g.id).await;

        match store.consume_code(&c, t(59)).await.unwrap() {
            CodeOutcome::Fresh {
                grant,
                redirect_uri,
                code_challenge,
            } => {
                assert_eq!(grant, g);
                assert_eq!(redirect_uri, REDIRECT);
                assert_eq!(code_challenge, CHALLENGE);
            }
            other => panic!("expected Fresh, got {other:?}"),
        }
        // Every later presentation is a replay, expired by then or not.
        for now in [t(59), t(60), t(3600)] {
            assert_eq!(
                store.consume_code(&c, now).await.unwrap(),
                CodeOutcome::Replayed { grant_id: g.id }
            );
        }
        // The caller revokes on replay; after that the code is just dead.
        assert!(
            store
                .revoke_grant(&g.id, "code replay", t(61))
                .await
                .unwrap()
        );
        assert_eq!(
            store.consume_code(&c, t(62)).await.unwrap(),
            CodeOutcome::Revoked
        );

        assert_eq!(
            store.consume_code(&hash(), t(0)).await.unwrap(),
            CodeOutcome::Unknown
        );
        assert_eq!(
            store.consume_code("not even a hash", t(0)).await.unwrap(),
            CodeOutcome::Unknown
        );
    })
    .await;
}

#[tokio::test]
async fn expired_code_is_used_up_and_stays_expired() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let c = code(&store, &g.id).await;
        // Valid while now < expires_at.
        assert_eq!(
            store.consume_code(&c, t(60)).await.unwrap(),
            CodeOutcome::Expired
        );
        // Nothing was issued from it, so trying again is not a replay.
        assert_eq!(
            store.consume_code(&c, t(61)).await.unwrap(),
            CodeOutcome::Expired
        );
        // And it cannot be redeemed by turning the clock back.
        assert_eq!(
            store.consume_code(&c, t(1)).await.unwrap(),
            CodeOutcome::Expired
        );
        assert!(store.grant(&g.id).await.unwrap().unwrap().is_active());
    })
    .await;
}

#[tokio::test]
async fn code_of_revoked_grant_or_client_is_refused() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let c = code(&store, &g.id).await;
        assert!(
            store
                .revoke_grant(&g.id, "user denied", t(1))
                .await
                .unwrap()
        );
        assert_eq!(
            store.consume_code(&c, t(2)).await.unwrap(),
            CodeOutcome::Revoked
        );

        let g2 = grant(&store, &f, Scopes::READ).await;
        let c2 = code(&store, &g2.id).await;
        assert!(store.revoke_client(&f.client.id, t(3)).await.unwrap());
        assert_eq!(
            store.consume_code(&c2, t(4)).await.unwrap(),
            CodeOutcome::Revoked
        );
        assert_eq!(
            store.consume_code(&c2, t(5)).await.unwrap(),
            CodeOutcome::Revoked
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_code_redemptions_have_one_winner() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let c = code(&store, &g.id).await;
        let attempts: Vec<_> = (0..8)
            .map(|_| {
                let (store, c) = (store.clone(), c.clone());
                tokio::spawn(async move { store.consume_code(&c, t(1)).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                CodeOutcome::Fresh { .. } => fresh += 1,
                CodeOutcome::Replayed { grant_id } => assert_eq!(grant_id, g.id),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(fresh, 1);
    })
    .await;
}

#[tokio::test]
async fn access_token_works_until_expiry_or_revocation() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ_WRITE).await;
        let (access, _) = tokens(&store, &g.id).await;

        assert_eq!(
            store.access_token(&access, t(0)).await.unwrap(),
            Some(g.clone())
        );
        assert_eq!(
            store.access_token(&access, t(3599)).await.unwrap(),
            Some(g.clone())
        );
        assert_eq!(store.access_token(&access, t(3600)).await.unwrap(), None);
        assert_eq!(store.access_token(&hash(), t(0)).await.unwrap(), None);

        let (other, _) = tokens(&store, &g.id).await;
        assert!(store.revoke_access_token(&other, t(10)).await.unwrap());
        assert!(!store.revoke_access_token(&other, t(11)).await.unwrap());
        assert!(!store.revoke_access_token(&hash(), t(11)).await.unwrap());
        assert_eq!(store.access_token(&other, t(12)).await.unwrap(), None);
        // Revoking one token leaves the grant and its other tokens alone.
        assert!(store.access_token(&access, t(12)).await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn token_inserts_refuse_raw_tokens_duplicates_and_unknown_grants() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let raw = "wdn_at_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4";
        assert_invalid_hash(store.insert_access_token(raw, &g.id, t(0), t(1)).await, raw);
        assert_invalid_hash(
            store.insert_refresh_token(raw, &g.id, t(0), t(1)).await,
            raw,
        );
        assert_invalid_hash(
            store
                .insert_code(raw, &g.id, REDIRECT, CHALLENGE, t(0), t(1))
                .await,
            raw,
        );
        assert_invalid_hash(store.create_session(raw, f.user.id, t(0), t(1)).await, raw);
        assert_invalid_hash(
            store.create_magic_link(raw, f.user.id, t(0), t(1)).await,
            raw,
        );
        assert_invalid_hash(
            store
                .create_api_key(
                    raw,
                    "wdn_key_abcd",
                    f.org.id,
                    f.user.id,
                    "k",
                    Scopes::READ,
                    t(0),
                )
                .await,
            raw,
        );
        let (_, refresh) = tokens(&store, &g.id).await;
        assert_invalid_hash(
            store
                .rotate_refresh_token(&refresh, raw, &hash(), t(1), t(2), t(3))
                .await,
            raw,
        );

        let taken = hash();
        store
            .insert_access_token(&taken, &g.id, t(0), t(1))
            .await
            .unwrap();
        match store.insert_access_token(&taken, &g.id, t(0), t(1)).await {
            Err(err @ StoreError::Conflict { .. }) => {
                assert!(!err.to_string().contains(&taken), "{err}");
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        let ghost = GrantId::new_random();
        for result in [
            store.insert_access_token(&hash(), &ghost, t(0), t(1)).await,
            store
                .insert_refresh_token(&hash(), &ghost, t(0), t(1))
                .await,
            store
                .insert_code(&hash(), &ghost, REDIRECT, CHALLENGE, t(0), t(1))
                .await,
        ] {
            match result {
                Err(StoreError::NotFound { entity, id }) => {
                    assert_eq!((entity, id), ("grant", ghost.to_string()));
                }
                other => panic!("expected NotFound grant, got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn refresh_rotation_issues_new_tokens_for_the_same_grant() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let (_, refresh) = tokens(&store, &g.id).await;

        let (outcome, refresh2, access2) = rotate(&store, &refresh, t(100)).await;
        assert_eq!(outcome, RotateOutcome::Rotated { grant: g.clone() });
        assert_eq!(
            store.access_token(&access2, t(101)).await.unwrap(),
            Some(g.clone())
        );
        // New access token expiry is the one passed in.
        assert_eq!(
            store
                .access_token(&access2, t(100) + TimeDelta::hours(1))
                .await
                .unwrap(),
            None
        );

        // The new refresh token rotates in turn, after the old one's expiry.
        let (outcome, _, access3) = rotate(&store, &refresh2, t(200_000)).await;
        assert_eq!(outcome, RotateOutcome::Rotated { grant: g.clone() });
        assert!(
            store
                .access_token(&access3, t(200_001))
                .await
                .unwrap()
                .is_some()
        );
        // A role change by the caller after Rotated shows in the tokens.
        assert!(
            store
                .set_grant_role(&g.id, Role::Guest, t(200_002))
                .await
                .unwrap()
        );
        let seen = store
            .access_token(&access3, t(200_003))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.role, Role::Guest);
    })
    .await;
}

#[tokio::test]
async fn a_step_up_mark_holds_refreshes_until_answered_or_stale() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let (_, refresh) = tokens(&store, &g.id).await;
        // No mark: nothing pending.
        let pending = |h: String, since, now| {
            let store = store.clone();
            async move { store.step_up_pending(&h, t(since), t(now)).await.unwrap() }
        };
        assert_eq!(pending(refresh.clone(), 0, 10).await, None);

        store.mark_step_up(&g.id, t(100)).await.unwrap();
        // A mark older than `since` is stale.
        assert_eq!(pending(refresh.clone(), 101, 102).await, None);
        // An unknown token has nothing pending.
        assert_eq!(pending(hash(), 0, 102).await, None);
        // Pending, and it stays pending however often it is asked.
        assert_eq!(pending(refresh.clone(), 50, 102).await, Some(g.id));
        assert_eq!(pending(refresh.clone(), 50, 103).await, Some(g.id));
        // Asking did not use up the refresh token.
        let (outcome, refresh2, _) = rotate(&store, &refresh, t(104)).await;
        assert_eq!(outcome, RotateOutcome::Rotated { grant: g.clone() });
        // A used token has nothing pending; the grant's new one has.
        assert_eq!(pending(refresh.clone(), 0, 105).await, None, "used");
        assert_eq!(pending(refresh2.clone(), 0, 105).await, Some(g.id));
        // The person answered a new authorization of this app: cleared.
        store.clear_step_up(f.user.id, &f.client.id).await.unwrap();
        assert_eq!(pending(refresh2.clone(), 0, 106).await, None, "answered");
        // An expired token or a revoked grant has nothing pending.
        store.mark_step_up(&g.id, t(200)).await.unwrap();
        assert_eq!(
            pending(refresh2.clone(), 0, 104 + 31 * 86_400).await,
            None,
            "expired"
        );
        store.revoke_grant(&g.id, "test", t(300)).await.unwrap();
        store.mark_step_up(&g.id, t(301)).await.unwrap();
        assert_eq!(pending(refresh2.clone(), 0, 302).await, None, "revoked");

        // The consent page's question: which scopes this user's active grants give a client.
        let g2 = grant(&store, &f, Scopes::READ).await;
        assert_eq!(
            store
                .active_scopes_of_client(f.user.id, &g2.client_id)
                .await
                .unwrap(),
            vec![Scopes::READ]
        );
    })
    .await;
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_grant() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ_WRITE).await;
        let (access, refresh) = tokens(&store, &g.id).await;
        let c = code(&store, &g.id).await;
        let (outcome, refresh2, access2) = rotate(&store, &refresh, t(10)).await;
        assert!(matches!(outcome, RotateOutcome::Rotated { .. }));

        // The old refresh token comes back: a copy is in other hands.
        let (outcome, refresh3, access3) = rotate(&store, &refresh, t(20)).await;
        assert_eq!(outcome, RotateOutcome::Reused { grant_id: g.id });

        for token in [&access, &access2, &access3] {
            assert_eq!(store.access_token(token, t(21)).await.unwrap(), None);
        }
        // The legitimate client's current refresh token is dead too, and the
        // tokens of the refused attempt were never stored.
        let (outcome, _, _) = rotate(&store, &refresh2, t(22)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);
        let (outcome, _, _) = rotate(&store, &refresh3, t(22)).await;
        assert_eq!(outcome, RotateOutcome::Unknown);
        assert_eq!(
            store.consume_code(&c, t(22)).await.unwrap(),
            CodeOutcome::Revoked
        );
        // Further replays of the reused token change nothing more.
        let (outcome, _, _) = rotate(&store, &refresh, t(23)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);

        let revoked = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(t(20)));
        assert_eq!(
            revoked.revoked_reason.as_deref(),
            Some("refresh token reuse")
        );
        assert!(store.list_grants(f.org.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn concurrent_rotations_of_one_token_rotate_once_then_revoke() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let (_, refresh) = tokens(&store, &g.id).await;
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let (store, refresh) = (store.clone(), refresh.clone());
                tokio::spawn(async move { rotate(&store, &refresh, t(5)).await.0 })
            })
            .collect();
        let mut outcomes = Vec::new();
        for attempt in attempts {
            outcomes.push(attempt.await.unwrap());
        }
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, RotateOutcome::Rotated { .. }))
            .count();
        assert_eq!(rotated, 1, "{outcomes:?}");
        // The first loser detects reuse; later ones may find it revoked.
        assert!(outcomes.contains(&RotateOutcome::Reused { grant_id: g.id }));
        assert!(outcomes.iter().all(|o| matches!(
            o,
            RotateOutcome::Rotated { .. } | RotateOutcome::Reused { .. } | RotateOutcome::Revoked
        )));
        assert!(!store.grant(&g.id).await.unwrap().unwrap().is_active());
    })
    .await;
}

#[tokio::test]
async fn refresh_token_expiry_and_unknown() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let (_, refresh) = tokens(&store, &g.id).await;
        let (outcome, _, _) = rotate(&store, &refresh, t(86_400)).await;
        assert_eq!(outcome, RotateOutcome::Expired);
        // An expired token is not used up, and presenting it is not reuse.
        let (outcome, _, _) = rotate(&store, &refresh, t(86_401)).await;
        assert_eq!(outcome, RotateOutcome::Expired);
        assert!(store.grant(&g.id).await.unwrap().unwrap().is_active());

        let (outcome, _, _) = rotate(&store, &hash(), t(0)).await;
        assert_eq!(outcome, RotateOutcome::Unknown);
    })
    .await;
}

#[tokio::test]
async fn revoke_grant_revokes_everything_issued_from_it() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let other = grant(&store, &f, Scopes::READ).await;
        let (access, refresh) = tokens(&store, &g.id).await;
        let c = code(&store, &g.id).await;
        let (other_access, other_refresh) = tokens(&store, &other.id).await;

        assert!(
            store
                .revoke_grant(&g.id, "disconnected", t(1))
                .await
                .unwrap()
        );
        assert_eq!(store.access_token(&access, t(2)).await.unwrap(), None);
        let (outcome, _, _) = rotate(&store, &refresh, t(2)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);
        assert_eq!(
            store.consume_code(&c, t(2)).await.unwrap(),
            CodeOutcome::Revoked
        );
        // Already-revoked tokens report false.
        assert!(!store.revoke_access_token(&access, t(3)).await.unwrap());
        assert!(!store.revoke_grant(&g.id, "again", t(3)).await.unwrap());
        assert!(
            !store
                .revoke_grant(&GrantId::new_random(), "x", t(3))
                .await
                .unwrap()
        );

        // The user's other grant is untouched.
        assert!(
            store
                .access_token(&other_access, t(2))
                .await
                .unwrap()
                .is_some()
        );
        let (outcome, _, _) = rotate(&store, &other_refresh, t(2)).await;
        assert!(matches!(outcome, RotateOutcome::Rotated { .. }));
    })
    .await;
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_grant() {
    on_each_backend(|store| async move {
        let f = fixture(&store, "acme").await;
        let g = grant(&store, &f, Scopes::READ).await;
        let (access, refresh) = tokens(&store, &g.id).await;
        assert!(store.revoke_refresh_token(&refresh, t(1)).await.unwrap());
        assert!(!store.revoke_refresh_token(&refresh, t(2)).await.unwrap());
        assert!(!store.revoke_refresh_token(&hash(), t(2)).await.unwrap());
        assert_eq!(store.access_token(&access, t(2)).await.unwrap(), None);
        let revoked = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(
            revoked.revoked_reason.as_deref(),
            Some("refresh token revoked")
        );
    })
    .await;
}

#[tokio::test]
async fn apps_are_listed_and_revoked_per_organization() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let bob = store.create_user("bob@acme.example", "Bob").await.unwrap();
        store
            .set_membership(acme.org.id, bob.id, Role::Guest)
            .await
            .unwrap();
        let cursor = store
            .create_client("Cursor", &[REDIRECT.to_owned()], t(0))
            .await
            .unwrap();
        let globex = store.create_org("globex", "Globex").await.unwrap();
        store
            .set_membership(globex.id, acme.user.id, Role::Admin)
            .await
            .unwrap();

        let claude_member = grant(&store, &acme, Scopes::READ).await;
        let claude_bob = store
            .create_grant(
                acme.org.id,
                bob.id,
                &acme.client.id,
                Scopes::READ,
                Role::Guest,
                RESOURCE,
                t(0),
            )
            .await
            .unwrap();
        let cursor_member = store
            .create_grant(
                acme.org.id,
                acme.user.id,
                &cursor.id,
                Scopes::READ_WRITE,
                Role::Member,
                RESOURCE,
                t(0),
            )
            .await
            .unwrap();
        let claude_globex = store
            .create_grant(
                globex.id,
                acme.user.id,
                &acme.client.id,
                Scopes::READ,
                Role::Admin,
                RESOURCE,
                t(0),
            )
            .await
            .unwrap();
        let (globex_access, _) = tokens(&store, &claude_globex.id).await;
        let (bob_access, bob_refresh) = tokens(&store, &claude_bob.id).await;

        // Ordered by client name, then user email.
        let listed = store.list_grants(acme.org.id).await.unwrap();
        let rows: Vec<_> = listed
            .iter()
            .map(|(g, c, u)| (g.id, c.name.as_str(), u.email.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                (claude_bob.id, "Claude", "bob@acme.example"),
                (claude_member.id, "Claude", "member@acme.example"),
                (cursor_member.id, "Cursor", "member@acme.example"),
            ]
        );
        assert_eq!(listed[0].0, claude_bob);
        assert_eq!(listed[0].1, acme.client);
        assert_eq!(listed[0].2, bob);

        // Disconnect Claude from acme: both acme grants, not globex's.
        assert_eq!(
            store
                .revoke_client_in_org(acme.org.id, &acme.client.id, t(5))
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            store
                .revoke_client_in_org(acme.org.id, &acme.client.id, t(6))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.access_token(&bob_access, t(7)).await.unwrap(), None);
        let (outcome, _, _) = rotate(&store, &bob_refresh, t(7)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);
        let revoked = store.grant(&claude_member.id).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(t(5)));
        assert_eq!(
            revoked.revoked_reason.as_deref(),
            Some("app revoked in organization")
        );
        let left = store.list_grants(acme.org.id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0.id, cursor_member.id);
        assert!(
            store
                .access_token(&globex_access, t(7))
                .await
                .unwrap()
                .is_some()
        );
        // The client itself is still registered and active.
        assert_eq!(
            store
                .client(&acme.client.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            None
        );
        assert_eq!(store.list_grants(globex.id).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn removing_a_member_revokes_their_grants_in_that_org_only() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let globex = store.create_org("globex", "Globex").await.unwrap();
        let kept = store
            .create_user("kept@acme.example", "Kept")
            .await
            .unwrap();
        let g1 = grant(&store, &acme, Scopes::READ).await;
        let g2 = grant(&store, &acme, Scopes::READ_WRITE).await;
        let elsewhere = store
            .create_grant(
                globex.id,
                acme.user.id,
                &acme.client.id,
                Scopes::READ,
                Role::Member,
                RESOURCE,
                t(0),
            )
            .await
            .unwrap();
        let colleague = store
            .create_grant(
                acme.org.id,
                kept.id,
                &acme.client.id,
                Scopes::READ,
                Role::Member,
                RESOURCE,
                t(0),
            )
            .await
            .unwrap();
        let (a1, _) = tokens(&store, &g1.id).await;
        let (_, r2) = tokens(&store, &g2.id).await;

        let n = store
            .revoke_grants_of_member(acme.org.id, acme.user.id, "member removed", t(9))
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(store.access_token(&a1, t(10)).await.unwrap(), None);
        let (outcome, _, _) = rotate(&store, &r2, t(10)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);
        for id in [g1.id, g2.id] {
            let g = store.grant(&id).await.unwrap().unwrap();
            assert_eq!(g.revoked_reason.as_deref(), Some("member removed"));
        }
        for id in [elsewhere.id, colleague.id] {
            assert!(store.grant(&id).await.unwrap().unwrap().is_active());
        }
        assert_eq!(
            store
                .revoke_grants_of_member(acme.org.id, acme.user.id, "again", t(11))
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn revoking_a_client_everywhere_kills_its_tokens() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let g = grant(&store, &acme, Scopes::READ).await;
        let (access, refresh) = tokens(&store, &g.id).await;
        assert!(store.revoke_client(&acme.client.id, t(1)).await.unwrap());
        assert!(!store.revoke_client(&acme.client.id, t(2)).await.unwrap());
        assert_eq!(
            store
                .client(&acme.client.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(t(1))
        );
        assert_eq!(store.access_token(&access, t(2)).await.unwrap(), None);
        let (outcome, _, _) = rotate(&store, &refresh, t(2)).await;
        assert_eq!(outcome, RotateOutcome::Revoked);
        let revoked = store.grant(&g.id).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_reason.as_deref(), Some("client revoked"));
    })
    .await;
}

#[tokio::test]
async fn removing_a_member_revokes_their_keys_there_for_good() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let globex = store.create_org("globex", "Globex").await.unwrap();
        store
            .set_membership(globex.id, acme.user.id, Role::Member)
            .await
            .unwrap();
        let (here, elsewhere) = (hash(), hash());
        for (secret, org) in [(&here, acme.org.id), (&elsewhere, globex.id)] {
            store
                .create_api_key(
                    secret,
                    "wdn_key_AbCd",
                    org,
                    acme.user.id,
                    "k",
                    Scopes::READ,
                    t(1),
                )
                .await
                .unwrap();
        }
        assert!(
            store
                .remove_membership(acme.org.id, acme.user.id)
                .await
                .unwrap()
        );
        // Added back: the old key stays revoked; their key in the other organisation is
        // untouched.
        assert!(
            store
                .add_membership(acme.org.id, acme.user.id, Role::Member)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.api_key_by_hash(&here).await.unwrap(), None);
        assert!(store.api_key_by_hash(&elsewhere).await.unwrap().is_some());
        assert!(
            !store
                .remove_membership(globex.id, UserId::new_random())
                .await
                .unwrap()
        );
        assert!(store.api_key_by_hash(&elsewhere).await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn api_keys_are_created_found_touched_listed_and_revoked() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let globex = store.create_org("globex", "Globex").await.unwrap();
        let secret = hash();
        let key = store
            .create_api_key(
                &secret,
                "wdn_key_AbCd",
                acme.org.id,
                acme.user.id,
                "CI",
                Scopes::READ,
                t(1),
            )
            .await
            .unwrap();
        assert_eq!(key.display_prefix, "wdn_key_AbCd");
        assert_eq!((key.org_id, key.user_id), (acme.org.id, acme.user.id));
        assert_eq!(key.name, "CI");
        assert_eq!(key.scopes, Scopes::READ);
        assert_eq!(key.created_at, t(1));
        assert_eq!((key.last_used_at, key.revoked_at), (None, None));
        assert!(!format!("{key:?}").contains(&secret));
        assert!(!format!("{key:#?}").contains(&secret));

        assert_eq!(
            store.api_key_by_hash(&secret).await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(store.api_key_by_hash(&hash()).await.unwrap(), None);

        store.touch_api_key(&key.id, t(100)).await.unwrap();
        let touched = store.api_key_by_hash(&secret).await.unwrap().unwrap();
        assert_eq!(touched.last_used_at, Some(t(100)));
        // Within a minute nothing is written; never backwards.
        store.touch_api_key(&key.id, t(130)).await.unwrap();
        store.touch_api_key(&key.id, t(50)).await.unwrap();
        let last = store.api_key_by_hash(&secret).await.unwrap().unwrap();
        assert_eq!(last.last_used_at, Some(t(100)));
        store.touch_api_key(&key.id, t(160)).await.unwrap();
        let last = store.api_key_by_hash(&secret).await.unwrap().unwrap();
        assert_eq!(last.last_used_at, Some(t(160)));

        let second = store
            .create_api_key(
                &hash(),
                "wdn_key_XyZw",
                acme.org.id,
                acme.user.id,
                "laptop",
                Scopes::READ_WRITE,
                t(2),
            )
            .await
            .unwrap();

        // Another organization cannot revoke it.
        assert!(
            !store
                .revoke_api_key(globex.id, &key.id, t(200))
                .await
                .unwrap()
        );
        assert!(store.api_key_by_hash(&secret).await.unwrap().is_some());
        assert!(
            store
                .revoke_api_key(acme.org.id, &key.id, t(200))
                .await
                .unwrap()
        );
        assert!(
            !store
                .revoke_api_key(acme.org.id, &key.id, t(201))
                .await
                .unwrap()
        );
        assert_eq!(store.api_key_by_hash(&secret).await.unwrap(), None);
        // A revoked key's last use is frozen.
        store.touch_api_key(&key.id, t(300)).await.unwrap();

        let listed = store.list_api_keys(acme.org.id).await.unwrap();
        let rows: Vec<_> = listed
            .iter()
            .map(|(k, u)| (k.id, k.revoked_at, k.last_used_at, u.id))
            .collect();
        assert_eq!(
            rows,
            [
                (key.id, Some(t(200)), Some(t(160)), acme.user.id),
                (second.id, None, None, acme.user.id),
            ]
        );
        assert_eq!(listed[0].1, acme.user);
        assert!(store.list_api_keys(globex.id).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn api_key_input_is_checked() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let secret = hash();
        let ok = |prefix: &'static str, name: &'static str, scopes: Scopes| {
            let (store, secret) = (store.clone(), secret.clone());
            let (org, user) = (acme.org.id, acme.user.id);
            async move {
                store
                    .create_api_key(&secret, prefix, org, user, name, scopes, t(0))
                    .await
            }
        };
        let whole_key = "wdn_key_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4";
        match ok(whole_key, "k", Scopes::READ).await {
            Err(err @ StoreError::Invalid { .. }) => {
                assert!(!err.to_string().contains(whole_key), "{err}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        for (prefix, name, scopes) in [
            ("", "k", Scopes::READ),
            ("wdn_key_AbCd", " ", Scopes::READ),
            ("wdn_key_AbCd", "k", Scopes::NONE),
        ] {
            assert!(matches!(
                ok(prefix, name, scopes).await,
                Err(StoreError::Invalid { .. })
            ));
        }
        ok("wdn_key_AbCd", "k", Scopes::READ).await.unwrap();
        assert!(matches!(
            ok("wdn_key_AbCd", "k", Scopes::READ).await,
            Err(StoreError::Conflict { .. })
        ));
        let ghost = UserId::new_random();
        match store
            .create_api_key(&hash(), "p", acme.org.id, ghost, "k", Scopes::READ, t(0))
            .await
        {
            Err(StoreError::NotFound { entity, .. }) => assert_eq!(entity, "user"),
            other => panic!("expected NotFound user, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn every_session_of_a_user_ends_at_once() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let other = store.create_user("other@acme.example", "O").await.unwrap();
        let (a, b, c) = (hash(), hash(), hash());
        for (h, u) in [(&a, acme.user.id), (&b, acme.user.id), (&c, other.id)] {
            store.create_session(h, u, t(0), t(3600)).await.unwrap();
        }
        assert_eq!(
            store
                .revoke_user_sessions(acme.user.id, t(10))
                .await
                .unwrap(),
            2
        );
        assert!(store.session(&a, t(11)).await.unwrap().is_none());
        assert!(store.session(&b, t(11)).await.unwrap().is_none());
        assert!(
            store.session(&c, t(11)).await.unwrap().is_some(),
            "another user's stays"
        );
        assert_eq!(
            store
                .revoke_user_sessions(acme.user.id, t(12))
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn an_idle_session_is_over_and_a_confirmation_is_remembered() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let s = hash();
        store
            .create_session(&s, acme.user.id, t(0), t(36_000))
            .await
            .unwrap();
        let fresh = store.session(&s, t(1)).await.unwrap().unwrap();
        assert_eq!((fresh.last_seen_at, fresh.authenticated_at), (t(0), t(0)));
        // A request at 50 that allows idleness back to -10: last seen at 0, so it is live.
        let used = store
            .touch_session(&s, t(50), t(-10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(used.last_seen_at, t(50));
        assert_eq!(used.authenticated_at, t(0));
        // Idle since before the limit: over, and a later request cannot revive it.
        assert_eq!(store.touch_session(&s, t(200), t(140)).await.unwrap(), None);
        assert_eq!(
            store
                .session(&s, t(201))
                .await
                .unwrap()
                .unwrap()
                .last_seen_at,
            t(50),
            "a refused touch changes nothing"
        );
        assert!(store.reauthenticate_session(&s, t(60)).await.unwrap());
        assert_eq!(
            store
                .session(&s, t(61))
                .await
                .unwrap()
                .unwrap()
                .authenticated_at,
            t(60)
        );
        assert!(store.revoke_session(&s, t(70)).await.unwrap());
        assert!(!store.reauthenticate_session(&s, t(71)).await.unwrap());
        assert_eq!(store.touch_session(&s, t(72), t(0)).await.unwrap(), None);
        assert!(!store.reauthenticate_session(&hash(), t(1)).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn sessions_expire_and_can_be_revoked() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let s = hash();
        store
            .create_session(&s, acme.user.id, t(0), t(3600))
            .await
            .unwrap();
        let session = store.session(&s, t(3599)).await.unwrap().unwrap();
        assert_eq!(session.user_id, acme.user.id);
        assert_eq!((session.created_at, session.expires_at), (t(0), t(3600)));
        assert_eq!(store.session(&s, t(3600)).await.unwrap(), None);
        assert_eq!(store.session(&hash(), t(0)).await.unwrap(), None);

        let s2 = hash();
        store
            .create_session(&s2, acme.user.id, t(0), t(3600))
            .await
            .unwrap();
        assert!(store.revoke_session(&s2, t(1)).await.unwrap());
        assert!(!store.revoke_session(&s2, t(2)).await.unwrap());
        assert!(!store.revoke_session(&hash(), t(2)).await.unwrap());
        assert_eq!(store.session(&s2, t(2)).await.unwrap(), None);
        assert!(store.session(&s, t(2)).await.unwrap().is_some());

        match store
            .create_session(&hash(), UserId::new_random(), t(0), t(1))
            .await
        {
            Err(StoreError::NotFound { entity, .. }) => assert_eq!(entity, "user"),
            other => panic!("expected NotFound user, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn magic_links_are_single_use_expire_and_are_purged() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let link = hash();
        store
            .create_magic_link(&link, acme.user.id, t(0), t(900))
            .await
            .unwrap();
        assert_eq!(
            store.consume_magic_link(&link, t(899)).await.unwrap(),
            Some(acme.user.id)
        );
        assert_eq!(store.consume_magic_link(&link, t(899)).await.unwrap(), None);

        let late = hash();
        store
            .create_magic_link(&late, acme.user.id, t(0), t(900))
            .await
            .unwrap();
        assert_eq!(store.consume_magic_link(&late, t(900)).await.unwrap(), None);
        assert_eq!(store.consume_magic_link(&hash(), t(0)).await.unwrap(), None);

        // Concurrent redemptions: one wins.
        let racy = hash();
        store
            .create_magic_link(&racy, acme.user.id, t(0), t(900))
            .await
            .unwrap();
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let (store, racy) = (store.clone(), racy.clone());
                tokio::spawn(async move { store.consume_magic_link(&racy, t(1)).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for attempt in attempts {
            winners += usize::from(attempt.await.unwrap().is_some());
        }
        assert_eq!(winners, 1);

        // Kept for 24 h after expiry, then purged, used or not.
        let fresh = hash();
        store
            .create_magic_link(&fresh, acme.user.id, t(0), t(100_000))
            .await
            .unwrap();
        let day = 24 * 3600;
        assert_eq!(store.purge_magic_links(t(900 + day)).await.unwrap(), 0);
        assert_eq!(store.purge_magic_links(t(901 + day)).await.unwrap(), 3);
        // An unexpired link survives a purge and still works.
        assert_eq!(
            store
                .consume_magic_link(&fresh, t(901 + day))
                .await
                .unwrap(),
            Some(acme.user.id)
        );
        assert_eq!(store.purge_magic_links(t(100_000 + day)).await.unwrap(), 0);
        assert_eq!(store.purge_magic_links(t(100_001 + day)).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn users_and_orgs_are_found_by_id() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let globex = store.create_org("globex", "Globex").await.unwrap();
        let admin = store
            .set_membership(globex.id, acme.user.id, Role::Admin)
            .await
            .unwrap();

        assert_eq!(
            store.user_by_id(acme.user.id).await.unwrap(),
            Some(acme.user.clone())
        );
        assert_eq!(store.user_by_id(UserId::new_random()).await.unwrap(), None);
        assert_eq!(
            store.org_by_id(globex.id).await.unwrap(),
            Some(globex.clone())
        );
        assert_eq!(store.org_by_id(OrgId::new_random()).await.unwrap(), None);

        let orgs = store.orgs_of_user(acme.user.id).await.unwrap();
        let listed: Vec<_> = orgs
            .iter()
            .map(|(o, m)| (o.slug.as_str(), m.role, m.org_id == o.id, m.user_id))
            .collect();
        assert_eq!(
            listed,
            [
                ("acme", Role::Member, true, acme.user.id),
                ("globex", Role::Admin, true, acme.user.id),
            ]
        );
        assert_eq!(orgs[1], (globex, admin));
        assert!(
            store
                .orgs_of_user(UserId::new_random())
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn password_hashes_are_set_and_read() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        let phc = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        assert_eq!(store.password_hash(acme.user.id).await.unwrap(), None);
        store.set_password_hash(acme.user.id, phc).await.unwrap();
        assert_eq!(
            store.password_hash(acme.user.id).await.unwrap().as_deref(),
            Some(phc)
        );
        let user = store.user_by_id(acme.user.id).await.unwrap().unwrap();
        assert_eq!(user.password_hash.as_deref(), Some(phc));
        assert!(!format!("{user:?}").contains("argon2"));

        // A plain password is refused without echoing it; nothing changes.
        match store
            .set_password_hash(acme.user.id, "hunter2hunter2")
            .await
        {
            Err(err @ StoreError::Invalid { .. }) => {
                assert!(!err.to_string().contains("hunter2"), "{err}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(
            store.password_hash(acme.user.id).await.unwrap().as_deref(),
            Some(phc)
        );

        let ghost = UserId::new_random();
        match store.set_password_hash(ghost, phc).await {
            Err(StoreError::NotFound { entity, id }) => {
                assert_eq!((entity, id), ("user", ghost.to_string()));
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(store.password_hash(ghost).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn stored_scopes_round_trip() {
    on_each_backend(|store| async move {
        let acme = fixture(&store, "acme").await;
        for scopes in [
            Scopes::READ,
            Scopes::READ_WRITE,
            Scopes::NONE.with(Scope::Write),
        ] {
            let g = grant(&store, &acme, scopes).await;
            assert_eq!(store.grant(&g.id).await.unwrap().unwrap().scopes, scopes);
            let key = store
                .create_api_key(
                    &hash(),
                    "wdn_key_abcd",
                    acme.org.id,
                    acme.user.id,
                    "k",
                    scopes,
                    t(0),
                )
                .await
                .unwrap();
            assert_eq!(key.scopes, scopes);
        }
    })
    .await;
}
