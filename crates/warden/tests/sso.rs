//! Sign-in through an identity provider, against a hostile one: a provider on loopback that
//! answers the code exchange with whatever ID token the test forges. Each forgery (wrong
//! issuer, wrong audience, expired, bad signature, `alg: none`, HMAC keyed with the public
//! JWKS, a nonce from another sign-in) and each broken flow (state, RFC 9207 `iss`) is
//! refused with a page that says why, no session is issued, and the refusal is recorded
//! with its rule. A well-formed token signs in, so the refusals are the checks' doing.
//! On SQLite and, with WARDEN_TEST_POSTGRES_URL, on PostgreSQL.
//!
//! The whole flow against a certified provider (npm oidc-provider) with the MCP Python SDK
//! is tests/interop/test_sso.py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use common::browser::Browser;
use common::{PgDatabase, Server, audit_log, init_project};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const CLIENT_ID: &str = "warden-test";

struct Provider {
    issuer: String,
    jwks: Mutex<Value>,
    /// What the next code exchange answers with.
    id_token: Mutex<Option<String>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key: the signing key, and its public half as a JWK with `kid`.
fn ec_key(kid: &str) -> (EncodingKey, Value) {
    let rng_key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = rng_key.to_pkcs8v1().unwrap();
    let point = rng_key.public_key().as_ref();
    assert_eq!(point.len(), 65);
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    });
    (EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

async fn start_provider(jwk: Value) -> Arc<Provider> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let op = Arc::new(Provider {
        issuer: issuer.clone(),
        jwks: Mutex::new(json!({ "keys": [jwk] })),
        id_token: Mutex::new(None),
    });
    async fn discovery(State(op): State<Arc<Provider>>) -> Json<Value> {
        let i = &op.issuer;
        Json(json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "jwks_uri": format!("{i}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "authorization_response_iss_parameter_supported": true,
        }))
    }
    async fn jwks(State(op): State<Arc<Provider>>) -> Json<Value> {
        Json(op.jwks.lock().unwrap().clone())
    }
    async fn token(State(op): State<Arc<Provider>>) -> Json<Value> {
        let id_token = op.id_token.lock().unwrap().clone();
        Json(
            json!({"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": id_token}),
        )
    }
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(op.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    op
}

fn configure(file: &Path, issuer: &str) {
    let yaml = std::fs::read_to_string(file).unwrap();
    std::fs::write(
        file,
        format!(
            "{yaml}\nlogin:\n  provider_only: [acme]\n  providers:\n    - name: evil\n      issuer: {issuer}\n      client_id: {CLIENT_ID}\n      client_secret: not-a-real-secret\n      provision: true\n      map:\n        - when: \"claims.email.endsWith('@acme.example')\"\n          org: acme\n          role: member\n"
        ),
    )
    .unwrap();
}

/// A sign-in started at Warden: the browser (holding the state cookie), the state and the
/// nonce Warden sent to the provider.
async fn start(server: &Server) -> (Browser, String, String) {
    let mut b = Browser::new(server);
    let r = b.get("/login/sso/evil?continue=%2Fconsole").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = url::Url::parse(&r.location()).unwrap();
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        b.jar.contains_key("warden_sso"),
        "the state travels in a cookie"
    );
    (b, q["state"].clone(), q["nonce"].clone())
}

fn claims(op: &Provider, sub: &str, nonce: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": op.issuer, "aud": CLIENT_ID, "sub": sub,
        "email": format!("{sub}@acme.example"), "email_verified": true,
        "iat": now, "exp": now + 300, "nonce": nonce,
    })
}

fn sign(key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k1".into());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

async fn callback(b: &mut Browser, op: &Provider, state: &str, iss: &str) -> common::browser::Page {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", "a-code")
        .append_pair("state", state)
        .append_pair("iss", iss)
        .finish();
    let _ = op;
    b.get(&format!("/login/sso/evil/callback?{q}")).await
}

async fn refusals_and_a_sign_in(file: &Path) {
    let (key, jwk) = ec_key("k1");
    let op = start_provider(jwk.clone()).await;
    configure(file, &op.issuer);
    let server = Server::start(file);

    // The sign-in page offers the provider beside the password.
    let mut look = Browser::new(&server);
    let page = look.get("/login?continue=%2Fconsole").await;
    let body = common::browser::unescape(&page.body);
    assert!(
        body.contains(r#"href="/login/sso/evil?continue=%2Fconsole">Continue with evil<"#),
        "{body}"
    );
    assert!(page.body.contains(r#"name="password""#));

    // A well-formed token signs in (and provisions the account the rule maps).
    let (mut b, state, nonce) = start(&server).await;
    let good = sign(&key, &claims(&op, "eve", &nonce));
    *op.id_token.lock().unwrap() = Some(good.clone());
    let r = callback(&mut b, &op, &state, &op.issuer).await;
    assert_eq!(r.status, 303, "a valid token signs in: {}", r.body);
    assert_eq!(r.location(), "/console");
    assert!(b.jar.contains_key("warden_session"));
    let page = b.get("/console").await;
    assert_eq!(page.status, 200, "the session works");

    // The provider adds a key: a token under the new `kid` makes Warden fetch the key
    // set again, at once. A token naming a made-up `kid` right after finds no key (the set
    // is not fetched again within ten seconds) and is refused.
    let (new_key, new_jwk) = ec_key("k2");
    *op.jwks.lock().unwrap() = json!({ "keys": [jwk.clone(), new_jwk] });
    let (mut rotated, state, nonce) = start(&server).await;
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("k2".into());
    *op.id_token.lock().unwrap() =
        Some(jsonwebtoken::encode(&h, &claims(&op, "eve", &nonce), &new_key).unwrap());
    let r = callback(&mut rotated, &op, &state, &op.issuer).await;
    assert_eq!(r.status, 303, "a rotated key is fetched: {}", r.body);
    let (mut made_up, state, nonce) = start(&server).await;
    h.kid = Some("k9".into());
    *op.id_token.lock().unwrap() =
        Some(jsonwebtoken::encode(&h, &claims(&op, "eve", &nonce), &new_key).unwrap());
    let r = callback(&mut made_up, &op, &state, &op.issuer).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("not among the provider"), "{}", r.body);

    // acme is provider_only: a password session may not act for it, not in the console
    // and not as a bearer at /mcp, while the provider's session may.
    let mut ana = Browser::sign_in(&server, "ana@acme.example").await;
    let page = ana.get("/console").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("through its identity provider only"),
        "{}",
        page.body
    );
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let bearer = |b: &Browser| b.jar["warden_session"].clone();
    let r = server
        .client()
        .post(&server.url)
        .bearer_auth(bearer(&ana))
        .header("accept", "application/json, text/event-stream")
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a password session is no bearer for acme");
    let r = server
        .client()
        .post(&server.url)
        .bearer_auth(bearer(&b))
        .header("accept", "application/json, text/event-stream")
        .json(&ping)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401, "the provider's session is a bearer");
    assert_ne!(r.status(), 403, "the provider's session is a bearer");

    // The forgeries. Each: (what, how the token is made, the rule, words on the page).
    let (other_key, _) = ec_key("k1");
    let hs_secret = serde_json::to_vec(&jwk).unwrap();
    type Forge = Box<dyn Fn(&Provider, &str) -> String>;
    let cases: Vec<(&str, Forge, &str, &str)> = vec![
        (
            "wrong issuer",
            Box::new({
                let key = key.clone();
                move |op, nonce| {
                    let mut c = claims(op, "mal", nonce);
                    c["iss"] = json!("https://evil.example");
                    sign(&key, &c)
                }
            }),
            "id_token.iss",
            "issued by",
        ),
        (
            "wrong audience",
            Box::new({
                let key = key.clone();
                move |op, nonce| {
                    let mut c = claims(op, "mal", nonce);
                    c["aud"] = json!("another-app");
                    sign(&key, &c)
                }
            }),
            "id_token.aud",
            "not for this Warden",
        ),
        (
            "expired",
            Box::new({
                let key = key.clone();
                move |op, nonce| {
                    let mut c = claims(op, "mal", nonce);
                    let now = chrono::Utc::now().timestamp();
                    c["iat"] = json!(now - 4000);
                    c["exp"] = json!(now - 3600);
                    sign(&key, &c)
                }
            }),
            "id_token.exp",
            "expired",
        ),
        (
            "bad signature",
            Box::new(move |op, nonce| sign(&other_key, &claims(op, "mal", nonce))),
            "id_token.signature",
            "signature does not verify",
        ),
        (
            "alg none",
            Box::new(|op, nonce| {
                format!(
                    "{}.{}.",
                    b64(br#"{"alg":"none","typ":"JWT"}"#),
                    b64(claims(op, "mal", nonce).to_string().as_bytes())
                )
            }),
            "id_token.alg_none",
            "unsigned",
        ),
        (
            "HMAC keyed with the JWKS",
            Box::new(move |op, nonce| {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = Some("k1".into());
                jsonwebtoken::encode(
                    &h,
                    &claims(op, "mal", nonce),
                    &EncodingKey::from_secret(&hs_secret).unwrap(),
                )
                .unwrap()
            }),
            "id_token.alg_hmac",
            "shared-secret",
        ),
        // The earlier sign-in's token, valid in every way but its nonce.
        (
            "replayed nonce",
            Box::new(move |_, _| good.clone()),
            "id_token.nonce",
            "nonce",
        ),
    ];
    for (what, forge, _, words) in &cases {
        let (mut b, state, nonce) = start(&server).await;
        *op.id_token.lock().unwrap() = Some(forge(&op, &nonce));
        let r = callback(&mut b, &op, &state, &op.issuer).await;
        assert_eq!(r.status, 403, "{what}: {}", r.body);
        assert!(r.body.contains("Sign-in refused"), "{what}: {}", r.body);
        assert!(
            r.body.contains(words),
            "{what}: the page says why ({words}): {}",
            r.body
        );
        assert!(
            !b.jar.contains_key("warden_session"),
            "{what}: no session issued"
        );
    }

    // Broken flows: a state that is not this browser's, one used twice, and a response
    // naming another issuer (RFC 9207 mix-up).
    let (mut b, state, nonce) = start(&server).await;
    *op.id_token.lock().unwrap() = Some(sign(&key, &claims(&op, "eve", &nonce)));
    let r = callback(&mut b, &op, &format!("{state}x"), &op.issuer).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("does not match"), "{}", r.body);
    let (mut b, state, nonce) = start(&server).await;
    *op.id_token.lock().unwrap() = Some(sign(&key, &claims(&op, "eve", &nonce)));
    let r = callback(&mut b, &op, &state, "https://other-issuer.example").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("issuer"), "{}", r.body);
    assert!(!b.jar.contains_key("warden_session"));
    // That state was taken by the refused attempt: it cannot be used again, even with a
    // good token and the cookie put back.
    b.jar.insert("warden_sso".into(), state.clone());
    let r = callback(&mut b, &op, &state, &op.issuer).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("already used") || r.body.contains("expired"),
        "{}",
        r.body
    );

    // Nobody but eve got an account; each refusal is on the record with its rule.
    let users = common::run(&["user", "list", "-p", file.to_str().unwrap()]);
    let users = String::from_utf8_lossy(&users.stdout);
    assert!(users.contains("eve@acme.example"), "{users}");
    assert!(!users.contains("mal@acme.example"), "{users}");
    let records = audit_log(file, &[]);
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "sso_refused")
        .collect();
    for (what, _, rule, _) in &cases {
        assert!(
            refused.iter().any(|r| r["rule"] == *rule),
            "{what}: no sso_refused with rule {rule}: {refused:?}"
        );
    }
    for rule in ["sso.state", "sso.iss"] {
        assert!(
            refused.iter().any(|r| r["rule"] == rule),
            "no sso_refused with rule {rule}"
        );
    }
    assert!(refused.iter().all(|r| r["decision"] == "denied"));
    let logins: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "sso_login")
        .collect();
    assert_eq!(
        logins.len(),
        2,
        "the first sign-in and the one after the rotation: {logins:?}"
    );
    assert!(records.iter().any(|r| r["event"] == "user_provisioned"));
    assert!(records.iter().any(|r| r["event"] == "role_synced"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_provider_cannot_sign_anyone_in_sqlite() {
    let (_dir, file, _key) = init_project();
    refusals_and_a_sign_in(&file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_provider_cannot_sign_anyone_in_postgres() {
    let Some(db) = PgDatabase::create("sso_hostile").await else {
        return;
    };
    let (_dir, file, _key) = init_project();
    let yaml = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{yaml}\nstate:\n  postgres: {}\n", db.url)).unwrap();
    // The init project's members were made on SQLite; make them again on PostgreSQL.
    common::add_member(&file, "ana@acme.example", "admin", "mcp:read", true);
    refusals_and_a_sign_in(&file).await;
}
