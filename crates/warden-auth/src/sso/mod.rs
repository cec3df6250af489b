//! Sign-in through an organisation's identity provider: the relying-party half. Warden stays
//! the authorization server its MCP clients talk to; a provider only proves who the person
//! is, and the project's mapping rules turn its claims into memberships.
//!
//! `Federation` holds the providers of `login.providers`, one HTTP client and the sealing
//! key. `oidc.rs` is OpenID Connect (discovery, JWKS, code exchange, userinfo, refresh),
//! `id_token.rs` the ID-token checks, `github.rs` GitHub's OAuth 2.0 and API, `seal.rs` the
//! key that seals providers' refresh tokens at rest, `mapping.rs` the rules. The flow itself
//! (states, identities, memberships, sessions, records) is `server/sso.rs`.
//!
//! Why a module of our own on `jsonwebtoken` rather than the `openidconnect` crate: the
//! checks Warden needs are few and must be exact (asymmetric algorithms only, keys picked by
//! `kid` and refused when symmetric, RFC 9207 `iss`, each refusal named for the audit
//! trail), the HTTP client is the workspace's own with its limits, and GitHub, which is not
//! OpenID, goes through the same door. `openidconnect` would bring its generic type layers
//! and the `oauth2` crate for the part that is a few form posts.

pub mod github;
pub mod id_token;
pub mod mapping;
mod oidc;
pub mod seal;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use warden_core::project::{LoginProvider, ProviderKind, SignInConfig};

pub use mapping::{Mapped, map_claims};
pub use seal::{SealError, Sealer};

/// Longest wait for a provider's answer.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest provider answer read (discovery, keys, tokens, userinfo).
const MAX_ANSWER: usize = 256 * 1024;

/// A refusal in the sign-in, naming the check (`rule`) for the audit trail and saying what
/// happened in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SsoFailure {
    pub rule: &'static str,
    pub reason: String,
}

pub(crate) fn fail(rule: &'static str, reason: impl Into<String>) -> SsoFailure {
    SsoFailure {
        rule,
        reason: reason.into(),
    }
}

/// Who the provider says the person is.
#[derive(Debug, Clone)]
pub struct Proven {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// Everything the ID token and userinfo said (what mapping rules see as `claims`).
    pub claims: Map<String, Value>,
    /// What a resync presents later: the provider's refresh token (GitHub: the access
    /// token). Never logged or recorded.
    pub refresh_token: Option<String>,
}

impl Proven {
    fn from_claims(issuer: String, claims: Map<String, Value>, refresh: Option<&str>) -> Self {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string);
        Self {
            issuer,
            subject: text("sub").unwrap_or_default(),
            email: text("email").map(|e| e.trim().to_lowercase()),
            // Some providers send "true" as a string.
            email_verified: matches!(claims.get("email_verified"), Some(Value::Bool(true)))
                || matches!(claims.get("email_verified"), Some(Value::String(s)) if s == "true"),
            name: text("name"),
            claims,
            refresh_token: refresh.map(str::to_string),
        }
    }
}

enum Client {
    Oidc(Box<oidc::OidcClient>),
    GitHub { api_url: String, web_url: String },
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oidc(c) => c.fmt(f),
            Self::GitHub { api_url, .. } => {
                f.debug_struct("GitHub").field("api_url", api_url).finish()
            }
        }
    }
}

/// The configured providers, ready to talk to.
#[derive(Debug)]
pub struct Federation {
    config: Arc<SignInConfig>,
    clients: HashMap<String, Client>,
    http: reqwest::Client,
    sealer: Sealer,
    /// Warden's base URL: redirect URIs are `{base}/login/sso/{name}/callback`.
    base: String,
}

impl Federation {
    pub fn new(config: Arc<SignInConfig>, sealer: Sealer, base: &str) -> Result<Self, SsoFailure> {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            // A provider's endpoints answer where discovery says; a redirect is refused.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| fail("provider.config", format!("no HTTP client: {e}")))?;
        let clients = config
            .providers
            .iter()
            .map(|p| {
                let c = match &p.kind {
                    ProviderKind::Oidc { issuer, .. } => {
                        Client::Oidc(Box::new(oidc::OidcClient::new(issuer)))
                    }
                    ProviderKind::GitHub { api_url, web_url } => Client::GitHub {
                        api_url: api_url.clone(),
                        web_url: web_url.clone(),
                    },
                };
                (p.name.clone(), c)
            })
            .collect();
        Ok(Self {
            config,
            clients,
            http,
            sealer,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<LoginProvider>> {
        self.config.provider(name)
    }

    pub fn redirect_uri(&self, name: &str) -> String {
        format!("{}/login/sso/{name}/callback", self.base)
    }

    fn client(&self, name: &str) -> Result<(&Arc<LoginProvider>, &Client), SsoFailure> {
        match (self.config.provider(name), self.clients.get(name)) {
            (Some(p), Some(c)) => Ok((p, c)),
            _ => Err(fail(
                "sso.provider",
                format!("there is no identity provider named '{name}' here"),
            )),
        }
    }

    /// Where to send the person to sign in.
    pub async fn authorization_url(
        &self,
        name: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, SsoFailure> {
        let (p, c) = self.client(name)?;
        let redirect = self.redirect_uri(name);
        match c {
            Client::Oidc(o) => {
                o.authorization_url(&self.http, p, &redirect, state, nonce, challenge)
                    .await
            }
            Client::GitHub { web_url, .. } => {
                github::authorization_url(web_url, p, &redirect, state, challenge)
            }
        }
    }

    /// The person came back with `code`: who are they?
    pub async fn redeem(
        &self,
        name: &str,
        iss: Option<&str>,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Proven, SsoFailure> {
        let (p, c) = self.client(name)?;
        let redirect = self.redirect_uri(name);
        match c {
            Client::Oidc(o) => {
                o.check_response_issuer(&self.http, iss).await?;
                o.redeem(&self.http, p, &redirect, code, verifier, nonce)
                    .await
            }
            Client::GitHub { web_url, api_url } => {
                if let Some(i) = iss
                    && i.trim_end_matches('/') != web_url.trim_end_matches('/')
                {
                    return Err(fail(
                        "sso.iss",
                        format!("the sign-in response came from issuer '{i}', not GitHub"),
                    ));
                }
                github::redeem(&self.http, web_url, api_url, p, &redirect, code, verifier).await
            }
        }
    }

    /// Re-reads the person's claims with what an earlier sign-in left (`refresh`), for a
    /// provider with `resync`.
    pub async fn refresh(
        &self,
        name: &str,
        refresh: &str,
        subject: &str,
    ) -> Result<Proven, SsoFailure> {
        let (p, c) = self.client(name)?;
        match c {
            Client::Oidc(o) => o.refresh(&self.http, p, refresh, subject).await,
            Client::GitHub { web_url, api_url } => {
                let claims = github::claims(&self.http, api_url, refresh).await?;
                let proven = Proven::from_claims(web_url.clone(), claims, Some(refresh));
                if proven.subject != subject {
                    return Err(fail(
                        "id_token.sub",
                        "GitHub names another person than the sign-in did",
                    ));
                }
                Ok(proven)
            }
        }
    }
}

/// GET a JSON document (with a bearer token, for userinfo and GitHub's API), at most
/// [`MAX_ANSWER`] bytes.
async fn get_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
) -> Result<Value, SsoFailure> {
    let mut req = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.map_err(|e| unreachable(url, &e))?;
    read_json(res, url).await
}

/// POST a form to a token endpoint (client credentials in Basic auth when given).
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&'static str, String)],
    basic: Option<(String, String)>,
) -> Result<Value, SsoFailure> {
    let mut req = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form);
    if let Some((id, secret)) = basic {
        // RFC 6749 2.3.1: both are form-urlencoded before Basic encoding.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        req = req.basic_auth(enc(&id), Some(enc(&secret)));
    }
    let res = req.send().await.map_err(|e| unreachable(url, &e))?;
    let status = res.status();
    let body = read_json(res, url).await;
    match body {
        Ok(v) if v.get("error").is_some() || !status.is_success() => {
            let code = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_string();
            let desc = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            Err(fail(
                "provider.token",
                format!("the identity provider refused the code or token: {code} {desc}")
                    .trim()
                    .to_string(),
            ))
        }
        other => other,
    }
}

async fn read_json(res: reqwest::Response, url: &str) -> Result<Value, SsoFailure> {
    let status = res.status();
    if status.is_redirection() {
        return Err(fail(
            "provider.redirect",
            format!(
                "the identity provider answered {url} with a redirect, which Warden does not follow"
            ),
        ));
    }
    let mut body = Vec::new();
    let mut res = res;
    while let Some(chunk) = res.chunk().await.map_err(|e| {
        fail(
            "provider.unreachable",
            format!("the answer from {url} broke off: {}", without_url(&e)),
        )
    })? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(fail(
                "provider.too_large",
                format!("the answer from {url} is larger than {MAX_ANSWER} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|_| {
        fail(
            "provider.answer",
            format!("the answer from {url} (HTTP {status}) is not JSON"),
        )
    })?;
    if !status.is_success() && value.get("error").is_none() {
        return Err(fail(
            "provider.answer",
            format!("the identity provider answered {url} with HTTP {status}"),
        ));
    }
    Ok(value)
}

fn unreachable(url: &str, e: &reqwest::Error) -> SsoFailure {
    fail(
        "provider.unreachable",
        format!(
            "the identity provider cannot be reached at {url}: {}",
            without_url(e)
        ),
    )
}

/// reqwest's error text without the URL (which may carry a code in its query).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "(url)");
    }
    s
}
