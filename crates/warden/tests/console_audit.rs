//! The console's trail pages against the real binary, on SQLite and (with
//! `WARDEN_TEST_POSTGRES_URL`) PostgreSQL: a member's own activity (only theirs, whatever the
//! query says; filtered; paged by `before=` with each record once), the Admin's audit page
//! (filters with user, verification status, one record in full with script in its arguments
//! shown inert, the signed export that `warden audit verify --export` checks), and the
//! attack table: a Member or Guest on every Admin trail page (403, recorded), an export
//! without a CSRF token, another organisation's seq or slug (404).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::browser::{Browser, unescape};
use common::{PgDatabase, Server, add_member, audit_log, init_project, run};
use serde_json::{Value, json};

const SCRIPT: &str = "<script>alert('trail')</script>";

/// A project with `ana` (admin of acme, and of globex), `mo` (member) and `gus` (guest) in
/// acme, each with a password; returns the file and mo's and ana's API keys.
fn project(postgres: Option<&str>) -> (tempfile::TempDir, PathBuf, String, String) {
    let (dir, file, mut ana_key) = init_project();
    if let Some(url) = postgres {
        let yaml = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{yaml}\nstate:\n  postgres: {url}\n")).unwrap();
        ana_key = add_member(
            &file,
            "ana@acme.example",
            "admin",
            "mcp:read mcp:write",
            true,
        );
    }
    let mo_key = add_member(&file, "mo@acme.example", "member", "mcp:read", true);
    add_member(&file, "gus@acme.example", "guest", "mcp:read", true);
    cli(&file, &["org", "add", "globex", "--name", "Globex"]);
    cli(
        &file,
        &[
            "member",
            "add",
            "ana@acme.example",
            "--role",
            "admin",
            "--org",
            "globex",
        ],
    );
    (dir, file, mo_key, ana_key)
}

async fn on_each_backend<F, Fut>(test_name: &str, test: F)
where
    F: Fn(PathBuf, String, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let (_d, file, mo, ana) = project(None);
    eprintln!("--- sqlite");
    test(file, mo, ana).await;
    if let Some(db) = PgDatabase::create(&format!("console_audit_{test_name}")).await {
        let (_d, file, mo, ana) = project(Some(&db.url));
        eprintln!("--- postgres");
        test(file, mo, ana).await;
    }
}

fn cli(file: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-p", file.to_str().unwrap()]);
    let out = run(&all);
    assert!(
        out.status.success(),
        "warden {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field(html: &str, name: &str) -> Option<String> {
    common::browser::field(html, name, None)
}

/// The seq in the first cell of each row of the page's table.
fn seqs(html: &str) -> Vec<i64> {
    let Some(body) = html.find("<tbody>").map(|i| &html[i..]) else {
        return Vec::new();
    };
    let body = &body[..body.find("</tbody>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let cell = &row[row.find("<td>").unwrap() + 4..];
            let cell = &cell[..cell.find("</td>").unwrap()];
            let text: String = cell
                .split('>')
                .map(|p| p.split('<').next().unwrap_or(""))
                .collect();
            text.trim().parse().unwrap()
        })
        .collect()
}

/// The "Older" link, if the page has one.
fn older(html: &str) -> Option<String> {
    let end = html.find("\" rel=\"next\"")?;
    let start = html[..end].rfind("href=\"")? + 6;
    Some(unescape(&html[start..end]))
}

impl Browser {
    /// Every seq a trail page lists, following "Older" to the end; each page checked.
    async fn walk(&mut self, first: &str) -> (Vec<i64>, usize) {
        let (mut all, mut pages) = (Vec::new(), 0);
        let mut next = Some(first.to_string());
        while let Some(path) = next {
            let p = self.get(&path).await;
            assert_eq!(p.status, 200, "{path}: {}", p.body);
            assert!(!p.body.contains("<script"), "{}", p.body);
            let s = seqs(&p.body);
            assert!(s.windows(2).all(|w| w[0] > w[1]), "newest first: {s:?}");
            all.extend(s);
            pages += 1;
            next = older(&p.body);
        }
        (all, pages)
    }
}

/// mo's calls: `n` searches with script in the query, and two vendor details.
async fn mo_calls(server: &Server, key: &str, n: usize) {
    let mut s = Server::attach(server.url.clone())
        .with_bearer(key)
        .session()
        .await;
    for _ in 0..n {
        s.call("search_vendors", json!({"query": SCRIPT})).await;
    }
    for _ in 0..2 {
        s.call("vendor_detail", json!({"vendor_id": "V-001"})).await;
    }
}

/// The seqs of acme's records whose user id is `user_id`, per `warden log`.
fn acme_seqs_of(file: &Path, user_id: &str) -> BTreeSet<i64> {
    audit_log(file, &["--org", "acme"])
        .iter()
        .filter(|r| r["user_id"] == user_id)
        .map(|r| r["seq"].as_i64().unwrap())
        .collect()
}

fn id_of(file: &Path, email: &str) -> String {
    audit_log(file, &["--org", "acme", "--user", email])
        .iter()
        .find_map(|r| r["user_id"].as_str().map(str::to_string))
        .unwrap()
}

#[tokio::test]
async fn a_member_sees_only_their_own_activity_filtered_and_paged() {
    on_each_backend("activity", |file, mo_key, ana_key| async move {
        let server = Server::start(&file);
        mo_calls(&server, &mo_key, 60).await;
        // Ana's calls are in the same chain, and never on mo's page.
        let mut a = Server::attach(server.url.clone())
            .with_bearer(ana_key)
            .session()
            .await;
        a.call("vendor_detail", json!({"vendor_id": "V-002"})).await;

        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let mo_id = id_of(&file, "mo@acme.example");
        let ana_id = id_of(&file, "ana@acme.example");
        let (seen, pages) = mo.walk("/console/activity?org=acme").await;
        assert!(pages >= 2, "more than one page of 50");
        let unique: BTreeSet<i64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "each record once across pages");
        assert_eq!(unique, acme_seqs_of(&file, &mo_id));
        assert!(unique.is_disjoint(&acme_seqs_of(&file, &ana_id)));

        // A user in the query is ignored: still mo's own.
        let (as_ana, _) = mo
            .walk("/console/activity?org=acme&user=ana%40acme.example")
            .await;
        assert_eq!(as_ana, seen);

        // Filters narrow: only the two vendor details.
        let (details, _) = mo
            .walk("/console/activity?org=acme&tool=vendor_detail&status=ok")
            .await;
        assert_eq!(details.len(), 2, "{details:?}");
        let p = mo
            .get("/console/activity?org=acme&event=no_such_event")
            .await;
        assert!(p.body.contains("None of your records"), "{}", p.body);
        let p = mo.get("/console/activity?org=acme&since=yesterday").await;
        assert_eq!(p.status, 400, "{}", p.body);
        let p = mo
            .get("/console/activity?org=acme&since=2000-01-01&until=2000-01-02")
            .await;
        assert!(seqs(&p.body).is_empty());

        // The page links to itself, and to the audit page only for an Admin.
        let page = mo.get("/console?org=acme").await.body;
        assert!(page.contains("/console/activity?org=acme"), "{page}");
        assert!(!page.contains("/console/admin/audit"), "{page}");
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let page = ana.get("/console?org=acme").await.body;
        assert!(page.contains("/console/admin/audit?org=acme"), "{page}");

        // A guest with nothing recorded yet sees why the page is empty.
        let mut gus = Browser::sign_in(&server, "gus@acme.example").await;
        let p = gus.get("/console/activity?org=acme").await;
        assert_eq!(p.status, 200);
        assert!(
            seqs(&p.body)
                .iter()
                .all(|s| acme_seqs_of(&file, &id_of(&file, "gus@acme.example")).contains(s))
        );
        // Another organisation's trail is not the member's to read.
        assert_eq!(mo.get("/console/activity?org=globex").await.status, 404);
    })
    .await;
}

#[tokio::test]
async fn an_admin_reads_verifies_and_exports_the_trail() {
    on_each_backend("admin", |file, mo_key, _ana_key| async move {
        let server = Server::start(&file);
        mo_calls(&server, &mo_key, 3).await;
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let p = ana.get("/console/admin/audit?org=acme").await;
        assert_eq!(p.status, 200, "{}", p.body);
        assert!(p.body.contains("Chain verified"), "{}", p.body);
        assert!(!p.body.contains("<script"), "{}", p.body);
        let viewed = audit_log(&file, &["--event", "console_audit_viewed"]);
        assert!(!viewed.is_empty() && viewed.iter().all(|r| r["source"] == "console"));

        // Filter by user and tool: exactly mo's searches.
        let mo_id = id_of(&file, "mo@acme.example");
        let (searches, _) = ana
            .walk("/console/admin/audit?org=acme&user=mo%40acme.example&tool=search_vendors")
            .await;
        let expected: BTreeSet<i64> =
            audit_log(&file, &["--org", "acme", "--tool", "search_vendors"])
                .iter()
                .filter(|r| r["user_id"] == mo_id.as_str())
                .map(|r| r["seq"].as_i64().unwrap())
                .collect();
        assert_eq!(searches.len(), 3);
        assert_eq!(searches.iter().copied().collect::<BTreeSet<_>>(), expected);
        // By id works the same.
        let (by_id, _) = ana
            .walk(&format!(
                "/console/admin/audit?org=acme&user={mo_id}&tool=search_vendors"
            ))
            .await;
        assert_eq!(by_id, searches);

        // One record in full: the script in its arguments is shown inert.
        let seq = searches[0];
        let r = ana
            .get(&format!("/console/admin/audit/record?org=acme&seq={seq}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(!r.body.contains("<script"), "{}", r.body);
        assert!(r.body.contains("&lt;script&gt;alert("), "{}", r.body);
        assert!(r.body.contains("search_vendors"));

        // Another organisation's seq is not found in this one: globex's chain is short.
        let r = ana
            .get(&format!("/console/admin/audit/record?org=globex&seq={seq}"))
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        let r = ana
            .get("/console/admin/audit/record?org=acme&seq=not-a-number")
            .await;
        assert_eq!(r.status, 404);

        // The signed export, as one file that `warden audit verify --export` checks.
        // (Each audit page sets a new CSRF cookie: the form of the latest page is the one.)
        let p = ana.get("/console/admin/audit?org=acme").await;
        let csrf = field(&p.body, "csrf_token").unwrap();
        let e = ana
            .post(
                "/console/admin/audit/export",
                &[("csrf_token", &csrf), ("org", "acme")],
            )
            .await;
        assert_eq!(e.status, 200, "{}", e.body);
        let disposition = e.headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"warden-audit-acme-"),
            "{disposition}"
        );
        let manifest: Value = serde_json::from_str(e.body.lines().next().unwrap()).unwrap();
        assert_eq!(manifest["chains"][0]["chain"], "acme");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export.jsonl");
        std::fs::write(&path, &e.bytes).unwrap();
        let key = manifest["public_key"].as_str().unwrap();
        let out = run(&[
            "audit",
            "verify",
            "--export",
            path.to_str().unwrap(),
            "--public-key",
            key,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("acme: OK"), "{stdout}");
        // A changed record breaks it.
        let tampered = e.body.replacen("search_vendors", "search_vendorz", 1);
        std::fs::write(&path, tampered).unwrap();
        let out = run(&[
            "audit",
            "verify",
            "--export",
            path.to_str().unwrap(),
            "--public-key",
            key,
        ]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("BROKEN"));
        // The export is on the record, by ana, in acme's chain.
        let exports = audit_log(&file, &["--org", "acme", "--event", "console_audit_export"]);
        assert_eq!(exports.len(), 1, "{exports:?}");
        assert_eq!(exports[0]["source"], "console");
        assert_eq!(exports[0]["user_email"], "ana@acme.example");
    })
    .await;
}

#[tokio::test]
async fn members_on_the_admin_trail_pages_are_refused_and_recorded() {
    on_each_backend("refused", |file, _mo_key, _ana_key| async move {
        let server = Server::start(&file);
        let refused_before = audit_log(&file, &["--event", "console_refused"]).len();
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let csrf = field(&mo.get("/console?org=acme").await.body, "csrf_token").unwrap();
        for path in [
            "/console/admin/audit?org=acme",
            "/console/admin/audit?org=acme&user=ana%40acme.example",
            "/console/admin/audit/record?org=acme&seq=1",
        ] {
            let p = mo.get(path).await;
            assert_eq!(p.status, 403, "{path}: {}", p.body);
        }
        let p = mo
            .post(
                "/console/admin/audit/export",
                &[("csrf_token", &csrf), ("org", "acme")],
            )
            .await;
        assert_eq!(p.status, 403, "{}", p.body);
        let mut gus = Browser::sign_in(&server, "gus@acme.example").await;
        assert_eq!(gus.get("/console/admin/audit?org=acme").await.status, 403);
        let refused: Vec<Value> = audit_log(&file, &["--event", "console_refused"]);
        assert_eq!(refused.len(), refused_before + 5, "{refused:?}");
        assert!(refused.iter().all(|r| r["source"] == "console"));
        assert!(audit_log(&file, &["--event", "console_audit_export"]).is_empty());

        // No CSRF token, or someone else's organisation: no export.
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let p = ana
            .post("/console/admin/audit/export", &[("org", "acme")])
            .await;
        assert_eq!(p.status, 403);
        let csrf = field(&ana.get("/console?org=acme").await.body, "csrf_token").unwrap();
        let p = ana
            .post(
                "/console/admin/audit/export",
                &[("csrf_token", &csrf), ("org", "initech")],
            )
            .await;
        assert_eq!(p.status, 404);
        assert_eq!(
            ana.get("/console/admin/audit?org=initech").await.status,
            404
        );
        assert!(audit_log(&file, &["--event", "console_audit_export"]).is_empty());
        // Not signed in: to the sign-in page.
        let anon = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!(
                "{}/console/admin/audit?org=acme",
                server.url.trim_end_matches("/mcp")
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 303);
    })
    .await;
}
