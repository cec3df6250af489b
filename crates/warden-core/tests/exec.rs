//! The execute stage through the public pipeline, against SQLite and PostgreSQL.
//!
//! Every test runs on both backends. PostgreSQL comes from `WARDEN_TEST_POSTGRES_URL` (a
//! fresh database per test); without it the PostgreSQL half says so and only SQLite runs.
//! If the variable is set and the server cannot be reached, the test fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;
use warden_core::audit::{MemorySink, Outcome};
use warden_core::exec::{DataSource, ExecError};
use warden_core::pipeline::{CallError, CallRequest, NoChannel, Pipeline, Source};
use warden_core::project;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Db {
    backend: Backend,
    /// The `data:` section for the project file.
    data: String,
    _dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut c)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0), label TEXT, ratio REAL)";

static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn databases() -> Vec<Db> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.db");
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(SCHEMA).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
    let mut out = vec![Db {
        backend: Backend::Sqlite,
        data: format!("  sqlite: {}\n", file.display()),
        _dir: dir,
        pg_admin: None,
    }];
    match std::env::var("WARDEN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        None => eprintln!("PostgreSQL half NOT run: set WARDEN_TEST_POSTGRES_URL"),
        Some(admin) => {
            let name = format!(
                "warden_exec_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
            );
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("WARDEN_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
                });
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&name);
            let mut db = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
            let pg_schema = SCHEMA
                .replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY")
                .replace("REAL", "DOUBLE PRECISION");
            sqlx::raw_sql(sqlx::AssertSqlSafe(pg_schema))
                .execute(&mut db)
                .await
                .unwrap();
            out.push(Db {
                backend: Backend::Postgres,
                data: format!("  postgres: {url}\n"),
                _dir: tempfile::tempdir().unwrap(),
                pg_admin: Some((admin, name)),
            });
        }
    }
    out
}

fn slow_sql(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) AS n FROM c"
        }
        Backend::Postgres => "SELECT pg_sleep(30) IS NULL AS n",
    }
}

fn slow_write_sql(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => {
            "INSERT INTO items(n) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT x FROM c"
        }
        Backend::Postgres => "INSERT INTO items(n) SELECT 1 FROM pg_sleep(30)",
    }
}

async fn pipeline(db: &Db) -> Pipeline {
    pipeline_with_sink(db).await.0
}

async fn pipeline_with_sink(db: &Db) -> (Pipeline, Arc<MemorySink>) {
    let yaml = format!(
        r#"version: 1
name: exec-tests
# These tests call with no authenticated caller; the project says so explicitly.
auth: none
data:
{data}  query_timeout_ms: 400
  max_rows: 3
tools:
  - name: add
    description: adds an item
    access: write
    params:
      - {{ name: n, type: integer, required: true }}
      - {{ name: label, type: string }}
      - {{ name: ratio, type: number }}
    sql: INSERT INTO items(n, label, ratio) VALUES (:n, :label, :ratio) RETURNING n, label, ratio
  - name: add_two
    description: adds two items in one statement
    access: write
    params:
      - {{ name: a, type: integer, required: true }}
      - {{ name: b, type: integer, required: true }}
    sql: INSERT INTO items(n) VALUES (:a), (:b)
  - name: list
    description: lists items
    access: read
    params:
      - {{ name: min, type: integer, default: 0 }}
    sql: SELECT n, label, ratio, n > 1 AS big FROM items WHERE n >= :min ORDER BY n
  - name: count
    description: counts items
    access: read
    returns: row
    sql: SELECT count(*) AS c FROM items
  - name: wipe_from_read
    description: a read tool that tries to write
    access: read
    sql: DELETE FROM items
  - name: slow
    description: slow read
    access: read
    sql: "{slow}"
  - name: guarded
    description: a read whose rules read tool and request, not user
    access: read
    params:
      - {{ name: min, type: integer, default: 0 }}
    sql: SELECT n FROM items WHERE n >= :min ORDER BY n
    policies:
      input:
        - name: stdio-small-only
          condition: "request.source == 'stdio' && args.min > 5"
          reason: stdio callers ask for 5 or less
      output:
        - name: mask-n-here
          condition: "tool.annotations.readOnlyHint && tool.name == 'guarded'"
          action: mask_fields
          fields: [n]
  - name: slow_write
    description: slow write
    access: write
    sql: "{slow_write}"
"#,
        data = db.data,
        slow = slow_sql(db.backend),
        slow_write = slow_write_sql(db.backend)
    );
    let project = project::load_str(&yaml, Path::new("exec-tests.yaml"), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let data = DataSource::open(&project.data).await.unwrap();
    let sink = Arc::new(MemorySink::default());
    let p = Pipeline::new(
        Arc::new(project),
        data,
        Arc::new(TestLedger::default()),
        sink.clone(),
    );
    (p, sink)
}

/// A confirmation ledger for these tests (the real ones live in warden-auth).
#[derive(Debug, Default)]
struct TestLedger {
    minted: std::sync::Mutex<Vec<(String, warden_core::confirm::Binding, bool)>>,
}

impl warden_core::confirm::Ledger for TestLedger {
    fn mint(
        &self,
        b: warden_core::confirm::Binding,
    ) -> futures::future::BoxFuture<'_, Result<String, warden_core::confirm::LedgerError>> {
        Box::pin(async move {
            let mut m = self.minted.lock().unwrap();
            let token = format!("test-token-{}", m.len());
            m.push((token.clone(), b, false));
            Ok(token)
        })
    }

    fn redeem<'a>(
        &'a self,
        token: &'a str,
        b: &'a warden_core::confirm::Binding,
    ) -> futures::future::BoxFuture<'a, Result<(), warden_core::confirm::LedgerError>> {
        Box::pin(async move {
            let mut m = self.minted.lock().unwrap();
            let entry = m
                .iter_mut()
                .find(|(t, _, _)| t == token)
                .ok_or(warden_core::confirm::Refusal::Unknown)?;
            if entry.2 {
                return Err(warden_core::confirm::Refusal::Used.into());
            }
            warden_core::confirm::compare(&entry.1, b)?;
            entry.2 = true;
            Ok(())
        })
    }
}

async fn call(p: &Pipeline, tool: &str, args: Value) -> Result<Value, CallError> {
    call_with(p, tool, args, CancellationToken::new()).await
}

async fn call_with(
    p: &Pipeline,
    tool: &str,
    args: Value,
    cancel: CancellationToken,
) -> Result<Value, CallError> {
    let mut args = args.as_object().cloned();
    let mut confirmed = false;
    let r = loop {
        let req = CallRequest {
            tool,
            caller: None,
            arguments: args.as_ref(),
            source: Source::Stdio,
            peer: Default::default(),
            cancel: cancel.clone(),
            channel: &NoChannel,
        };
        match p.call_tool(req).await {
            // Writes are previewed first; approve exactly once, as a user would.
            Err(CallError::ConfirmationRequired(preview)) if !confirmed => {
                confirmed = true;
                let a = args.get_or_insert_with(Default::default);
                a.insert("confirm".into(), json!(true));
                a.insert("confirmation_token".into(), json!(preview.token));
            }
            other => break other?,
        }
    };
    match &r.content[0] {
        warden_core::pipeline::Content::Text(t) => Ok(serde_json::from_str(t).unwrap()),
        other => panic!("unexpected content {other:?}"),
    }
}

async fn count(p: &Pipeline) -> i64 {
    call(p, "count", json!({})).await.unwrap()["c"]
        .as_i64()
        .unwrap()
}

#[tokio::test]
async fn values_are_bound_typed_and_decoded() {
    for db in databases().await {
        let p = pipeline(&db).await;
        let out = call(
            &p,
            "add",
            json!({"n": 2, "label": "it's ; DROP TABLE items --", "ratio": 0.5}),
        )
        .await
        .unwrap();
        assert_eq!(
            out["rows"],
            json!([{"n": 2, "label": "it's ; DROP TABLE items --", "ratio": 0.5}]),
            "{:?}",
            db.backend
        );
        assert_eq!(out["rows_affected"], 1);
        call(&p, "add", json!({"n": 1})).await.unwrap();
        let list = call(&p, "list", json!({})).await.unwrap();
        let rows = list["rows"].as_array().unwrap();
        assert_eq!(rows[0]["n"], 1);
        assert_eq!(rows[0]["label"], Value::Null);
        assert_eq!(rows[1]["label"], "it's ; DROP TABLE items --");
        // SQLite has no boolean type: comparisons come back as 0/1.
        let big = &rows[1]["big"];
        assert!(
            big == &json!(true) || big == &json!(1),
            "{:?}: {big}",
            db.backend
        );
        assert_eq!(
            call(&p, "list", json!({"min": 2})).await.unwrap()["row_count"],
            1
        );
        p.close().await;
    }
}

#[tokio::test]
async fn read_tools_cannot_write() {
    for db in databases().await {
        let p = pipeline(&db).await;
        call(&p, "add", json!({"n": 1})).await.unwrap();
        let err = call(&p, "wipe_from_read", json!({})).await.unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("read-only") || msg.contains("readonly"),
            "{:?}: {msg}",
            db.backend
        );
        assert_eq!(count(&p).await, 1);
        p.close().await;
    }
}

#[tokio::test]
async fn a_failed_statement_changes_nothing() {
    for db in databases().await {
        let p = pipeline(&db).await;
        let err = call(&p, "add_two", json!({"a": 1, "b": -1}))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Execution(ExecError::Database(_))),
            "{:?}: {err}",
            db.backend
        );
        assert_eq!(count(&p).await, 0);
        p.close().await;
    }
}

#[tokio::test]
async fn slow_statements_time_out_and_writes_roll_back() {
    for db in databases().await {
        let p = pipeline(&db).await;
        let started = Instant::now();
        let err = call(&p, "slow", json!({})).await.unwrap_err();
        assert!(
            matches!(err, CallError::Execution(ExecError::Timeout(_))),
            "{:?}: {err}",
            db.backend
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}: timeout not enforced",
            db.backend
        );

        for _ in 0..3 {
            let err = call(&p, "slow_write", json!({})).await.unwrap_err();
            assert!(
                matches!(err, CallError::Execution(ExecError::Timeout(_))),
                "{:?}: {err}",
                db.backend
            );
        }
        assert_eq!(count(&p).await, 0);
        // Regression: after timed-out writes, the next write must really commit (the
        // connection must not be left inside a transaction).
        call(&p, "add", json!({"n": 3})).await.unwrap();
        assert_eq!(count(&p).await, 1);
        p.close().await;
        let again = pipeline(&db).await;
        assert_eq!(
            count(&again).await,
            1,
            "{:?}: the write was not durable",
            db.backend
        );
        again.close().await;
    }
}

#[tokio::test]
async fn cancellation_stops_a_write_and_changes_nothing() {
    for db in databases().await {
        let p = pipeline(&db).await;
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let err = call_with(&p, "slow_write", json!({}), cancel)
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Execution(ExecError::Cancelled)),
            "{:?}: {err}",
            db.backend
        );
        assert_eq!(count(&p).await, 0);
        call(&p, "add", json!({"n": 4})).await.unwrap();
        assert_eq!(count(&p).await, 1);
        p.close().await;
    }
}

#[tokio::test]
async fn cancellation_stops_a_read_and_frees_its_connection() {
    for db in databases().await {
        let p = pipeline(&db).await;
        // More cancelled reads than the pool has connections: each must give its
        // connection back, or the read after them would wait for ever.
        for _ in 0..10 {
            let cancel = CancellationToken::new();
            let trigger = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                trigger.cancel();
            });
            let started = Instant::now();
            let err = call_with(&p, "slow", json!({}), cancel).await.unwrap_err();
            assert!(
                matches!(err, CallError::Execution(ExecError::Cancelled)),
                "{:?}: {err}",
                db.backend
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}: the cancellation did not stop the statement",
                db.backend
            );
        }
        call(&p, "add", json!({"n": 5})).await.unwrap();
        let out = call(&p, "list", json!({})).await.unwrap();
        assert_eq!(out["row_count"], 1, "{:?}", db.backend);
        p.close().await;
    }
}

#[tokio::test]
async fn rules_see_the_tool_and_request_variables_they_read() {
    // The pipeline builds only the variables some rule of the tool reads: these rules read
    // `request`, `args` and `tool`, and must see them as before.
    for db in databases().await {
        let p = pipeline(&db).await;
        call(&p, "add", json!({"n": 7})).await.unwrap();
        let err = call(&p, "guarded", json!({"min": 6})).await.unwrap_err();
        assert!(
            matches!(&err, CallError::Policy(d) if d.rule == "stdio-small-only" && d.error.is_none()),
            "{:?}: {err:?}",
            db.backend
        );
        let out = call(&p, "guarded", json!({"min": 1})).await.unwrap();
        assert_eq!(out["rows"][0]["n"], "****", "{:?}: {out}", db.backend);
        p.close().await;
    }
}

#[tokio::test]
async fn results_stop_at_max_rows() {
    for db in databases().await {
        let p = pipeline(&db).await;
        for n in 0..5 {
            call(&p, "add", json!({"n": n})).await.unwrap();
        }
        let out = call(&p, "list", json!({})).await.unwrap();
        assert_eq!(out["row_count"], 3, "{:?}", db.backend);
        assert_eq!(out["truncated"], true);
        p.close().await;
    }
}

#[tokio::test]
async fn every_call_is_recorded_and_a_write_before_it_commits() {
    for db in databases().await {
        let (p, sink) = pipeline_with_sink(&db).await;
        call(&p, "add", json!({"n": 7, "label": "x"}))
            .await
            .unwrap();
        let events = sink.events();
        let outcomes: Vec<_> = events.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::ConfirmationRequired, Outcome::Success],
            "{:?}",
            db.backend
        );
        let write = &events[1];
        assert_eq!(write.action, "add");
        assert_eq!(write.affected.as_deref(), Some(&["7".to_string()][..]));
        assert_eq!(write.detail.as_ref().unwrap()["rows_affected"], 1);
        // The confirmation token is a secret: recorded only as a marker.
        assert_eq!(
            write.params.as_ref().unwrap()["confirmation_token"],
            warden_core::audit::REDACTED
        );
        assert_eq!(write.params.as_ref().unwrap()["label"], "x");

        // The trail fails: the confirmed write is refused and rolled back; a read is refused.
        call(&p, "add", json!({"n": 8}))
            .await
            .map(|_| ())
            .or_else(|e| match e {
                CallError::Audit(_) => Ok(()),
                other => Err(other),
            })
            .unwrap();
        let before = count(&p).await;
        let args = json!({"n": 9}).as_object().cloned();
        let preview = p
            .call_tool(request("add", args.as_ref()))
            .await
            .unwrap_err();
        let CallError::ConfirmationRequired(preview) = preview else {
            panic!("{preview}")
        };
        sink.fail(true);
        let mut confirmed = args.clone().unwrap();
        confirmed.insert("confirm".into(), json!(true));
        confirmed.insert("confirmation_token".into(), json!(preview.token));
        let err = p
            .call_tool(request("add", Some(&confirmed)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, CallError::Audit(_)),
            "{:?}: {err}",
            db.backend
        );
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        let err = p.call_tool(request("count", None)).await.unwrap_err();
        assert!(matches!(err, CallError::Audit(_)), "{err}");
        sink.fail(false);
        assert_eq!(count(&p).await, before, "{:?}", db.backend);
        p.close().await;
    }
}

fn request<'a>(tool: &'a str, args: Option<&'a serde_json::Map<String, Value>>) -> CallRequest<'a> {
    CallRequest {
        tool,
        caller: None,
        arguments: args,
        source: Source::Stdio,
        peer: Default::default(),
        cancel: CancellationToken::new(),
        channel: &NoChannel,
    }
}
