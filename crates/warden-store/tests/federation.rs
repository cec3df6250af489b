//! Sign-in through identity providers, in the store: flows taken once, identities keyed on
//! (issuer, subject) and never twice, provisioning all-or-nothing, and which session and
//! grant came from which identity. On each backend (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::on_each_backend;
use warden_store::{Role, Scopes, SsoFlow, StoreError};

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000).unwrap() + TimeDelta::seconds(seconds)
}

fn flow() -> SsoFlow {
    SsoFlow {
        provider: "corp".into(),
        nonce: "n".into(),
        pkce_verifier: "v".repeat(43),
        continue_to: "/console".into(),
    }
}

#[tokio::test]
async fn a_flow_is_taken_once_and_not_after_it_expires() {
    on_each_backend(|store| async move {
        store
            .create_sso_flow("h1", &flow(), t(0), t(600))
            .await
            .unwrap();
        store
            .create_sso_flow("h2", &flow(), t(0), t(600))
            .await
            .unwrap();
        assert_eq!(
            store.take_sso_flow("h1", t(10)).await.unwrap(),
            Some(flow())
        );
        assert_eq!(
            store.take_sso_flow("h1", t(11)).await.unwrap(),
            None,
            "once"
        );
        assert_eq!(
            store.take_sso_flow("h2", t(600)).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            store.take_sso_flow("h2", t(1)).await.unwrap(),
            None,
            "an expired take still spends it"
        );
        assert_eq!(store.take_sso_flow("nope", t(1)).await.unwrap(), None);
        // Starting a flow purges the expired ones.
        store
            .create_sso_flow("h3", &flow(), t(0), t(5))
            .await
            .unwrap();
        store
            .create_sso_flow("h4", &flow(), t(10), t(600))
            .await
            .unwrap();
        assert_eq!(
            store.take_sso_flow("h3", t(1)).await.unwrap(),
            None,
            "purged at t(10)"
        );
    })
    .await;
}

#[tokio::test]
async fn identities_are_keyed_on_issuer_and_subject() {
    on_each_backend(|store| async move {
        let ana = store.create_user("ana@acme.example", "Ana").await.unwrap();
        let id = store
            .link_identity(
                "https://op.example",
                "s-1",
                ana.id,
                "corp",
                Some("ana@acme.example"),
            )
            .await
            .unwrap();
        assert_eq!(id.user_id, ana.id);
        let again = store
            .link_identity("https://op.example", "s-1", ana.id, "corp", None)
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict { .. })),
            "{again:?}"
        );
        // The same subject at another issuer is another person.
        let other = store.create_user("bo@acme.example", "Bo").await.unwrap();
        store
            .link_identity("https://other.example", "s-1", other.id, "b", None)
            .await
            .unwrap();
        let found = store
            .federated_identity("https://op.example", "s-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.user_id, ana.id);
        assert_eq!(
            store
                .federated_identity_by_id(&id.id)
                .await
                .unwrap()
                .unwrap(),
            found
        );
        assert!(
            store
                .federated_identity("https://op.example", "s-2")
                .await
                .unwrap()
                .is_none()
        );

        store
            .identity_signed_in(&id.id, Some("ana@acme.example"), Some("sealed"), t(5))
            .await
            .unwrap();
        let found = store
            .federated_identity_by_id(&id.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.refresh_sealed.as_deref(), Some("sealed"));
        store.set_identity_refresh(&id.id, None).await.unwrap();
        assert_eq!(
            store
                .federated_identity_by_id(&id.id)
                .await
                .unwrap()
                .unwrap()
                .refresh_sealed,
            None
        );
    })
    .await;
}

#[tokio::test]
async fn provisioning_creates_both_or_neither() {
    on_each_backend(|store| async move {
        let (user, id) = store
            .provision_identity(
                "Eve@Acme.example",
                "Eve",
                "https://op.example",
                "s-eve",
                "corp",
            )
            .await
            .unwrap();
        assert_eq!(user.email, "eve@acme.example");
        assert!(
            user.password_hash.is_none(),
            "no password: they sign in at the provider"
        );
        assert_eq!(id.user_id, user.id);
        // An e-mail that is taken: refused, and no identity is left behind.
        let taken = store
            .provision_identity(
                "eve@acme.example",
                "Eve 2",
                "https://op.example",
                "s-other",
                "corp",
            )
            .await;
        assert!(
            matches!(taken, Err(StoreError::Conflict { field: "email", .. })),
            "{taken:?}"
        );
        assert!(
            store
                .federated_identity("https://op.example", "s-other")
                .await
                .unwrap()
                .is_none()
        );
        // A subject that is linked already: refused, and no user is left behind.
        let twice = store
            .provision_identity(
                "new@acme.example",
                "New",
                "https://op.example",
                "s-eve",
                "corp",
            )
            .await;
        assert!(
            matches!(twice, Err(StoreError::Conflict { .. })),
            "{twice:?}"
        );
        assert!(
            store
                .user_by_email("new@acme.example")
                .await
                .unwrap()
                .is_none()
        );
    })
    .await;
}

#[tokio::test]
async fn sessions_and_grants_remember_the_identity_they_came_from() {
    on_each_backend(|store| async move {
        let org = store.create_org("acme", "Acme").await.unwrap();
        let (user, id) = store
            .provision_identity(
                "eve@acme.example",
                "Eve",
                "https://op.example",
                "s-eve",
                "corp",
            )
            .await
            .unwrap();
        store
            .set_membership(org.id, user.id, Role::Member)
            .await
            .unwrap();
        let hash = "a".repeat(64);
        store
            .create_session(&hash, user.id, Utc::now(), Utc::now() + TimeDelta::hours(1))
            .await
            .unwrap();
        let s = store.session(&hash, Utc::now()).await.unwrap().unwrap();
        assert_eq!(s.identity_id, None);
        store.set_session_identity(&hash, &id.id).await.unwrap();
        let s = store.session(&hash, Utc::now()).await.unwrap().unwrap();
        assert_eq!(s.identity_id.as_deref(), Some(id.id.as_str()));
        let touched = store
            .touch_session(&hash, Utc::now(), Utc::now() - TimeDelta::minutes(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(touched.identity_id.as_deref(), Some(id.id.as_str()));

        let client = store
            .create_client("App", &["http://127.0.0.1:1/cb".to_owned()], t(0))
            .await
            .unwrap();
        let grant = store
            .create_grant(
                org.id,
                user.id,
                &client.id,
                Scopes::READ,
                Role::Member,
                "https://w.example/mcp",
                t(0),
            )
            .await
            .unwrap();
        assert_eq!(store.grant_identity(&grant.id).await.unwrap(), None);
        store.set_grant_identity(&grant.id, &id.id).await.unwrap();
        assert_eq!(
            store.grant_identity(&grant.id).await.unwrap().as_deref(),
            Some(id.id.as_str())
        );
    })
    .await;
}
