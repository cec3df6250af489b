//! Black-box: an MCP session belongs to the principal that opened it. Another principal who
//! learns its `Mcp-Session-Id` gets exactly the answer an unknown session gets (404) for
//! POST, GET and DELETE, and the owner's session carries on unharmed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, add_member, init_project, text};
use serde_json::json;

/// One raw request on `/mcp` naming session `sid`, as the holder of `bearer`.
async fn on_session(
    server: &Server,
    method: reqwest::Method,
    bearer: Option<&str>,
    sid: &str,
) -> (u16, String) {
    let mut req = server
        .client()
        .request(method.clone(), &server.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if method == reqwest::Method::POST {
        req = req.header("content-type", "application/json").body(
            json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
                   "params":{"name":"search_vendors","arguments":{"query":"a"}}})
            .to_string(),
        );
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    // A GET that was accepted opens an endless SSE stream: do not wait for its body.
    let body = if status == 200 && method == reqwest::Method::GET {
        String::new()
    } else {
        res.text().await.unwrap()
    };
    (status, body)
}

#[tokio::test]
async fn a_stolen_session_id_is_an_unknown_session_to_everyone_but_its_owner() {
    let (_d, project, admin_key) = init_project();
    let guest_key = add_member(&project, "gus@acme.example", "guest", "mcp:read", false);
    let server = Server::start(&project);
    let admin = Server::attach(server.url.clone()).with_bearer(admin_key.clone());
    let mut session = admin.session().await;
    let sid = session.id.clone();
    // A session that never existed: what an unknown session looks like, per method.
    let never = "0123456789abcdef0123456789abcdef";

    use reqwest::Method;
    let methods = [Method::POST, Method::GET, Method::DELETE];
    for method in &methods {
        let unknown = on_session(&server, method.clone(), Some(&guest_key), never).await;
        assert_eq!(
            unknown.0, 404,
            "{method} on an unknown session: {unknown:?}"
        );
        // Another principal (a Guest of the same organisation) with the Admin's session id.
        let stolen = on_session(&server, method.clone(), Some(&guest_key), &sid).await;
        assert_eq!(
            stolen, unknown,
            "{method} on another principal's session must look exactly like an unknown one"
        );
        // Without any bearer, authentication answers first.
        let anonymous = on_session(&server, method.clone(), None, &sid).await;
        assert_eq!(anonymous.0, 401, "{method} without a bearer: {anonymous:?}");
        // The owner's session still works after each attempt.
        let r = session
            .call("search_vendors", json!({"query": "Cloud", "limit": 1}))
            .await;
        assert_ne!(r["isError"], true, "{method}: {}", text(&r));
    }

    // The owner may end their own session; then it is unknown to them too.
    let (status, _) = on_session(&server, Method::DELETE, Some(&admin_key), &sid).await;
    assert!((200..300).contains(&status), "owner's DELETE: {status}");
    let (status, _) = on_session(&server, Method::POST, Some(&admin_key), &sid).await;
    assert_eq!(status, 404);

    // Session ids are never written to the log whole.
    let log = server.log.lock().unwrap().join("\n");
    assert!(
        !log.contains(&sid),
        "the server log holds a whole session id:\n{log}"
    );
}
