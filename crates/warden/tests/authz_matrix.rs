//! Authorization on every call, over real HTTP: every role × scope × tool access, for
//! `tools/list` and `tools/call`, checking what is visible, what happens, and that a refused
//! write changed nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{Server, add_member, init_project, run, text};
use serde_json::{Value, json};

const WRITE_TOOL: &str = "update_finding_status";
const READ_TOOL: &str = "search_vendors";

async fn finding_note(db: &Path) -> Option<String> {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let note: Option<String> = sqlx::query_scalar("SELECT note FROM findings WHERE id = 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    note
}

async fn post(server: &Server, key: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = server
        .client()
        .post(&server.url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.json(&body).send().await.unwrap()
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// HTTP 403 with an insufficient_scope challenge (step-up).
    StepUp,
    /// A tool error naming the role.
    RoleDenied,
    Ok,
}

#[tokio::test]
async fn role_scope_access_matrix() {
    let (dir, file, _) = init_project();
    let db = dir.path().join("p/data/vendors.db");
    let roles = [
        "admin",
        "member",
        "siloed_member",
        "guest",
        "auxiliary_member",
        "service_account",
    ];
    let scopes = ["mcp:read", "mcp:read mcp:write"];
    let mut keys = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        for scope in scopes {
            let email = format!(
                "{role}.{}@acme.example",
                i * 2 + usize::from(scope.contains("write"))
            );
            keys.push((*role, scope, add_member(&file, &email, role, scope, false)));
        }
    }
    let server = Server::start(&file);

    for (n, (role, scope, key)) in keys.iter().enumerate() {
        let can_connect = !matches!(*role, "auxiliary_member" | "service_account");
        let can_write_role = matches!(*role, "admin" | "member");
        let has_write = scope.contains("mcp:write");
        let init = post(&server, key, None, json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"matrix","version":"1"}}})).await;
        if !can_connect {
            assert_eq!(init.status(), 403, "{role} {scope}");
            // Not even a read tool: nothing runs for these roles.
            let call = post(&server, key, None, json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":READ_TOOL,"arguments":{}}})).await;
            assert_eq!(call.status(), 403, "{role} {scope}");
            continue;
        }
        assert_eq!(init.status(), 200, "{role} {scope}");
        let session = init.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let _ = init.text().await;
        let s = post(
            &server,
            key,
            Some(&session),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        )
        .await;
        assert_eq!(s.status(), 202);

        // tools/list: write tools only for a connection that can use them.
        let list = post(
            &server,
            key,
            Some(&session),
            json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        )
        .await;
        let list = common::sse_response(&list.text().await.unwrap(), 2);
        let names: Vec<&str> = list["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&READ_TOOL), "{role} {scope}: {names:?}");
        assert_eq!(
            names.contains(&WRITE_TOOL),
            can_write_role && has_write,
            "{role} {scope}: {names:?}"
        );

        // A read tool works for every role that can connect.
        let read = post(&server, key, Some(&session), json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":READ_TOOL,"arguments":{"limit":1}}})).await;
        let read = common::sse_response(&read.text().await.unwrap(), 3);
        assert_eq!(read["result"]["isError"], false, "{role} {scope}: {read}");

        // The write tool.
        let before = finding_note(&db).await;
        let note = format!("matrix case {n}");
        let res = post(
            &server,
            key,
            Some(&session),
            json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{
            "name":WRITE_TOOL,"arguments":{"finding_id":1,"status":"in_progress","note":note}}}),
        )
        .await;
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = res.text().await.unwrap();
        let outcome = match status {
            403 => {
                let c = challenge.unwrap_or_default();
                assert!(
                    c.contains(r#"error="insufficient_scope""#)
                        && c.contains(r#"scope="mcp:read mcp:write""#),
                    "{c}"
                );
                assert!(c.contains("resource_metadata="), "{c}");
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["id"], 4);
                assert!(
                    v["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("reconnect"),
                    "{v}"
                );
                Outcome::StepUp
            }
            200 => {
                let v = common::sse_response(&body, 4);
                if let Some(token) = common::confirmation_token(&v["result"]) {
                    // Allowed: first a preview that changes nothing, then the confirmed write.
                    assert_eq!(
                        finding_note(&db).await,
                        before,
                        "{role} {scope}: a preview changed data"
                    );
                    let done = post(&server, key, Some(&session), json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
                        "name":WRITE_TOOL,"arguments":{"finding_id":1,"status":"in_progress","note":note,
                        "confirm":true,"confirmation_token":token}}})).await;
                    let done = common::sse_response(&done.text().await.unwrap(), 5);
                    assert_eq!(done["result"]["isError"], false, "{role} {scope}: {done}");
                    Outcome::Ok
                } else if v["result"]["isError"] == true {
                    let t = text(&v["result"]);
                    assert!(
                        t.contains("can only read") && t.contains("ask a Member or an Admin"),
                        "{t}"
                    );
                    Outcome::RoleDenied
                } else {
                    Outcome::Ok
                }
            }
            other => panic!("{role} {scope}: unexpected status {other}: {body}"),
        };
        let want = match (can_write_role, has_write) {
            (true, true) => Outcome::Ok,
            (true, false) => Outcome::StepUp,
            (false, _) => Outcome::RoleDenied,
        };
        assert_eq!(outcome, want, "{role} {scope}");
        let after = finding_note(&db).await;
        if want == Outcome::Ok {
            assert_eq!(
                after.as_deref(),
                Some(note.as_str()),
                "{role} {scope}: the write did not happen"
            );
        } else {
            assert_eq!(
                after, before,
                "{role} {scope}: a refused write changed data"
            );
        }
    }

    // Every refusal is on the record, once: the 403s for roles that cannot connect (two
    // requests for each of their four keys), the scope step-ups and the role denials.
    let denied = common::audit_log(&file, &["--policy", "deny"]);
    let at = |stage: &str| denied.iter().filter(|r| r["stage"] == stage).count();
    assert_eq!(at("connect"), 8, "{denied:#?}");
    assert!(denied.iter().filter(|r| r["stage"] == "connect").all(|r| {
        let email = r["user_email"].as_str().unwrap();
        email.starts_with("auxiliary_member.") || email.starts_with("service_account.")
    }));
    // Admin and Member with mcp:read: refused at the step-up, before the call was read.
    assert_eq!(at("scope"), 2, "{denied:#?}");
    // Siloed Member and Guest, with either scope: refused by role in the pipeline.
    assert_eq!(at("role"), 4, "{denied:#?}");
}

#[tokio::test]
async fn read_only_connections_can_be_shown_write_tools() {
    let (_dir, file, _) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{yaml}\nauthorization:\n  show_write_tools: true\n"),
    )
    .unwrap();
    let key = add_member(&file, "reader@acme.example", "member", "mcp:read", false);
    let server = Server::start(&file).with_bearer(key);
    let mut s = server.session().await;
    let list = s.request("tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&WRITE_TOOL), "{names:?}");
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert!(out.status.success());
}

#[test]
fn why_explains_with_the_same_rules() {
    let (_dir, file, _) = init_project();
    add_member(&file, "gus@acme.example", "guest", "mcp:read", false);
    let f = file.to_str().unwrap();
    let out = run(&[
        "why",
        "--user",
        "gus@acme.example",
        "--tool",
        WRITE_TOOL,
        "--org",
        "acme",
        "-p",
        f,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gus@acme.example is Guest in acme"), "{text}");
    assert!(
        text.contains("DENIED at the role stage by rule role.read_only"),
        "{text}"
    );
    let out = run(&[
        "why",
        "--user",
        "ana@acme.example",
        "--tool",
        WRITE_TOOL,
        "--scope",
        "mcp:read mcp:write",
        "-p",
        f,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ALLOWED by rule"));
    let out = run(&[
        "why",
        "--user",
        "ana@acme.example",
        "--tool",
        WRITE_TOOL,
        "--scope",
        "mcp:read",
        "-p",
        f,
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("DENIED at the scope stage by rule scope.write_missing")
    );
}
