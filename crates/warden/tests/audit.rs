//! The audit trail, black-box: the real binary, its real SQLite state file.
//!
//! - every call and denial is recorded and `warden log` finds it;
//! - sensitive values and secrets never reach the store or an export (raw bytes searched);
//! - tampering with the state file is detected and named;
//! - a store that refuses writes refuses calls (and changes no data), and service resumes;
//! - kill -9 under concurrent load loses no answered call and leaves no unrecorded change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, add_member, init_project, run, text};
use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection};

/// The running server, with `key` as the bearer.
fn as_(server: &Server, key: &str) -> Server {
    Server::attach(server.url.clone()).with_bearer(key)
}

fn state_db(file: &Path) -> PathBuf {
    file.parent().unwrap().join(".warden/state.db")
}

fn data_db(file: &Path) -> PathBuf {
    file.parent().unwrap().join("data/vendors.db")
}

async fn sqlite(path: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

fn log(file: &Path, args: &[&str]) -> Vec<Value> {
    common::audit_log(file, args)
}

/// A finding's note, straight from the data file.
async fn note_of(d: &mut sqlx::SqliteConnection, finding: i64) -> Option<String> {
    let (note,): (Option<String>,) = sqlx::query_as("SELECT note FROM findings WHERE id = $1")
        .bind(finding)
        .fetch_one(d)
        .await
        .unwrap();
    note
}

fn verify(file: &Path) -> (bool, String) {
    let out = run(&["audit", "verify", "-p", file.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn params(r: &Value) -> Value {
    r["params"]
        .as_str()
        .map(|p| serde_json::from_str(p).unwrap())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn calls_and_denials_are_recorded_and_found() {
    let (_dir, file, key) = init_project();
    let member = add_member(
        &file,
        "max@acme.example",
        "member",
        "mcp:read mcp:write",
        false,
    );
    let guest = add_member(&file, "gus@acme.example", "guest", "mcp:read", false);
    let server = Server::start(&file);
    let mut ana = as_(&server, &key).session().await;
    let r = ana.call("search_vendors", json!({"query": "cloud"})).await;
    assert_ne!(r["isError"], true, "{r}");
    let r = ana
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 2, "status": "in_progress", "note": "audited change"}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    // Denied by the input policy, by role, and unknown.
    let mut max = as_(&server, &member).session().await;
    let r = max.call("search_vendors", json!({"limit": 80})).await;
    assert_eq!(r["isError"], true, "{r}");
    let mut gus = as_(&server, &guest).session().await;
    let r = gus
        .call(
            "update_finding_status",
            json!({"finding_id": 2, "status": "open", "note": "guest try"}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");

    // Refused at the edge (HTTP 403, insufficient_scope) before the pipeline: recorded too.
    let reader = add_member(&file, "rae@acme.example", "member", "mcp:read", false);
    let rae = as_(&server, &reader).session().await;
    let res = rae
        .post(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                     "params": {"name": "update_finding_status",
                                "arguments": {"finding_id": 2, "status": "open", "note": "no scope"}}}))
        .await;
    assert_eq!(res.status(), 403);

    let denied = log(&file, &["--policy", "deny"]);
    let scope = denied
        .iter()
        .find(|r| r["user_email"] == "rae@acme.example")
        .unwrap_or_else(|| panic!("{denied:?}"));
    assert_eq!(scope["stage"], "scope");
    assert_eq!(scope["action"], "update_finding_status");
    assert_eq!(scope["source"], "mcp_http");
    let policy = denied
        .iter()
        .find(|r| r["user_email"] == "max@acme.example")
        .unwrap_or_else(|| panic!("{denied:?}"));
    assert_eq!(policy["action"], "search_vendors");
    assert_eq!(policy["stage"], "policy");
    assert_eq!(policy["rule"], "bulk-search-admins-only");
    assert_eq!(policy["outcome"], "denied");
    assert!(policy["reason"].as_str().unwrap().contains("50 vendors"));
    let role = denied
        .iter()
        .find(|r| r["user_email"] == "gus@acme.example")
        .unwrap_or_else(|| panic!("{denied:?}"));
    assert_eq!(role["action"], "update_finding_status");
    assert_eq!(role["stage"], "role");
    assert!(
        denied.iter().all(|r| r["decision"] == "denied"),
        "{denied:?}"
    );

    let writes = log(
        &file,
        &["--tool", "update_finding_status", "--status", "ok"],
    );
    assert_eq!(writes.len(), 1, "{writes:?}");
    let w = &writes[0];
    assert_eq!(w["user_email"], "ana@acme.example");
    assert_eq!(w["auth_method"], "api_key");
    assert_eq!(w["source"], "mcp_http");
    assert_eq!(w["affected"], "[\"2\"]");
    assert!(w["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(w["duration_us"].as_i64().unwrap() > 0);
    assert_eq!(params(w)["note"], "audited change");
    assert_eq!(params(w)["confirmation_token"], "[redacted]");

    // The write's preview, the read, the CLI's own changes and the server's start.
    let acme = log(&file, &["--org", "acme"]);
    for kind in ["member_added", "key_created", "tool_call"] {
        assert!(acme.iter().any(|r| r["event"] == kind), "{kind}: {acme:?}");
    }
    assert!(acme.iter().any(|r| r["outcome"] == "confirmation_required"));
    assert!(!log(&file, &["--event", "project_loaded"]).is_empty());

    // The table is readable.
    let out = run(&["log", "-p", file.to_str().unwrap(), "--policy", "deny"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("denied@policy"), "{table}");
    assert!(table.contains("gus@acme.example"), "{table}");
    let (ok, report) = verify(&file);
    assert!(ok, "{report}");
    drop(server);
}

#[tokio::test]
async fn sensitive_values_never_reach_the_store_or_an_export() {
    let (_dir, file, key) = init_project();
    // A tool with a sensitive parameter.
    let yaml = std::fs::read_to_string(&file).unwrap();
    let tool = "  - name: vendor_by_tax_id\n    description: finds a vendor by its tax id\n    access: read\n    params:\n      - name: tax_id\n        type: string\n        required: true\n        sensitive: true\n    sql: SELECT id, name FROM vendors WHERE name = :tax_id\n\n";
    let yaml = yaml.replacen("tools:\n", &format!("tools:\n{tool}"), 1);
    std::fs::write(&file, yaml).unwrap();
    let secret = "TAXID-7f3a9c2e51b84d06";
    let mut server = Server::start(&file);
    let mut s = as_(&server, &key).session().await;
    let r = s.call("vendor_by_tax_id", json!({"tax_id": secret})).await;
    assert_ne!(r["isError"], true, "{r}");
    // Also a bad one, so the error path is recorded too.
    let r = s
        .call(
            "vendor_by_tax_id",
            json!({"tax_id": secret, "other": secret}),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");
    let preview = s
        .call(
            "update_finding_status",
            json!({"finding_id": 1, "status": "open", "note": "check"}),
        )
        .await;
    let token = common::confirmation_token(&preview).unwrap();
    let mut args = json!({"finding_id": 1, "status": "open", "note": "check"});
    args["confirm"] = json!(true);
    args["confirmation_token"] = json!(token);
    let r = s.call("update_finding_status", args).await;
    assert_ne!(r["isError"], true, "{r}");
    server.stop();

    let records = log(&file, &["--tool", "vendor_by_tax_id"]);
    assert_eq!(records.len(), 2);
    assert_eq!(params(&records[0])["tax_id"], "[redacted]");
    let export = file.parent().unwrap().join("export");
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
    // An auditor verifies the export offline, and notices a changed line.
    let verify_export = || run(&["audit", "verify", "--export", export.to_str().unwrap()]);
    let out = verify_export();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let lines = std::fs::read_to_string(export.join("records.jsonl")).unwrap();
    std::fs::write(
        export.join("records.jsonl"),
        lines.replacen("ana@acme.example", "eve@acme.example", 1),
    )
    .unwrap();
    let out = verify_export();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not the file the manifest signed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::write(export.join("records.jsonl"), &lines).unwrap();
    // Every byte Warden keeps: the state directory (database, WAL, key) and the export.
    // (including subdirectories, such as `serve/`, where a running server lists its pid).
    let mut files = Vec::new();
    let mut dirs = vec![file.parent().unwrap().join(".warden"), export];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 4, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for needle in [secret.as_bytes(), token.as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds a secret",
                f.display()
            );
        }
    }
}

#[tokio::test]
async fn tampering_is_detected_and_named() {
    let (_dir, file, key) = init_project();
    let mut server = Server::start(&file);
    let mut s = as_(&server, &key).session().await;
    for i in 0..8 {
        let r = s
            .call("search_vendors", json!({"query": format!("q{i}")}))
            .await;
        assert_ne!(r["isError"], true, "{r}");
    }
    // A graceful stop signs a checkpoint at every chain's head.
    server.stop();
    let (ok, report) = verify(&file);
    assert!(ok, "{report}");
    assert!(report.contains("acme: OK"), "{report}");

    let db = state_db(&file);
    let mut c = sqlite(&db).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let pristine = std::fs::read(&db).unwrap();
    let (last,): (i64,) = {
        let mut c = sqlite(&db).await;
        sqlx::query_as("SELECT MAX(seq) FROM audit_records WHERE chain = 'acme'")
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert!(last >= 10, "{last}");
    let cases = [
        (
            "UPDATE audit_records SET user_email = 'someone@else.example' WHERE chain = 'acme' AND seq = 5",
            "BROKEN at seq 5 — modified",
        ),
        (
            "DELETE FROM audit_records WHERE chain = 'acme' AND seq = 5",
            "BROKEN at seq 5 — deleted",
        ),
        (
            "INSERT INTO audit_records (chain, seq, ts, request_id, event, org, user_id, user_email, auth_method, credential, source, remote_addr, user_agent, action, params, decision, stage, rule, reason, outcome, duration_us, affected, detail, prev_hash, hash) \
             SELECT chain, seq, ts, request_id, event, org, user_id, 'forged@acme.example', auth_method, credential, source, remote_addr, user_agent, action, params, decision, stage, rule, reason, outcome, duration_us, affected, detail, prev_hash, hash \
             FROM audit_records WHERE chain = 'acme' AND seq = 5",
            "BROKEN at seq 5 — inserted",
        ),
        (
            "UPDATE audit_records SET seq = CASE seq WHEN 5 THEN 6 ELSE 5 END WHERE chain = 'acme' AND seq IN (5, 6)",
            "BROKEN at seq 5 — reordered",
        ),
        (
            "DELETE FROM audit_records WHERE chain = 'acme' AND seq > 7",
            "BROKEN at seq 8 — truncated",
        ),
    ];
    for (sql, expected) in cases {
        let _ = std::fs::remove_file(db.with_extension("db-wal"));
        let _ = std::fs::remove_file(db.with_extension("db-shm"));
        std::fs::write(&db, &pristine).unwrap();
        let mut c = sqlite(&db).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
        let (ok, report) = verify(&file);
        assert!(!ok, "{sql}: {report}");
        assert!(
            report.contains(expected),
            "{sql}\nexpected {expected}\n{report}"
        );
    }
}

#[tokio::test]
async fn a_store_that_refuses_writes_refuses_calls_and_service_resumes() {
    let (_dir, file, key) = init_project();
    let server = Server::start(&file);
    let mut s = as_(&server, &key).session().await;
    let r = s.call("search_vendors", json!({"query": "a"})).await;
    assert_ne!(r["isError"], true, "{r}");
    let preview = s
        .call(
            "update_finding_status",
            json!({"finding_id": 3, "status": "remediated", "note": "during the outage"}),
        )
        .await;
    let token = common::confirmation_token(&preview).unwrap();

    // The store fails every audit insert, as a full disk would.
    let mut c = sqlite(&state_db(&file)).await;
    sqlx::raw_sql(
        "CREATE TRIGGER audit_outage BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let r = s.call("search_vendors", json!({"query": "a"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("audit trail cannot record"), "{r}");
    assert!(text(&r).contains("full"), "{r}");
    let mut args = json!({"finding_id": 3, "status": "remediated", "note": "during the outage"});
    args["confirm"] = json!(true);
    args["confirmation_token"] = json!(token);
    let r = s.call("update_finding_status", args).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("nothing was changed"), "{r}");
    let mut d = sqlite(&data_db(&file)).await;
    let note = note_of(&mut d, 3).await;
    assert_ne!(note.as_deref(), Some("during the outage"));

    // The store is back: so is service.
    sqlx::raw_sql("DROP TRIGGER audit_outage")
        .execute(&mut c)
        .await
        .unwrap();
    let r = s
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 3, "status": "remediated", "note": "after the outage"}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    let note = note_of(&mut d, 3).await;
    assert_eq!(note.as_deref(), Some("after the outage"));
    let (ok, report) = verify(&file);
    assert!(ok, "{report}");
}

/// One MCP call that never panics: `None` when the server went away before answering.
async fn try_call(
    http: &reqwest::Client,
    url: &str,
    session: &str,
    id: i64,
    tool: &str,
    args: &Value,
) -> Option<Value> {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}}))
        .send()
        .await
        .ok()?;
    if res.status() != 200 {
        return None;
    }
    let body = res.text().await.ok()?;
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(body.as_str()))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == json!(id))
        .map(|v| v["result"].clone())
}

#[tokio::test]
async fn kill_9_under_load_loses_no_answered_call_and_no_record() {
    let (_dir, file, key) = init_project();
    let mut answered_reads: Vec<String> = Vec::new();
    let mut answered_writes: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut server = Server::start(&file);
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let srv = as_(&server, &key);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let s = srv.session().await;
                let (http, url, sid) = (s.http.clone(), s.url.clone(), s.id.clone());
                let (mut reads, mut writes) = (Vec::new(), Vec::new());
                let mut id = 1000;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let marker = format!("r{round}-t{t}-i{i}");
                    id += 2;
                    if t % 2 == 0 {
                        let args = json!({"query": marker});
                        match try_call(&http, &url, &sid, id, "search_vendors", &args).await {
                            Some(r) if r["isError"] != true => reads.push(marker),
                            Some(r) => panic!("{r}"),
                            None => break,
                        }
                    } else {
                        // Each writer owns one finding; the note names the call.
                        let finding = t + 1;
                        let args =
                            json!({"finding_id": finding, "status": "in_progress", "note": marker});
                        let Some(preview) =
                            try_call(&http, &url, &sid, id, "update_finding_status", &args).await
                        else {
                            break;
                        };
                        let Some(token) = common::confirmation_token(&preview) else {
                            panic!("{preview}")
                        };
                        let mut args = args.clone();
                        args["confirm"] = json!(true);
                        args["confirmation_token"] = json!(token);
                        match try_call(&http, &url, &sid, id + 1, "update_finding_status", &args)
                            .await
                        {
                            Some(r) if r["isError"] != true => writes.push(marker),
                            Some(r) => panic!("{r}"),
                            None => break,
                        }
                    }
                }
                (reads, writes)
            }));
        }
        // Somewhere in the middle of it.
        let wait = 400 + (rand_u64() % 1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let (r, w) = t.await.unwrap();
            answered_reads.extend(r);
            answered_writes.extend(w);
        }
        eprintln!(
            "round {round}: killed after {wait} ms; {} reads and {} writes answered so far",
            answered_reads.len(),
            answered_writes.len()
        );

        // After the crash: a restarted server opens the same trail.
        let restarted = Server::start(&file);
        drop(restarted);
        let records = log(&file, &["--event", "tool_call"]);
        let recorded = |tool: &str, key: &str, marker: &str, outcome: &str| {
            records
                .iter()
                .any(|r| r["action"] == tool && r["outcome"] == outcome && params(r)[key] == marker)
        };
        for m in &answered_reads {
            assert!(
                recorded("search_vendors", "query", m, "success"),
                "answered read {m} has no record"
            );
        }
        for m in &answered_writes {
            assert!(
                recorded("update_finding_status", "note", m, "success"),
                "answered write {m} has no record"
            );
        }
        // Every change in the data has its record.
        let mut d = sqlite(&data_db(&file)).await;
        let notes: Vec<(Option<String>,)> = sqlx::query_as("SELECT note FROM findings")
            .fetch_all(&mut d)
            .await
            .unwrap();
        d.close().await.unwrap();
        let mut changed = 0;
        for (note,) in notes.iter() {
            if let Some(n) = note
                .as_ref()
                .filter(|n| n.starts_with('r') && n.contains("-t"))
            {
                changed += 1;
                assert!(
                    recorded("update_finding_status", "note", n, "success"),
                    "data change {n} has no record"
                );
            }
        }
        eprintln!("round {round}: {changed} changed findings, each with its record");
        let (ok, report) = verify(&file);
        assert!(ok, "{report}");
    }
    assert!(!answered_reads.is_empty() && !answered_writes.is_empty());
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    h.finish()
}

/// A small tmpfs, unmounted when dropped. Needs root (CI runs as root); a test that cannot
/// mount fails rather than passing untested.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }

    /// Writes zeros until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_calls_and_service_resumes() {
    let disk = SmallDisk::mount("16m");
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    assert!(run(&["init", project.to_str().unwrap()]).status.success());
    let file = project.join("warden.yaml");
    let state = disk.path.join("state.db");
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        yaml.replacen(
            "tools:\n",
            &format!("state:\n  sqlite: {}\n\ntools:\n", state.display()),
            1,
        ),
    )
    .unwrap();
    let key = add_member(
        &file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(&file);
    let mut s = as_(&server, &key).session().await;
    let r = s.call("search_vendors", json!({"query": "a"})).await;
    assert_ne!(r["isError"], true, "{r}");
    let args = json!({"finding_id": 4, "status": "remediated", "note": "while the disk is full"});
    let preview = s.call("update_finding_status", args.clone()).await;
    let token = common::confirmation_token(&preview).unwrap();

    let filler = disk.fill();
    let r = s.call("search_vendors", json!({"query": "b"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("the audit store is full"), "{r}");
    let mut confirmed = args.clone();
    confirmed["confirm"] = json!(true);
    confirmed["confirmation_token"] = json!(token);
    let r = s.call("update_finding_status", confirmed).await;
    assert_eq!(r["isError"], true, "{r}");
    let mut d = sqlite(&data_db(&file)).await;
    let note = note_of(&mut d, 4).await;
    assert_ne!(note.as_deref(), Some("while the disk is full"));

    std::fs::remove_file(filler).unwrap();
    let r = s.call("search_vendors", json!({"query": "c"})).await;
    assert_ne!(r["isError"], true, "{r}");
    let r = s
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 4, "status": "remediated", "note": "space again"}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    let note = note_of(&mut d, 4).await;
    assert_eq!(note.as_deref(), Some("space again"));
    // No refused call left a record; the chain is whole.
    let records = log(&file, &["--tool", "search_vendors"]);
    let queries: Vec<Value> = records.iter().map(|r| params(r)["query"].clone()).collect();
    assert_eq!(queries, [json!("a"), json!("c")]);
    drop(server);
    let (ok, report) = verify(&file);
    assert!(ok, "{report}");
}
