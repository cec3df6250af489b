use super::*;

async fn int_pragma(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn sqlite_file_connections_are_durable_and_enforce_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("w.db")).await.unwrap();
    let Backend::Sqlite(pool) = &store.backend else {
        panic!("expected sqlite");
    };
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    assert_eq!(int_pragma(pool, "PRAGMA synchronous").await, 2); // FULL
    assert_eq!(int_pragma(pool, "PRAGMA foreign_keys").await, 1);
    assert_eq!(int_pragma(pool, "PRAGMA busy_timeout").await, 5000);
    store.close().await;
}

#[tokio::test]
async fn sqlite_url_forms_connect() {
    let dir = tempfile::tempdir().unwrap();
    let file_url = format!("sqlite://{}?mode=rwc", dir.path().join("u.db").display());
    for url in [file_url.as_str(), "sqlite::memory:"] {
        let store = Store::connect(url).await.unwrap();
        assert_eq!(store.backend_name(), "sqlite");
        store.migrate().await.unwrap();
        store.create_org("acme", "Acme").await.unwrap();
        assert!(store.org_by_slug("acme").await.unwrap().is_some(), "{url}");
        store.close().await;
    }
}

#[tokio::test]
async fn unknown_url_scheme_is_rejected_without_echoing_credentials() {
    for (url, scheme) in [
        ("mysql://root:hunter2@db/warden", "mysql"),
        ("hunter2", "hunter2"),
        ("", ""),
    ] {
        match Store::connect(url).await {
            Err(err @ StoreError::UnsupportedUrl { .. }) => {
                let msg = err.to_string();
                assert!(msg.contains(&format!("{scheme:?}")), "{msg}");
                assert!(!msg.contains("root:hunter2"), "{msg}");
                assert!(msg.contains("postgres://"), "{msg}");
            }
            other => panic!("{url:?}: expected UnsupportedUrl, got {other:?}"),
        }
    }
}
