//! Tables served as tools (`tables:`), on SQLite and PostgreSQL data: every generated verb
//! against the same query written by hand, and the attack table: wildcards, quotes and SQL
//! in values, cursors replayed by another user, edited or moved to another tool or filter,
//! another organisation's keys, filters on excluded or sensitive columns, and sensitive
//! values kept out of the trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{PgDatabase, Server, add_member, add_member_in, audit_log, run, text};
use serde_json::{Value, json};

/// Hand-written tools that run the generated tools' queries, to compare with.
const BY_HAND: &str = r#"
  - name: hand_list_vendors
    description: list_vendors written by hand
    access: read
    params:
      - { name: limit, type: integer, default: 20 }
    sql: |
      SELECT id, name, category, tier, status, country, data_access, annual_spend, contract_end, risk_score
      FROM vendors ORDER BY id LIMIT :limit
  - name: hand_get_vendor
    description: get_vendors written by hand
    access: read
    returns: row
    params:
      - { name: id, type: string, required: true }
    sql: |
      SELECT id, name, category, tier, status, country, data_access, annual_spend, contract_end, risk_score
      FROM vendors WHERE id = :id
  - name: hand_count_findings
    description: count_findings_by severity written by hand
    access: read
    sql: SELECT severity AS value, COUNT(*) AS count FROM findings GROUP BY severity ORDER BY 2 DESC, 1
  - name: hand_vendor_findings
    description: findings_of_vendors written by hand
    access: read
    params:
      - { name: vendor_id, type: string, required: true }
    sql: SELECT * FROM findings WHERE vendor_id = :vendor_id ORDER BY id LIMIT 200
  - name: hand_critical_vendors
    description: filter_vendors on tier and risk written by hand
    access: read
    sql: |
      SELECT id, name, category, tier, status, country, data_access, annual_spend, contract_end, risk_score
      FROM vendors WHERE tier IN ('critical', 'high') AND risk_score >= 40 AND contract_end >= '2025-01-01' ORDER BY id LIMIT 200
"#;

/// The example project, with its data on `postgres` when given, the hand-written tools
/// above, and `update` on vendors (to write a sensitive column).
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
    let yaml = yaml
        .replace("\ntools:\n", &format!("\ntools:{BY_HAND}"))
        .replace(
            "    read: [list, get, filter, count, related, export]\n",
            "    read: [list, get, filter, count, related, export]\n    write: [update]\n",
        );
    std::fs::write(&file, yaml).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    file
}

fn body(result: &Value) -> Value {
    assert_ne!(result["isError"], true, "tool error: {}", text(result));
    serde_json::from_str(&text(result)).unwrap()
}

fn refused(result: &Value, needle: &str) {
    assert_eq!(result["isError"], true, "expected a refusal, got {result}");
    assert!(
        text(result).contains(needle),
        "expected '{needle}' in: {}",
        text(result)
    );
}

/// Every verb, compared with the hand-written queries; then the attack table.
async fn scenario(file: &Path) {
    let ana = add_member(
        file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let bob = add_member(
        file,
        "bob@acme.example",
        "member",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(file);
    let mut s = server.session_as(&ana).await;
    let mut b = server.session_as(&bob).await;

    let listed = s.request("tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "list_vendors",
        "get_vendors",
        "filter_vendors",
        "count_vendors_by",
        "findings_of_vendors",
        "assessments_of_vendors",
        "obligations_of_vendors",
        "search_findings",
        "insert_obligations",
        "update_obligations",
        "delete_obligations",
        "update_vendors",
    ] {
        assert!(names.contains(&want), "{want} not listed: {names:?}");
    }

    // list: pages of 7 in key order, the same rows as by hand, nothing lost or repeated.
    let by_hand = body(&s.call("hand_list_vendors", json!({"limit": 80})).await)["rows"].clone();
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut args = json!({"limit": 7});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = body(&s.call("list_vendors", args).await);
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["truncated"], true);
                assert_eq!(page["row_count"], 7);
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(
        Value::Array(rows),
        by_hand,
        "list_vendors pages differ from the query by hand"
    );
    assert!(by_hand[0].get("owner_email").is_none());

    // get
    let one = body(&s.call("get_vendors", json!({"id": "V-007"})).await);
    assert_eq!(
        one,
        body(&s.call("hand_get_vendor", json!({"id": "V-007"})).await)
    );
    refused(
        &s.call("get_vendors", json!({"id": "V-999"})).await,
        "found nothing",
    );

    // filter: lists, ranges and dates together
    let f = body(
        &s.call(
            "filter_vendors",
            json!({"tier_in": ["critical", "high"], "risk_score_min": 40, "contract_end_min": "2025-01-01", "limit": 200}),
        )
        .await,
    );
    assert_eq!(
        f["rows"],
        body(&s.call("hand_critical_vendors", json!({})).await)["rows"]
    );
    assert!(f["row_count"].as_u64().unwrap() > 0);

    // count
    let c = body(
        &s.call("count_findings_by", json!({"column": "severity"}))
            .await,
    );
    assert_eq!(
        c["rows"],
        body(&s.call("hand_count_findings", json!({})).await)["rows"]
    );
    refused(
        &s.call("count_findings_by", json!({"column": "title"}))
            .await,
        "parameter 'column'",
    );

    // related
    let r = body(
        &s.call(
            "findings_of_vendors",
            json!({"vendor_id": "V-001", "limit": 200}),
        )
        .await,
    );
    assert_eq!(
        r["rows"],
        body(
            &s.call("hand_vendor_findings", json!({"vendor_id": "V-001"}))
                .await
        )["rows"]
    );

    // search: case-insensitive; the input's wildcards, quotes and SQL match only themselves
    let all = body(
        &s.call("search_findings", json!({"query": "A", "limit": 200}))
            .await,
    );
    let lower = body(
        &s.call("search_findings", json!({"query": "a", "limit": 200}))
            .await,
    );
    assert_eq!(all["rows"], lower["rows"]);
    assert!(all["row_count"].as_u64().unwrap() > 0);
    for hostile in [
        "%",
        "_",
        "%%",
        "' OR '1'='1",
        "x'); DROP TABLE findings; --",
        "\\",
        "\"",
        "%' --",
    ] {
        let r = body(&s.call("search_findings", json!({"query": hostile})).await);
        assert_eq!(r["row_count"], 0, "search for {hostile:?} matched: {r}");
    }
    for hostile in ["' OR '1'='1", "V-001' --", "%", "V-00_"] {
        let r = body(&s.call("filter_vendors", json!({"id": hostile})).await);
        assert_eq!(r["row_count"], 0, "filter on {hostile:?} matched: {r}");
        refused(
            &s.call("get_vendors", json!({"id": hostile})).await,
            "found nothing",
        );
    }
    // The tables are all still there.
    let counted = body(
        &s.call("count_findings_by", json!({"column": "status"}))
            .await,
    );
    assert!(counted["row_count"].as_u64().unwrap() > 0);

    // Cursors: bound to the user, the tool and the filter; edits are refused.
    let first = body(&s.call("list_vendors", json!({"limit": 3})).await);
    let cur = first["next_cursor"].as_str().unwrap().to_string();
    refused(
        &b.call("list_vendors", json!({"limit": 3, "cursor": cur}))
            .await,
        "parameter 'cursor'",
    );
    refused(
        &s.call("filter_vendors", json!({"limit": 3, "cursor": cur}))
            .await,
        "parameter 'cursor'",
    );
    let (payload, mac) = cur.split_once('.').unwrap();
    let forged = {
        use base64::Engine;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let keys: Value = serde_json::from_slice(&e.decode(payload).unwrap()).unwrap();
        assert_eq!(keys, json!(["V-003"]));
        format!("{}.{mac}", e.encode(br#"["V-050"]"#))
    };
    refused(
        &s.call("list_vendors", json!({"limit": 3, "cursor": forged}))
            .await,
        "parameter 'cursor'",
    );
    refused(
        &s.call(
            "list_vendors",
            json!({"limit": 3, "cursor": format!("{payload}.AAAA")}),
        )
        .await,
        "parameter 'cursor'",
    );
    refused(
        &s.call("list_vendors", json!({"cursor": "not a cursor"}))
            .await,
        "parameter 'cursor'",
    );
    let crit = body(
        &s.call("filter_vendors", json!({"tier": "critical", "limit": 2}))
            .await,
    );
    let ccur = crit["next_cursor"].as_str().unwrap().to_string();
    refused(
        &s.call(
            "filter_vendors",
            json!({"tier": "high", "limit": 2, "cursor": ccur}),
        )
        .await,
        "parameter 'cursor'",
    );
    let next = body(
        &s.call(
            "filter_vendors",
            json!({"tier": "critical", "limit": 2, "cursor": ccur}),
        )
        .await,
    );
    assert!(next["rows"][0]["id"].as_str().unwrap() > crit["rows"][1]["id"].as_str().unwrap());
    // The same cursor, again: the next page again (a cursor is a position, not a ticket).
    let again = body(
        &s.call("list_vendors", json!({"limit": 3, "cursor": cur}))
            .await,
    );
    assert_eq!(again["rows"][0]["id"], "V-004");

    // Excluded and sensitive columns: no filter, no value.
    refused(
        &s.call("filter_vendors", json!({"owner_email": "x@y"}))
            .await,
        "unknown parameter",
    );
    refused(
        &s.call("filter_vendors", json!({"annual_spend_min": 1}))
            .await,
        "unknown parameter",
    );
    refused(
        &s.call("filter_vendors", json!({"annual_spend": 1})).await,
        "unknown parameter",
    );
    assert!(
        one.get("annual_spend").is_some(),
        "the admin sees the sensitive column"
    );
    let bobs = body(&b.call("get_vendors", json!({"id": "V-007"})).await);
    assert!(
        bobs.get("annual_spend").is_none(),
        "a member was shown annual_spend: {bobs}"
    );
    assert!(bobs.get("owner_email").is_none());
    let bl = body(&b.call("list_vendors", json!({"limit": 3})).await);
    assert!(bl["rows"][0].get("annual_spend").is_none());

    // Writes: preview with before and after, confirm, record with the key.
    let preview = s
        .call("update_obligations", json!({"id": 3, "status": "met"}))
        .await;
    let shown = text(&preview);
    assert!(shown.starts_with("Confirmation required"), "{shown}");
    assert!(
        shown.contains("now they read") && shown.contains("afterwards they would read"),
        "{shown}"
    );
    let before = body(&s.call("filter_obligations", json!({"id": 3})).await)["rows"][0].clone();
    let done = s
        .call_confirmed("update_obligations", json!({"id": 3, "status": "met"}))
        .await;
    assert_ne!(done["isError"], true, "{}", text(&done));
    let after = body(&s.call("filter_obligations", json!({"id": 3})).await)["rows"][0].clone();
    assert_eq!(after["status"], "met");
    assert_eq!(
        after["requirement"], before["requirement"],
        "columns left out keep their value"
    );
    let ins = s
        .call_confirmed(
            "insert_obligations",
            json!({"id": 9001, "vendor_id": "V-002", "framework": "ISO 27001", "requirement": "it's a 'quoted' requirement; DROP TABLE x", "due_on": "2027-01-31", "status": "pending"}),
        )
        .await;
    assert_ne!(ins["isError"], true, "{}", text(&ins));
    let got = body(&s.call("filter_obligations", json!({"id": 9001})).await);
    assert_eq!(
        got["rows"][0]["requirement"],
        "it's a 'quoted' requirement; DROP TABLE x"
    );
    refused(
        &s.call("insert_obligations", json!({"id": 9002, "vendor_id": "V-002", "framework": "x", "requirement": "y", "due_on": "soon", "status": "pending"})).await,
        "parameter 'due_on'",
    );
    let del = s
        .call_confirmed("delete_obligations", json!({"id": 9001}))
        .await;
    assert_ne!(del["isError"], true, "{}", text(&del));
    assert_eq!(
        body(&s.call("filter_obligations", json!({"id": 9001})).await)["row_count"],
        0
    );
    // A key that does not exist changes nothing.
    let none = s.call("delete_obligations", json!({"id": 424242})).await;
    assert!(text(&none).contains("0 row(s)"), "{}", text(&none));

    // A sensitive column written: its value never reaches the trail.
    let secret = 987_654_321;
    let w = s
        .call_confirmed(
            "update_vendors",
            json!({"id": "V-009", "annual_spend": secret}),
        )
        .await;
    assert_ne!(w["isError"], true, "{}", text(&w));
    assert!(
        !text(&w).contains(&secret.to_string()),
        "the write's result showed the sensitive value"
    );
    assert_eq!(
        body(&s.call("get_vendors", json!({"id": "V-009"})).await)["annual_spend"],
        secret
    );
    let trail = audit_log(file, &[]);
    let all_text = serde_json::to_string(&trail).unwrap();
    assert!(
        !all_text.contains(&secret.to_string()),
        "a sensitive value reached the trail"
    );
    let rec = trail
        .iter()
        .find(|r| r["action"] == "update_obligations" && r["outcome"] == "success")
        .expect("the update's record");
    let detail: Value = serde_json::from_str(rec["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["key"], json!({"id": 3}), "{rec}");
    assert_eq!(detail["table"], "obligations");
    assert!(
        rec["credential"].as_str().is_some_and(|c| !c.is_empty()),
        "{rec}"
    );
    // Refused cursors are on the record, at the argument stage.
    assert!(
        trail.iter().any(|r| r["action"] == "list_vendors"
            && r["outcome"] != "success"
            && r["reason"].as_str().is_some_and(|m| m.contains("cursor"))),
        "no record of a refused cursor"
    );
}

#[tokio::test]
async fn generated_tools_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    scenario(&file).await;
}

#[tokio::test]
async fn generated_tools_on_postgres() {
    let Some(db) = PgDatabase::create("tables").await else {
        panic!("set WARDEN_TEST_POSTGRES_URL: the PostgreSQL half of this test must run");
    };
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), Some(&db.url));
    scenario(&file).await;
}

/// With a database per organisation, a key of another organisation's row finds nothing and
/// changes nothing.
#[tokio::test]
async fn another_organisations_keys_reach_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    let data = dir.path().join("p/data");
    std::fs::copy(data.join("vendors.db"), data.join("acme.db")).unwrap();
    std::fs::copy(data.join("vendors.db"), data.join("globex.db")).unwrap();
    {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("globex.db"))
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "DELETE FROM obligations WHERE id > 5; DELETE FROM findings WHERE vendor_id = 'V-070'",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let yaml = std::fs::read_to_string(&file)
        .unwrap()
        .replace("sqlite: data/vendors.db", "sqlite: data/{org}.db");
    std::fs::write(&file, yaml).unwrap();
    let ana = add_member(
        &file,
        "ana@acme.example",
        "admin",
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
    let mut a = server.session_as(&ana).await;
    let mut g = server.session_as(&gil).await;
    // Obligation 40 exists only in acme's database.
    let acme_row = body(&a.call("filter_obligations", json!({"id": 40})).await);
    assert_eq!(acme_row["row_count"], 1);
    assert_eq!(
        body(&g.call("filter_obligations", json!({"id": 40})).await)["row_count"],
        0
    );
    let r = g
        .call_confirmed(
            "update_obligations",
            json!({"id": 40, "requirement": "globex was here"}),
        )
        .await;
    assert!(!text(&r).contains("globex was here"), "{}", text(&r));
    let r = g
        .call_confirmed("delete_obligations", json!({"id": 40}))
        .await;
    assert_ne!(r["isError"], true, "{}", text(&r));
    let still = body(&a.call("filter_obligations", json!({"id": 40})).await);
    assert_eq!(still, acme_row, "globex changed acme's row");
    assert_eq!(
        body(
            &g.call("findings_of_vendors", json!({"vendor_id": "V-070"}))
                .await
        )["row_count"],
        0
    );
    assert!(
        body(
            &a.call("findings_of_vendors", json!({"vendor_id": "V-070"}))
                .await
        )["row_count"]
            .as_u64()
            .unwrap()
            > 0
    );
    // A cursor of acme's is no use to globex, even on the same tool and filter.
    let page = body(&a.call("list_obligations", json!({"limit": 2})).await);
    let cur = page["next_cursor"].as_str().unwrap();
    refused(
        &g.call("list_obligations", json!({"limit": 2, "cursor": cur}))
            .await,
        "parameter 'cursor'",
    );
}

/// A table or column named in `tables:` that the database lacks is an error naming its line.
#[tokio::test]
async fn unknown_tables_and_columns_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    let yaml = std::fs::read_to_string(&file).unwrap();
    let yaml = yaml
        .replace("  - table: assessments\n", "  - table: asessments\n")
        .replace(
            "    search: [title, note]\n",
            "    search: [title, notes]\n",
        )
        .replace(
            "    count_by: [tier, status, category, country]\n",
            "    count_by: [tier, status, category, country, annual_spend]\n",
        );
    std::fs::write(&file, &yaml).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| yaml.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        err.contains(&format!("warden.yaml:{}:", line_of("table: asessments")))
            && err.contains("table 'asessments' does not exist"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "warden.yaml:{}:",
            line_of("search: [title, notes]")
        )) && err.contains("no column 'notes'"),
        "{err}"
    );
    assert!(err.contains("'annual_spend' is sensitive"), "{err}");
    // Serving refuses it the same way, before anything is created.
    let out = run(&["serve", "-p", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

/// On a database organisations share, `tenant_column` keeps each to its rows: Warden fills
/// and matches the column from the caller, and no client can name it.
#[tokio::test]
async fn a_shared_database_keeps_each_organisation_to_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = project(dir.path(), None);
    let db = dir.path().join("p/data/vendors.db");
    {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, org TEXT NOT NULL, body TEXT NOT NULL);
             INSERT INTO notes VALUES (1, 'acme', 'acme one'), (2, 'globex', 'globex secret'), (3, 'acme', 'acme two');
             CREATE TABLE leaky (id INTEGER PRIMARY KEY, org_id TEXT, body TEXT);",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let yaml = std::fs::read_to_string(&file).unwrap();
    // A column that names the organisation cannot be served as a parameter.
    let leaky = yaml.replace(
        "\ntables:\n",
        "\ntables:\n  - table: leaky\n    read: [list, filter]\n",
    );
    std::fs::write(&file, &leaky).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("column 'org_id' of 'leaky' cannot be served")
            && err.contains("tenant_column"),
        "{err}"
    );
    let shared = yaml.replace(
        "\ntables:\n",
        "\ntables:\n  - table: notes\n    tenant_column: org\n    read: [list, get, filter, count]\n    count_by: [body]\n    write: [insert, update, delete, ingest]\n",
    );
    std::fs::write(&file, &shared).unwrap();
    let out = run(&["check", "-p", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ana = add_member(
        &file,
        "ana@acme.example",
        "admin",
        "mcp:read mcp:write",
        false,
    );
    let server = Server::start(&file);
    let mut s = server.session_as(&ana).await;
    let listed = body(&s.call("list_notes", json!({})).await);
    assert_eq!(
        listed["rows"],
        json!([{"id": 1, "body": "acme one"}, {"id": 3, "body": "acme two"}])
    );
    refused(
        &s.call("get_notes", json!({"id": 2})).await,
        "found nothing",
    );
    refused(
        &s.call("filter_notes", json!({"org": "globex"})).await,
        "unknown parameter",
    );
    let counted = body(&s.call("count_notes_by", json!({"column": "body"})).await);
    assert_eq!(counted["row_count"], 2, "{counted}");
    let r = s
        .call_confirmed("update_notes", json!({"id": 2, "body": "mine now"}))
        .await;
    assert!(
        text(&r).contains("rows_affected\":0") || text(&r).contains("0 row(s)"),
        "{}",
        text(&r)
    );
    let r = s.call_confirmed("delete_notes", json!({"id": 2})).await;
    assert!(!text(&r).contains("globex"), "{}", text(&r));
    let r = s
        .call_confirmed("insert_notes", json!({"id": 10, "body": "new"}))
        .await;
    assert_ne!(r["isError"], true, "{}", text(&r));
    refused(
        &s.call(
            "insert_notes",
            json!({"id": 11, "body": "x", "org": "globex"}),
        )
        .await,
        "unknown parameter",
    );
    let r = s
        .call(
            "ingest_notes",
            json!({"rows": [{"id": 12, "body": "b", "org": "globex"}]}),
        )
        .await;
    refused(&r, "unknown column 'org'");
    let r = s
        .call_confirmed("ingest_notes", json!({"rows": [{"id": 12, "body": "b"}]}))
        .await;
    assert_ne!(r["isError"], true, "{}", text(&r));
    // What the database holds: globex's row untouched, the new rows acme's.
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, org, body FROM notes ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap();
    c.close().await.unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "acme".into(), "acme one".into()),
            (2, "globex".into(), "globex secret".into()),
            (3, "acme".into(), "acme two".into()),
            (10, "acme".into(), "new".into()),
            (12, "acme".into(), "b".into()),
        ]
    );
}
