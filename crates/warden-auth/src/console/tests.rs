#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::Utc;
use warden_core::audit::MemorySink;
use warden_store::{Role, Scopes, Store};

use super::*;
use crate::server::SignedIn;

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    sink: Arc<MemorySink>,
    console: Console,
    ana: User,
    mo: User,
}

/// `acme` with ana (admin) and mo (member); `globex` with ana only; mo has no key yet, ana
/// one, and a grant to an app.
async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("state.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let acme = store.create_org("acme", "Acme").await.unwrap();
    let globex = store.create_org("globex", "Globex").await.unwrap();
    let ana = store.create_user("ana@acme.example", "Ana").await.unwrap();
    let mo = store.create_user("mo@acme.example", "Mo").await.unwrap();
    store
        .set_membership(acme.id, ana.id, Role::Admin)
        .await
        .unwrap();
    store
        .set_membership(globex.id, ana.id, Role::Member)
        .await
        .unwrap();
    store
        .set_membership(acme.id, mo.id, Role::Member)
        .await
        .unwrap();
    let sink = Arc::new(MemorySink::default());
    let console = Console::new(store.clone(), sink.clone());
    World {
        _dir: dir,
        store,
        sink,
        console,
        ana,
        mo,
    }
}

/// A session whose password was proved just now.
fn fresh(user: User) -> SignedIn {
    SignedIn {
        user,
        authenticated_at: Utc::now(),
        identity: None,
    }
}

/// A session whose last proof of the password is an hour old.
fn stale(user: User) -> SignedIn {
    SignedIn {
        user,
        authenticated_at: Utc::now() - chrono::Duration::hours(1),
        identity: None,
    }
}

fn kinds(sink: &MemorySink) -> Vec<&'static str> {
    sink.events().iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn the_organisation_is_one_of_the_persons_own() {
    let w = world().await;
    let m = w
        .console
        .member(fresh(w.mo.clone()), None, Origin::default())
        .await
        .unwrap();
    assert_eq!(m.org().slug, "acme");
    for wanted in ["globex", "nowhere"] {
        let e = w
            .console
            .member(fresh(w.mo.clone()), Some(wanted), Origin::default())
            .await
            .unwrap_err();
        assert!(matches!(e, ConsoleError::NotYourOrg(_)), "{wanted}: {e:?}");
    }
    let a = w
        .console
        .member(fresh(w.ana.clone()), Some("globex"), Origin::default())
        .await
        .unwrap();
    assert_eq!((a.org().slug.as_str(), a.role()), ("globex", Role::Member));
    // An Admin in one organisation is not one in another.
    assert!(matches!(
        w.console.admin(&a, "members").await,
        Err(ConsoleError::NotAdmin(_))
    ));
    let loner = w.store.create_user("lo@acme.example", "Lo").await.unwrap();
    assert!(matches!(
        w.console
            .member(fresh(loner), None, Origin::default())
            .await,
        Err(ConsoleError::NoMembership)
    ));
    assert_eq!(kinds(&w.sink), ["console_refused"]);
}

#[tokio::test]
async fn another_persons_key_or_grant_is_refused_unchanged_and_recorded() {
    let w = world().await;
    let ana = w
        .console
        .member(fresh(w.ana.clone()), None, Origin::default())
        .await
        .unwrap();
    let mo = w
        .console
        .member(fresh(w.mo.clone()), None, Origin::default())
        .await
        .unwrap();
    let key = w
        .console
        .create_key(&ana, "laptop", "mcp:read")
        .await
        .unwrap();
    let client = w
        .store
        .create_client("App", &["http://127.0.0.1:9/cb".to_string()], Utc::now())
        .await
        .unwrap();
    let grant = w
        .store
        .create_grant(
            ana.org().id,
            w.ana.id,
            &client.id,
            Scopes::READ,
            Role::Admin,
            "r",
            Utc::now(),
        )
        .await
        .unwrap();
    let (k, g) = (key.key.id.to_string(), grant.id.to_string());
    assert!(matches!(
        w.console.revoke_key(&mo, &k).await,
        Err(ConsoleError::NotFound(_))
    ));
    assert!(matches!(
        w.console.regenerate_key(&mo, &k).await,
        Err(ConsoleError::NotFound(_))
    ));
    assert!(matches!(
        w.console.revoke_app(&mo, &g).await,
        Err(ConsoleError::NotFound(_))
    ));
    assert!(
        w.store
            .api_key_by_hash(key.secret.hash().as_str())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        w.store
            .grant(&grant.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert!(w.console.keys(&mo).await.unwrap().is_empty());
    assert!(w.console.apps(&mo).await.unwrap().is_empty());
    assert_eq!(
        kinds(&w.sink),
        [
            "key_created",
            "console_refused",
            "console_refused",
            "console_refused"
        ]
    );
    // Her own: regenerated in one step, one record naming both keys.
    let r = w.console.regenerate_key(&ana, &k).await.unwrap();
    assert!(
        w.store
            .api_key_by_hash(key.secret.hash().as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.store
            .api_key_by_hash(r.new.secret.hash().as_str())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        (r.new.key.name.as_str(), r.new.key.scopes),
        ("laptop", Scopes::READ)
    );
    let last = w.sink.events().pop().unwrap();
    assert_eq!(last.kind, "key_regenerated");
    let d = last.detail.unwrap();
    assert_eq!(d["old_key"], k.as_str());
    assert_eq!(d["new_key"], r.new.key.id.to_string().as_str());
    assert_eq!(last.user_email.as_deref(), Some("ana@acme.example"));
    assert_eq!(last.source.as_str(), "console");
}

#[tokio::test]
async fn a_stale_session_changes_nothing_that_needs_a_recent_password() {
    let w = world().await;
    let ana = w
        .console
        .member(stale(w.ana.clone()), None, Origin::default())
        .await
        .unwrap();
    let admin = w.console.admin(&ana, "members").await.unwrap();
    let keys_before = w.console.keys(&ana).await.unwrap().len();
    let members_before = w.console.members(&admin).await.unwrap().len();
    let mo = w.mo.id.to_string();
    let refusals = [
        w.console.create_key(&ana, "laptop", "mcp:read").await.err(),
        w.console.set_role(&admin, &mo, "admin").await.err(),
        w.console.remove_member(&admin, &mo).await.err(),
        w.console
            .add_member(&admin, "new@acme.example", "member")
            .await
            .err(),
    ];
    for r in refusals {
        assert!(matches!(r, Some(ConsoleError::Reauthenticate)), "{r:?}");
    }
    assert_eq!(w.console.keys(&ana).await.unwrap().len(), keys_before);
    let members = w.console.members(&admin).await.unwrap();
    assert_eq!(members.len(), members_before);
    assert!(
        members
            .iter()
            .any(|m| m.user == w.mo.id && m.role == Role::Member)
    );
    assert!(
        w.store
            .user_by_email("new@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    let refused: Vec<_> = w
        .sink
        .events()
        .into_iter()
        .filter(|e| e.kind == "console_refused")
        .collect();
    assert_eq!(refused.len(), 4);
    assert!(
        refused
            .iter()
            .all(|e| e.rule.as_deref() == Some("console.reauth_required"))
    );
    // Revoking never needs the password again.
    let fresh_ana = w
        .console
        .member(fresh(w.ana.clone()), None, Origin::default())
        .await
        .unwrap();
    let key = w
        .console
        .create_key(&fresh_ana, "spare", "mcp:read")
        .await
        .unwrap();
    w.console
        .revoke_key(&ana, &key.key.id.to_string())
        .await
        .unwrap();
}

#[tokio::test]
async fn adding_a_member_invites_a_newcomer_and_refuses_a_duplicate() {
    let w = world().await;
    let ana = w
        .console
        .member(fresh(w.ana.clone()), None, Origin::default())
        .await
        .unwrap();
    let admin = w.console.admin(&ana, "members").await.unwrap();
    match w
        .console
        .add_member(&admin, "New@Acme.example", "guest")
        .await
        .unwrap()
    {
        Added::Invited { email, role, link } => {
            assert_eq!((email.as_str(), role), ("new@acme.example", Role::Guest));
            assert!(link.expose().starts_with("wdn_ml_"));
        }
        other => panic!("{other:?}"),
    }
    let new = w
        .store
        .user_by_email("new@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert!(new.password_hash.is_none());
    // Already a member: refused, nothing changed.
    assert!(matches!(
        w.console
            .add_member(&admin, "mo@acme.example", "admin")
            .await,
        Err(ConsoleError::Invalid(_))
    ));
    let acme = ana.org().id;
    assert_eq!(
        w.store
            .membership(acme, w.mo.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Member
    );
    // An existing account elsewhere is added without an invitation.
    let globex_admin = w
        .store
        .create_user("gi@globex.example", "Gi")
        .await
        .unwrap();
    assert!(matches!(
        w.console
            .add_member(&admin, "gi@globex.example", "member")
            .await
            .unwrap(),
        Added::Existing { .. }
    ));
    assert!(
        w.store
            .membership(acme, globex_admin.id)
            .await
            .unwrap()
            .is_some()
    );
    for bad in ["", "not-an-address", "a b@c.d"] {
        assert!(
            matches!(
                w.console.add_member(&admin, bad, "member").await,
                Err(ConsoleError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        w.console
            .add_member(&admin, "x@acme.example", "owner")
            .await,
        Err(ConsoleError::Invalid(_))
    ));
    assert_eq!(
        kinds(&w.sink),
        ["member_invited", "member_added"],
        "only the changes are recorded"
    );
}

#[tokio::test]
async fn an_admin_revokes_any_key_or_app_of_their_organisation_and_nothing_elsewhere() {
    let w = world().await;
    let ana_acme = w
        .console
        .member(fresh(w.ana.clone()), None, Origin::default())
        .await
        .unwrap();
    let ana_globex = w
        .console
        .member(fresh(w.ana.clone()), Some("globex"), Origin::default())
        .await
        .unwrap();
    let mo = w
        .console
        .member(fresh(w.mo.clone()), None, Origin::default())
        .await
        .unwrap();
    let admin = w.console.admin(&ana_acme, "access").await.unwrap();
    let mo_key = w.console.create_key(&mo, "mo's", "mcp:read").await.unwrap();
    let globex_key = w
        .console
        .create_key(&ana_globex, "globex", "mcp:read")
        .await
        .unwrap();
    let listed = w.console.org_keys(&admin).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|(k, owner)| k.id == mo_key.key.id && owner == "mo@acme.example")
    );
    assert!(listed.iter().all(|(k, _)| k.id != globex_key.key.id));
    // Another organisation's key: refused, unchanged, recorded.
    assert!(matches!(
        w.console
            .revoke_org_key(&admin, &globex_key.key.id.to_string())
            .await,
        Err(ConsoleError::NotFound(_))
    ));
    assert!(
        w.store
            .api_key_by_hash(globex_key.secret.hash().as_str())
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    w.console
        .revoke_org_key(&admin, &mo_key.key.id.to_string())
        .await
        .unwrap();
    assert!(
        w.store
            .api_key_by_hash(mo_key.secret.hash().as_str())
            .await
            .unwrap()
            .is_none_or(|k| k.revoked_at.is_some()),
        "a revoked key is not found as usable"
    );
    assert!(matches!(
        w.console.revoke_org_app(&admin, "not-a-grant").await,
        Err(ConsoleError::NotFound(_))
    ));
    let ks = kinds(&w.sink);
    assert_eq!(
        ks.iter().filter(|k| **k == "console_refused").count(),
        2,
        "{ks:?}"
    );
    assert!(ks.contains(&"key_revoked"));
}
