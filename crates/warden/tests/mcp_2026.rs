//! MCP 2026-07-28 requests (no initialize; the revision, client and capabilities in each
//! request's `_meta`): the methods that revision removed answer 404 with -32601, whatever
//! their params, and calls still work. Older clients keep them (`http_edge.rs`, `stdio.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, init_project, sse_response};
use serde_json::{Value, json};

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "warden-tests", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

async fn post(server: &Server, key: &str, method: &str, mut params: Value) -> (u16, Value) {
    params["_meta"] = meta();
    // 2026-07-28's standard headers: the method, and the tool or resource it names.
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map(str::to_string);
    let mut req = server.client().post(&server.url);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    let r = req
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, sse_response(&body, 7))
}

#[tokio::test]
async fn methods_removed_in_2026_07_28_are_not_found_and_calls_still_work() {
    let (_dir, file, key) = init_project();
    let server = Server::start(&file);
    for (method, params) in [
        ("initialize", json!({})),
        ("logging/setLevel", json!({})),
        ("logging/setLevel", json!({"level": "debug"})),
        ("resources/subscribe", json!({})),
        ("resources/subscribe", json!({"uri": "vendor://V-001"})),
        ("resources/unsubscribe", json!({"uri": "vendor://V-001"})),
        ("ping", json!({})),
    ] {
        let (status, answer) = post(&server, &key, method, params.clone()).await;
        assert_eq!(status, 404, "{method} {params}: {answer}");
        assert_eq!(
            answer["error"]["code"], -32601,
            "{method} {params}: {answer}"
        );
    }
    let (status, answer) = post(
        &server,
        &key,
        "tools/call",
        json!({"name": "search_vendors", "arguments": {"limit": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
}
