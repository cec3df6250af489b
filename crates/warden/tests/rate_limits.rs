//! The project's `limits` on tool calls, against the real binary, on SQLite and (with
//! `WARDEN_TEST_POSTGRES_URL`) on PostgreSQL: a user over their limit is refused with the
//! limit's name and when to retry (JSON-RPC -32029) while another user is not; limits per
//! tool, per client and per organisation each hold; refusals are on the record, boundedly.
//! And over the shared buckets directly, with the test's own clock: a daily quota refuses
//! until 00:00 UTC and then resets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::{PgDatabase, Server, add_member, audit_log, init_project};
use serde_json::{Value, json};
use warden_core::pipeline::limits::{self, CallLimiter};

/// The example project with `limits` (YAML under the top-level `limits:`), its state on
/// PostgreSQL when `postgres` is given; two members' keys (ana's two, bob's one).
fn project(limits: &str, postgres: Option<&str>) -> (tempfile::TempDir, PathBuf, [String; 3]) {
    let (dir, file, first) = init_project();
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    yaml.push_str(&format!("\nlimits:\n{limits}"));
    if let Some(url) = postgres {
        yaml.push_str(&format!("\nstate:\n  postgres: {url}\n"));
    }
    std::fs::write(&file, yaml).unwrap();
    // `init_project` put ana in the SQLite store; a PostgreSQL one starts empty.
    let ana = match postgres {
        None => first,
        Some(_) => add_member(&file, "ana@acme.example", "admin", "mcp:read", true),
    };
    let ana2 = another_key(&file, "ana@acme.example");
    let bob = add_member(&file, "bob@acme.example", "member", "mcp:read", false);
    (dir, file, [ana, ana2, bob])
}

fn another_key(file: &std::path::Path, email: &str) -> String {
    let out = common::run(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        email,
        "--name",
        "second",
        "--scope",
        "mcp:read",
        "-p",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn on_each_backend<F, Fut>(test_name: &str, limits: &str, test: F)
where
    F: Fn(PathBuf, [String; 3]) -> Fut,
    Fut: Future<Output = ()>,
{
    let (_d, file, keys) = project(limits, None);
    eprintln!("--- sqlite");
    test(file, keys).await;
    if let Some(db) = PgDatabase::create(&format!("limits_{test_name}")).await {
        let url = db.url.clone();
        let (_d, file, keys) = project(limits, Some(&url));
        eprintln!("--- postgres");
        test(file, keys).await;
    }
}

/// One `tools/call` with `key`: `Ok(result)` or `Err(error)`.
async fn call(server: &Server, key: &str, tool: &str, args: Value) -> Result<Value, Value> {
    let mut s = Server::attach(server.url.clone())
        .with_bearer(key)
        .session()
        .await;
    let r = s
        .request("tools/call", json!({"name": tool, "arguments": args}))
        .await;
    match r.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(r["result"].clone()),
    }
}

fn limited_by(e: &Value) -> &str {
    assert_eq!(e["code"], -32029, "{e}");
    e["data"]["limit"].as_str().unwrap()
}

#[tokio::test]
async fn a_user_over_the_limit_is_refused_with_retry_after_and_another_user_is_not() {
    let limits = "  per_user: { burst: 3, per_minute: 1 }\n";
    on_each_backend("user", limits, |file, [ana, _, bob]| async move {
        let server = Server::start(&file);
        for _ in 0..3 {
            call(&server, &ana, "portfolio_report", json!({}))
                .await
                .unwrap();
        }
        for _ in 0..3 {
            let e = call(&server, &ana, "portfolio_report", json!({}))
                .await
                .unwrap_err();
            assert_eq!(limited_by(&e), "limits.per_user");
            let retry = e["data"]["retry_after_seconds"].as_u64().unwrap();
            assert!((1..=60).contains(&retry), "{e}");
            let msg = e["message"].as_str().unwrap();
            assert!(
                msg.contains("limits.per_user") && msg.contains("retry in"),
                "{msg}"
            );
        }
        // Another user has a bucket of their own.
        call(&server, &bob, "portfolio_report", json!({}))
            .await
            .unwrap();
        // Three refusals in one minute: one record, the rest counted.
        let denied = audit_log(&file, &["--status", "denied", "--tool", "portfolio_report"]);
        let limited: Vec<&Value> = denied.iter().filter(|r| r["stage"] == "limit").collect();
        assert_eq!(limited.len(), 1, "{denied:?}");
        assert_eq!(limited[0]["rule"], "limits.per_user");
        assert_eq!(limited[0]["user_email"], "ana@acme.example");
    })
    .await;
}

#[tokio::test]
async fn limits_per_tool_per_client_and_per_organisation_each_hold() {
    let limits = "  tools:\n    search_vendors: { burst: 2, per_minute: 1 }\n  per_client: { burst: 4, per_minute: 1 }\n  per_org: { burst: 8, per_minute: 1 }\n";
    on_each_backend("each", limits, |file, [ana, ana2, bob]| async move {
        let server = Server::start(&file);
        let search = json!({"query": "a"});
        // Per tool: the third search is refused; another tool still runs.
        for _ in 0..2 {
            call(&server, &ana, "search_vendors", search.clone())
                .await
                .unwrap();
        }
        let e = call(&server, &ana, "search_vendors", search.clone())
            .await
            .unwrap_err();
        assert_eq!(limited_by(&e), "limits.tools.search_vendors");
        // Per client: this key has had 2 calls through; 2 more, then refused.
        for _ in 0..2 {
            call(&server, &ana, "portfolio_report", json!({}))
                .await
                .unwrap();
        }
        let e = call(&server, &ana, "portfolio_report", json!({}))
            .await
            .unwrap_err();
        assert_eq!(limited_by(&e), "limits.per_client");
        // The same user's other key is another client.
        call(&server, &ana2, "portfolio_report", json!({}))
            .await
            .unwrap();
        // Per organisation: 5 calls went through (refused ones take nothing from it); bob
        // gets the last 3, then the organisation is refused.
        for _ in 0..3 {
            call(&server, &bob, "portfolio_report", json!({}))
                .await
                .unwrap();
        }
        let e = call(&server, &bob, "portfolio_report", json!({}))
            .await
            .unwrap_err();
        assert_eq!(limited_by(&e), "limits.per_org");
        let e = call(&server, &ana2, "portfolio_report", json!({}))
            .await
            .unwrap_err();
        assert_eq!(limited_by(&e), "limits.per_org");
    })
    .await;
}

#[tokio::test]
async fn a_daily_row_quota_stops_calls_once_used_and_log_shows_the_usage() {
    let limits = "  daily:\n    rows_returned_per_user: 5\n";
    on_each_backend("rows", limits, |file, [ana, _, bob]| async move {
        let server = Server::start(&file);
        let mut returned = 0;
        let mut refused = None;
        for _ in 0..10 {
            match call(
                &server,
                &ana,
                "search_vendors",
                json!({"query": "a", "limit": 2}),
            )
            .await
            {
                Ok(r) => {
                    let body: Value = serde_json::from_str(&common::text(&r)).unwrap();
                    returned += body["row_count"].as_u64().unwrap();
                }
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        let e = refused.expect("the quota never refused");
        assert_eq!(limited_by(&e), "limits.daily.rows_returned_per_user");
        // A call may start while one row is left, so the day can end over by one call's rows.
        assert!((5..=6).contains(&returned), "{returned} rows returned");
        // Another user's quota is their own.
        call(
            &server,
            &bob,
            "search_vendors",
            json!({"query": "a", "limit": 1}),
        )
        .await
        .unwrap();
        let out = common::run(&["log", "--usage", "--json", "-p", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let usage: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ana_use = usage
            .iter()
            .find(|u| u["who"] == "ana@acme.example")
            .unwrap();
        assert_eq!(ana_use["limit"], "limits.daily.rows_returned_per_user");
        // Counted up to the quota (a bucket holds no debt).
        assert_eq!(ana_use["used"], returned.min(5));
        assert_eq!(ana_use["quota"], 5);
        let bob_use = usage
            .iter()
            .find(|u| u["who"] == "bob@acme.example")
            .unwrap();
        assert_eq!(bob_use["used"], 1);
    })
    .await;
}

/// A day's quota over the shared buckets, with the clock in the test's hands.
async fn quota_resets_at_midnight(store: warden_store::Store) {
    let buckets = warden_auth::rate::CallBuckets(Arc::new(warden_auth::rate::SharedLimiter::new(
        store.clone(),
    )));
    let project = warden_core::project::CallLimits {
        calls_per_user_per_day: Some(3),
        ..Default::default()
    };
    let caller = warden_core::identity::Principal {
        user_id: "u1".into(),
        email: "ana@acme.example".into(),
        org: "acme".into(),
        role: warden_core::identity::Role::Member,
        scopes: warden_core::identity::Scopes::READ,
        method: "api_key",
        credential: "k1".into(),
    };
    let (_dir, file, _) = init_project();
    let loaded = warden_core::project::load_file_offline(&file).unwrap();
    let tool = loaded.tool("portfolio_report").unwrap();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let evening = at("2026-12-02T23:59:00Z");
    let applied = limits::applicable(&project, &caller, tool, evening);
    for _ in 0..3 {
        limits::take(&buckets, &applied, evening).await.unwrap();
    }
    let Err(Ok((refused, _))) = limits::take(&buckets, &applied, at("2026-12-02T23:59:50Z")).await
    else {
        panic!("the fourth call of the day went through");
    };
    assert_eq!(refused.limit, "limits.daily.calls_per_user");
    assert_eq!(refused.retry_after_secs(), 10, "retry at midnight UTC");
    let left = buckets
        .left(
            applied[0].key.clone(),
            applied[0].rate,
            at("2026-12-02T23:59:59Z"),
        )
        .await
        .unwrap();
    assert!(left < 1.0, "{left}");
    // At 00:00 UTC the quota is whole again.
    let morning = at("2026-12-03T00:00:00Z");
    let applied = limits::applicable(&project, &caller, tool, morning);
    for _ in 0..3 {
        limits::take(&buckets, &applied, morning).await.unwrap();
    }
    assert!(limits::take(&buckets, &applied, morning).await.is_err());
}

#[tokio::test]
async fn a_daily_quota_resets_at_the_stated_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = warden_store::Store::open_sqlite(dir.path().join("state.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    eprintln!("--- sqlite");
    quota_resets_at_midnight(store.clone()).await;
    store.close().await;
    if let Some(db) = PgDatabase::create("limits_quota").await {
        let url = db.url.clone();
        let store = warden_store::Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        eprintln!("--- postgres");
        quota_resets_at_midnight(store.clone()).await;
        store.close().await;
    }
}
