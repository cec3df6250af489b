//! Black-box tests of the HTTP edge and of bad input: each case asserts the specific status
//! or error, and that nothing was changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Server, init_project, run, text};
use serde_json::{Value, json};

fn edge_project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("warden.yaml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edge.yaml"),
        &project,
    )
    .unwrap();
    create_edge_db(&dir.path().join("edge.db"));
    (dir, project)
}

/// Creates the edge database with sqlx, so no sqlite3 command is needed.
fn create_edge_db(path: &Path) {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::ConnectOptions;
                let mut c = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .connect()
                    .await
                    .unwrap();
                sqlx::raw_sql("CREATE TABLE items (n INTEGER NOT NULL CHECK (n >= 0))")
                    .execute(&mut c)
                    .await
                    .unwrap();
            });
        });
    });
}

async fn raw_post(
    server: &Server,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = server
        .client()
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(b) = &server.bearer {
        req = req.bearer_auth(b);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.body(body).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

#[tokio::test]
async fn malformed_and_non_jsonrpc_bodies_get_jsonrpc_errors() {
    let (_d, project, key) = init_project();
    let server = Server::start(&project).with_bearer(key);
    let cases: &[(&str, u16, i64, &str)] = &[
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"#,
            400,
            -32700,
            "not valid JSON",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            400,
            -32600,
            "batches are not supported",
        ),
        (
            r#"{"id":1,"method":"ping"}"#,
            400,
            -32600,
            "\"jsonrpc\" must be \"2.0\"",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1}"#,
            400,
            -32600,
            "\"method\" is required",
        ),
        (r#""just a string""#, 400, -32600, "JSON-RPC 2.0 object"),
    ];
    for (body, status, code, needle) in cases {
        let (s, v) = raw_post(&server, body.to_string(), &[]).await;
        assert_eq!(s, *status, "{body}");
        assert_eq!(v["error"]["code"], json!(code), "{body}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {v}"
        );
    }
}

/// Sends raw HTTP on a socket and returns the status code. Writes may fail once the server
/// has answered and closed (that is the point of refusing early), so write errors are
/// ignored and only the response counts.
fn raw_http_status(server: &Server, head: &str, body_chunks: &[Vec<u8>]) -> u16 {
    let url = &server.url;
    let auth = server
        .bearer
        .as_ref()
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    let head = head.replacen("\r\n", &format!("\r\n{auth}"), 1);
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp");
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = sock.write_all(head.replace("{host}", addr).as_bytes());
    for c in body_chunks {
        if sock.write_all(c).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 512];
    let n = sock.read(&mut buf).unwrap();
    let line = String::from_utf8_lossy(&buf[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn oversized_body_gets_413_and_the_server_keeps_serving() {
    let (_d, project, key) = init_project();
    let server = Server::start(&project).with_bearer(key);
    // Declared too large: refused before the body is read.
    let head = "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2097152\r\n\r\n";
    assert_eq!(raw_http_status(&server, head, &[]), 413);
    // Streamed without a Content-Length: refused once the limit is crossed.
    let head = "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000)).into_bytes();
    let chunks = vec![chunk; 40];
    assert_eq!(raw_http_status(&server, head, &chunks), 413);
    // A body at the limit is still read and answered normally.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let res = server
        .client()
        .post(&server.url)
        .header("content-type", "application/json")
        .bearer_auth(server.bearer.clone().unwrap_or_default())
        .body(big)
        .send()
        .await;
    if let Ok(res) = res {
        assert_eq!(res.status(), 413);
    }
    let mut session = server.session().await;
    assert_eq!(
        session.request("ping", json!({})).await["result"],
        json!({})
    );
}

#[tokio::test]
async fn foreign_origin_is_refused_even_with_a_good_host() {
    let (_d, project, key) = init_project();
    let server = Server::start(&project).with_bearer(key);
    // Good Host (the real one), bad Origin: the case a Host-only check would miss.
    let (s, v) = raw_post(&server, INIT, &[("origin", "http://evil.example")]).await;
    assert_eq!(s, 403);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allowed_origins"),
        "{v}"
    );
    for origin in [
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io:8080",
        "null",
    ] {
        assert_eq!(
            raw_post(&server, INIT, &[("origin", origin)]).await.0,
            403,
            "{origin}"
        );
    }
    // Loopback origins and requests without Origin are served.
    assert_eq!(
        raw_post(&server, INIT, &[("origin", "http://localhost:6274")])
            .await
            .0,
        200
    );
    assert_eq!(raw_post(&server, INIT, &[]).await.0, 200);
    // A foreign Host is refused by the Host check.
    assert_eq!(
        raw_post(&server, INIT, &[("host", "evil.example")]).await.0,
        403
    );
}

#[tokio::test]
async fn unknown_tool_and_bad_arguments_name_what_is_wrong() {
    let (_d, project, key) = init_project();
    let server = Server::start(&project).with_bearer(key);
    let mut s = server.session().await;

    let r = s
        .request(
            "tools/call",
            json!({"name": "drop_everything", "arguments": {}}),
        )
        .await;
    assert_eq!(r["error"]["code"], -32602);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool 'drop_everything'"),
        "{r}"
    );

    let cases = [
        (
            "vendor_detail",
            json!({}),
            "parameter 'vendor_id': is required",
        ),
        (
            "vendor_detail",
            json!({"vendor_id": 7}),
            "parameter 'vendor_id': expected string, got integer",
        ),
        (
            "vendor_detail",
            json!({"vendor_id": "7; DROP TABLE vendors"}),
            "parameter 'vendor_id': does not match the pattern",
        ),
        (
            "search_vendors",
            json!({"limit": "20"}),
            "parameter 'limit': expected integer, got string",
        ),
        (
            "search_vendors",
            json!({"limit": 1000}),
            "parameter 'limit': must be at most 100",
        ),
        (
            "search_vendors",
            json!({"tier": "extreme"}),
            "parameter 'tier': \"extreme\" is not one of",
        ),
        (
            "search_vendors",
            json!({"org_id": "other"}),
            "parameter 'org_id': unknown parameter",
        ),
    ];
    for (tool, args, want) in cases {
        let r = s.call(tool, args.clone()).await;
        assert_eq!(r["isError"], true, "{tool} {args}");
        assert!(text(&r).contains(want), "{tool} {args}: {}", text(&r));
    }
    // Malformed params for a known method: invalid params, not "method not found".
    let r = s.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[tokio::test]
async fn sql_failures_timeouts_and_read_only_reads() {
    let (_d, project) = edge_project();
    let server = Server::start(&project);
    let mut s = server.session().await;

    let r = s.call("broken_sql", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(
        text(&r).contains("the database rejected the query: no such table: no_such_table"),
        "{}",
        text(&r)
    );

    let started = Instant::now();
    let r = s.call("slow_read", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("took longer than 300 ms"), "{}", text(&r));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout did not stop the query"
    );

    // A read tool runs on a read-only connection: its DELETE fails and nothing is removed.
    assert_eq!(
        s.call_confirmed("add_item", json!({"n": 1})).await["isError"],
        false
    );
    let r = s.call("sneaky_read", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("readonly"), "{}", text(&r));
    let count: Value =
        serde_json::from_str(&text(&s.call("count_items", json!({})).await)).unwrap();
    assert_eq!(count["n"], 1);
}

#[tokio::test]
async fn failed_writes_leave_nothing_behind() {
    let (_d, project) = edge_project();
    let server = Server::start(&project);
    let mut s = server.session().await;
    let count = |v: Value| serde_json::from_str::<Value>(&text(&v)).unwrap()["n"].clone();

    // A write that times out is rolled back.
    let r = s.call_confirmed("slow_write", json!({})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("took longer than 300 ms"), "{}", text(&r));
    assert_eq!(count(s.call("count_items", json!({})).await), 0);

    // A statement whose second row breaks a constraint changes nothing.
    let r = s
        .call_confirmed("add_pair_checked", json!({"a": 5, "b": -1}))
        .await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("CHECK constraint failed"), "{}", text(&r));
    assert_eq!(count(s.call("count_items", json!({})).await), 0);

    // A good write commits and reports what it wrote.
    let r = s.call_confirmed("add_item", json!({"n": 42})).await;
    assert_eq!(r["isError"], false);
    let body: Value = serde_json::from_str(&text(&r)).unwrap();
    assert_eq!(body["rows"], json!([{"n": 42}]));
    assert_eq!(body["rows_affected"], 1);
    assert_eq!(count(s.call("count_items", json!({})).await), 1);
}

#[tokio::test]
async fn results_are_capped_at_max_rows() {
    let (_d, project) = edge_project();
    let server = Server::start(&project);
    let mut s = server.session().await;
    for n in 0..8 {
        assert_eq!(
            s.call_confirmed("add_item", json!({"n": n})).await["isError"],
            false
        );
    }
    let body: Value = serde_json::from_str(&text(&s.call("all_items", json!({})).await)).unwrap();
    assert_eq!(body["row_count"], 5);
    assert_eq!(body["truncated"], true);
}

#[test]
fn invalid_project_files_are_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warden.yaml");
    std::fs::write(
        &file,
        "version: 1\nname: bad\ndata:\n  sqlite: x.db\ntools:\n  - name: t\n    description: d\n    access: delete\n    params:\n      - { name: a, type: strng }\n    sql: SELECT :a, :b\n",
    )
    .unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(
        err.contains(&format!(
            "{f}:8:13: tools[0].access: 'delete' is not an access kind; use read or write"
        )),
        "{err}"
    );
    assert!(
        err.contains("tools[0].params[0].type: unknown type 'strng'"),
        "{err}"
    );
    assert!(
        err.contains("tools[0].sql: uses :b, which is not declared in params"),
        "{err}"
    );
    // `serve` refuses the same file and serves nothing.
    let out = run(&[
        "serve",
        "-p",
        file.to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("problem(s) in the project file"));

    // Unknown fields carry a position too.
    std::fs::write(
        &file,
        "version: 1\nname: bad\ndata:\n  sqlite: x.db\n  sqlte: y\n",
    )
    .unwrap();
    let err =
        String::from_utf8_lossy(&run(&["check", "-p", file.to_str().unwrap()]).stderr).to_string();
    assert!(err.contains(&format!("{f}:5:")), "{err}");
    assert!(err.contains("sqlte"), "{err}");
}

#[test]
fn init_refuses_to_overwrite_a_project() {
    let (_d, project, _key) = init_project();
    let before = std::fs::read(&project).unwrap();
    let out = run(&["init", project.parent().unwrap().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&project).unwrap(), before);
}

#[tokio::test]
async fn auth_none_is_announced_and_loopback_only() {
    let (dir, project) = edge_project();
    let server = Server::start(&project);
    let (status, body) = raw_post(&server, INIT, &[]).await;
    assert_eq!(status, 200);
    let body = body.as_str().unwrap_or_default().to_string();
    assert!(
        body.contains("WARNING: this Warden server runs with `auth: none`"),
        "{body}"
    );

    let out = run(&[
        "serve",
        "-p",
        project.to_str().unwrap(),
        "--bind",
        "0.0.0.0:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("binds only to loopback"));

    let exposed = dir.path().join("exposed.yaml");
    let yaml = std::fs::read_to_string(&project).unwrap().replace(
        "name: edge\n",
        "name: edge\nserver:\n  bind: 0.0.0.0:8080\n",
    );
    std::fs::write(&exposed, yaml).unwrap();
    let out = run(&["check", "-p", exposed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`auth: none` serves without authentication")
    );
}

/// Requests without a valid bearer are refused (401) and counted, and the trail gets one
/// record per address per minute with the count, not one per request.
#[tokio::test]
async fn unauthenticated_requests_are_counted_not_recorded_one_by_one() {
    let (_d, project, _key) = init_project();
    let mut server = Server::start(&project);
    let client = server.client();
    for bearer in [
        None,
        None,
        None,
        Some("wdn_key_nonsense"),
        Some("not-even-a-token"),
    ] {
        let mut req = client
            .post(&server.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INIT);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    // Nothing per request: the count is recorded when its minute ends, or at shutdown.
    server.stop();
    let records = common::audit_log(&project, &["--event", "unauthenticated"]);
    assert!(!records.is_empty() && records.len() <= 2, "{records:#?}");
    let total: u64 = records
        .iter()
        .map(|r| {
            assert_eq!(r["remote_addr"], "127.0.0.1");
            assert_eq!(r["decision"], "denied");
            assert_eq!(r["stage"], "authenticate");
            let detail: Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            detail["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(total, 5);
    let verify = run(&["audit", "verify", "-p", project.to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "the trail verifies after the counted refusals: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A request refused before its body was read is answered with `Connection: close`, and the
/// connection is closed: a client never reuses a connection the server is about to drop.
#[tokio::test]
async fn a_refusal_before_the_body_is_read_closes_the_connection_openly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_dir, file, _) = common::init_project();
    let server = common::Server::start(&file);
    let addr = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    // The headers now, the body a moment later: the 401 goes out before the body arrives.
    s.write_all(format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).await.unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let _ = s.write_all(body.as_bytes()).await;
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the server closes the connection after the refusal"
    );
}

/// Behind a trusted proxy, the client is the right-most `X-Forwarded-For` entry that is not
/// a trusted proxy; from any other peer, the header is ignored (a client cannot pick its
/// address for the per-address limits or the trail).
#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let call_from = |url: String, key: String, xff: &'static str| async move {
        let client = reqwest::Client::new();
        let post = |body: serde_json::Value, session: Option<String>| {
            let mut r = client
                .post(&url)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .header("x-forwarded-for", xff)
                .json(&body);
            if let Some(s) = session {
                r = r.header("mcp-session-id", s);
            }
            r.send()
        };
        let init = post(serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}), None).await.unwrap();
        let session = init.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let r = post(serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"portfolio_report","arguments":{}}}), Some(session)).await.unwrap();
        assert_eq!(r.status(), 200);
    };
    let last_addr = |file: &std::path::Path| {
        common::audit_log(file, &["--event", "tool_call"])
            .last()
            .unwrap()["remote_addr"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Not trusted: the header is ignored.
    let (_d, file, key) = common::init_project();
    let server = common::Server::start(&file);
    call_from(server.url.clone(), key.clone(), "10.9.8.7").await;
    assert!(
        last_addr(&file).starts_with("127.0.0.1"),
        "{}",
        last_addr(&file)
    );
    drop(server);

    // Trusted: the right-most entry the proxy added wins over what the client wrote.
    let (_d2, file2, key2) = common::init_project();
    let yaml = std::fs::read_to_string(&file2).unwrap();
    std::fs::write(
        &file2,
        yaml.replace(
            "  bind: 127.0.0.1:8080",
            "  bind: 127.0.0.1:8080\n  trusted_proxies: [127.0.0.1]",
        ),
    )
    .unwrap();
    let server = common::Server::start(&file2);
    call_from(server.url.clone(), key2.clone(), "6.6.6.6, 10.9.8.7").await;
    assert!(
        last_addr(&file2).starts_with("10.9.8.7"),
        "{}",
        last_addr(&file2)
    );
}
