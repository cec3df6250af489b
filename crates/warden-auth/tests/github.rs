//! GitHub sign-in against recorded API answers (tests/github/*.json), served on loopback in
//! the paths GitHub uses: GitHub itself cannot be reached from the test machines. The code
//! exchange, the four API reads, the claims Warden derives from them and a mapping rule
//! over them, and the refusals (a bad code, an unverified primary address, a missing token).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use warden_auth::sso::{Federation, Sealer, github, map_claims};
use warden_core::identity::Role;
use warden_core::policy::Condition;
use warden_core::project::{LoginProvider, MapRule, ProviderKind, SignInConfig};

const TOKEN: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

fn recorded(name: &str) -> Value {
    let path = format!("{}/tests/github/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[derive(Default)]
struct Api {
    emails: Mutex<String>,
    forms: Mutex<Vec<Vec<(String, String)>>>,
}

async fn start_api() -> (String, Arc<Api>) {
    let api = Arc::new(Api {
        emails: Mutex::new("emails".into()),
        ..Api::default()
    });
    async fn token(
        State(api): State<Arc<Api>>,
        Form(form): Form<Vec<(String, String)>>,
    ) -> Json<Value> {
        let code = form
            .iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.clone());
        api.forms.lock().unwrap().push(form);
        // GitHub answers a bad code with 200 and an error body.
        Json(recorded(if code.as_deref() == Some("good") {
            "token"
        } else {
            "token_error"
        }))
    }
    fn authorized(h: &HeaderMap) -> bool {
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
    }
    async fn read(h: HeaderMap, name: String) -> axum::response::Response {
        if !authorized(&h) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"message": "Requires authentication"})),
            )
                .into_response();
        }
        Json(recorded(&name)).into_response()
    }
    let app = Router::new()
        .route("/login/oauth/access_token", post(token))
        .route("/user", get(|h: HeaderMap| read(h, "user".into())))
        .route(
            "/user/emails",
            get(|State(api): State<Arc<Api>>, h: HeaderMap| async move {
                let name = api.emails.lock().unwrap().clone();
                read(h, name).await
            }),
        )
        .route("/user/orgs", get(|h: HeaderMap| read(h, "orgs".into())))
        .route("/user/teams", get(|h: HeaderMap| read(h, "teams".into())))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, api)
}

fn federation(base: &str) -> Federation {
    let provider = LoginProvider {
        name: "gh".into(),
        label: "GitHub".into(),
        kind: ProviderKind::GitHub {
            api_url: base.into(),
            web_url: base.into(),
        },
        client_id: "Iv1.test".into(),
        client_secret: "test-secret".into(),
        scopes: vec!["read:user".into(), "user:email".into(), "read:org".into()],
        link_verified_email: false,
        provision: false,
        resync: true,
        map: vec![MapRule {
            index: 0,
            when: Condition::compile(
                "'acme-corp/platform' in claims.teams && claims.email_verified",
            )
            .unwrap(),
            org: "acme".into(),
            role: Role::Member,
        }],
    };
    let config = Arc::new(SignInConfig {
        password: true,
        secrets_key: "unused".into(),
        providers: vec![Arc::new(provider)],
        provider_only: vec![],
    });
    Federation::new(
        config,
        Sealer::from_bytes(&[1u8; 32]).unwrap(),
        "https://warden.example",
    )
    .unwrap()
}

#[test]
fn claims_come_from_the_four_recorded_answers() {
    let c = github::from_responses(
        recorded("user"),
        recorded("emails"),
        recorded("orgs"),
        recorded("teams"),
    )
    .unwrap();
    assert_eq!(
        c["sub"], "583231",
        "the numeric id, which never changes (a login can)"
    );
    assert_eq!(c["login"], "octocat");
    assert_eq!(c["name"], "The Octocat");
    assert_eq!(
        c["email"], "octocat@acme.example",
        "the primary address, lowercased"
    );
    assert_eq!(c["email_verified"], true);
    assert_eq!(c["orgs"], json!(["acme-corp", "octo-oss"]));
    assert_eq!(c["teams"], json!(["acme-corp/platform"]));
    let c = github::from_responses(
        recorded("user"),
        recorded("emails_unverified"),
        json!([]),
        json!([]),
    )
    .unwrap();
    assert_eq!(c["email_verified"], false);
    let bad = github::from_responses(
        json!({"message": "Bad credentials"}),
        json!([]),
        json!([]),
        json!([]),
    )
    .unwrap_err();
    assert_eq!(bad.rule, "provider.userinfo");
}

#[tokio::test]
async fn a_github_sign_in_reads_the_api_and_maps_teams() {
    let (base, api) = start_api().await;
    let fed = federation(&base);
    let url = fed
        .authorization_url("gh", "st4te", "unused-nonce", "ch4llenge")
        .await
        .unwrap();
    let u = url::Url::parse(&url).unwrap();
    assert_eq!(u.path(), "/login/oauth/authorize");
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "Iv1.test");
    assert_eq!(q["state"], "st4te");
    assert_eq!(q["code_challenge"], "ch4llenge");
    assert_eq!(
        q["redirect_uri"],
        "https://warden.example/login/sso/gh/callback"
    );
    assert_eq!(q["scope"], "read:user user:email read:org");

    let proven = fed
        .redeem("gh", None, "good", "v3rifier", "unused-nonce")
        .await
        .unwrap();
    assert_eq!(
        proven.issuer, base,
        "identities are keyed on the GitHub host"
    );
    assert_eq!(proven.subject, "583231");
    assert!(proven.email_verified);
    assert_eq!(
        proven.refresh_token.as_deref(),
        Some(TOKEN),
        "what a resync re-reads with"
    );
    let form = api.forms.lock().unwrap()[0].clone();
    for (k, v) in [
        ("client_id", "Iv1.test"),
        ("client_secret", "test-secret"),
        ("code_verifier", "v3rifier"),
    ] {
        assert!(
            form.iter().any(|(a, b)| a == k && b == v),
            "{k} sent: {form:?}"
        );
    }
    let provider = fed.provider("gh").unwrap();
    let mapped = map_claims(provider, &proven.claims).unwrap();
    assert_eq!(mapped.grants, vec![("acme".to_string(), Role::Member, 0)]);

    // A resync reads the API again with the kept token; the same person only.
    let again = fed.refresh("gh", TOKEN, "583231").await.unwrap();
    assert_eq!(again.subject, "583231");
    assert_eq!(
        fed.refresh("gh", TOKEN, "1").await.unwrap_err().rule,
        "id_token.sub"
    );
    assert_eq!(
        fed.refresh("gh", "revoked-token", "583231")
            .await
            .unwrap_err()
            .rule,
        "provider.answer"
    );

    // An unverified primary address: the rule (which asks for a verified one) gives nothing.
    *api.emails.lock().unwrap() = "emails_unverified".into();
    let proven = fed
        .redeem("gh", None, "good", "v3rifier", "n")
        .await
        .unwrap();
    assert!(!proven.email_verified);
    assert!(
        map_claims(provider, &proven.claims)
            .unwrap()
            .grants
            .is_empty()
    );

    // A bad code: GitHub's 200-with-error answer is a refusal that says what GitHub said.
    let bad = fed
        .redeem("gh", None, "stale", "v3rifier", "n")
        .await
        .unwrap_err();
    assert_eq!(bad.rule, "provider.token");
    assert!(
        bad.reason.contains("bad_verification_code"),
        "{}",
        bad.reason
    );
    // A response claiming another issuer.
    let mixup = fed
        .redeem("gh", Some("https://evil.example"), "good", "v", "n")
        .await
        .unwrap_err();
    assert_eq!(mixup.rule, "sso.iss");
}
