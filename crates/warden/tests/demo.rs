//! `warden demo` serves a client and cleans up after itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

#[tokio::test]
async fn demo_prints_how_to_connect_and_serves_tools() {
    let mut child = common::warden()
        .args(["demo", "--port", "0"])
        .env("WARDEN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.contains("Ctrl-C"))
            .collect();
        let _ = tx.send(lines);
    });
    let banner = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("demo banner")
        .join("\n");
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:") && w.ends_with("/mcp"))
        .unwrap()
        .to_string();
    assert!(banner.contains(&format!("--server-url {url}")), "{banner}");
    assert!(banner.contains("\"--stdio\""), "{banner}");
    // The Inspector command says what it needs.
    assert!(
        banner.contains("npx @modelcontextprotocol/inspector") && banner.contains("Node.js 22.19"),
        "{banner}"
    );
    let project = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Project file"))
        .unwrap()
        .trim()
        .to_string();
    assert!(std::path::Path::new(&project).exists());

    let labelled = |label: &str| -> String {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|k| k.trim().to_string())
            .filter(|k| k.starts_with("wdn_key_"))
            .unwrap_or_else(|| panic!("no {label} key in the banner:\n{banner}"))
    };
    let key = labelled("read-only");
    let write_key = labelled("read-write");
    assert_ne!(key, write_key);
    assert!(banner.contains("admin@demo.example"), "{banner}");
    // Without the key, the endpoint refuses; with it, tools are served.
    let anonymous = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let server = common::Server::attach(url).with_bearer(key);
    let mut s = server.session().await;
    let tools = s.request("tools/list", json!({})).await;
    // The demo key is read-only: the write tool is not listed to it.
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The five hand-written reads, the 17 reads `tables:` generates, and two of `files`.
    assert_eq!(names.len(), 24, "{names:?}");
    assert!(!names.contains(&"update_finding_status"), "{names:?}");
    // A list made for this key: no shared cache may keep it (MCP 2026-07-28 caching hints).
    assert_eq!(tools["result"]["cacheScope"], "private", "{tools}");
    assert_eq!(tools["result"]["ttlMs"], 60_000, "{tools}");
    for method in ["resources/list", "resources/templates/list", "prompts/list"] {
        let list = s.request(method, json!({})).await;
        assert_eq!(list["result"]["cacheScope"], "private", "{method}: {list}");
    }
    let read = s
        .request("resources/read", json!({"uri": "vendor://V-001"}))
        .await;
    assert_eq!(read["result"]["cacheScope"], "private", "{read}");
    assert_eq!(read["result"]["ttlMs"], 0, "{read}");
    let r = s
        .call("search_vendors", json!({"query": "Cloud", "limit": 5}))
        .await;
    assert_eq!(r["isError"], false);

    // The read-write key sees the write tool and can make a confirmed write.
    let writer = common::Server::attach(server.url.clone()).with_bearer(write_key);
    let mut w = writer.session().await;
    let r = w
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 1, "status": "in_progress", "note": "demo write key"}),
        )
        .await;
    assert_eq!(r["isError"], false, "{r}");

    // SIGTERM: a clean stop that removes the temporary project.
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !std::path::Path::new(&project).exists(),
        "the temporary project was left behind"
    );
}
