//! The audit trail on each backend: group-committed appends from many tasks form one
//! unbroken chain per organisation, checkpoints are signed, queries filter, and a purge
//! leaves the rest verifiable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{on_each_backend, on_each_backend_with_url};
use sqlx::Connection;
use warden_core::audit::{Event, Source};
use warden_store::audit::{self, AuditLog, Filter, Options, Signer, chain};

fn event(org: Option<&str>, action: &str, n: usize) -> Event {
    let mut e = Event::new("tool_call", Source::Http, action);
    e.org = org.map(str::to_string);
    e.user_id = Some(format!("user-{}", n % 3));
    e.user_email = Some(format!("u{}@example.com", n % 3));
    e.params = Some(serde_json::json!({ "n": n }));
    if n.is_multiple_of(5) {
        e = e.denied("role", "role.read_only", "reads only");
    }
    e
}

async fn verify_all(store: &warden_store::Store, signer: &Signer) -> Vec<chain::ChainReport> {
    let mut out = Vec::new();
    for c in store.audit_chains().await.unwrap() {
        let records = store.audit_chain(&c).await.unwrap();
        let cps = store.audit_checkpoints(&c).await.unwrap();
        out.push(chain::verify_chain(
            &c,
            &records,
            &cps,
            Some(signer.verifier()),
        ));
    }
    out
}

#[tokio::test]
async fn concurrent_appends_form_one_unbroken_chain_per_org() {
    on_each_backend(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(&dir.path().join("audit.key")).unwrap());
        let log = AuditLog::start(
            store.clone(),
            Some(signer.clone()),
            Options {
                checkpoint_every: 50,
                ..Options::default()
            },
        );
        let mut tasks = Vec::new();
        for t in 0..16 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let org = if (t + i) % 2 == 0 { "acme" } else { "globex" };
                    log.append(event(Some(org), "search", t * 100 + i))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        log.append(event(None, "startup", 1)).await.unwrap();
        assert_eq!(log.checkpoint("manual").await.unwrap(), 3);
        let reports = verify_all(&store, &signer).await;
        assert_eq!(reports.len(), 3, "{reports:?}");
        let total: u64 = reports.iter().map(|r| r.records).sum();
        assert_eq!(total, 401);
        for r in &reports {
            assert_eq!(r.problem, None, "{r:?}");
            assert_eq!(r.first_seq, Some(1));
            assert_eq!(r.last_seq, Some(r.records as i64));
            assert_eq!(r.last_checkpoint_seq, r.last_seq, "{r:?}");
            assert!(r.checkpoints >= 1);
        }
        let sys = reports
            .iter()
            .find(|r| r.chain == audit::SYSTEM_CHAIN)
            .unwrap();
        assert_eq!(sys.records, 1);

        // Filters.
        let denied = store
            .audit_query(&Filter {
                decision: Some("denied".into()),
                org: Some("acme".into()),
                limit: 1000,
                ..Filter::default()
            })
            .await
            .unwrap();
        assert!(!denied.is_empty());
        assert!(denied.iter().all(|r| r.decision == "denied"
            && r.chain == "acme"
            && r.stage.as_deref() == Some("role")));
        let by_user = store
            .audit_query(&Filter {
                user: Some("U1@EXAMPLE.COM".into()),
                limit: 5,
                ..Filter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_user.len(), 5);
        assert!(
            by_user
                .iter()
                .all(|r| r.user_id.as_deref() == Some("user-1"))
        );
        assert!(
            by_user.windows(2).all(|w| w[0].ts <= w[1].ts),
            "oldest first"
        );
    })
    .await;
}

#[tokio::test]
async fn a_purge_keeps_the_rest_verifiable() {
    on_each_backend(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(&dir.path().join("audit.key")).unwrap());
        let log = AuditLog::start(store.clone(), Some(signer.clone()), Options::default());
        for i in 0..10 {
            let mut e = event(Some("acme"), "old", i);
            e.ts = format!("2020-01-01T00:00:{i:02}.000Z");
            log.append(e).await.unwrap();
        }
        for i in 0..5 {
            log.append(event(Some("acme"), "new", i)).await.unwrap();
        }
        let purged = store
            .audit_purge("2021-01-01T00:00:00.000Z", &signer)
            .await
            .unwrap();
        assert_eq!(purged.len(), 1);
        assert_eq!(purged[0].records, 10);
        assert_eq!(purged[0].through_seq, 10);
        let records = store.audit_chain("acme").await.unwrap();
        assert_eq!(records.len(), 5);
        assert_eq!(records[0].seq, 11);
        log.append(event(Some("acme"), "after", 1)).await.unwrap();
        let reports = verify_all(&store, &signer).await;
        assert!(reports.iter().all(|r| r.problem.is_none()), "{reports:?}");

        // Deleting the purge's signed base is detected: the chain no longer starts anywhere
        // it can prove.
        let cps = store.audit_checkpoints("acme").await.unwrap();
        let without_base: Vec<_> = cps.into_iter().filter(|c| c.kind != "base").collect();
        let records = store.audit_chain("acme").await.unwrap();
        let r = chain::verify_chain("acme", &records, &without_base, Some(signer.verifier()));
        assert_eq!(r.problem.unwrap().kind, chain::BreakKind::Deleted);
    })
    .await;
}

/// Runs `sql` on the store's database behind its back.
async fn behind_the_back(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_full_store_refuses_writes_nothing_and_recovers() {
    on_each_backend_with_url(|store, url| async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(&dir.path().join("audit.key")).unwrap());
        let log = AuditLog::start(store.clone(), Some(signer.clone()), Options::default());
        log.append(event(Some("acme"), "before", 1)).await.unwrap();
        // Every insert into the trail now fails the way a full disk makes it fail.
        let sqlite = url.starts_with("sqlite:");
        let (fail, heal) = if sqlite {
            (
                "CREATE TRIGGER outage BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
                "DROP TRIGGER outage;",
            )
        } else {
            (
                "CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$; \
                 CREATE TRIGGER outage BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION outage();",
                "DROP TRIGGER outage ON audit_records; DROP FUNCTION outage();",
            )
        };
        behind_the_back(&url, fail).await;
        let during: Vec<_> = (0..8)
            .map(|i| log.append(event(Some("acme"), "during", i)))
            .collect();
        for r in futures::future::join_all(during).await {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("the audit store is full"), "{e}");
        }
        // Nothing of the failed batches was written, not even a head move.
        assert_eq!(store.audit_chain("acme").await.unwrap().len(), 1);
        behind_the_back(&url, heal).await;
        let after = log.append(event(Some("acme"), "after", 9)).await.unwrap();
        assert_eq!(after.seq, 2);
        log.checkpoint("manual").await.unwrap();
        let reports = verify_all(&store, &signer).await;
        assert!(reports.iter().all(|r| r.problem.is_none()), "{reports:?}");
    })
    .await;
}

#[tokio::test]
async fn a_failing_store_refuses_and_recovers() {
    on_each_backend(|store| async move {
        let log = AuditLog::start(store.clone(), None, Options::default());
        log.append(event(Some("acme"), "before", 1)).await.unwrap();
        store.close().await;
        let err = log
            .append(event(Some("acme"), "during", 2))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot record"), "{err}");
        // A closed pool does not come back; the writer keeps answering, and refusing.
        let err = log
            .append(event(Some("acme"), "during", 3))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    })
    .await;
}

#[tokio::test]
async fn a_purge_with_nothing_to_remove_takes_no_write_lock() {
    on_each_backend_with_url(|store, url| async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(&dir.path().join("audit.key")).unwrap();
        let log = AuditLog::start(store.clone(), None, Options::default());
        for i in 0..3 {
            log.append(event(Some("acme"), "recent", i)).await.unwrap();
        }
        // Another connection holds the write lock (SQLite) or the heads (PostgreSQL) for
        // longer than the test waits: a purge that took them would hang here.
        let hold = if url.starts_with("sqlite:") {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN; LOCK TABLE audit_heads IN ACCESS EXCLUSIVE MODE"
        };
        let holder: Box<dyn std::any::Any + Send> = if url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(hold).execute(&mut c).await.unwrap();
            Box::new(c)
        } else {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(hold).execute(&mut c).await.unwrap();
            Box::new(c)
        };
        let purged = tokio::time::timeout(
            Duration::from_secs(2),
            store.audit_purge("2021-01-01T00:00:00.000Z", &signer),
        )
        .await
        .expect("the purge waited for the write lock although nothing was old")
        .unwrap();
        assert!(purged.is_empty(), "{purged:?}");
        drop(holder);
        assert_eq!(store.audit_chain("acme").await.unwrap().len(), 3);
    })
    .await;
}

#[tokio::test]
async fn a_trace_id_is_stored_hashed_and_verified() {
    on_each_backend(|store| async move {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(Signer::load_or_create(&dir.path().join("audit.key")).unwrap());
        let log = AuditLog::start(store.clone(), Some(signer.clone()), Options::default());
        let mut traced = event(Some("acme"), "traced", 1);
        traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        log.append(traced).await.unwrap();
        log.append(event(Some("acme"), "untraced", 2))
            .await
            .unwrap();
        log.checkpoint("manual").await.unwrap();
        let records = store.audit_chain("acme").await.unwrap();
        assert_eq!(
            records[0].trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(records[1].trace_id, None);
        assert_eq!(records[0].hash, chain::hash(&records[0]));
        let reports = verify_all(&store, &signer).await;
        assert!(reports.iter().all(|r| r.problem.is_none()), "{reports:?}");
        // `warden log --json` and exports serialize the record: the field shows when set.
        let json = serde_json::to_value(&records[0]).unwrap();
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            serde_json::to_value(&records[1])
                .unwrap()
                .get("trace_id")
                .is_none()
        );
        // A trace id changed behind the trail's back breaks the chain.
        let mut forged = records.clone();
        forged[0].trace_id = Some("00000000000000000000000000000001".into());
        let cps = store.audit_checkpoints("acme").await.unwrap();
        let report = chain::verify_chain("acme", &forged, &cps, Some(signer.verifier()));
        assert_eq!(
            report.problem.map(|p| p.kind),
            Some(chain::BreakKind::Modified)
        );
    })
    .await;
}

#[tokio::test]
async fn the_readiness_probe_adds_no_record_and_sees_a_store_that_refuses_inserts() {
    on_each_backend_with_url(|store, url| async move {
        let log = AuditLog::start(store.clone(), None, Options::default());
        log.append(event(Some("acme"), "before", 1)).await.unwrap();
        for _ in 0..5 {
            store.audit_probe().await.unwrap();
        }
        assert_eq!(store.audit_chain("acme").await.unwrap().len(), 1);
        assert_eq!(store.audit_chains().await.unwrap(), ["acme"]);
        assert_eq!(
            warden_core::audit::Sink::ready(&log).await,
            Ok(()),
            "a store that can append is ready"
        );
        let sqlite = url.starts_with("sqlite:");
        let (fail, heal) = if sqlite {
            (
                "CREATE TRIGGER outage BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
                "DROP TRIGGER outage;",
            )
        } else {
            (
                "CREATE FUNCTION outage() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$; \
                 CREATE TRIGGER outage BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION outage();",
                "DROP TRIGGER outage ON audit_records; DROP FUNCTION outage();",
            )
        };
        behind_the_back(&url, fail).await;
        assert!(store.audit_probe().await.is_err());
        // The writer's answer is cached for a second: wait it out.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let not_ready = warden_core::audit::Sink::ready(&log).await.unwrap_err();
        assert_eq!(not_ready.to_string(), "audit trail cannot append");
        behind_the_back(&url, heal).await;
        store.audit_probe().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(warden_core::audit::Sink::ready(&log).await, Ok(()));
        assert_eq!(store.audit_chain("acme").await.unwrap().len(), 1);
    })
    .await;
}

/// The console's pages: one chain, newest first, a page at a time below `before_seq`; every
/// record comes once across pages, filters narrow, and another chain's seq is not found.
#[tokio::test]
async fn keyset_pages_of_one_chain_return_each_record_once() {
    on_each_backend(|store| async move {
        let log = AuditLog::start(store.clone(), None, Options::default());
        for n in 0..23 {
            let action = if n % 2 == 0 { "search" } else { "update" };
            log.append(event(Some("acme"), action, n)).await.unwrap();
        }
        for n in 0..5 {
            log.append(event(Some("globex"), "search", n))
                .await
                .unwrap();
        }
        let mut seen = Vec::new();
        let mut filter = Filter {
            limit: 5,
            ..Filter::default()
        };
        loop {
            let page = store.audit_page("acme", &filter).await.unwrap();
            assert!(page.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
            assert!(page.iter().all(|r| r.chain == "acme"));
            seen.extend(page.iter().map(|r| r.seq));
            match page.last() {
                Some(last) if page.len() == 5 => filter.before_seq = Some(last.seq),
                _ => break,
            }
        }
        assert_eq!(seen, (1..=23).rev().collect::<Vec<i64>>());

        let mine = store
            .audit_page(
                "acme",
                &Filter {
                    user_id: Some("user-1".into()),
                    tool: Some("update".into()),
                    limit: 100,
                    ..Filter::default()
                },
            )
            .await
            .unwrap();
        assert!(!mine.is_empty());
        assert!(mine.iter().all(|r| r.user_id.as_deref() == Some("user-1")
            && r.action == "update"
            && r.chain == "acme"));

        assert!(store.audit_record("acme", 23).await.unwrap().is_some());
        assert!(store.audit_record("globex", 23).await.unwrap().is_none());
        assert_eq!(
            store
                .audit_record("globex", 5)
                .await
                .unwrap()
                .unwrap()
                .chain,
            "globex"
        );
    })
    .await;
}
