#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::Utc;
use warden_core::audit::MemorySink;
use warden_store::{Role, Scopes, Store};

use super::*;

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

fn kinds(sink: &MemorySink) -> Vec<&'static str> {
    sink.events().iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn the_organisation_is_one_of_the_persons_own() {
    let w = world().await;
    let m = w
        .console
        .member(w.mo.clone(), None, Origin::default())
        .await
        .unwrap();
    assert_eq!(m.org().slug, "acme");
    for wanted in ["globex", "nowhere"] {
        let e = w
            .console
            .member(w.mo.clone(), Some(wanted), Origin::default())
            .await
            .unwrap_err();
        assert!(matches!(e, ConsoleError::NotYourOrg(_)), "{wanted}: {e:?}");
    }
    let a = w
        .console
        .member(w.ana.clone(), Some("globex"), Origin::default())
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
        w.console.member(loner, None, Origin::default()).await,
        Err(ConsoleError::NoMembership)
    ));
    assert_eq!(kinds(&w.sink), ["console_refused"]);
}

#[tokio::test]
async fn another_persons_key_or_grant_is_refused_unchanged_and_recorded() {
    let w = world().await;
    let ana = w
        .console
        .member(w.ana.clone(), None, Origin::default())
        .await
        .unwrap();
    let mo = w
        .console
        .member(w.mo.clone(), None, Origin::default())
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
