//! The test harness shared by the integration tests: every test runs on
//! SQLite (a file in a temporary directory) and, when
//! `WARDEN_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database that is
//! dropped afterwards.

use std::future::Future;
use std::panic::resume_unwind;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use warden_store::{Store, StoreError};

const POSTGRES_URL_VAR: &str = "WARDEN_TEST_POSTGRES_URL";

/// Runs `test` on each available backend with a freshly migrated, empty store.
/// A panic on one backend is re-raised after every backend ran and the
/// PostgreSQL database was dropped.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_each_backend_with_url(|store, _| test(store)).await;
}

/// As [`on_each_backend`], also passing the database's URL (`sqlite://PATH` or the
/// PostgreSQL URL), for tests that must reach behind the store's back.
pub async fn on_each_backend_with_url<F, Fut>(test: F)
where
    F: Fn(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut panics = Vec::new();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.migrate().await.unwrap();
    let sqlite_url = format!("sqlite://{}", path.display());
    panics.extend(run("sqlite", store, sqlite_url, &test).await);

    match postgres_url() {
        None => eprintln!("PostgreSQL half NOT run: set {POSTGRES_URL_VAR}"),
        Some(admin_url) => {
            let db = TestDatabase::create(&admin_url).await;
            let setup = async {
                let store = Store::connect(&db.url).await?;
                store.migrate().await?;
                Ok::<_, StoreError>(store)
            };
            match setup.await {
                Ok(store) => panics.extend(run("postgres", store, db.url.clone(), &test).await),
                Err(err) => panics.push(Box::new(format!("PostgreSQL store setup failed: {err}"))),
            }
            db.drop().await;
        }
    }

    if let Some(panic) = panics.into_iter().next() {
        resume_unwind(panic);
    }
}

async fn run<F, Fut>(
    backend: &str,
    store: Store,
    url: String,
    test: &F,
) -> Option<Box<dyn std::any::Any + Send>>
where
    F: Fn(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    eprintln!("--- {backend}");
    assert_eq!(store.backend_name(), backend);
    let outcome = tokio::spawn(test(store.clone(), url)).await;
    store.close().await;
    match outcome {
        Ok(()) => None,
        Err(err) => {
            eprintln!("--- {backend}: FAILED");
            Some(err.into_panic())
        }
    }
}

/// The admin URL from the environment. Set but empty counts as unset; set but
/// not UTF-8 is a configuration error and fails the test.
fn postgres_url() -> Option<String> {
    let value = std::env::var_os(POSTGRES_URL_VAR)?;
    let url = value
        .into_string()
        .unwrap_or_else(|v| panic!("{POSTGRES_URL_VAR} is not valid UTF-8: {v:?}"));
    (!url.is_empty()).then_some(url)
}

/// A throwaway PostgreSQL database, created through the admin URL.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(admin_url: &str) -> TestDatabase {
        let mut admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable at {}: {err}",
                    without_password(admin_url)
                )
            });
        // Identifiers cannot be bound; the name is ours and only [a-z0-9_].
        let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();

        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&name);
        TestDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url: url.into(),
        }
    }

    /// Best effort: a leftover database is reported, not fatal.
    async fn drop(self) {
        let result = async {
            let mut admin = PgConnection::connect(&self.admin_url).await?;
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await?;
            admin.close().await
        }
        .await;
        if let Err(err) = result {
            eprintln!("warning: could not drop test database {}: {err}", self.name);
        }
    }
}

/// The URL for messages: a password in it is replaced by `***`.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.into()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}
