//! `warden check` catches what would otherwise fail only at run time: statements the
//! database rejects (checked by preparing them, read-only), a missing data file, rules that
//! name what their stage does not provide, and it lists every problem in one run. Each
//! project here is the `warden init` example with its text edited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::run;

/// A fresh `warden init` project (no state: nothing but what `init` writes).
fn example() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("p");
    let out = run(&["init", project.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, project.join("warden.yaml"))
}

/// Replaces `from` (which must be there) by `to` in the project file.
fn edit(file: &Path, from: &str, to: &str) {
    let yaml = std::fs::read_to_string(file).unwrap();
    assert!(yaml.contains(from), "{from:?} is not in the example");
    std::fs::write(file, yaml.replacen(from, to, 1)).unwrap();
}

fn check(file: &Path) -> Output {
    run(&["check", "-p", file.to_str().unwrap()])
}

/// The problems `check` listed (stderr without its closing count), after asserting it
/// failed and counted exactly `n` of them.
fn problems(out: &Output, n: usize) -> Vec<String> {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("\n{n} problem(s) found; nothing was served.")),
        "want {n} problems:\n{err}"
    );
    err.lines()
        .filter(|l| !l.contains("problem(s) found"))
        .map(str::to_string)
        .collect()
}

/// The 1-based line of the first line of the file containing `needle`, after `after`.
fn line_of(file: &Path, after: &str, needle: &str) -> usize {
    let yaml = std::fs::read_to_string(file).unwrap();
    let start = yaml.find(after).unwrap();
    let at = start + yaml[start..].find(needle).unwrap();
    yaml[..at].matches('\n').count() + 1
}

/// Every file under `dir`, with its size, sorted.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                out.push((e.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_example_project_is_ok_and_check_creates_nothing() {
    use sqlx::{ConnectOptions, Connection};
    let (_dir, file) = example();
    let root = file.parent().unwrap();
    let ok = |root: &Path| {
        let before = files(root);
        let out = check(&file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("ok (30 tools, 2 resources, 1 prompts; 29 statements prepared on "),
            "{stdout}"
        );
        assert_eq!(files(root), before, "check changed or created files");
    };
    ok(root);

    // As `serve` leaves the data file: in WAL mode, closed cleanly (so without -wal and
    // -shm files, which a read-only open would otherwise create).
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(root.join("data/vendors.db"))
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    sqlx::query("SELECT count(*) FROM vendors")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    assert!(!root.join("data/vendors.db-wal").exists());
    ok(root);
}

#[test]
fn statements_the_database_rejects_are_each_named_with_their_line() {
    let (_dir, file) = example();
    // search_vendors: a missing table; list_findings: a syntax error; portfolio_report and
    // the vendor resource: a missing column.
    edit(
        &file,
        "      FROM vendors\n      WHERE (:query IS NULL",
        "      FROM vendorz\n      WHERE (:query IS NULL",
    );
    edit(
        &file,
        "JOIN vendors v ON v.id = f.vendor_id\n      WHERE (:vendor_id",
        "JOIN vendors v OM v.id = f.vendor_id\n      WHERE (:vendor_id",
    );
    edit(
        &file,
        "ROUND(AVG(v.risk_score), 1)",
        "ROUND(AVG(v.risk_scor), 1)",
    );
    edit(
        &file,
        "FROM vendors WHERE id = :vendor_id",
        "FROM vendors WHERE idd = :vendor_id",
    );
    let out = check(&file);
    let got = problems(&out, 4);
    let at = |tool: &str, needle: &str| format!("warden.yaml:{}:", line_of(&file, tool, needle));
    let want = [
        (
            at("name: search_vendors", "      SELECT id"),
            "tools[0].sql: SQLite rejects this statement: no such table: vendorz",
        ),
        (
            at("name: list_findings", "      SELECT f.id"),
            "tools[2].sql: SQLite rejects this statement: near \"OM\": syntax error",
        ),
        (
            at("name: portfolio_report", "      SELECT v.tier"),
            "tools[3].sql: SQLite rejects this statement: no such column: v.risk_scor",
        ),
        (
            at("uri_template: \"vendor://", "      SELECT json_object"),
            "resources[0].sql: SQLite rejects this statement: no such column: idd",
        ),
    ];
    for ((line, message), got) in want.iter().zip(&got) {
        assert!(
            got.contains(line) && got.contains(message),
            "want {line} {message}\n got {got}"
        );
    }
}

#[test]
fn a_missing_data_file_is_named_and_nothing_is_created() {
    let (_dir, file) = example();
    let root = file.parent().unwrap();
    std::fs::remove_file(root.join("data/vendors.db")).unwrap();
    let line = line_of(&file, "data:", "sqlite: data/vendors.db");
    let got = problems(&check(&file), 1);
    assert!(
        got[0].contains(&format!(
            "warden.yaml:{line}:11: data.sqlite: the SQLite file "
        )) && got[0].contains("data/vendors.db does not exist"),
        "{got:?}"
    );
    assert!(!root.join(".warden").exists(), "check created .warden/");

    // `serve` refuses it too, before it creates its state store or signing key.
    let out = run(&[
        "serve",
        "-p",
        file.to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("data/vendors.db does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!root.join(".warden").exists(), "serve created .warden/");
}

#[test]
fn a_misspelt_user_field_is_named_with_its_line_and_a_guess() {
    let (_dir, file) = example();
    edit(
        &file,
        "condition: user.role != 'admin'",
        "condition: user.rol != 'admin'",
    );
    let line = line_of(&file, "name: spend-for-admins-only", "condition:");
    let got = problems(&check(&file), 1);
    assert!(
        got[0].contains(&format!("warden.yaml:{line}:")),
        "want line {line}: {got:?}"
    );
    assert!(
        got[0].contains("tools[1].policies.output[0].condition: rule 'spend-for-admins-only' reads `user.rol`, but `user` has no field `rol`; did you mean `role`?"),
        "{got:?}"
    );
}

#[test]
fn rules_that_read_user_are_refused_under_auth_none() {
    let (_dir, file) = example();
    edit(
        &file,
        "name: vendor-risk\n",
        "name: vendor-risk\nauth: none\n",
    );
    let got = problems(&check(&file), 4);
    for rule in [
        "bulk-search-admins-only",
        "spend-for-admins-only",
        "guests-see-no-owner-emails",
        "table-spend-for-admins-only",
    ] {
        assert!(
            got.iter().any(|p| p.contains(&format!(
                "rule '{rule}' reads `user`, but with `auth: none` nobody signs in"
            )) && p.contains("use `auth: oauth`")),
            "{rule}: {got:#?}"
        );
    }
}

#[test]
fn every_misspelt_field_is_reported_in_one_run() {
    let (_dir, file) = example();
    edit(
        &file,
        "    title: Search vendors\n",
        "    titel: Search vendors\n",
    );
    edit(&file, "    returns: row\n", "    retruns: row\n");
    edit(
        &file,
        "condition: user.role == 'guest'",
        "condition: user.rloe == 'guest'",
    );
    edit(
        &file,
        "condition: args.limit > 50",
        "condition: args.limt > 50",
    );
    let got = problems(&check(&file), 4);
    let line =
        |after: &str, needle: &str| format!("warden.yaml:{}:", line_of(&file, after, needle));
    for (at, what) in [
        (
            line("name: search_vendors", "titel:"),
            "unknown field `titel`; did you mean `title`?",
        ),
        (
            line("name: vendor_detail", "retruns:"),
            "unknown field `retruns`; did you mean `returns`?",
        ),
        (
            line("name: bulk-search-admins-only", "condition:"),
            "reads `args.limt`, but tool 'search_vendors' has no parameter `limt`; did you mean `limit`?",
        ),
        (
            line("name: guests-see-no-owner-emails", "condition:"),
            "reads `user.rloe`, but `user` has no field `rloe`; did you mean `role`?",
        ),
    ] {
        assert!(
            got.iter().any(|p| p.contains(&at) && p.contains(what)),
            "want {at} {what} in {got:#?}"
        );
    }
}

#[test]
fn an_unknown_parameter_type_is_exactly_one_problem() {
    let (_dir, file) = example();
    edit(
        &file,
        "      - name: limit\n        type: integer\n        minimum: 1\n        maximum: 100",
        "      - name: limit\n        type: int\n        minimum: 1\n        maximum: 100",
    );
    let got = problems(&check(&file), 1);
    assert!(
        got[0].contains("tools[0].params[3].type: unknown type 'int'; did you mean `integer`? use string, integer, number, boolean, object or array"),
        "{got:?}"
    );
}

#[tokio::test]
async fn each_organisation_database_is_prepared() {
    let (_dir, file) = example();
    let data = file.parent().unwrap().join("data");
    std::fs::copy(data.join("vendors.db"), data.join("acme.db")).unwrap();
    std::fs::rename(data.join("vendors.db"), data.join("globex.db")).unwrap();
    edit(&file, "sqlite: data/vendors.db", "sqlite: data/{org}.db");
    let out = check(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("29 statements prepared on each organisation's database (acme, globex)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // One organisation's database lacks a table: its statements that read it are named.
    {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data.join("globex.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("DROP TABLE obligations")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    // Three hand-written statements, and eight of those `tables:` generates (obligations'
    // own, and obligations_of_vendors).
    let got = problems(&check(&file), 11);
    assert!(
        got.iter()
            .all(|p| p.contains("(organisation 'globex', ")
                && p.contains("no such table: obligations")),
        "{got:#?}"
    );
}

/// PostgreSQL: statements are prepared with the types their parameters are bound with. Runs
/// when `WARDEN_TEST_POSTGRES_URL` names a server (a fresh database is made and dropped).
#[tokio::test]
async fn statements_are_prepared_on_postgres() {
    use futures::FutureExt;
    use sqlx::Connection;
    let Some(admin) = std::env::var("WARDEN_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("PostgreSQL test NOT run: set WARDEN_TEST_POSTGRES_URL");
        return;
    };
    let name = format!(
        "warden_check_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut c = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("WARDEN_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}")
        });
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut c)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    let result = std::panic::AssertUnwindSafe(async {
        let mut db = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
        sqlx::raw_sql("CREATE TABLE items (n BIGINT NOT NULL, label TEXT); INSERT INTO items VALUES (1, 'one')")
            .execute(&mut db)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("warden.yaml");
        // `:q IS NULL` needs the parameter's type, which Warden gives (text).
        std::fs::write(
            &file,
            format!(
                "version: 1\nname: pg\ndata:\n  postgres: {url}\ntools:\n  - name: good\n    description: d\n    access: read\n    params:\n      - {{ name: q, type: string }}\n      - {{ name: min, type: integer }}\n    sql: SELECT n, label FROM items WHERE (:q IS NULL OR label = :q) AND n >= coalesce(:min, 0)\n  - name: table\n    description: d\n    access: read\n    sql: SELECT n FROM itemz\n  - name: column\n    description: d\n    access: write\n    params:\n      - {{ name: n, type: integer, required: true }}\n    sql: |\n      UPDATE items\n      SET lable = 'x'\n      WHERE n = :n\n  - name: syntax\n    description: d\n    access: read\n    sql: SELECT n FROM items WHER n > 1\n  - name: wipe\n    description: d\n    access: write\n    sql: DELETE FROM items\n"
            ),
        )
        .unwrap();
        let out = check(&file);
        let got = problems(&out, 3);
        assert!(got.iter().any(|p| p.contains("tools[1].sql: PostgreSQL rejects this statement: relation \"itemz\" does not exist")), "{got:#?}");
        assert!(got.iter().any(|p| p.contains("tools[2].sql: PostgreSQL rejects this statement: column \"lable\" of relation \"items\" does not exist (line 2 of the statement)")), "{got:#?}");
        assert!(got.iter().any(|p| p.contains("tools[3].sql: PostgreSQL rejects this statement: syntax error at or near \"n\"")), "{got:#?}");
        // Prepared, never run: the write tool's DELETE removed nothing.
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(left, 1);
        db.close().await.unwrap();
    })
    .catch_unwind()
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[tokio::test]
async fn check_names_each_identity_provider_and_its_redirect_uri() {
    let (_dir, file) = example();
    edit(
        &file,
        "server:\n",
        "server:\n  public_url: https://warden.acme.example\n",
    );
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        format!("{yaml}\nlogin:\n  providers:\n    - name: corp\n      preset: keycloak\n      issuer: https://sso.acme.example/realms/acme\n      client_id: warden\n      client_secret: s\n      map:\n        - {{ when: \"true\", org: acme, role: member }}\n"),
    )
    .unwrap();
    let out = check(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sign-in: corp (keycloak, https://sso.acme.example/realms/acme, 1 mapping rule(s)); register the redirect URI https://warden.acme.example/login/sso/corp/callback"),
        "{stdout}"
    );
}

#[tokio::test]
async fn check_warns_when_a_role_would_see_more_than_40_tools() {
    let (_dir, file) = example();
    let out = check(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("warning: a"),
        "six tools: no warning: {stdout}"
    );
    let mut extra = String::new();
    for i in 0..40 {
        extra.push_str(&format!(
            "  - name: extra_{i}\n    description: An extra read tool\n    access: read\n    sql: SELECT {i} AS n\n"
        ));
    }
    edit(&file, "tools:\n", &format!("tools:\n{extra}"));
    let out = check(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a warning, not a failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("warning: a Member with read and write access is shown 70 tools; many clients take at most 40. Narrow the set"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: a Guest with read and write access is shown 64 tools"),
        "{stdout}"
    );
}
