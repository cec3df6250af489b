//! Writes need explicit confirmation with a server-minted, single-use token bound to the
//! user, the organisation, the tool and the arguments. Every refused case changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{Server, add_member, confirmation_token, init_project, text};
use serde_json::{Value, json};

async fn finding(db: &Path) -> (String, Option<String>) {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let row: (String, Option<String>) =
        sqlx::query_as("SELECT status, note FROM findings WHERE id = 2")
            .fetch_one(&mut c)
            .await
            .unwrap();
    c.close().await.unwrap();
    row
}

fn args(note: &str, extra: Value) -> Value {
    let mut a = json!({"finding_id": 2, "status": "remediated", "note": note});
    a.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    a
}

#[tokio::test]
async fn confirmation_table() {
    let (dir, file, ana) = init_project();
    let db = dir.path().join("p/data/vendors.db");
    let mo = add_member(
        &file,
        "mo@acme.example",
        "member",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(&file).with_bearer(ana);
    let mut s = server.session().await;
    let untouched = finding(&db).await;
    const TOOL: &str = "update_finding_status";

    // 1. No confirm: a preview, and nothing changes.
    let preview = s.call(TOOL, args("fixed by vendor", json!({}))).await;
    let token = confirmation_token(&preview).expect("a preview with a token");
    let msg = text(&preview);
    assert!(
        msg.contains("nothing was changed") && msg.contains("would change 1 row(s)"),
        "{msg}"
    );
    assert!(
        msg.contains(r#""status":"remediated""#) && msg.contains(r#""note":"fixed by vendor""#),
        "{msg}"
    );
    assert_eq!(finding(&db).await, untouched);

    // 2. confirm without a token.
    let r = s
        .call(TOOL, args("fixed by vendor", json!({"confirm": true})))
        .await;
    assert_eq!(r["isError"], true);
    assert!(
        text(&r).contains("needs the confirmation_token"),
        "{}",
        text(&r)
    );
    assert_eq!(finding(&db).await, untouched);

    // 3. Tampered arguments with a valid token.
    let r = s
        .call(
            TOOL,
            args(
                "something else",
                json!({"confirm": true, "confirmation_token": token}),
            ),
        )
        .await;
    assert!(
        text(&r).contains("the arguments differ from the ones previewed"),
        "{}",
        text(&r)
    );
    assert_eq!(finding(&db).await, untouched);

    // 4. Another user's token: mo previews, ana tries to confirm it.
    let mo_server = Server::attach(server.url.clone()).with_bearer(mo);
    let mut mo_session = mo_server.session().await;
    let mo_preview = mo_session
        .call(TOOL, args("fixed by vendor", json!({})))
        .await;
    let mo_token = confirmation_token(&mo_preview).unwrap();
    let r = s
        .call(
            TOOL,
            args(
                "fixed by vendor",
                json!({"confirm": true, "confirmation_token": mo_token}),
            ),
        )
        .await;
    assert!(text(&r).contains("issued to another user"), "{}", text(&r));
    assert_eq!(finding(&db).await, untouched);

    // 5. A forged token.
    let r = s.call(TOOL, args("fixed by vendor", json!({"confirm": true, "confirmation_token": "wdn_cf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))).await;
    assert!(
        text(&r).contains("not one this server issued"),
        "{}",
        text(&r)
    );
    assert_eq!(finding(&db).await, untouched);

    // 6. The valid token: the write happens, exactly as previewed.
    let r = s
        .call(
            TOOL,
            args(
                "fixed by vendor",
                json!({"confirm": true, "confirmation_token": token}),
            ),
        )
        .await;
    assert_eq!(r["isError"], false, "{}", text(&r));
    let done: Value = serde_json::from_str(&text(&r)).unwrap();
    assert_eq!(done["rows"][0]["status"], "remediated");
    assert_eq!(done["rows"][0]["note"], "fixed by vendor");
    assert_eq!(
        finding(&db).await,
        (
            "remediated".to_string(),
            Some("fixed by vendor".to_string())
        )
    );

    // 7. Replaying it: refused, and nothing changes again.
    let r = s
        .call(
            TOOL,
            args(
                "fixed by vendor",
                json!({"confirm": true, "confirmation_token": token}),
            ),
        )
        .await;
    assert!(text(&r).contains("already used"), "{}", text(&r));

    // 8. Bad types for the confirmation arguments name the parameter.
    let r = s.call(TOOL, args("x", json!({"confirm": "yes"}))).await;
    assert!(
        text(&r).contains("parameter 'confirm': expected boolean"),
        "{}",
        text(&r)
    );
}

#[tokio::test]
async fn write_tools_advertise_the_confirmation_arguments() {
    let (_dir, file, key) = init_project();
    let server = Server::start(&file).with_bearer(key);
    let mut s = server.session().await;
    let list = s.request("tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().unwrap();
    let write = tools
        .iter()
        .find(|t| t["name"] == "update_finding_status")
        .unwrap();
    assert_eq!(
        write["inputSchema"]["properties"]["confirm"]["type"],
        "boolean"
    );
    assert_eq!(
        write["inputSchema"]["properties"]["confirmation_token"]["type"],
        "string"
    );
    let read = tools
        .iter()
        .find(|t| t["name"] == "search_vendors")
        .unwrap();
    assert!(read["inputSchema"]["properties"].get("confirm").is_none());
    // A read tool does not take them.
    let r = s.call("search_vendors", json!({"confirm": true})).await;
    assert!(
        text(&r).contains("parameter 'confirm': unknown parameter"),
        "{}",
        text(&r)
    );
}
