//! GitHub, which speaks OAuth 2.0 but not OpenID Connect: there is no ID token, so who the
//! person is comes from its REST API over the access token. The claims Warden derives are
//! `sub` (the numeric user id, which never changes; `login` can), `login`, `name`, `email`
//! and `email_verified` (the primary address, only if GitHub verified it), `orgs` (the
//! organisation logins) and `teams` (`org/team-slug`).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Proven, SsoFailure, fail, get_json, post_form};
use warden_core::project::LoginProvider;

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

pub(super) fn authorization_url(
    web_url: &str,
    p: &LoginProvider,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> Result<String, SsoFailure> {
    let mut url = url::Url::parse(&format!(
        "{}/login/oauth/authorize",
        web_url.trim_end_matches('/')
    ))
    .map_err(|e| fail("provider.config", format!("web_url is not usable: {e}")))?;
    url.query_pairs_mut()
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &p.scopes.join(" "))
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("allow_signup", "false");
    Ok(url.to_string())
}

pub(super) async fn redeem(
    http: &reqwest::Client,
    web_url: &str,
    api_url: &str,
    p: &LoginProvider,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> Result<Proven, SsoFailure> {
    let form = vec![
        ("client_id", p.client_id.clone()),
        ("client_secret", p.client_secret.clone()),
        ("code", code.to_string()),
        ("redirect_uri", redirect_uri.to_string()),
        ("code_verifier", verifier.to_string()),
    ];
    let url = format!("{}/login/oauth/access_token", web_url.trim_end_matches('/'));
    let tokens = post_form(http, &url, &form, None).await?;
    let access = tokens
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("provider.token", "GitHub's answer has no access token"))?;
    let claims = claims(http, api_url, access).await?;
    // GitHub user tokens of OAuth apps do not expire and come with no refresh token: the
    // access token itself is what a resync uses.
    Ok(Proven::from_claims(
        web_url.to_string(),
        claims,
        Some(access),
    ))
}

/// The person behind `access`, as claims. Also what a resync re-reads.
pub(super) async fn claims(
    http: &reqwest::Client,
    api_url: &str,
    access: &str,
) -> Result<Map<String, Value>, SsoFailure> {
    let api = api_url.trim_end_matches('/');
    let user = get_json(http, &format!("{api}/user"), Some(access)).await?;
    let emails = get_json(http, &format!("{api}/user/emails"), Some(access)).await?;
    let orgs = get_json(http, &format!("{api}/user/orgs?per_page=100"), Some(access)).await?;
    let teams = get_json(
        http,
        &format!("{api}/user/teams?per_page=100"),
        Some(access),
    )
    .await?;
    from_responses(user, emails, orgs, teams)
}

/// The claims from GitHub's four answers (`/user`, `/user/emails`, `/user/orgs`,
/// `/user/teams`).
pub fn from_responses(
    user: Value,
    emails: Value,
    orgs: Value,
    teams: Value,
) -> Result<Map<String, Value>, SsoFailure> {
    let bad = |what: &str, e: serde_json::Error| {
        fail(
            "provider.userinfo",
            format!("GitHub's {what} answer is not usable: {e}"),
        )
    };
    let user: User = serde_json::from_value(user).map_err(|e| bad("/user", e))?;
    let emails: Vec<Email> = serde_json::from_value(emails).map_err(|e| bad("/user/emails", e))?;
    let orgs: Vec<Org> = serde_json::from_value(orgs).map_err(|e| bad("/user/orgs", e))?;
    let teams: Vec<Team> = serde_json::from_value(teams).map_err(|e| bad("/user/teams", e))?;
    let primary = emails.iter().find(|e| e.primary);
    let Value::Object(claims) = json!({
        "sub": user.id.to_string(),
        "login": user.login,
        "name": user.name.unwrap_or_else(|| user.login.clone()),
        "email": primary.map(|e| e.email.to_lowercase()),
        "email_verified": primary.is_some_and(|e| e.verified),
        "orgs": orgs.into_iter().map(|o| o.login).collect::<Vec<_>>(),
        "teams": teams
            .into_iter()
            .map(|t| format!("{}/{}", t.organization.login, t.slug))
            .collect::<Vec<_>>(),
    }) else {
        return Err(fail(
            "provider.userinfo",
            "unreachable: claims are an object",
        ));
    };
    Ok(claims)
}
