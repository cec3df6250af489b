//! Signed file URLs and ingest: the attack table on `/files/{token}` (expired, replayed,
//! tampered, another organisation's, too large with and without `Content-Length`, a
//! path-traversal name), each refused and recorded; and a 100,000-row CSV ingested through
//! an upload URL with progress notifications, on SQLite and PostgreSQL data, where a file
//! with one bad row writes nothing and names the row.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{
    PgDatabase, Server, Session, add_member, add_member_in, audit_log, confirmation_token, run,
    text,
};
use serde_json::{Value, json};

/// The example project (data on `postgres` when given) with `files` and `ingest` on
/// obligations.
fn project(dir: &Path, postgres: Option<&str>) -> std::path::PathBuf {
    let p = dir.join("p");
    let mut args = vec!["init", p.to_str().unwrap()];
    if let Some(url) = postgres {
        args.extend(["--postgres", url]);
    }
    let out = run(&args);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = p.join("warden.yaml");
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(yaml.contains("\nfiles:"), "the example serves files");
    assert!(
        yaml.contains("write: [insert, update, delete, ingest]"),
        "the example ingests obligations"
    );
    file
}

fn body(result: &Value) -> Value {
    assert_ne!(result["isError"], true, "tool error: {}", text(result));
    serde_json::from_str(&text(result)).unwrap()
}

async fn upload_url(s: &mut Session, name: &str, size: Option<u64>) -> String {
    let mut args = json!({"name": name});
    if let Some(n) = size {
        args["size"] = json!(n);
    }
    body(&s.call("request_upload_url", args).await)["url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn put(url: &str, bearer: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(url)
        .bearer_auth(bearer)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A PUT whose body is streamed, so no `Content-Length` is sent.
async fn put_chunked(url: &str, bearer: &str, bytes: Vec<u8>) -> u16 {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    match reqwest::Client::new()
        .put(url)
        .bearer_auth(bearer)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        // The server may close the connection once it has refused.
        Err(e) => panic!("the refusal did not arrive: {e}"),
    }
}

async fn get(url: &str, bearer: &str) -> (u16, Vec<u8>, Option<String>) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let sha = r
        .headers()
        .get("x-content-sha256")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec(), sha)
}

fn sha256(bytes: &[u8]) -> String {
    use aws_lc_rs::digest;
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token signed with the project's own key, as if issued: how an expired URL or a
/// hostile name would look with a valid signature.
fn forged(file: &Path, claims: warden_core::files::Claims) -> String {
    let key = file.parent().unwrap().join(".warden/files.key");
    let signer = warden_core::files::UrlSigner::load_or_create(&key).unwrap();
    signer.sign(&claims).unwrap()
}

#[tokio::test]
async fn signed_urls_refuse_every_attack_and_record_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    let ana = add_member(
        &file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let guest = add_member(
        &file,
        "gus@acme.example",
        "guest",
        "mcp:read mcp:write",
        false,
    );
    let gil = add_member_in(
        &file,
        "globex",
        "gil@globex.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(&file);
    let mut s = server.session_as(&ana).await;

    // The way it should go: upload, list, download, each URL once.
    let content = b"hello, warden\n".to_vec();
    let url = upload_url(&mut s, "hello.txt", None).await;
    assert!(
        url.starts_with(&server.url.replace("/mcp", "/files/")),
        "{url}"
    );
    let (status, stored) = put(&url, &ana, content.clone()).await;
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["sha256"], sha256(&content));
    let (status, _) = put(&url, &ana, content.clone()).await;
    assert_eq!(status, 403, "a replayed upload URL");
    let listed = body(&s.call("list_files", json!({})).await);
    assert_eq!(listed["files"][0]["name"], "hello.txt");
    let d = body(
        &s.call("request_download_url", json!({"name": "hello.txt"}))
            .await,
    );
    assert_eq!(d["sha256"], sha256(&content));
    let durl = d["url"].as_str().unwrap().to_string();
    let (status, got, sha) = get(&durl, &ana).await;
    assert_eq!(
        (status, got.clone(), sha.as_deref()),
        (200, content.clone(), Some(sha256(&content).as_str()))
    );
    assert_eq!(get(&durl, &ana).await.0, 403, "a replayed download URL");

    // Export: every row the filters match, through the same output rules, as a file.
    let e = body(&s.call("export_vendors", json!({"tier": "critical"})).await);
    let n = body(
        &s.call("filter_vendors", json!({"tier": "critical", "limit": 200}))
            .await,
    )["row_count"]
        .clone();
    assert_eq!(e["rows"], n);
    assert_eq!(e["truncated"], false);
    let (status, csv, sha) = get(e["url"].as_str().unwrap(), &ana).await;
    assert_eq!(status, 200);
    assert_eq!(sha.as_deref(), e["sha256"].as_str());
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count() as u64, n.as_u64().unwrap() + 1, "{csv}");
    assert!(
        csv.lines().next().unwrap().contains("annual_spend"),
        "the Admin's export has every column"
    );
    let mut g = server.session_as(&guest).await;
    let ge = body(&g.call("export_vendors", json!({"tier": "critical"})).await);
    let (status, gcsv, _) = get(ge["url"].as_str().unwrap(), &guest).await;
    assert_eq!(status, 200);
    let gcsv = String::from_utf8(gcsv).unwrap();
    assert!(
        !gcsv.contains("annual_spend"),
        "a guest's export carried the sensitive column: {gcsv}"
    );
    assert_eq!(gcsv.lines().count(), csv.lines().count());

    // Without the bearer: 401, as for /mcp.
    let url = upload_url(&mut s, "a.txt", None).await;
    let r = reqwest::Client::new()
        .put(&url)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Another organisation's principal, with ana's URL.
    assert_eq!(put(&url, &gil, b"x".to_vec()).await.0, 403);
    // A tampered signature, and tampered claims.
    let (payload, mac) = url.rsplit_once('/').unwrap().1.split_once('.').unwrap();
    let base = url.rsplit_once('/').unwrap().0;
    let flipped = match mac.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &mac[1..]),
    };
    assert_eq!(
        put(&format!("{base}/{payload}.{flipped}"), &ana, b"x".to_vec())
            .await
            .0,
        403
    );
    let url2 = upload_url(&mut s, "b.txt", Some(5)).await;
    let payload2 = url2.rsplit_once('/').unwrap().1.split_once('.').unwrap().0;
    assert_eq!(
        put(&format!("{base}/{payload2}.{mac}"), &ana, b"x".to_vec())
            .await
            .0,
        403
    );
    // Expired (signed with the real key, a second in the past).
    let claims = |name: &str, exp: i64| warden_core::files::Claims {
        op: warden_core::files::Op::Put,
        org: "acme".into(),
        user: "".into(),
        name: name.into(),
        max: 100,
        exp,
        ticket: "wdn_cf_none".into(),
    };
    let expired = forged(&file, claims("c.txt", chrono_now() - 1));
    assert_eq!(
        put(&format!("{base}/{expired}"), &ana, b"x".to_vec())
            .await
            .0,
        403
    );
    // Too large: with Content-Length, refused before the body is read; without, stopped
    // once it passes the limit. Nothing is kept either way.
    let small = upload_url(&mut s, "small.txt", Some(10)).await;
    assert_eq!(put(&small, &ana, vec![b'x'; 11]).await.0, 413);
    let small = upload_url(&mut s, "small.txt", Some(10)).await;
    assert_eq!(put_chunked(&small, &ana, vec![b'x'; 50_000]).await, 413);
    let names: Vec<Value> = body(&s.call("list_files", json!({})).await)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .filter(|n| !n.as_str().unwrap().starts_with("export-"))
        .collect();
    assert_eq!(
        names,
        vec![json!("hello.txt")],
        "a refused body left something behind"
    );
    assert!(
        std::fs::read_dir(file.parent().unwrap().join("data/files/acme"))
            .unwrap()
            .all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")),
        "a partial upload was left"
    );
    // Path traversal: refused when asked for, and refused by storage even when signed.
    let r = s
        .call("request_upload_url", json!({"name": "../../etc/passwd"}))
        .await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("parameter 'name'"), "{}", text(&r));
    let r = s
        .call("request_download_url", json!({"name": "../acme/hello.txt"}))
        .await;
    assert_eq!(r["isError"], true);
    // A guest may read but not upload.
    let mut g = server.session_as(&guest).await;
    let r = g.call("request_upload_url", json!({"name": "g.txt"})).await;
    assert_eq!(r["isError"], true, "{r}");

    let trail = audit_log(&file, &[]);
    let uses: Vec<&Value> = trail
        .iter()
        .filter(|r| r["action"] == "files.put" || r["action"] == "files.get")
        .collect();
    let rule = |rule: &str| uses.iter().filter(|r| r["rule"] == rule).count();
    assert_eq!(rule("files.ticket"), 2, "replays: {uses:#?}");
    assert_eq!(rule("files.other_org"), 1);
    assert_eq!(rule("files.signature"), 2);
    assert_eq!(rule("files.expired"), 1);
    assert_eq!(rule("files.too_large"), 2);
    let ok: Vec<&&Value> = uses.iter().filter(|r| r["outcome"] == "success").collect();
    // The upload, its download, and the two exports' downloads.
    assert_eq!(ok.len(), 4, "{ok:#?}");
    let of_hello = ok
        .iter()
        .filter(|r| {
            let detail: Value = serde_json::from_str(r["detail"].as_str().unwrap()).unwrap();
            detail["sha256"] == sha256(&content)
        })
        .count();
    assert_eq!(
        of_hello, 2,
        "the upload and the download, each with the object's SHA-256"
    );
    // Issuance is on the record too, a download's with the object's SHA-256.
    let issued = trail
        .iter()
        .find(|r| r["action"] == "request_download_url" && r["outcome"] == "success")
        .unwrap();
    let detail: Value = serde_json::from_str(issued["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["sha256"], sha256(&content));
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A `tools/call` with a progress token: the result and every progress notification.
async fn call_with_progress(s: &Session, tool: &str, args: Value) -> (Value, Vec<Value>) {
    let res = s
        .post(
            json!({"jsonrpc":"2.0","id":4242,"method":"tools/call","params":{
            "name": tool, "arguments": args, "_meta": {"progressToken": "ingest-1"}}}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let messages: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let result = messages
        .iter()
        .find(|m| m["id"] == 4242)
        .unwrap_or_else(|| panic!("no result in {text}"))["result"]
        .clone();
    let progress = messages
        .into_iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    (result, progress)
}

fn csv(rows: usize, bad_at: Option<usize>) -> Vec<u8> {
    let mut out = String::from("id,vendor_id,framework,requirement,due_on,status\n");
    for i in 1..=rows {
        let due = if Some(i) == bad_at {
            "soon".to_string()
        } else {
            format!("2027-{:02}-{:02}", i % 12 + 1, i % 28 + 1)
        };
        out.push_str(&format!(
            "{},V-{:03},\"ISO, 27001\",\"Control \"\"{i}\"\"\",{due},pending\n",
            100_000 + i,
            i % 80 + 1
        ));
    }
    out.into_bytes()
}

/// Whether any of the ingested ids (above 100000) exist: 0 or 1.
async fn count(s: &mut Session) -> u64 {
    body(
        &s.call("filter_obligations", json!({"id_min": 100_001, "limit": 1}))
            .await,
    )["row_count"]
        .as_u64()
        .unwrap()
}

async fn ingest_scenario(file: &Path) {
    let ana = add_member(
        file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(file);
    let mut s = server.session_as(&ana).await;

    // One bad row, deep in the file: the whole batch is refused, naming it; nothing written.
    let bad = csv(100_000, Some(61_234));
    let url = upload_url(&mut s, "bad.csv", Some(bad.len() as u64)).await;
    assert_eq!(put(&url, &ana, bad).await.0, 201);
    let r = s
        .call("ingest_obligations", json!({"file": "bad.csv"}))
        .await;
    assert_eq!(r["isError"], true);
    assert!(
        text(&r).contains("row 61234, column due_on"),
        "{}",
        text(&r)
    );
    assert_eq!(count(&mut s).await, 0, "a refused batch wrote rows");

    // 100,000 rows through an upload URL: previewed, confirmed, with progress.
    let good = csv(100_000, None);
    let url = upload_url(&mut s, "obligations.csv", None).await;
    let (status, stored) = put(&url, &ana, good.clone()).await;
    assert_eq!(status, 201, "{stored}");
    let preview = s
        .call("ingest_obligations", json!({"file": "obligations.csv"}))
        .await;
    let shown = text(&preview);
    assert!(shown.contains("would change 100000 row(s)"), "{shown}");
    assert!(
        shown.contains("Control \\\"1\\\"") || shown.contains("Control \"1\""),
        "{shown}"
    );
    let token = confirmation_token(&preview).unwrap();
    let (result, progress) = call_with_progress(
        &s,
        "ingest_obligations",
        json!({"file": "obligations.csv", "confirm": true, "confirmation_token": token}),
    )
    .await;
    assert_ne!(result["isError"], true, "{result}");
    assert_eq!(body(&result)["rows_affected"], 100_000);
    assert!(
        progress.len() >= 5,
        "{} progress notifications",
        progress.len()
    );
    let last = progress.last().unwrap();
    assert_eq!(last["params"]["progress"].as_f64(), Some(100_000.0));
    assert_eq!(last["params"]["total"].as_f64(), Some(100_000.0));
    let steps: Vec<f64> = progress
        .iter()
        .map(|p| p["params"]["progress"].as_f64().unwrap())
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "progress goes forward: {steps:?}"
    );
    assert_eq!(last["params"]["progressToken"], "ingest-1");
    let sample = body(&s.call("filter_obligations", json!({"id": 100_007})).await);
    assert_eq!(sample["rows"][0]["framework"], "ISO, 27001");
    assert_eq!(sample["rows"][0]["requirement"], "Control \"7\"");

    // The file changed after a preview: the token no longer fits.
    let small = csv(3, None);
    let url = upload_url(&mut s, "small.csv", None).await;
    assert_eq!(put(&url, &ana, small).await.0, 201);
    let preview = s
        .call("ingest_obligations", json!({"file": "small.csv"}))
        .await;
    let token = confirmation_token(&preview).unwrap();
    let url = upload_url(&mut s, "small.csv", None).await;
    assert_eq!(put(&url, &ana, csv(4, None)).await.0, 201);
    let r = s
        .call(
            "ingest_obligations",
            json!({"file": "small.csv", "confirm": true, "confirmation_token": token}),
        )
        .await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("arguments differ"), "{}", text(&r));

    // JSON rows: a bad one names its row and column.
    let r = s
        .call(
            "ingest_obligations",
            json!({"rows": [{"id": 1, "vendor_id": "V-001", "framework": "f", "requirement": "r", "due_on": "2027-01-01", "status": "pending"},
                             {"id": 2, "vendor_id": "V-001", "framework": "f", "requirement": "r", "due_on": 5, "status": "pending"}]}),
        )
        .await;
    assert!(text(&r).contains("row 2, column due_on"), "{}", text(&r));
    let r = s
        .call("ingest_obligations", json!({"rows": [{"idd": 1}]}))
        .await;
    assert!(text(&r).contains("unknown column 'idd'"), "{}", text(&r));

    // The record names the rows and the file's SHA-256, never the rows themselves.
    let trail = audit_log(file, &[]);
    let rec = trail
        .iter()
        .find(|r| r["action"] == "ingest_obligations" && r["outcome"] == "success")
        .expect("the ingest's record");
    let detail: Value = serde_json::from_str(rec["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["rows"], 100_000);
    assert_eq!(detail["rows_affected"], 100_000);
    assert_eq!(detail["sha256"], sha256(&good));
    assert!(
        !serde_json::to_string(&trail)
            .unwrap()
            .contains("Control \\\"7\\\"")
    );
}

#[tokio::test]
async fn ingest_a_large_csv_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    ingest_scenario(&file).await;
}

#[tokio::test]
async fn ingest_a_large_csv_on_postgres() {
    let Some(db) = PgDatabase::create("ingest").await else {
        panic!("set WARDEN_TEST_POSTGRES_URL: the PostgreSQL half of this test must run");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), Some(&db.url));
    ingest_scenario(&file).await;
}
