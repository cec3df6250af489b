//! Organisation isolation: with `data.sqlite: data/{org}.db`, each organisation's calls run
//! on its own database, chosen from the caller's credential only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{PASSWORD, Server, add_member, init_project, run, text};
use serde_json::{Value, json};

async fn exec(db: &Path, sql: &str) {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

async fn scalar(db: &Path, sql: &'static str) -> String {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let v: String = sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap();
    c.close().await.unwrap();
    v
}

fn body(result: &Value) -> Value {
    serde_json::from_str(&text(result)).unwrap()
}

#[tokio::test]
async fn organisations_never_see_each_others_rows() {
    let (dir, file, ana) = init_project();
    let data = dir.path().join("p/data");
    // One database per organisation, same schema, overlapping ids, different contents.
    std::fs::copy(data.join("vendors.db"), data.join("acme.db")).unwrap();
    std::fs::copy(data.join("vendors.db"), data.join("globex.db")).unwrap();
    exec(
        &data.join("globex.db"),
        "UPDATE vendors SET name = 'Globex ' || id; DELETE FROM findings WHERE id > 10",
    )
    .await;
    let yaml = std::fs::read_to_string(&file)
        .unwrap()
        .replace("sqlite: data/vendors.db", "sqlite: data/{org}.db");
    std::fs::write(&file, yaml).unwrap();
    let f = file.to_str().unwrap();
    assert!(run(&["org", "create", "globex", "-p", f]).status.success());
    let mut add = common::warden();
    add.args([
        "user",
        "add",
        "gil@globex.example",
        "--org",
        "globex",
        "--role",
        "admin",
        "--password-stdin",
        "-p",
        f,
    ]);
    let mut child = add.stdin(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = run(&[
        "key",
        "create",
        "--org",
        "globex",
        "--user",
        "gil@globex.example",
        "--name",
        "t",
        "--scope",
        "mcp:read mcp:write",
        "-p",
        f,
    ]);
    let gil = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let server = Server::start(&file);
    let mut a = Server::attach(server.url.clone())
        .with_bearer(ana)
        .session()
        .await;
    let mut g = Server::attach(server.url.clone())
        .with_bearer(gil)
        .session()
        .await;

    // The same id names a different row in each organisation.
    let va = body(&a.call("vendor_detail", json!({"vendor_id": "V-001"})).await);
    let vg = body(&g.call("vendor_detail", json!({"vendor_id": "V-001"})).await);
    assert_eq!(vg["name"], "Globex V-001");
    assert_ne!(va["name"], vg["name"]);

    // Nothing of the other organisation can be found or counted.
    let found = body(
        &a.call("search_vendors", json!({"query": "Globex", "limit": 100}))
            .await,
    );
    assert_eq!(found["row_count"], 0);
    let open_a = body(
        &a.call("list_findings", json!({"status": "open", "limit": 200}))
            .await,
    )["row_count"]
        .clone();
    let open_g = body(
        &g.call("list_findings", json!({"status": "open", "limit": 200}))
            .await,
    )["row_count"]
        .clone();
    assert_ne!(open_a, open_g, "each counts only its own findings");

    // A client-supplied organisation field is refused, whatever the tool.
    for field in ["org", "org_id", "tenant", "organisation"] {
        let r = a.call("search_vendors", json!({ field: "globex" })).await;
        assert_eq!(r["isError"], true);
        assert!(
            text(&r).contains("unknown parameter"),
            "{field}: {}",
            text(&r)
        );
    }

    // SQL through arguments is data, not SQL: bound values cannot reach another database.
    for attempt in [
        "%' UNION SELECT id, name, category, tier, status, country, risk_score FROM vendors --",
        "x'); ATTACH DATABASE 'data/globex.db' AS g; --",
        "Globex%' OR '1'='1",
    ] {
        let r = a
            .call("search_vendors", json!({"query": attempt, "limit": 100}))
            .await;
        assert_eq!(r["isError"], false, "{attempt}");
        let rows = body(&r)["rows"].as_array().unwrap().clone();
        assert!(
            rows.iter()
                .all(|row| !row["name"].as_str().unwrap().starts_with("Globex")),
            "{attempt}: {rows:?}"
        );
    }
    let r = a
        .call("vendor_detail", json!({"vendor_id": "V-001' OR '1'='1"}))
        .await;
    assert!(text(&r).contains("does not match the pattern"));

    // A write in one organisation changes only its own database.
    let before_g = scalar(
        &data.join("globex.db"),
        "SELECT status FROM findings WHERE id = 1",
    )
    .await;
    let r = a
        .call_confirmed(
            "update_finding_status",
            json!({"finding_id": 1, "status": "risk_accepted", "note": "acme decision"}),
        )
        .await;
    assert_eq!(r["isError"], false, "{}", text(&r));
    assert_eq!(
        scalar(
            &data.join("acme.db"),
            "SELECT status FROM findings WHERE id = 1"
        )
        .await,
        "risk_accepted"
    );
    assert_eq!(
        scalar(
            &data.join("globex.db"),
            "SELECT status FROM findings WHERE id = 1"
        )
        .await,
        before_g
    );

    // A confirmation token minted in one organisation does not work in the other.
    let preview = g
        .call(
            "update_finding_status",
            json!({"finding_id": 1, "status": "remediated", "note": "globex decision"}),
        )
        .await;
    let token = common::confirmation_token(&preview).unwrap_or_else(|| panic!("{preview}"));
    let r = a.call("update_finding_status", json!({"finding_id": 1, "status": "remediated", "note": "globex decision", "confirm": true, "confirmation_token": token})).await;
    assert!(
        text(&r).contains("another user") || text(&r).contains("another organisation"),
        "{}",
        text(&r)
    );
    assert_eq!(
        scalar(
            &data.join("acme.db"),
            "SELECT status FROM findings WHERE id = 1"
        )
        .await,
        "risk_accepted"
    );
}

#[test]
fn tools_cannot_take_the_organisation_from_the_client() {
    let (_dir, file, _) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap().replace(
        "      - name: tier\n        type: string\n        description: Only vendors of this risk tier",
        "      - name: tenant_id\n        type: string\n      - name: tier\n        type: string\n        description: Only vendors of this risk tier",
    );
    std::fs::write(&file, yaml).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'tenant_id' would let the client choose the organisation"),
        "{err}"
    );
    let _ = add_member;
}
