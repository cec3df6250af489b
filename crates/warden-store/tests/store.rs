//! Black-box tests of the store API for organizations, users and
//! memberships, on each backend (see `common`).

// The harness helpers are not `#[test]` fns, so clippy's in-test allowances
// miss them; in a test binary, panicking on failure is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::on_each_backend;
use warden_store::{OrgId, Role, Store, StoreError, User, UserId};

async fn user(store: &Store, email: &str) -> User {
    store.create_user(email, "Test User").await.unwrap()
}

#[tokio::test]
async fn migrations_are_idempotent() {
    on_each_backend(|store| async move {
        // Already migrated once by the harness.
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let org = store.create_org("acme", "Acme").await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.org_by_slug("acme").await.unwrap(), Some(org));
    })
    .await;
}

#[tokio::test]
async fn organizations_are_created_and_found_by_slug() {
    on_each_backend(|store| async move {
        let before = chrono::Utc::now();
        let org = store.create_org("acme-corp", "Acme Corp").await.unwrap();
        assert_eq!(org.slug, "acme-corp");
        assert_eq!(org.name, "Acme Corp");
        let now = chrono::Utc::now();
        assert!(org.created_at <= now);
        assert!(before - org.created_at < chrono::Duration::milliseconds(1));

        assert_eq!(store.org_by_slug("acme-corp").await.unwrap(), Some(org));
        assert_eq!(store.org_by_slug("ACME-CORP").await.unwrap(), None);
        assert_eq!(store.org_by_slug("nobody").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn duplicate_org_slug_is_a_conflict() {
    on_each_backend(|store| async move {
        let first = store.create_org("acme", "Acme").await.unwrap();
        let err = store.create_org("acme", "Other Acme").await.unwrap_err();
        match &err {
            StoreError::Conflict { field, value, .. } => {
                assert_eq!(*field, "slug");
                assert_eq!(value, "acme");
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
        assert!(err.to_string().contains("\"acme\""), "{err}");
        // The original is untouched.
        assert_eq!(store.org_by_slug("acme").await.unwrap(), Some(first));
    })
    .await;
}

#[tokio::test]
async fn invalid_org_input_is_rejected_before_writing() {
    on_each_backend(|store| async move {
        let too_long = "a".repeat(64);
        for slug in [
            "",
            "Acme",
            "acme corp",
            "acme_corp",
            "acme;drop",
            too_long.as_str(),
        ] {
            let err = store.create_org(slug, "Name").await.unwrap_err();
            match &err {
                StoreError::Invalid { field, value, .. } => {
                    assert_eq!(*field, "organization slug");
                    assert_eq!(value, slug);
                }
                other => panic!("{slug:?}: expected Invalid, got {other:?}"),
            }
            assert!(err.to_string().contains(&format!("{slug:?}")), "{err}");
        }
        assert!(matches!(
            store.create_org("acme", "   ").await,
            Err(StoreError::Invalid {
                field: "organization name",
                ..
            })
        ));
        // Boundary lengths are fine.
        store.create_org("a", "A").await.unwrap();
        store.create_org(&"b".repeat(63), "B").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn users_are_stored_with_lowercased_email() {
    on_each_backend(|store| async move {
        let alice = store
            .create_user("  Alice@Example.COM ", "Alice")
            .await
            .unwrap();
        assert_eq!(alice.email, "alice@example.com");
        assert_eq!(alice.display_name, "Alice");
        assert_eq!(alice.password_hash, None);
        assert_eq!(alice.disabled_at, None);

        let found = store.user_by_email("ALICE@example.com").await.unwrap();
        assert_eq!(found, Some(alice));
        assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
        assert_eq!(store.user_by_email("not an email").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn duplicate_email_in_any_case_is_a_conflict() {
    on_each_backend(|store| async move {
        user(&store, "alice@example.com").await;
        for email in [
            "alice@example.com",
            "ALICE@EXAMPLE.COM",
            " Alice@example.com",
        ] {
            let err = store.create_user(email, "Impostor").await.unwrap_err();
            match &err {
                StoreError::Conflict { field, value, .. } => {
                    assert_eq!(*field, "email");
                    assert_eq!(value, "alice@example.com");
                }
                other => panic!("{email:?}: expected Conflict, got {other:?}"),
            }
            assert!(err.to_string().contains("alice@example.com"), "{err}");
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_email_is_rejected() {
    on_each_backend(|store| async move {
        for email in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "al ice@example.com",
        ] {
            match store.create_user(email, "X").await {
                Err(StoreError::Invalid { value, .. }) => assert_eq!(value, email),
                other => panic!("{email:?}: expected Invalid, got {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn adding_never_changes_and_changing_never_adds() {
    on_each_backend(|store| async move {
        let org = store.create_org("acme", "Acme").await.unwrap();
        let bob = user(&store, "bob@example.com").await;
        // Changing the role of a non-member adds nobody.
        assert_eq!(
            store
                .change_role(org.id, bob.id, Role::Admin)
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.membership(org.id, bob.id).await.unwrap(), None);
        // Adding adds once; adding again changes nothing.
        let added = store
            .add_membership(org.id, bob.id, Role::Guest)
            .await
            .unwrap()
            .expect("added");
        assert_eq!(added.role, Role::Guest);
        assert_eq!(
            store
                .add_membership(org.id, bob.id, Role::Admin)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .membership(org.id, bob.id)
                .await
                .unwrap()
                .map(|m| m.role),
            Some(Role::Guest)
        );
        // Changing a member's role changes it.
        let changed = store
            .change_role(org.id, bob.id, Role::Member)
            .await
            .unwrap()
            .expect("changed");
        assert_eq!(
            (changed.role, changed.created_at),
            (Role::Member, added.created_at)
        );
    })
    .await;
}

#[tokio::test]
async fn membership_lifecycle() {
    on_each_backend(|store| async move {
        let org = store.create_org("acme", "Acme").await.unwrap();
        let other_org = store.create_org("globex", "Globex").await.unwrap();
        let bob = user(&store, "bob@example.com").await;
        let alice = user(&store, "alice@example.com").await;

        assert_eq!(store.membership(org.id, bob.id).await.unwrap(), None);

        let added = store
            .set_membership(org.id, bob.id, Role::Member)
            .await
            .unwrap();
        assert_eq!((added.org_id, added.user_id), (org.id, bob.id));
        assert_eq!(added.role, Role::Member);
        assert_eq!(added.created_at, added.updated_at);
        assert_eq!(
            store.membership(org.id, bob.id).await.unwrap(),
            Some(added.clone())
        );

        // Upsert changes the role and keeps the join time.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let promoted = store
            .set_membership(org.id, bob.id, Role::Admin)
            .await
            .unwrap();
        assert_eq!(promoted.role, Role::Admin);
        assert_eq!(promoted.created_at, added.created_at);
        assert!(promoted.updated_at > added.updated_at);
        assert_eq!(
            store.membership(org.id, bob.id).await.unwrap(),
            Some(promoted.clone())
        );

        store
            .set_membership(org.id, alice.id, Role::Guest)
            .await
            .unwrap();
        store
            .set_membership(other_org.id, alice.id, Role::Admin)
            .await
            .unwrap();

        // Ordered by email; only this organization's members.
        let members = store.list_members(org.id).await.unwrap();
        let listed: Vec<_> = members
            .iter()
            .map(|(u, m)| (u.email.as_str(), m.role, m.org_id))
            .collect();
        assert_eq!(
            listed,
            [
                ("alice@example.com", Role::Guest, org.id),
                ("bob@example.com", Role::Admin, org.id),
            ]
        );
        assert_eq!(members[1], (bob.clone(), promoted));
        assert!(members.iter().all(|(u, m)| u.id == m.user_id));

        assert!(store.remove_membership(org.id, bob.id).await.unwrap());
        assert!(!store.remove_membership(org.id, bob.id).await.unwrap());
        assert_eq!(store.membership(org.id, bob.id).await.unwrap(), None);
        let remaining = store.list_members(org.id).await.unwrap();
        assert_eq!(remaining.len(), 1);
        assert_eq!(remaining[0].0.id, alice.id);
        // Other organizations are unaffected.
        assert_eq!(store.list_members(other_org.id).await.unwrap().len(), 1);
        assert!(
            store
                .list_members(OrgId::new_random())
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn every_role_round_trips_through_the_database() {
    on_each_backend(|store| async move {
        let org = store.create_org("acme", "Acme").await.unwrap();
        let carol = user(&store, "carol@example.com").await;
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let set = store.set_membership(org.id, carol.id, role).await.unwrap();
            assert_eq!(set.role, role);
            let read = store.membership(org.id, carol.id).await.unwrap().unwrap();
            assert_eq!(read.role, role);
        }

        let err = "owner".parse::<Role>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"owner\""), "{msg}");
        for role in Role::ALL {
            assert!(msg.contains(role.as_str()), "{msg} does not list {role}");
        }
    })
    .await;
}

#[tokio::test]
async fn membership_needs_existing_org_and_user() {
    on_each_backend(|store| async move {
        let org = store.create_org("acme", "Acme").await.unwrap();
        let dave = user(&store, "dave@example.com").await;
        let ghost_user = UserId::new_random();
        let ghost_org = OrgId::new_random();

        let err = store
            .set_membership(org.id, ghost_user, Role::Member)
            .await
            .unwrap_err();
        match &err {
            StoreError::NotFound { entity, id } => {
                assert_eq!(*entity, "user");
                assert_eq!(*id, ghost_user.to_string());
            }
            other => panic!("expected NotFound user, got {other:?}"),
        }
        assert!(err.to_string().contains(&ghost_user.to_string()), "{err}");

        match store.set_membership(ghost_org, dave.id, Role::Member).await {
            Err(StoreError::NotFound { entity, id }) => {
                assert_eq!(entity, "organization");
                assert_eq!(id, ghost_org.to_string());
            }
            other => panic!("expected NotFound organization, got {other:?}"),
        }

        // Nothing was written, and the store still works.
        assert!(store.list_members(org.id).await.unwrap().is_empty());
        assert_eq!(store.membership(org.id, ghost_user).await.unwrap(), None);
        store
            .set_membership(org.id, dave.id, Role::Member)
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn user_debug_redacts_password_hash() {
    on_each_backend(|store| async move {
        let erin = user(&store, "erin@example.com").await;
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let with_hash = User {
            password_hash: Some(hash.to_owned()),
            ..erin.clone()
        };
        let shown = format!("{with_hash:?}");
        assert!(!shown.contains(hash), "{shown}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("erin@example.com"), "{shown}");
        let pretty = format!("{with_hash:#?}");
        assert!(!pretty.contains("argon2"), "{pretty}");

        // Without a hash, Debug says so plainly.
        let shown = format!("{erin:?}");
        assert!(shown.contains("password_hash: None"), "{shown}");
    })
    .await;
}

#[tokio::test]
async fn a_job_lease_has_one_holder_until_it_expires_or_is_released() {
    on_each_backend(|store| async move {
        assert!(store.take_lease("purge", "a", 1_000, 2_000).await.unwrap());
        // Someone else cannot take it while it runs; the holder can renew it.
        assert!(!store.take_lease("purge", "b", 1_500, 2_500).await.unwrap());
        assert!(store.take_lease("purge", "a", 1_600, 3_000).await.unwrap());
        assert!(!store.take_lease("purge", "b", 2_999, 4_000).await.unwrap());
        // Expired (the holder died): another takes it.
        assert!(store.take_lease("purge", "b", 3_000, 4_000).await.unwrap());
        assert!(!store.take_lease("purge", "a", 3_100, 4_100).await.unwrap());
        // Released: free at once; another job's lease is its own.
        store.release_lease("purge", "a").await.unwrap();
        assert!(
            !store.take_lease("purge", "c", 3_200, 4_200).await.unwrap(),
            "only the holder releases"
        );
        store.release_lease("purge", "b").await.unwrap();
        assert!(store.take_lease("purge", "c", 3_200, 4_200).await.unwrap());
        assert!(
            store
                .take_lease("checkpoints", "a", 3_200, 4_200)
                .await
                .unwrap()
        );
        // Many takers at once: exactly one wins.
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.take_lease("race", &format!("h{i}"), 10_000, 20_000)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if t.await.unwrap() {
                winners += 1;
            }
        }
        assert_eq!(winners, 1);
    })
    .await;
}
