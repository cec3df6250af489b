#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use warden_core::audit::{Event, MemorySink, Source};
use warden_store::{Role, Store};

use super::*;
use crate::console::Origin;
use crate::server::SignedIn;

fn signed_in(user: warden_store::User) -> SignedIn {
    SignedIn {
        user,
        authenticated_at: chrono::Utc::now(),
        identity: None,
    }
}

#[test]
fn times_are_read_in_the_forms_the_page_offers() {
    for (given, stored) in [
        ("2026-11-21", "2026-11-21T00:00:00.000Z"),
        ("2026-11-21T09:30", "2026-11-21T09:30:00.000Z"),
        ("2026-11-21 09:30", "2026-11-21T09:30:00.000Z"),
        ("2026-11-21T10:30:00+01:00", "2026-11-21T09:30:00.000Z"),
    ] {
        assert_eq!(parse_time("From", given).unwrap(), stored, "{given}");
    }
    for bad in ["yesterday", "21/11/2026", "2026-13-01", "7d"] {
        assert!(
            matches!(parse_time("From", bad), Err(ConsoleError::Invalid(_))),
            "{bad}"
        );
    }
}

#[test]
fn the_filters_are_warden_logs_words() {
    let f = filter_of(&TrailQuery {
        status: Some("ok".into()),
        decision: Some("deny".into()),
        tool: Some("  search  ".into()),
        event: Some(String::new()),
        source: Some("http".into()),
        before: Some(0),
        ..TrailQuery::default()
    })
    .unwrap();
    assert_eq!(f.outcome.as_deref(), Some("success"));
    assert_eq!(f.decision.as_deref(), Some("denied"));
    assert_eq!(f.tool.as_deref(), Some("search"));
    assert_eq!(f.source.as_deref(), Some("mcp_http"));
    assert_eq!(f.event, None, "an empty field is no filter");
    assert_eq!(f.before_seq, None, "seq 0 or below starts at the newest");
    assert_eq!(f.limit, PAGE_SIZE + 1, "one more, to know of an older page");
    assert_eq!(f.user_id, None);
    for q in [
        TrailQuery {
            status: Some("fine".into()),
            ..TrailQuery::default()
        },
        TrailQuery {
            decision: Some("maybe".into()),
            ..TrailQuery::default()
        },
        TrailQuery {
            source: Some("email".into()),
            ..TrailQuery::default()
        },
    ] {
        assert!(matches!(filter_of(&q), Err(ConsoleError::Invalid(_))));
    }
}

/// ana (admin) and mo (member) in acme, each with calls there, and calls in globex.
async fn world() -> (tempfile::TempDir, Store, Arc<MemorySink>, Console) {
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
        .set_membership(acme.id, mo.id, Role::Member)
        .await
        .unwrap();
    store
        .set_membership(globex.id, mo.id, Role::Member)
        .await
        .unwrap();
    let mut events = Vec::new();
    for (org, user, n) in [("acme", &ana, 3), ("acme", &mo, 4), ("globex", &mo, 30)] {
        for _ in 0..n {
            events.push(
                Event::new("tool_call", Source::Http, "search")
                    .org(org)
                    .user(user.id.to_string(), user.email.clone()),
            );
        }
    }
    store.audit_append(events, None).await.unwrap();
    let sink = Arc::new(MemorySink::default());
    let console = Console::new(store.clone(), sink.clone());
    (dir, store, sink, console)
}

#[tokio::test]
async fn activity_is_the_members_own_in_their_organisation_whatever_the_query_says() {
    let (_dir, store, sink, console) = world().await;
    let mo = store
        .user_by_email("mo@acme.example")
        .await
        .unwrap()
        .unwrap();
    let ana = store
        .user_by_email("ana@acme.example")
        .await
        .unwrap()
        .unwrap();
    let m = console
        .member(signed_in(mo.clone()), Some("acme"), Origin::default())
        .await
        .unwrap();
    let q = TrailQuery {
        user: Some(ana.id.to_string()),
        ..TrailQuery::default()
    };
    let page = console.activity(&m, &q).await.unwrap();
    assert_eq!(page.records.len(), 4);
    assert!(
        page.records
            .iter()
            .all(|r| r.chain == "acme" && r.user_id.as_deref() == Some(mo.id.to_string().as_str()))
    );
    assert_eq!(page.older, None);
    assert!(
        sink.events().is_empty(),
        "reading one's own activity is not recorded"
    );

    // In globex mo has 30 records: a page of 50 holds them all; paged below seq 11, ten.
    let g = console
        .member(signed_in(mo), Some("globex"), Origin::default())
        .await
        .unwrap();
    let page = console
        .activity(
            &g,
            &TrailQuery {
                before: Some(11),
                ..TrailQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<i64>>()
    );
}

#[tokio::test]
async fn an_admin_reads_only_their_organisations_chain_and_each_look_is_recorded() {
    let (_dir, store, sink, console) = world().await;
    let ana = store
        .user_by_email("ana@acme.example")
        .await
        .unwrap()
        .unwrap();
    let m = console
        .member(signed_in(ana), Some("acme"), Origin::default())
        .await
        .unwrap();
    let admin = console.admin(&m, "/console/admin/audit").await.unwrap();
    let page = console
        .audit(
            &admin,
            &TrailQuery {
                user: Some("MO@acme.example".into()),
                ..TrailQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 4, "mo's, found by email in any case");
    assert!(console.audit_record(&admin, "7").await.is_ok());
    // Seq 20 exists only in globex's chain.
    assert!(matches!(
        console.audit_record(&admin, "20").await,
        Err(ConsoleError::NotFound(_))
    ));
    let kinds: Vec<&str> = sink.events().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "console_audit_viewed",
            "console_audit_viewed",
            "console_refused"
        ]
    );
    // Without an audit key (audit disabled) there is nothing to verify or export.
    assert!(matches!(
        console.verify(&admin).await,
        Err(ConsoleError::Invalid(_))
    ));
    assert!(matches!(
        console.export(&admin).await,
        Err(ConsoleError::Invalid(_))
    ));
}
