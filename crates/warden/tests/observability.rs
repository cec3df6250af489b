//! Serving like production, black-box: the real binary on port 0.
//!
//! - `/healthz` answers; `/readyz` follows the audit trail: 503 with a fixed reason while
//!   the store refuses inserts, 200 again once it takes them, and scraping it adds no record;
//! - `/metrics` is off by default; with `server.metrics.bind` it counts calls per tool,
//!   authentication failures by reason and policy denials by rule, and no label value is a
//!   user, organisation, key or argument value, nor a tool name the project does not define;
//! - `--log-format json` writes one JSON object per line;
//! - a valid `traceparent` puts its trace id on the call's record; an invalid one does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Server, add_member, audit_log, init_project, run, warden};
use serde_json::{Value, json};
use sqlx::ConnectOptions;

fn as_(server: &Server, key: &str) -> Server {
    Server::attach(server.url.clone()).with_bearer(key)
}

/// `http://ADDR` of the MCP listener.
fn base(server: &Server) -> String {
    server.url.trim_end_matches("/mcp").to_string()
}

/// Turns metrics on, on port 0.
fn with_metrics(file: &Path) {
    let yaml = std::fs::read_to_string(file).unwrap();
    let yaml = yaml.replacen(
        "server:\n",
        "server:\n  metrics:\n    bind: 127.0.0.1:0\n",
        1,
    );
    assert!(yaml.contains("metrics:"), "{yaml}");
    std::fs::write(file, yaml).unwrap();
}

/// `http://ADDR/metrics`, as the server logged it.
fn metrics_url(server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(url) = server.log.lock().unwrap().iter().find_map(|l| {
            l.find("serving metrics on ")
                .map(|i| l[i + "serving metrics on ".len()..].trim().to_string())
        }) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "warden did not report its metrics address"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn get(url: &str) -> (u16, String) {
    let res = reqwest::get(url).await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn state_db(file: &Path) -> sqlx::SqliteConnection {
    let path: PathBuf = file.parent().unwrap().join(".warden/state.db");
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

/// Polls `url` until it answers `status`, or fails after `within`.
async fn until_status(url: &str, status: u16, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (s, body) = get(url).await;
        if s == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url} still answers {s} ({body:?}), not {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_follows_whether_the_audit_trail_can_append() {
    let (_dir, file, _key) = init_project();
    let server = Server::start(&file);
    let b = base(&server);
    assert_eq!(get(&format!("{b}/healthz")).await, (200, "ok\n".into()));
    let readyz = format!("{b}/readyz");
    assert_eq!(get(&readyz).await, (200, "ready\n".into()));

    // A storm of probes writes nothing to the trail.
    let before = audit_log(&file, &[]).len();
    for _ in 0..30 {
        assert_eq!(get(&readyz).await.0, 200);
    }
    assert_eq!(audit_log(&file, &[]).len(), before);

    // The store now refuses every insert into the trail, as a full disk would.
    let mut c = state_db(&file).await;
    sqlx::raw_sql(
        "CREATE TRIGGER audit_outage BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let body = until_status(&readyz, 503, Duration::from_secs(5)).await;
    assert_eq!(body, "not ready: audit trail cannot append\n");
    // Nothing about the store leaks: no path, database or error text.
    for leak in ["full", "sqlite", "state.db", "/", "trigger", "disk"] {
        assert!(!body.to_lowercase().contains(leak), "{leak} in {body:?}");
    }
    // The process itself still answers.
    assert_eq!(get(&format!("{b}/healthz")).await.0, 200);

    sqlx::raw_sql("DROP TRIGGER audit_outage")
        .execute(&mut c)
        .await
        .unwrap();
    let body = until_status(&readyz, 200, Duration::from_secs(10)).await;
    assert_eq!(body, "ready\n");
    assert_eq!(audit_log(&file, &[]).len(), before);
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let (_dir, file, _key) = init_project();
    let server = Server::start(&file);
    let (status, _) = get(&format!("{}/metrics", base(&server))).await;
    assert_eq!(status, 404, "/metrics is not on the MCP listener");
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("metrics")),
        "no metrics listener without server.metrics"
    );
}

/// One exposition line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (what this exporter writes: no escaped quotes in the
/// label values Warden uses, which the parse asserts).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                assert!(!body.contains("\\\""), "escaped quote in {line}");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").unwrap();
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The sum of `name`'s samples whose labels include every one of `want`.
fn total(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum()
}

async fn unauthenticated(url: &str, bearer: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn metrics_count_calls_failures_and_denials_without_identity_or_argument_labels() {
    let (_dir, file, ana_key) = init_project();
    let max_key = add_member(&file, "max@acme.example", "member", "mcp:read", false);
    with_metrics(&file);
    let server = Server::start(&file);
    let metrics = metrics_url(&server);

    let mut ana = as_(&server, &ana_key).session().await;
    let queries = ["zq-secret-query", "zq-other-query", "zq-third-query"];
    for q in queries {
        let r = ana.call("search_vendors", json!({"query": q})).await;
        assert_ne!(r["isError"], true, "{r}");
    }
    for id in [7, 13] {
        ana.call("vendor_detail", json!({"vendor_id": id})).await;
    }
    // A policy denial: more than 50 vendors, by someone who is not an admin.
    let mut max = as_(&server, &max_key).session().await;
    let r = max
        .call(
            "search_vendors",
            json!({"query": "zq-max-query", "limit": 51}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");
    // A write the read-only member may not make: refused before the pipeline (403).
    let res = max
        .post(json!({"jsonrpc":"2.0","id":99,"method":"tools/call","params":{
            "name":"update_finding_status","arguments":{"finding_id":2,"status":"open","note":"zq-note"}}}))
        .await;
    assert_eq!(res.status(), 403);
    // Two 401s: no bearer, and one that is no Warden token.
    assert_eq!(unauthenticated(&server.url, None).await, 401);
    assert_eq!(
        unauthenticated(&server.url, Some("zq-not-a-token")).await,
        401
    );

    let (status, text) = get(&metrics).await;
    assert_eq!(status, 200);
    let samples = parse(&text);
    let ops = "mcp_server_operation_duration_seconds_count";
    let tool = |name: &str| total(&samples, ops, &[("gen_ai_tool_name", name)]);
    assert_eq!(tool("search_vendors"), 4.0, "{text}");
    assert_eq!(tool("vendor_detail"), 2.0, "{text}");
    assert_eq!(
        total(
            &samples,
            ops,
            &[
                ("gen_ai_tool_name", "search_vendors"),
                ("outcome", "ok"),
                ("mcp_method_name", "tools/call"),
                ("mcp_protocol_version", "2025-11-25"),
            ]
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            ops,
            &[
                ("gen_ai_tool_name", "search_vendors"),
                ("outcome", "denied")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            "warden_policy_denials_total",
            &[("rule", "bulk-search-admins-only")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            "warden_auth_failures_total",
            &[("reason", "missing")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            "warden_auth_failures_total",
            &[("reason", "malformed")]
        ),
        1.0,
        "{text}"
    );
    assert!(total(&samples, "warden_audit_commit_duration_seconds_count", &[]) >= 1.0);
    assert!(total(&samples, "warden_audit_commit_records_sum", &[]) >= 6.0);
    assert!(
        total(&samples, "warden_pool_size", &[("pool", "state")]) >= 1.0,
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.name == "warden_pool_idle" && s.labels["pool"] == "data"),
        "{text}"
    );

    // No label value is anyone's identity, a credential or an argument.
    let values: BTreeSet<&str> = samples
        .iter()
        .flat_map(|s| s.labels.values().map(String::as_str))
        .collect();
    let mut secret: Vec<String> = vec![
        "ana@acme.example".into(),
        "max@acme.example".into(),
        "acme".into(),
        "Acme".into(),
        "zq-max-query".into(),
        "zq-note".into(),
        "zq-not-a-token".into(),
        "7".into(),
        "13".into(),
        "51".into(),
        ana_key.clone(),
        max_key.clone(),
    ];
    secret.extend(queries.iter().map(|q| q.to_string()));
    for key in [&ana_key, &max_key] {
        // The key's visible prefix (what `warden key list` shows), at any length.
        for n in 7..key.len() {
            secret.push(key[..n].to_string());
        }
    }
    for v in &values {
        assert!(
            !secret.iter().any(|s| s == v),
            "label value {v:?} in\n{text}"
        );
        assert!(!v.contains('@') && !v.contains("zq-"), "label value {v:?}");
    }
    // Not one `warden_...` or `mcp_...` label value outside what the project or Warden names.
    let project_names: BTreeSet<&str> =
        ["search_vendors", "vendor_detail", "bulk-search-admins-only"].into();
    for s in samples.iter().filter(|s| s.name.starts_with("mcp_")) {
        let name = &s.labels["gen_ai_tool_name"];
        assert!(project_names.contains(name.as_str()), "{name}");
    }
}

#[tokio::test]
async fn an_unknown_tool_name_is_never_a_label_value() {
    let (_dir, file, key) = init_project();
    with_metrics(&file);
    let server = Server::start(&file);
    let metrics = metrics_url(&server);
    let mut s = as_(&server, &key).session().await;
    let names: Vec<String> = (0..5).map(|i| format!("zq_made_up_tool_{i}")).collect();
    for name in &names {
        let r = s
            .request("tools/call", json!({"name": name, "arguments": {}}))
            .await;
        assert!(r.get("error").is_some(), "{r}");
    }
    let (_, text) = get(&metrics).await;
    let samples = parse(&text);
    for name in &names {
        assert!(!text.contains(name.as_str()), "{name} in\n{text}");
    }
    assert_eq!(
        total(
            &samples,
            "mcp_server_operation_duration_seconds_count",
            &[("gen_ai_tool_name", "_unknown"), ("outcome", "denied")]
        ),
        5.0,
        "{text}"
    );
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let (_dir, file, key) = init_project();
    let mut child = warden()
        .args([
            "--log-format",
            "json",
            "serve",
            "-p",
            file.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
        ])
        .env("WARDEN_LOG", "info,warden_core=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        lines.push(line);
        if let Some(m) = v["fields"]["message"].as_str()
            && let Some(u) = m.strip_prefix("serving MCP on ")
        {
            break u.to_string();
        }
    };
    // A call's log lines are JSON too, inside a span carrying the request's trace id.
    let server = Server::attach(url).with_bearer(key);
    let s = server.session().await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let status = traced_call(&s, 5, "a", &format!("00-{trace}-b7ad6b7169203331-01")).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut spanned = false;
    while !spanned && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) else {
            continue;
        };
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        assert!(v.is_object(), "{line}");
        spanned = v["span"]["trace_id"] == trace;
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        spanned,
        "no log line in the call's span with its trace id: {lines:#?}"
    );

    // WARDEN_LOG_FORMAT does the same, and text stays the default.
    let out = warden()
        .args(["check", "-p", file.to_str().unwrap(), "--log", "debug"])
        .env("WARDEN_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).unwrap();
    }
    let out = run(&[
        "--log-format",
        "yaml",
        "check",
        "-p",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("json"));
}

/// A `tools/call` with a `traceparent` header.
async fn traced_call(s: &common::Session, id: i64, query: &str, traceparent: &str) -> u16 {
    s.http
        .post(&s.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &s.id)
        .header("mcp-protocol-version", "2025-11-25")
        .header("traceparent", traceparent)
        .json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                      "params":{"name":"search_vendors","arguments":{"query":query}}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_valid_traceparent_puts_its_trace_id_on_the_record() {
    let (dir, file, key) = init_project();
    let server = Server::start(&file);
    let s = as_(&server, &key).session().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let cases = [
        ("traced", format!("00-{trace}-00f067aa0ba902b7-01")),
        (
            "zero-trace",
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
        ),
        ("zero-parent", format!("00-{trace}-0000000000000000-01")),
        ("version-ff", format!("ff-{trace}-00f067aa0ba902b7-01")),
        (
            "upper",
            format!("00-{}-00f067aa0ba902b7-01", trace.to_uppercase()),
        ),
        ("extra", format!("00-{trace}-00f067aa0ba902b7-01-00")),
        ("garbage", "not a traceparent".to_string()),
    ];
    for (i, (query, header)) in cases.iter().enumerate() {
        assert_eq!(traced_call(&s, 10 + i as i64, query, header).await, 200);
    }
    let records = audit_log(&file, &["--tool", "search_vendors"]);
    let by_query = |q: &str| {
        records
            .iter()
            .find(|r| {
                serde_json::from_str::<Value>(r["params"].as_str().unwrap()).unwrap()["query"] == q
            })
            .unwrap_or_else(|| panic!("no record for {q}: {records:?}"))
            .clone()
    };
    assert_eq!(by_query("traced")["trace_id"], trace);
    for (query, _) in &cases[1..] {
        assert!(by_query(query).get("trace_id").is_none(), "{query}");
    }

    // The chain still verifies with the field in it, and an export carries it.
    drop(server);
    let out = run(&["audit", "verify", "-p", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let export = dir.path().join("export");
    let out = run(&[
        "audit",
        "export",
        "-p",
        file.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    assert!(exported.contains(&format!("\"trace_id\":\"{trace}\"")));
}
