//! The web console against the real binary, as a browser without JavaScript uses it: signed in
//! through `/login` with its CSRF token, on SQLite and (with `WARDEN_TEST_POSTGRES_URL`) on
//! PostgreSQL. Each action is checked outside the browser too: a revoked or regenerated key,
//! or a revoked app's token, gets 401 at `/mcp` on its next request, and `warden log` holds
//! the change with source `console`. The attack table: no or a wrong CSRF token, another
//! member's key or app, an organisation that is not the person's, a Member on the Admin page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::browser::{Browser, Page, field};
use common::{PASSWORD, PgDatabase, Server, add_member, audit_log, init_project, run};
use serde_json::{Value, json};
use warden_auth::pkce::challenge_s256;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc7636-and-then-some";

/// Runs `test` on a SQLite project, then on a PostgreSQL one when the URL is set. The project
/// has `ana` (admin), `mo` (member) and `gus` (guest) in `acme`, each with a password and an
/// API key named `tests`; `ana` is also in `globex`.
async fn on_each_backend<F, Fut>(test_name: &str, test: F)
where
    F: Fn(PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    let (_d, file) = project(None);
    eprintln!("--- sqlite");
    test(file).await;
    if let Some(db) = PgDatabase::create(&format!("console_{test_name}")).await {
        let (_d, file) = project(Some(&db.url));
        eprintln!("--- postgres");
        test(file).await;
    }
}

fn project(postgres: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let (dir, file, _) = init_project();
    if let Some(url) = postgres {
        let yaml = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{yaml}\nstate:\n  postgres: {url}\n")).unwrap();
        // `init_project` put its admin in the SQLite store; this one starts empty.
        add_member(
            &file,
            "ana@acme.example",
            "admin",
            "mcp:read mcp:write",
            true,
        );
    }
    add_member(&file, "mo@acme.example", "member", "mcp:read", true);
    add_member(&file, "gus@acme.example", "guest", "mcp:read", true);
    cli(&file, &["org", "add", "globex", "--name", "Globex"]);
    cli(
        &file,
        &[
            "member",
            "add",
            "ana@acme.example",
            "--role",
            "member",
            "--org",
            "globex",
        ],
    );
    (dir, file)
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

/// A CLI command's output, whatever its exit status (`warden why` exits 2 for a denial).
fn cli_status(file: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["-p", file.to_str().unwrap()]);
    String::from_utf8(run(&all).stdout).unwrap()
}

/// The console's records in the trail, of `kind`.
fn console_records(file: &Path, kind: &str) -> Vec<Value> {
    audit_log(file, &["--event", kind])
        .into_iter()
        .filter(|r| r["source"] == "console")
        .collect()
}

fn detail(r: &Value) -> Value {
    serde_json::from_str(r["detail"].as_str().unwrap()).unwrap()
}

/// The secret a key page shows once.
fn secret(html: &str) -> String {
    let start = html.find("id=\"secret\">").unwrap() + "id=\"secret\">".len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_string()
}

impl Browser {
    /// The console page of `org` (the first organisation when `None`), checked to be one.
    async fn console(&mut self, org: Option<&str>) -> String {
        let path = match org {
            Some(o) => format!("/console?org={o}"),
            None => "/console".to_string(),
        };
        let p = self.get(&path).await;
        assert_eq!(p.status, 200, "{}", p.body);
        p.body
    }

    /// Posts a console form with the CSRF token of a fresh console page.
    async fn act(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let page = self.console(None).await;
        let csrf = field(&page, "csrf_token", None).unwrap();
        let mut all = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(form);
        self.post(path, &all).await
    }

    /// The status of an MCP `initialize` with this bearer.
    async fn mcp_status(&self, bearer: &str) -> u16 {
        self.http
            .post(&self.mcp)
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Connects an app through the real OAuth flow as the signed-in person (consenting in
    /// `acme`) and returns its access token.
    async fn connect_app(&mut self, name: &str) -> String {
        let r = self
            .http
            .post(format!("{}/register", self.base))
            .json(&json!({"redirect_uris": [REDIRECT], "client_name": name, "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let client_id = r.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        let challenge = challenge_s256(VERIFIER);
        let params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "mcp:read"),
        ];
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let consent = self.get(&format!("/authorize?{query}")).await;
        assert_eq!(consent.status, 200);
        let csrf = field(&consent.body, "csrf_token", None).unwrap();
        let seal = field(&consent.body, "consent_seal", None).unwrap();
        let mut form = params.clone();
        form.extend([
            ("csrf_token", csrf.as_str()),
            ("consent_seal", seal.as_str()),
            ("org", "acme"),
            ("decision", "allow"),
        ]);
        let r = self.post("/authorize", &form).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let loc = url::Url::parse(&r.location()).unwrap();
        let code = loc
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", VERIFIER),
                ("redirect_uri", REDIRECT),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The id of the active key named `name` on a console page.
fn key_id(page: &str, name: &str) -> String {
    let row = page
        .find(&format!("<td>{name}</td>"))
        .unwrap_or_else(|| panic!("no key {name} in {page}"));
    field(&page[row..], "key", None).unwrap()
}

#[tokio::test]
async fn signing_in_leads_to_the_console_and_its_pages_are_not_framed_or_kept() {
    on_each_backend("sign_in", |file| async move {
        let server = Server::start(&file);
        // Not signed in: to the sign-in page, which continues only to Warden's own pages.
        let mut b = Browser::new(&server);
        let r = b.get("/console?org=acme").await;
        assert_eq!(r.status, 303);
        assert_eq!(r.location(), "/login?continue=%2Fconsole%3Forg%3Dacme");
        for evil in [
            "https://evil.example/",
            "//evil.example/console",
            "/console//evil.example",
            "/console\\evil",
            "/elsewhere",
        ] {
            let q = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("continue", evil)
                .finish();
            let page = b.get(&format!("/login?{q}")).await;
            assert_eq!(page.status, 200, "{evil}");
            assert_eq!(
                field(&page.body, "continue", None).unwrap(),
                "/console",
                "{evil}"
            );
        }
        // A POST without a session changes nothing and asks to sign in.
        let r = b.post("/console/keys", &[("name", "x")]).await;
        assert_eq!(r.status, 403, "no CSRF cookie, no session");

        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let page = ana.get("/console").await;
        assert_eq!(page.status, 200);
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            csp.contains("script-src 'self';"),
            "only the console's own script file may run: {csp}"
        );
        let script_src: Vec<&str> = csp
            .split(';')
            .map(str::trim)
            .filter(|d| d.starts_with("script-src"))
            .collect();
        assert_eq!(script_src, ["script-src 'self'"], "no inline script: {csp}");
        assert_eq!(page.headers["x-frame-options"], "DENY");
        assert_eq!(page.headers["cache-control"], "no-store");
        assert!(!page.body.contains("<script"), "{}", page.body);
        assert!(page.body.contains("Your access to Acme"), "{}", page.body);
        assert!(page.body.contains("<td>tests</td>"), "{}", page.body);
        assert!(page.body.contains("No app is connected"), "{}", page.body);
        // Her other organisation, by the selector; one she is not in, refused.
        assert!(
            ana.console(Some("globex"))
                .await
                .contains("Your access to Globex")
        );
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        assert_eq!(mo.get("/console?org=globex").await.status, 404);
        assert_eq!(mo.get("/console?org=nowhere").await.status, 404);
        // Signed in, /login goes straight on.
        let r = mo.get("/login?continue=%2Fconsole").await;
        assert_eq!(r.status, 303);
        assert_eq!(r.location(), "/console");
    })
    .await;
}

#[tokio::test]
async fn keys_are_created_revoked_and_regenerated_and_old_secrets_stop_at_once() {
    on_each_backend("keys", |file| async move {
        let server = Server::start(&file);
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        // Create: the secret is shown once, works at once, and is nowhere else.
        let created = mo
            .act(
                "/console/keys",
                &[
                    ("org", "acme"),
                    ("name", "laptop"),
                    ("scopes", "mcp:read mcp:write"),
                ],
            )
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        assert_eq!(created.headers["cache-control"], "no-store");
        let first = secret(&created.body);
        assert!(first.starts_with("wdn_"), "{first}");
        assert_eq!(mo.mcp_status(&first).await, 200);
        let page = mo.console(None).await;
        assert!(!page.contains(&first), "the secret is shown only once");
        assert!(page.contains("mcp:read mcp:write"), "{page}");
        let laptop = key_id(&page, "laptop");

        // Regenerate: a new secret, the old one refused on its very next request.
        let regenerated = mo
            .act(
                "/console/keys/regenerate",
                &[("org", "acme"), ("key", &laptop)],
            )
            .await;
        assert_eq!(regenerated.status, 200, "{}", regenerated.body);
        let second = secret(&regenerated.body);
        assert_ne!(first, second);
        assert_eq!(mo.mcp_status(&first).await, 401);
        assert_eq!(mo.mcp_status(&second).await, 200);
        let page = mo.console(None).await;
        let new_laptop = key_id(&page, "laptop");
        assert_ne!(new_laptop, laptop);
        assert!(
            page.contains("revoked "),
            "the old key is listed as revoked: {page}"
        );

        // Revoke: refused on its next request; a second revoke finds nothing.
        let r = mo
            .act(
                "/console/keys/revoke",
                &[("org", "acme"), ("key", &new_laptop)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(r.location(), "/console?org=acme&done=key_revoked");
        assert_eq!(mo.mcp_status(&second).await, 401);
        let again = mo
            .act(
                "/console/keys/revoke",
                &[("org", "acme"), ("key", &new_laptop)],
            )
            .await;
        assert_eq!(again.status, 404);

        // A bad name or scope is explained, and nothing is made.
        for (name, scopes) in [("", "mcp:read"), ("x", "mcp:write"), ("x", "admin")] {
            let r = mo
                .act(
                    "/console/keys",
                    &[("org", "acme"), ("name", name), ("scopes", scopes)],
                )
                .await;
            assert_eq!(r.status, 400, "{name:?} {scopes:?}");
        }

        // Each change is on the record once, with source console, naming who and what.
        let made = console_records(&file, "key_created");
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(made[0]["user_email"], "mo@acme.example");
        assert_eq!(made[0]["org"], "acme");
        assert_eq!(made[0]["auth_method"], "session");
        assert_eq!(detail(&made[0])["key"], laptop.as_str());
        let regen = console_records(&file, "key_regenerated");
        assert_eq!(regen.len(), 1, "one record links both keys: {regen:?}");
        assert_eq!(detail(&regen[0])["old_key"], laptop.as_str());
        assert_eq!(detail(&regen[0])["new_key"], new_laptop.as_str());
        let revoked = console_records(&file, "key_revoked");
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(detail(&revoked[0])["key"], new_laptop.as_str());
        // The secrets never reach the trail.
        let all = serde_json::to_string(&audit_log(&file, &[])).unwrap();
        assert!(!all.contains(&first) && !all.contains(&second));
        let log = server.log.lock().unwrap().join("\n");
        assert!(!log.contains(&first) && !log.contains(&second));
    })
    .await;
}

#[tokio::test]
async fn a_member_revokes_their_connected_app_and_its_token_stops() {
    on_each_backend("apps", |file| async move {
        let server = Server::start(&file);
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let token = mo.connect_app("Notes <b>Assistant</b>").await;
        let other = mo.connect_app("Second App").await;
        assert_eq!(mo.mcp_status(&token).await, 200);
        let page = mo.console(None).await;
        // A client's name is shown inert.
        assert!(
            page.contains("Notes &lt;b&gt;Assistant&lt;&#x2f;b&gt;"),
            "{page}"
        );
        assert!(
            page.contains("not recorded"),
            "last use is not invented: {page}"
        );
        let row = page.find("Notes &lt;b&gt;").unwrap();
        let grant = field(&page[row..], "grant", None).unwrap();
        let r = mo
            .act(
                "/console/apps/revoke",
                &[("org", "acme"), ("grant", &grant)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(mo.mcp_status(&token).await, 401);
        assert_eq!(
            mo.mcp_status(&other).await,
            200,
            "the other app is untouched"
        );
        assert!(!mo.console(None).await.contains("Notes &lt;b&gt;"));
        let rec = console_records(&file, "app_revoked");
        assert_eq!(rec.len(), 1, "{rec:?}");
        assert_eq!(rec[0]["user_email"], "mo@acme.example");
        assert_eq!(detail(&rec[0])["grant"], grant.as_str());
    })
    .await;
}

#[tokio::test]
async fn console_attacks_are_refused_and_change_nothing() {
    on_each_backend("attacks", |file| async move {
        let server = Server::start(&file);
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let ana_token = ana.connect_app("Ana's App").await;
        let page = ana.console(None).await;
        let ana_key = key_id(&page, "tests");
        let ana_grant = field(&page, "grant", None).unwrap();
        let ana_secret = ana
            .act(
                "/console/keys",
                &[("org", "acme"), ("name", "ana2"), ("scopes", "mcp:read")],
            )
            .await;
        let ana_secret = secret(&ana_secret.body);
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let mo_page = mo.console(None).await;
        let mo_key = key_id(&mo_page, "tests");
        let mo_csrf = field(&mo_page, "csrf_token", None).unwrap();
        let before = audit_log(&file, &[]).len();

        // CSRF: missing, wrong, or a token without its cookie: 403, nothing changed.
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("missing", vec![("org", "acme"), ("key", &mo_key)]),
            (
                "empty",
                vec![("csrf_token", ""), ("org", "acme"), ("key", &mo_key)],
            ),
            (
                "wrong",
                vec![
                    ("csrf_token", "wdn_csrf_forged"),
                    ("org", "acme"),
                    ("key", &mo_key),
                ],
            ),
        ];
        for (what, form) in &cases {
            for path in ["/console/keys/revoke", "/console/keys/regenerate"] {
                let r = mo.post(path, form).await;
                assert_eq!(r.status, 403, "{what} CSRF token on {path}");
            }
        }
        let mut no_cookie = Browser::new(&server);
        no_cookie.jar = mo.jar.clone();
        no_cookie.jar.retain(|k, _| !k.contains("csrf"));
        let r = no_cookie
            .post(
                "/console/keys/revoke",
                &[("csrf_token", &mo_csrf), ("org", "acme"), ("key", &mo_key)],
            )
            .await;
        assert_eq!(r.status, 403, "a token without its cookie");
        assert!(mo.console(None).await.contains("<td>active</td>"));
        // Each forged form is on the record, naming the signed-in person.
        let forged: Vec<_> = console_records(&file, "console_refused")
            .into_iter()
            .filter(|r| r["rule"] == "console.csrf")
            .collect();
        assert_eq!(forged.len(), 7, "{forged:?}");
        assert!(forged.iter().all(|r| r["user_email"] == "mo@acme.example"));
        let before = before + 7;

        // Another member's key or app: not found, nothing changed.
        for (path, form) in [
            (
                "/console/keys/revoke",
                [("org", "acme"), ("key", ana_key.as_str())],
            ),
            (
                "/console/keys/regenerate",
                [("org", "acme"), ("key", ana_key.as_str())],
            ),
            (
                "/console/apps/revoke",
                [("org", "acme"), ("grant", ana_grant.as_str())],
            ),
            (
                "/console/keys/revoke",
                [("org", "acme"), ("key", "not-an-id")],
            ),
        ] {
            let r = mo.act(path, &form).await;
            assert_eq!(r.status, 404, "{path} {form:?}: {}", r.body);
        }
        // An organisation that is not theirs: refused before anything is looked up.
        let r = mo
            .act(
                "/console/keys/revoke",
                &[("org", "globex"), ("key", &ana_key)],
            )
            .await;
        assert_eq!(r.status, 404);
        // Each reach for another's object is on the record, and nothing else is.
        assert_eq!(audit_log(&file, &[]).len(), before + 4);
        let refused: Vec<_> = console_records(&file, "console_refused")
            .into_iter()
            .filter(|r| r["rule"] != "console.csrf")
            .collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        for r in &refused {
            assert_eq!(r["decision"], "denied");
            assert_eq!(r["rule"], "console.not_found");
            assert_eq!(r["user_email"], "mo@acme.example");
        }
        assert_eq!(mo.mcp_status(&ana_token).await, 200);
        assert_eq!(mo.mcp_status(&ana_secret).await, 200);

        // A Member on the Admin pages: 403, recorded; the role unchanged.
        assert_eq!(mo.get("/console/admin/members").await.status, 403);
        let gus_id = {
            let admin_page = ana.get("/console/admin/members").await;
            assert_eq!(admin_page.status, 200);
            let row = admin_page.body.find("gus@acme.example").unwrap();
            field(&admin_page.body[row..], "user", None).unwrap()
        };
        let r = mo
            .act(
                "/console/admin/members/role",
                &[("org", "acme"), ("user", &gus_id), ("role", "admin")],
            )
            .await;
        assert_eq!(r.status, 403);
        let r = mo
            .act(
                "/console/admin/members/remove",
                &[("org", "acme"), ("user", &gus_id)],
            )
            .await;
        assert_eq!(r.status, 403);
        let members = cli(&file, &["member", "list", "--org", "acme"]);
        assert!(
            members
                .lines()
                .any(|l| l.starts_with("gus@acme.example") && l.contains("guest")),
            "{members}"
        );
        let refused: Vec<Value> = console_records(&file, "console_refused")
            .into_iter()
            .filter(|r| r["rule"] == "console.admin_only")
            .collect();
        assert_eq!(refused.len(), 3, "{refused:?}");
        for r in &refused {
            assert_eq!(r["decision"], "denied");
            assert_eq!(r["user_email"], "mo@acme.example");
            assert_eq!(r["rule"], "console.admin_only");
        }
    })
    .await;
}

#[tokio::test]
async fn an_admin_changes_a_role_and_removes_a_member_as_the_cli_does() {
    on_each_backend("members", |file| async move {
        let server = Server::start(&file);
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let mo_token = mo.connect_app("Mo's App").await;
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let page = ana.get("/console/admin/members").await;
        assert_eq!(page.status, 200);
        let id_of = |email: &str| {
            let row = page.body.find(email).unwrap();
            field(&page.body[row..], "user", None).unwrap()
        };
        let (gus, mo_id) = (id_of("gus@acme.example"), id_of("mo@acme.example"));
        let csrf = field(&page.body, "csrf_token", None).unwrap();

        let r = ana
            .post(
                "/console/admin/members/role",
                &[
                    ("csrf_token", &csrf),
                    ("org", "acme"),
                    ("user", &gus),
                    ("role", "member"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        // Removal first says exactly what it will do, and does nothing yet.
        let r = ana
            .post(
                "/console/admin/members/remove",
                &[("csrf_token", &csrf), ("org", "acme"), ("user", &mo_id)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains("Remove mo@acme.example from Acme?"),
            "{}",
            r.body
        );
        assert!(r.body.contains("revoked at once"));
        assert_eq!(ana.mcp_status(&mo_token).await, 200, "not removed yet");
        let csrf = field(&r.body, "csrf_token", None).unwrap();
        let r = ana
            .post(
                "/console/admin/members/remove",
                &[
                    ("csrf_token", &csrf),
                    ("org", "acme"),
                    ("user", &mo_id),
                    ("confirmed", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let members = cli(&file, &["member", "list", "--org", "acme"]);
        assert!(
            members
                .lines()
                .any(|l| l.starts_with("gus@acme.example") && l.contains("member")),
            "{members}"
        );
        assert!(!members.contains("mo@acme.example"), "{members}");
        assert_eq!(
            ana.mcp_status(&mo_token).await,
            401,
            "removal revokes the apps"
        );
        // An Admin cannot change their own membership here.
        // Her own row has no forms; her id is in her sign-in's record.
        let me = audit_log(&file, &["--event", "login_succeeded"])
            .into_iter()
            .find(|r| r["user_email"] == "ana@acme.example")
            .unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = ana
            .act(
                "/console/admin/members/role",
                &[("org", "acme"), ("user", &me), ("role", "guest")],
            )
            .await;
        assert_eq!(r.status, 400);

        let changed = console_records(&file, "role_changed");
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(changed[0]["user_email"], "ana@acme.example");
        assert_eq!(changed[0]["action"], "gus@acme.example");
        assert_eq!(detail(&changed[0])["from"], "guest");
        assert_eq!(detail(&changed[0])["to"], "member");
        let removed = console_records(&file, "member_removed");
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(detail(&removed[0])["grants_revoked"], 1);
    })
    .await;
}

/// Moves the last proof of the password of `b`'s session an hour back, as if the person
/// had signed in long ago.
async fn age_sign_in(file: &Path, b: &Browser) {
    let project = warden_core::project::load_file_offline(file).unwrap();
    let store = match &project.auth.state {
        warden_core::project::DataLocation::Sqlite(path) => {
            warden_store::Store::open_sqlite(path).await.unwrap()
        }
        warden_core::project::DataLocation::Postgres(url) => {
            warden_store::Store::connect(url).await.unwrap()
        }
    };
    let raw = b
        .jar
        .iter()
        .find(|(k, _)| k.contains("session"))
        .map(|(_, v)| v.clone())
        .unwrap();
    let hash = warden_auth::token::RawToken::from_client(&raw).hash();
    let then = chrono::Utc::now() - chrono::Duration::hours(1);
    assert!(
        store
            .reauthenticate_session(hash.as_str(), then)
            .await
            .unwrap()
    );
    store.close().await;
}

#[tokio::test]
async fn a_stale_sign_in_must_confirm_the_password_before_a_destructive_action() {
    on_each_backend("stale", |file| async move {
        let server = Server::start(&file);
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let page = ana.console(None).await;
        let key = key_id(&page, "tests");
        let created = ana
            .act(
                "/console/keys",
                &[("org", "acme"), ("name", "old"), ("scopes", "mcp:read")],
            )
            .await;
        let old_secret = secret(&created.body);
        let old_key = key_id(&ana.console(None).await, "old");
        age_sign_in(&file, &ana).await;

        // Regenerate, create a key, remove a member: each asks for the password, and does
        // nothing yet.
        let mo_id = {
            let p = ana.get("/console/admin/members?org=acme").await;
            assert_eq!(p.status, 200);
            let at = p.body.find("mo@acme.example").unwrap();
            field(&p.body[at..], "user", None).unwrap()
        };
        for (path, form) in [
            (
                "/console/keys/regenerate",
                vec![("org", "acme"), ("key", old_key.as_str())],
            ),
            (
                "/console/keys",
                vec![("org", "acme"), ("name", "new"), ("scopes", "mcp:read")],
            ),
            (
                "/console/admin/members/remove",
                vec![
                    ("org", "acme"),
                    ("user", mo_id.as_str()),
                    ("confirmed", "yes"),
                ],
            ),
        ] {
            let r = ana.act(path, &form).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            assert!(r.body.contains("Confirm it is you"), "{path}: {}", r.body);
            assert!(r.body.contains("Nothing has been changed yet"));
        }
        assert_eq!(ana.mcp_status(&old_secret).await, 200, "not regenerated");
        assert!(!ana.console(None).await.contains("<td>new</td>"));
        let members = cli(&file, &["member", "list", "--org", "acme"]);
        assert!(members.contains("mo@acme.example"), "{members}");
        let refused: Vec<Value> = console_records(&file, "console_refused")
            .into_iter()
            .filter(|r| r["rule"] == "console.reauth_required")
            .collect();
        assert_eq!(refused.len(), 3, "{refused:?}");

        // Revoking never asks.
        let r = ana
            .act("/console/keys/revoke", &[("org", "acme"), ("key", &key)])
            .await;
        assert_eq!(r.status, 303, "{}", r.body);

        // A wrong password: refused and recorded; the right one, then the action again.
        let ask = ana
            .act(
                "/console/keys/regenerate",
                &[("org", "acme"), ("key", old_key.as_str())],
            )
            .await;
        let csrf = field(&ask.body, "csrf_token", None).unwrap();
        let form = |password: &'static str| {
            vec![
                ("csrf_token", csrf.clone()),
                ("then", "/console/keys/regenerate".to_string()),
                ("org", "acme".to_string()),
                ("key", old_key.clone()),
                ("password", password.to_string()),
            ]
        };
        let wrong = form("not the password");
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ana.post("/console/confirm", &wrong).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.body.contains("That password is not right"));
        assert_eq!(
            console_records(&file, "reauth_failed").len(),
            0,
            "not a console record"
        );
        let failed = audit_log(&file, &["--event", "reauth_failed"]);
        assert_eq!(failed.len(), 1, "{failed:?}");
        // The refusal page carries a new CSRF token (and cookie); the old one is spent.
        let csrf = field(&r.body, "csrf_token", None).unwrap();
        let right = form(PASSWORD)
            .into_iter()
            .map(|(k, v)| {
                if k == "csrf_token" {
                    (k, csrf.clone())
                } else {
                    (k, v)
                }
            })
            .collect::<Vec<_>>();
        let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ana.post("/console/confirm", &right).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("Regenerate the key"), "{}", r.body);
        assert_eq!(
            ana.mcp_status(&old_secret).await,
            200,
            "still not regenerated"
        );
        let csrf = field(&r.body, "csrf_token", None).unwrap();
        let r = ana
            .post(
                "/console/keys/regenerate",
                &[("csrf_token", &csrf), ("org", "acme"), ("key", &old_key)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let new_secret = secret(&r.body);
        assert_eq!(ana.mcp_status(&old_secret).await, 401);
        assert_eq!(ana.mcp_status(&new_secret).await, 200);
        assert_eq!(audit_log(&file, &["--event", "reauthenticated"]).len(), 1);

        // A confirmation cannot be aimed at anything but a console action.
        let r = ana
            .act(
                "/console/confirm",
                &[("then", "/logout"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
    })
    .await;
}

#[tokio::test]
async fn an_admin_adds_and_invites_members_and_revokes_any_key_or_app() {
    on_each_backend("admin", |file| async move {
        let server = Server::start(&file);
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let mo_token = mo.connect_app("Mo's <b>App</b>").await;
        let mo_key_id = key_id(&mo.console(None).await, "tests");
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;

        // Every key and app of the organisation, with its owner; script shown inert.
        let page = ana.get("/console/admin/access?org=acme").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            page.body.contains("Mo&#x27;s &lt;b&gt;App&lt;&#x2f;b&gt;")
                || page.body.contains("Mo&#x27;s &lt;b&gt;App&lt;/b&gt;"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<b>App</b>"));
        assert!(page.body.contains("mo@acme.example"));
        let csrf = field(&page.body, "csrf_token", None).unwrap();
        let at = page.body.find("/console/admin/apps/revoke").unwrap();
        let grant = field(&page.body[at..], "grant", None).unwrap();
        let r = ana
            .post(
                "/console/admin/apps/revoke",
                &[("csrf_token", &csrf), ("org", "acme"), ("grant", &grant)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert_eq!(mo.mcp_status(&mo_token).await, 401, "the app's token stops");
        let r = ana
            .post(
                "/console/admin/keys/revoke",
                &[("csrf_token", &csrf), ("org", "acme"), ("key", &mo_key_id)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        assert!(mo.console(None).await.contains("revoked"));
        // Ana's key in globex is not reachable from acme's page.
        let globex_page = ana.console(Some("globex")).await;
        assert!(!globex_page.contains("<td>tests</td>"));

        // Add: an existing account, then a newcomer who gets an invitation link.
        cli(
            &file,
            &[
                "user",
                "add",
                "zoe@elsewhere.example",
                "--name",
                "<script>alert(1)</script>Zoe",
            ],
        );
        let page = ana.get("/console/admin/members?org=acme").await;
        let csrf = field(&page.body, "csrf_token", None).unwrap();
        let r = ana
            .post(
                "/console/admin/members/add",
                &[
                    ("csrf_token", &csrf),
                    ("org", "acme"),
                    ("email", "zoe@elsewhere.example"),
                    ("role", "guest"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        let r = ana
            .post(
                "/console/admin/members/add",
                &[
                    ("csrf_token", &csrf),
                    ("org", "acme"),
                    ("email", "new@acme.example"),
                    ("role", "member"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("is invited to Acme"), "{}", r.body);
        let link = r
            .body
            .split("id=\"invitation\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .replace("&#x2f;", "/")
            .replace("&#x3d;", "=")
            .replace("&amp;", "&");
        let path = &link[link.find("/login/magic").unwrap()..];
        let mut newcomer = Browser::new(&server);
        let r = newcomer.get(path).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let page = newcomer.console(None).await;
        assert!(page.contains("Your access to Acme"), "{page}");
        assert!(page.contains("<strong>Member</strong>"), "{page}");
        // The link works once.
        assert_ne!(Browser::new(&server).get(path).await.status, 303);
        // Twice is refused, nothing changed.
        let r = ana
            .post(
                "/console/admin/members/add",
                &[
                    ("csrf_token", &csrf),
                    ("org", "acme"),
                    ("email", "new@acme.example"),
                    ("role", "admin"),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        let members = cli(&file, &["member", "list", "--org", "acme"]);
        assert!(
            members
                .lines()
                .any(|l| l.starts_with("new@acme.example") && l.contains("member")),
            "{members}"
        );
        assert!(
            members
                .lines()
                .any(|l| l.starts_with("zoe@elsewhere.example") && l.contains("guest")),
            "{members}"
        );
        // A user's name with script in it is shown as text.
        let page = ana.get("/console/admin/members?org=acme").await;
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<script>alert"));
        // `warden log --source` narrows to one source, as the console's Source filter does.
        let from_console = audit_log(&file, &["--source", "console"]);
        assert!(from_console.len() >= 4, "{from_console:?}");
        assert!(from_console.iter().all(|r| r["source"] == "console"));
        let from_cli = audit_log(&file, &["--source", "cli"]);
        assert!(!from_cli.is_empty());
        assert!(from_cli.iter().all(|r| r["source"] == "cli"));
        let bad = run(&["log", "-p", file.to_str().unwrap(), "--source", "email"]);
        assert!(!bad.status.success());
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("console"),
            "the error lists the sources"
        );
        for kind in [
            "member_added",
            "member_invited",
            "app_revoked",
            "key_revoked",
        ] {
            let recs = console_records(&file, kind);
            assert!(!recs.is_empty(), "{kind}");
            assert!(
                recs.iter().all(|r| r["source"] == "console"),
                "{kind}: {recs:?}"
            );
        }

        // A Member posting each Admin action, or opening an Admin page: 403, recorded.
        let mut mo = Browser::sign_in(&server, "mo@acme.example").await;
        let before = console_records(&file, "console_refused").len();
        for (path, form) in [
            (
                "/console/admin/members/add",
                vec![
                    ("org", "acme"),
                    ("email", "x@acme.example"),
                    ("role", "admin"),
                ],
            ),
            (
                "/console/admin/keys/revoke",
                vec![("org", "acme"), ("key", mo_key_id.as_str())],
            ),
            (
                "/console/admin/apps/revoke",
                vec![("org", "acme"), ("grant", grant.as_str())],
            ),
        ] {
            assert_eq!(mo.act(path, &form).await.status, 403, "{path}");
        }
        for path in ["/console/admin/access", "/console/admin/tools"] {
            assert_eq!(mo.get(path).await.status, 403, "{path}");
        }
        assert_eq!(console_records(&file, "console_refused").len(), before + 5);
        assert!(
            cli(&file, &["user", "list"])
                .lines()
                .all(|l| !l.starts_with("x@acme.example"))
        );
    })
    .await;
}

#[tokio::test]
async fn the_tools_page_shows_each_roles_access_and_answers_why() {
    on_each_backend("tools", |file| async move {
        let server = Server::start(&file);
        let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
        let page = ana.get("/console/admin/tools?org=acme").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("<th>Guest</th>"), "{}", page.body);
        assert!(page.body.contains("calls"));
        // The same answer as `warden why`.
        let project = warden_core::project::load_file_offline(&file).unwrap();
        let write = project
            .tools
            .iter()
            .find(|t| t.access == warden_core::project::Access::Write)
            .unwrap()
            .name
            .clone();
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("org", "acme"),
                ("who", "gus@acme.example"),
                ("tool", &write),
            ])
            .finish();
        let page = ana.get(&format!("/console/admin/tools?{q}")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("DENIED"), "{}", page.body);
        assert!(!page.body.contains("ALLOWED"), "{}", page.body);
        let cli_answer = cli_status(
            &file,
            &[
                "why",
                "--user",
                "gus@acme.example",
                "--tool",
                &write,
                "--org",
                "acme",
            ],
        );
        let denial = cli_answer
            .lines()
            .find(|l| l.contains("DENIED"))
            .unwrap()
            .split("DENIED ")
            .nth(1)
            .unwrap()
            .to_string();
        let shown = denial.replace('\'', "&#x27;").replace('"', "&quot;");
        assert!(page.body.contains(&shown), "{shown} not in {}", page.body);
        // Someone outside the organisation, or bad arguments: a clear error.
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("org", "acme"),
                ("who", "nobody@else.example"),
                ("tool", &write),
            ])
            .finish();
        let page = ana.get(&format!("/console/admin/tools?{q}")).await;
        assert_eq!(page.status, 400);
        assert!(
            page.body.contains("is not a member of Acme"),
            "{}",
            page.body
        );
        let q = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("org", "acme"),
                ("who", "mo@acme.example"),
                ("tool", &write),
                ("args", "[1]"),
            ])
            .finish();
        let page = ana.get(&format!("/console/admin/tools?{q}")).await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("must be a JSON object"), "{}", page.body);
    })
    .await;
}
