//! The authorization server under attack, against the real binary: each case asserts the
//! exact HTTP status or OAuth error, and that nothing was issued or that what was issued
//! stopped working.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{PASSWORD, Server, add_member, init_project, run};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use warden_auth::pkce::challenge_s256;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-rfc7636-and-then-some";

struct Flow {
    base: String,
    mcp: String,
    http: reqwest::Client,
    client_id: String,
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn absorb(jar: &mut BTreeMap<String, String>, res: &reqwest::Response) {
    for c in res.headers().get_all(SET_COOKIE) {
        let c = c.to_str().unwrap();
        let kv = c.split(';').next().unwrap();
        let (k, v) = kv.split_once('=').unwrap();
        jar.insert(k.to_string(), v.to_string());
    }
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'"),
    )
}

impl Flow {
    async fn new(server: &Server) -> Flow {
        let base = server.url.trim_end_matches("/mcp").to_string();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = http
            .post(format!("{base}/register"))
            .json(&json!({"redirect_uris": [REDIRECT], "client_name": "Attack Test", "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let client_id = r.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_string();
        Flow {
            mcp: server.url.clone(),
            base,
            http,
            client_id,
        }
    }

    fn params(&self, challenge: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "st4te"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("scope", "mcp:read mcp:write"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    async fn get_authorize(
        &self,
        jar: &mut BTreeMap<String, String>,
        params: &[(String, String)],
    ) -> reqwest::Response {
        let r = self
            .http
            .get(format!("{}/authorize", self.base))
            .query(params)
            .header(COOKIE, cookie_header(jar))
            .send()
            .await
            .unwrap();
        absorb(jar, &r);
        r
    }

    /// Signs in as `email` and returns the cookie jar holding the session.
    async fn sign_in(&self, email: &str) -> BTreeMap<String, String> {
        let mut jar = BTreeMap::new();
        let page = self
            .get_authorize(&mut jar, &self.params(&challenge_s256(VERIFIER)))
            .await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let form = [
            ("csrf_token", hidden(&html, "csrf_token").unwrap()),
            ("continue", hidden(&html, "continue").unwrap()),
            ("email", email.to_string()),
            ("password", PASSWORD.to_string()),
        ];
        let r = self
            .http
            .post(format!("{}/login", self.base))
            .header(COOKIE, cookie_header(&jar))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "sign-in of {email} failed");
        absorb(&mut jar, &r);
        jar
    }

    /// Goes through consent; returns the final response (a redirect to the client, or a page).
    async fn consent(
        &self,
        jar: &mut BTreeMap<String, String>,
        params: &[(String, String)],
        write: bool,
        csrf: bool,
    ) -> reqwest::Response {
        let page = self.get_authorize(jar, params).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("Attack Test"), "{html}");
        let mut form: Vec<(String, String)> = params.to_vec();
        if csrf {
            form.push(("csrf_token".into(), hidden(&html, "csrf_token").unwrap()));
        }
        form.push((
            "consent_seal".into(),
            hidden(&html, "consent_seal").unwrap(),
        ));
        form.push(("org".into(), "acme".into()));
        form.push(("decision".into(), "allow".into()));
        if write {
            form.push(("write".into(), "1".into()));
        }
        self.http
            .post(format!("{}/authorize", self.base))
            .header(COOKIE, cookie_header(jar))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn code(&self, email: &str, write: bool) -> String {
        let mut jar = self.sign_in(email).await;
        let r = self
            .consent(
                &mut jar,
                &self.params(&challenge_s256(VERIFIER)),
                write,
                true,
            )
            .await;
        assert_eq!(r.status(), 303);
        let loc = r.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        let url = url_params(&loc);
        assert_eq!(url["state"], "st4te");
        assert_eq!(url["iss"], self.base);
        url["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert_eq!(r.headers()["cache-control"], "no-store");
        (status, r.json().await.unwrap())
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
            ("client_id", &self.client_id),
        ])
        .await
    }

    async fn refresh(&self, refresh: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &self.client_id),
        ])
        .await
    }

    /// Status of an MCP ping with this bearer.
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
}

fn url_params(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn project_with_members() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (dir, file, key) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{yaml}\ntokens:\n  code_seconds: 1\n")).unwrap();
    for (email, role) in [
        ("mo@acme.example", "member"),
        ("gus@acme.example", "guest"),
        ("aux@acme.example", "auxiliary_member"),
    ] {
        add_member(&file, email, role, "mcp:read", true);
    }
    (dir, file, key)
}

fn cli(file: &Path, args: &[&str]) {
    let mut all = args.to_vec();
    all.extend(["-p", file.to_str().unwrap()]);
    let out = run(&all);
    assert!(
        out.status.success(),
        "warden {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn authorization_requests_that_must_not_yield_a_code() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let mut jar = flow.sign_in("ana@acme.example").await;
    let good = flow.params(&challenge_s256(VERIFIER));
    let with = |k: &str, v: Option<&str>| -> Vec<(String, String)> {
        let mut p: Vec<_> = good.iter().filter(|(n, _)| n != k).cloned().collect();
        if let Some(v) = v {
            p.push((k.to_string(), v.to_string()));
        }
        p
    };
    // Reported to the client, at its registered redirect URI, with state and iss.
    let redirected: &[(&str, Option<&str>, &str)] = &[
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("code_challenge_method", None, "invalid_request"),
        ("code_challenge", None, "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
        ("scope", Some("admin:everything"), "invalid_scope"),
        (
            "resource",
            Some("https://other.example/mcp"),
            "invalid_target",
        ),
    ];
    for (param, value, error) in redirected {
        let r = flow.get_authorize(&mut jar, &with(param, *value)).await;
        assert_eq!(r.status(), 303, "{param}={value:?}");
        let loc = url_params(r.headers()[LOCATION].to_str().unwrap());
        assert_eq!(loc["error"], *error, "{param}={value:?}");
        assert_eq!(loc["state"], "st4te");
        assert!(!loc.contains_key("code"));
    }
    // Never redirected: an unknown client, or a redirect URI that is not registered.
    for (param, value) in [
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("redirect_uri", "https://evil.example/cb"),
        ("client_id", "not-a-client"),
    ] {
        let r = flow
            .get_authorize(&mut jar, &with(param, Some(value)))
            .await;
        assert_eq!(r.status(), 400, "{param}={value}");
        assert!(r.headers().get(LOCATION).is_none());
    }
    // Consent without the CSRF token: refused, no code.
    let r = flow.consent(&mut jar, &good, false, false).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get(LOCATION).is_none());
    // A cross-site form post carries no cookies at all: refused too.
    let r = flow
        .http
        .post(format!("{}/authorize", flow.base))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn token_endpoint_attack_table() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;

    // Wrong verifier: invalid_grant, and the code is spent.
    let code = flow.code("ana@acme.example", false).await;
    assert_eq!(
        flow.exchange(&code, "the-wrong-verifier-the-wrong-verifier-the-wrong")
            .await,
        (
            400,
            json!({"error": "invalid_grant", "error_description": "code_verifier does not match the code_challenge"})
        )
    );

    // Redirect URI mismatch at the token endpoint.
    let code = flow.code("ana@acme.example", false).await;
    let (s, v) = flow
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", &flow.client_id),
        ])
        .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_grant"));

    // Code replay: the first exchange works; the replay fails and kills what it issued.
    let code = flow.code("ana@acme.example", true).await;
    let (s, first) = flow.exchange(&code, VERIFIER).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["scope"], "mcp:read mcp:write");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(flow.mcp_status(access).await, 200);
    let (s, v) = flow.exchange(&code, VERIFIER).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_grant"));
    assert_eq!(flow.mcp_status(access).await, 401);
    assert_eq!(
        flow.refresh(first["refresh_token"].as_str().unwrap())
            .await
            .0,
        400
    );

    // Expired code (this project shortens codes to 1 s).
    let code = flow.code("ana@acme.example", false).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        flow.exchange(&code, VERIFIER).await,
        (
            400,
            json!({"error": "invalid_grant", "error_description": "the code has expired; start the sign-in again"})
        )
    );

    // Refresh-token reuse: the whole grant stops working.
    let code = flow.code("ana@acme.example", false).await;
    let (_, t1) = flow.exchange(&code, VERIFIER).await;
    let (s, t2) = flow.refresh(t1["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(
        flow.mcp_status(t2["access_token"].as_str().unwrap()).await,
        200
    );
    let (s, v) = flow.refresh(t1["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_grant"));
    assert_eq!(
        flow.mcp_status(t2["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        flow.refresh(t2["refresh_token"].as_str().unwrap()).await.0,
        400
    );

    // Unknown client, unsupported grant type, garbage.
    let (s, v) = flow
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("code_verifier", VERIFIER),
            ("client_id", "nope"),
        ])
        .await;
    assert_eq!((s, v["error"].as_str().unwrap()), (401, "invalid_client"));
    let (s, v) = flow.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (s, v["error"].as_str().unwrap()),
        (400, "unsupported_grant_type")
    );

    // A code presented by another client: refused, and its grant revoked.
    let other = Flow::new(&server).await;
    let code = flow.code("ana@acme.example", false).await;
    let (s, v) = flow
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
            ("client_id", &other.client_id),
        ])
        .await;
    assert_eq!(
        (s, v["error_description"].as_str().unwrap()),
        (400, "the code was issued to another client")
    );

    // On the record: tokens issued and refreshed, both reuses and the misuse, as denials.
    let events = audit_events(&file);
    let count = |kind: &str| events.iter().filter(|e| e["event"] == kind).count();
    assert_eq!(count("token_issued"), 2, "{events:?}");
    assert_eq!(count("token_refreshed"), 1, "{events:?}");
    assert_eq!(count("token_reuse_detected"), 2, "{events:?}");
    let misuse = events
        .iter()
        .find(|e| e["event"] == "token_misuse_detected")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(misuse["decision"], "denied");
    assert_eq!(misuse["org"], "acme");
    assert_eq!(misuse["credential"], flow.client_id.as_str());
    let issued = events
        .iter()
        .find(|e| e["event"] == "token_issued")
        .unwrap();
    assert_eq!(issued["org"], "acme");
    assert_eq!(issued["user_email"], "ana@acme.example");
    assert_eq!(issued["credential"], flow.client_id.as_str());
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "token_reuse_detected")
            .all(|e| e["decision"] == "denied")
    );
}

/// Every audit record.
fn audit_events(file: &Path) -> Vec<Value> {
    common::audit_log(file, &[])
}

#[tokio::test]
async fn bearers_revocation_roles_and_audience() {
    let (_d, file, ana_key) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;

    // Garbage and malformed bearers: 401.
    for bearer in [
        "garbage",
        "wdn_at_short",
        "wdn_key_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(flow.mcp_status(bearer).await, 401, "{bearer}");
    }
    assert_eq!(flow.mcp_status(&ana_key).await, 200);

    // RFC 7009 revocation of an access token takes effect on the next request.
    let (_, t) = flow
        .exchange(&flow.code("mo@acme.example", false).await, VERIFIER)
        .await;
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(flow.mcp_status(&access).await, 200);
    let r = flow
        .http
        .post(format!("{}/revoke", flow.base))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(flow.mcp_status(&access).await, 401);

    // Revoking the app in the organisation kills all its tokens.
    let (_, t) = flow
        .exchange(&flow.code("mo@acme.example", false).await, VERIFIER)
        .await;
    assert_eq!(
        flow.mcp_status(t["access_token"].as_str().unwrap()).await,
        200
    );
    cli(&file, &["apps", "revoke", &flow.client_id, "--org", "acme"]);
    assert_eq!(
        flow.mcp_status(t["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(
        flow.refresh(t["refresh_token"].as_str().unwrap()).await.0,
        400
    );

    // A revoked API key stops working.
    let key = add_member(&file, "kai@acme.example", "member", "mcp:read", false);
    assert_eq!(flow.mcp_status(&key).await, 200);
    let list = String::from_utf8(
        run(&["key", "list", "--org", "acme", "-p", file.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("kai@acme.example"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    cli(&file, &["key", "revoke", &id, "--org", "acme"]);
    assert_eq!(flow.mcp_status(&key).await, 401);

    // Each revocation is on the record; revoking the same token again, or a made-up one,
    // adds nothing (the endpoint is open to anyone).
    for token in [access.as_str(), "wdn_at_made-up"] {
        let r = flow
            .http
            .post(format!("{}/revoke", flow.base))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let events = audit_events(&file);
    let kinds = |k: &str| events.iter().filter(|e| e["event"] == k).count();
    assert_eq!(kinds("token_revoked"), 1, "{events:?}");
    assert_eq!(kinds("app_revoked"), 1, "{events:?}");
    assert_eq!(kinds("key_revoked"), 1, "{events:?}");
    let key_revoked = events.iter().find(|e| e["event"] == "key_revoked").unwrap();
    assert_eq!(key_revoked["source"], "cli");
    assert_eq!(key_revoked["org"], "acme");

    // Auxiliary Members (and Service Accounts) cannot connect: 403 before anything runs.
    let aux_key = add_member(
        &file,
        "aux2@acme.example",
        "auxiliary_member",
        "mcp:read",
        false,
    );
    assert_eq!(flow.mcp_status(&aux_key).await, 403);
    let svc_key = add_member(
        &file,
        "svc@acme.example",
        "service_account",
        "mcp:read",
        false,
    );
    assert_eq!(flow.mcp_status(&svc_key).await, 403);

    // Removal: the member's API key and OAuth tokens stop at once; refresh is invalid_grant.
    let flow2 = Flow::new(&server).await;
    let (_, t) = flow2
        .exchange(&flow2.code("gus@acme.example", false).await, VERIFIER)
        .await;
    let out = run(&[
        "key",
        "create",
        "--org",
        "acme",
        "--user",
        "gus@acme.example",
        "--name",
        "k",
        "-p",
        file.to_str().unwrap(),
    ]);
    let gus_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        flow2.mcp_status(t["access_token"].as_str().unwrap()).await,
        200
    );
    assert_eq!(flow2.mcp_status(&gus_key).await, 200);
    cli(
        &file,
        &["member", "remove", "gus@acme.example", "--org", "acme"],
    );
    assert_eq!(
        flow2.mcp_status(t["access_token"].as_str().unwrap()).await,
        401
    );
    assert_eq!(flow2.mcp_status(&gus_key).await, 401);
    let (s, v) = flow2.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_grant"));
}

#[tokio::test]
async fn demotion_applies_on_refresh_and_audience_is_enforced() {
    let (dir, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let (_, t) = flow
        .exchange(&flow.code("mo@acme.example", true).await, VERIFIER)
        .await;
    assert_eq!(t["scope"], "mcp:read mcp:write");
    let state = dir.path().join("p/.warden/state.db");
    let role_of_grant = || async {
        use sqlx::{ConnectOptions, Connection};
        let mut c = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&state)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let role: String =
            sqlx::query_scalar("SELECT role FROM grants ORDER BY created_at DESC LIMIT 1")
                .fetch_one(&mut c)
                .await
                .unwrap();
        c.close().await.unwrap();
        role
    };
    cli(
        &file,
        &[
            "member",
            "set-role",
            "mo@acme.example",
            "guest",
            "--org",
            "acme",
        ],
    );
    // The role was bound at consent: until the next refresh, the grant keeps it.
    assert_eq!(role_of_grant().await, "member");
    let (s, t2) = flow.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{t2}");
    assert_eq!(
        role_of_grant().await,
        "guest",
        "demotion must reach the grant on refresh"
    );
    assert_eq!(
        flow.mcp_status(t2["access_token"].as_str().unwrap()).await,
        200
    );
    // Demoted to a role that cannot connect: the refresh revokes the grant.
    cli(
        &file,
        &[
            "member",
            "set-role",
            "mo@acme.example",
            "auxiliary_member",
            "--org",
            "acme",
        ],
    );
    let (s, v) = flow.refresh(t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "invalid_grant"));
    assert_eq!(
        flow.mcp_status(t2["access_token"].as_str().unwrap()).await,
        401
    );

    // Audience: a second server on the same state store is another resource; tokens issued
    // by the first are refused there (no token passthrough).
    cli(
        &file,
        &[
            "member",
            "set-role",
            "mo@acme.example",
            "member",
            "--org",
            "acme",
        ],
    );
    let (_, t3) = flow
        .exchange(&flow.code("mo@acme.example", false).await, VERIFIER)
        .await;
    let other = Server::start(&file);
    let flow_other = Flow {
        base: String::new(),
        mcp: other.url.clone(),
        http: flow.http.clone(),
        client_id: String::new(),
    };
    assert_eq!(
        flow.mcp_status(t3["access_token"].as_str().unwrap()).await,
        200
    );
    assert_eq!(
        flow_other
            .mcp_status(t3["access_token"].as_str().unwrap())
            .await,
        401
    );
}

#[tokio::test]
async fn sign_in_links_are_single_use_and_do_not_reveal_accounts() {
    let (dir, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let outbox = dir.path().join("p/.warden/outbox");
    let mut jar = BTreeMap::new();
    let page = flow
        .get_authorize(&mut jar, &flow.params(&challenge_s256(VERIFIER)))
        .await;
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf_token").unwrap();
    let cont = hidden(&html, "continue").unwrap();
    let ask = |email: &'static str| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("continue", cont.clone()),
            ("email", email.to_string()),
        ];
        flow.http
            .post(format!("{}/login/magic", flow.base))
            .header(COOKIE, cookie_header(&jar))
            .form(&form)
            .send()
    };
    // An unknown address gets the same answer, and no mail.
    let unknown = ask("nobody@acme.example").await.unwrap();
    assert_eq!(unknown.status(), 200);
    let unknown_text = unknown.text().await.unwrap();
    assert!(unknown_text.contains("sign-in link is on its way"));
    assert!(!outbox.exists() || std::fs::read_dir(&outbox).unwrap().count() == 0);
    let known = ask("mo@acme.example").await.unwrap();
    assert_eq!(known.status(), 200);
    assert!(
        known
            .text()
            .await
            .unwrap()
            .contains("sign-in link is on its way")
    );

    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let body = std::fs::read_to_string(&mail).unwrap();
    assert!(body.starts_with("To: mo@acme.example"), "{body}");
    let link = body
        .lines()
        .find(|l| l.contains("/login/magic?token="))
        .unwrap()
        .trim()
        .to_string();
    // Following the link signs in and continues to the consent page.
    let r = flow.http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let mut session = BTreeMap::new();
    absorb(&mut session, &r);
    let next = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(next.starts_with("/authorize?"), "{next}");
    let consent = flow
        .http
        .get(format!("{}{next}", flow.base))
        .header(COOKIE, cookie_header(&session))
        .send()
        .await
        .unwrap();
    assert!(
        consent
            .text()
            .await
            .unwrap()
            .contains("signed in as <strong>mo@acme.example</strong>")
    );
    // The link works once.
    let again = flow.http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("invalid, used or expired")
    );
}

#[tokio::test]
async fn repeated_sign_in_failures_lock_the_account() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let mut jar = BTreeMap::new();
    let page = flow
        .get_authorize(&mut jar, &flow.params(&challenge_s256(VERIFIER)))
        .await;
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf_token").unwrap();
    let cont = hidden(&html, "continue").unwrap();
    let attempt = |password: &'static str| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("continue", cont.clone()),
            ("email", "ana@acme.example".into()),
            ("password", password.to_string()),
        ];
        flow.http
            .post(format!("{}/login", flow.base))
            .header(COOKIE, cookie_header(&jar))
            .form(&form)
            .send()
    };
    for _ in 0..4 {
        let r = attempt("wrong password!").await.unwrap();
        assert_eq!(r.status(), 401);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("The email or password is not right.")
        );
    }
    // The next failures are slowed down. Sent together, one is checked at a time and the
    // others are told to wait (429, nothing counted); one by one they reach the lockout.
    let burst: Vec<_> = (0..6).map(|_| attempt("wrong password!")).collect();
    let mut checked = 0;
    for r in futures::future::join_all(burst).await {
        let r = r.unwrap();
        match r.status().as_u16() {
            401 => checked += 1,
            429 => assert!(r.text().await.unwrap().contains("being checked")),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked >= 1);
    while checked < 6 {
        let r = attempt("wrong password!").await.unwrap();
        assert_eq!(r.status(), 401);
        checked += 1;
    }
    // Locked: even the right password is refused now, without being checked.
    let r = attempt(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));

    let events = audit_events(&file);
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 10, "{events:?}");
    assert!(failed.iter().all(|e| e["user_email"] == "ana@acme.example"
        && e["decision"] == "denied"
        && e["remote_addr"] == "127.0.0.1"));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "lockout" && e["stage"] == "rate_limit"),
        "{events:?}"
    );
}

/// The write tool over a bearer: `Ok(true)` for a preview (allowed), `Ok(false)` for a
/// refusal by role, `Err(status)` for an HTTP refusal.
async fn write_allowed(flow: &Flow, bearer: &str) -> Result<bool, u16> {
    let init = flow
        .http
        .post(&flow.mcp)
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    if init.status() != 200 {
        return Err(init.status().as_u16());
    }
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let call = flow
        .http
        .post(&flow.mcp)
        .bearer_auth(bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"update_finding_status",
            "arguments":{"finding_id":3,"status":"in_progress","note":"demotion test"}}}))
        .send()
        .await
        .unwrap();
    if call.status() != 200 {
        return Err(call.status().as_u16());
    }
    let v = common::sse_response(&call.text().await.unwrap(), 2);
    Ok(common::confirmation_token(&v["result"]).is_some())
}

#[tokio::test]
async fn demotion_while_connected() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;

    // API key: the next write after a demotion is refused.
    let key = add_member(
        &file,
        "kim@acme.example",
        "member",
        "mcp:read mcp:write",
        true,
    );
    assert_eq!(write_allowed(&flow, &key).await, Ok(true));
    cli(
        &file,
        &[
            "member",
            "set-role",
            "kim@acme.example",
            "guest",
            "--org",
            "acme",
        ],
    );
    assert_eq!(write_allowed(&flow, &key).await, Ok(false));

    // OAuth: the role was bound at consent; writes stop after the next refresh.
    cli(
        &file,
        &[
            "member",
            "set-role",
            "kim@acme.example",
            "member",
            "--org",
            "acme",
        ],
    );
    let (_, t) = flow
        .exchange(&flow.code("kim@acme.example", true).await, VERIFIER)
        .await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(write_allowed(&flow, access).await, Ok(true));
    cli(
        &file,
        &[
            "member",
            "set-role",
            "kim@acme.example",
            "guest",
            "--org",
            "acme",
        ],
    );
    assert_eq!(
        write_allowed(&flow, access).await,
        Ok(true),
        "bound role until the refresh"
    );
    let (s, t2) = flow.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(
        write_allowed(&flow, t2["access_token"].as_str().unwrap()).await,
        Ok(false)
    );

    // Removal refuses everything, at once.
    cli(
        &file,
        &["member", "remove", "kim@acme.example", "--org", "acme"],
    );
    assert_eq!(write_allowed(&flow, &key).await, Err(401));
    assert_eq!(
        write_allowed(&flow, t2["access_token"].as_str().unwrap()).await,
        Err(401)
    );
}

#[tokio::test]
async fn link_requests_cannot_lock_out_password_sign_in_and_logout_needs_csrf() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let mut jar = BTreeMap::new();
    let page = flow
        .get_authorize(&mut jar, &flow.params(&challenge_s256(VERIFIER)))
        .await;
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf_token").unwrap();
    let cont = hidden(&html, "continue").unwrap();
    // Someone floods sign-in link requests for ana...
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let form = [
                ("csrf_token", csrf.clone()),
                ("continue", cont.clone()),
                ("email", "ana@acme.example".to_string()),
            ];
            flow.http
                .post(format!("{}/login/magic", flow.base))
                .header(COOKIE, cookie_header(&jar))
                .form(&form)
                .send()
        })
        .collect();
    for r in futures::future::join_all(burst).await {
        assert_eq!(r.unwrap().status(), 200);
    }
    // Sent together, they were all counted: the next one is refused.
    let form = [
        ("csrf_token", csrf.clone()),
        ("continue", cont.clone()),
        ("email", "ana@acme.example".to_string()),
    ];
    let next = flow
        .http
        .post(format!("{}/login/magic", flow.base))
        .header(COOKIE, cookie_header(&jar))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 429, "link requests are limited");
    // ...yet ana can still sign in with her password.
    let mut session = flow.sign_in("ana@acme.example").await;
    assert!(session.keys().any(|k| k.ends_with("warden_session")));

    // Logout without the CSRF token is refused; with it, the session ends.
    let r = flow
        .http
        .post(format!("{}/logout", flow.base))
        .header(COOKIE, cookie_header(&session))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = flow
        .get_authorize(&mut session, &flow.params(&challenge_s256(VERIFIER)))
        .await;
    let token = hidden(&page.text().await.unwrap(), "csrf_token").unwrap();
    let r = flow
        .http
        .post(format!("{}/logout", flow.base))
        .header(COOKIE, cookie_header(&session))
        .form(&[("csrf_token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = flow
        .get_authorize(&mut session, &flow.params(&challenge_s256(VERIFIER)))
        .await;
    assert!(
        after.text().await.unwrap().contains("Sign in to Warden"),
        "the session still works after logout"
    );
}

/// The number of grants in the state store: consent issues one per allowed request.
async fn grant_count(state: &Path) -> i64 {
    use sqlx::{ConnectOptions, Connection};
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(state)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM grants")
        .fetch_one(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    n
}

/// Consent grants at most what the client asked for and the page offered: an answer whose
/// fields were changed after the page was shown is refused with a page saying so, and
/// nothing is issued.
#[tokio::test]
async fn consent_attack_table() {
    let (dir, file, _) = project_with_members();
    let state = dir.path().join("p/.warden/state.db");
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let mut jar = flow.sign_in("mo@acme.example").await;
    let with_scope = |scope: &str| -> Vec<(String, String)> {
        flow.params(&challenge_s256(VERIFIER))
            .into_iter()
            .map(|(k, v)| {
                if k == "scope" {
                    (k, scope.to_string())
                } else {
                    (k, v)
                }
            })
            .collect()
    };
    // (case, scope the client asked for, edits to the answered form)
    type Edit = fn(&mut Vec<(String, String)>);
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "tampered scope and the write box on a read-only request",
            "mcp:read",
            |f| {
                f.retain(|(k, _)| k != "scope" && k != "write");
                f.push(("scope".into(), "mcp:read mcp:write".into()));
                f.push(("write".into(), "1".into()));
            },
        ),
        ("the write field without the write box", "mcp:read", |f| {
            f.push(("write".into(), "1".into()));
        }),
        ("an unknown scope added", "mcp:read", |f| {
            f.retain(|(k, _)| k != "scope");
            f.push(("scope".into(), "mcp:read mcp:admin".into()));
        }),
        ("another redirect URI", "mcp:read mcp:write", |f| {
            f.retain(|(k, _)| k != "redirect_uri");
            f.push(("redirect_uri".into(), "http://127.0.0.1:9/elsewhere".into()));
        }),
        (
            "a write field that is not the box's value",
            "mcp:read mcp:write",
            |f| {
                f.push(("write".into(), "yes".into()));
            },
        ),
        ("no seal", "mcp:read mcp:write", |f| {
            f.retain(|(k, _)| k != "consent_seal");
        }),
        ("a forged seal", "mcp:read", |f| {
            f.retain(|(k, _)| k != "consent_seal");
            f.push(("consent_seal".into(), "00".repeat(32)));
        }),
    ];
    for (case, asked, edit) in cases {
        let before = grant_count(&state).await;
        let params = with_scope(asked);
        let page = flow.get_authorize(&mut jar, &params).await;
        assert_eq!(page.status(), 200, "{case}");
        let html = page.text().await.unwrap();
        assert_eq!(
            html.contains("name=\"write\""),
            asked.contains("mcp:write"),
            "{case}: the write box is offered exactly when write was asked for"
        );
        let mut form = params.clone();
        form.push(("csrf_token".into(), hidden(&html, "csrf_token").unwrap()));
        form.push((
            "consent_seal".into(),
            hidden(&html, "consent_seal").unwrap(),
        ));
        form.push(("org".into(), "acme".into()));
        form.push(("decision".into(), "allow".into()));
        edit(&mut form);
        let r = flow
            .http
            .post(format!("{}/authorize", flow.base))
            .header(COOKIE, cookie_header(&jar))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{case}");
        assert!(
            r.headers().get(LOCATION).is_none(),
            "{case}: no redirect, no code"
        );
        let body = r.text().await.unwrap();
        assert!(
            body.contains("nothing was granted") && body.contains("Start the connection again"),
            "{case}: {body}"
        );
        assert_eq!(grant_count(&state).await, before, "{case}: nothing issued");
    }

    // The same page answered as shown still works, and grants exactly what was offered.
    let mut jar = flow.sign_in("mo@acme.example").await;
    let r = flow
        .consent(&mut jar, &with_scope("mcp:read"), false, true)
        .await;
    assert_eq!(r.status(), 303);
    let code = url_params(r.headers()[LOCATION].to_str().unwrap())["code"].clone();
    let (s, t) = flow.exchange(&code, VERIFIER).await;
    assert_eq!((s, t["scope"].as_str().unwrap()), (200, "mcp:read"));
}

/// Step-up (MCP authorization, insufficient scope) completes whichever way a client goes:
/// refreshes after the 403 are refused with `invalid_grant` until the person answers a new
/// authorization (a refresh cannot widen a grant, so the client must re-authorize), and that
/// consent page says plainly that the app now asks to change data, with the write box in view.
#[tokio::test]
async fn step_up_holds_refreshes_and_asks_the_person_about_writes() {
    let (_d, file, _) = project_with_members();
    let server = Server::start(&file);
    let flow = Flow::new(&server).await;
    let (s, t) = flow
        .exchange(&flow.code("ana@acme.example", false).await, VERIFIER)
        .await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["scope"], "mcp:read");
    // Before any challenge, refreshing works as always.
    let (s, t) = flow.refresh(t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    assert_eq!(write_allowed(&flow, access).await, Err(403));

    let (s, refused) = flow.refresh(refresh).await;
    assert_eq!(s, 400, "{refused}");
    assert_eq!(refused["error"], "invalid_grant");
    assert!(
        refused["error_description"]
            .as_str()
            .unwrap()
            .contains("new authorization"),
        "{refused}"
    );
    // Refused again until the person answers (the token is not used up by a refusal).
    let (s, again) = flow.refresh(refresh).await;
    assert_eq!(s, 400, "{again}");

    // The new authorization: the same person, the same app, now asking for writes.
    let mut jar = flow.sign_in("ana@acme.example").await;
    let params = flow.params(&challenge_s256(VERIFIER));
    let page = flow.get_authorize(&mut jar, &params).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Attack Test now asks to change data"),
        "{html}"
    );
    let (step_up_box, rest) = html.split_once(r#"name="write""#).unwrap();
    assert!(
        step_up_box.find("<select").is_none() && step_up_box.contains("change data"),
        "the write choice comes first"
    );
    assert!(!rest.contains(r#"name="write""#), "one write box only");
    let r = flow.consent(&mut jar, &params, true, true).await;
    assert_eq!(r.status(), 303);
    let code = url_params(r.headers()[LOCATION].to_str().unwrap())["code"].clone();
    let (s, t) = flow.exchange(&code, VERIFIER).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["scope"], "mcp:read mcp:write");
    assert_eq!(
        write_allowed(&flow, t["access_token"].as_str().unwrap()).await,
        Ok(true)
    );
    // Answered: the old read-only connection refreshes again as it is.
    let (s, again) = flow.refresh(refresh).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["scope"], "mcp:read");
}
