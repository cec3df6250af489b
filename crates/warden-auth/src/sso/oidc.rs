//! An OpenID Connect relying party for one provider: discovery (cached for an hour), the
//! JWKS (cached, fetched again once when a token names a key it lacks, at most every ten
//! seconds), the authorization URL, the code exchange, userinfo and refresh.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use super::id_token::{self, Expect};
use super::{Proven, SsoFailure, fail, get_json, post_form};
use warden_core::project::LoginProvider;

const METADATA_FOR: Duration = Duration::from_secs(3600);
const JWKS_REFETCH_GAP: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize)]
pub(super) struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

#[derive(Debug, Default)]
struct Cache {
    metadata: Option<(Metadata, Instant)>,
    jwks: Option<(JwkSet, Instant)>,
    /// When a token naming an unknown key last made Warden fetch the keys again.
    refetched_for_kid: Option<Instant>,
}

#[derive(Debug)]
pub(super) struct OidcClient {
    issuer: String,
    cache: Mutex<Cache>,
}

impl OidcClient {
    pub(super) fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_string(),
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(super) async fn metadata(&self, http: &reqwest::Client) -> Result<Metadata, SsoFailure> {
        let mut cache = self.cache.lock().await;
        if let Some((m, at)) = &cache.metadata
            && at.elapsed() < METADATA_FOR
        {
            return Ok(m.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let m: Metadata =
            serde_json::from_value(get_json(http, &url, None).await?).map_err(|e| {
                fail(
                    "provider.discovery",
                    format!("the provider's discovery document at {url} is not usable: {e}"),
                )
            })?;
        // OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was
        // fetched for, or a provider could speak for another.
        if m.issuer != self.issuer {
            return Err(fail(
                "provider.discovery",
                format!(
                    "the discovery document names issuer '{}', not {}",
                    m.issuer, self.issuer
                ),
            ));
        }
        cache.metadata = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    async fn keys_for(
        &self,
        http: &reqwest::Client,
        jwks_uri: &str,
        token: &str,
    ) -> Result<JwkSet, SsoFailure> {
        let mut cache = self.cache.lock().await;
        // Fetched again when an hour old (a key the provider withdrew stops working), and
        // when a token names a key not in the set (a rotation), at most every ten seconds
        // for that reason, so that tokens with made-up `kid`s cannot hammer the provider.
        let unknown_kid = cache
            .jwks
            .as_ref()
            .is_some_and(|(keys, _)| id_token::needs_key(token, keys))
            && cache
                .refetched_for_kid
                .is_none_or(|at| at.elapsed() >= JWKS_REFETCH_GAP);
        let stale = match &cache.jwks {
            None => true,
            Some((_, at)) => at.elapsed() >= METADATA_FOR || unknown_kid,
        };
        if unknown_kid {
            cache.refetched_for_kid = Some(Instant::now());
        }
        if stale {
            let keys: JwkSet = serde_json::from_value(get_json(http, jwks_uri, None).await?)
                .map_err(|e| {
                    fail(
                        "provider.jwks",
                        format!("the provider's key set at {jwks_uri} is not usable: {e}"),
                    )
                })?;
            cache.jwks = Some((keys, Instant::now()));
        }
        Ok(cache
            .jwks
            .as_ref()
            .map(|(k, _)| k.clone())
            .unwrap_or(JwkSet { keys: vec![] }))
    }

    pub(super) async fn authorization_url(
        &self,
        http: &reqwest::Client,
        p: &LoginProvider,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, SsoFailure> {
        let m = self.metadata(http).await?;
        let mut url = url::Url::parse(&m.authorization_endpoint).map_err(|e| {
            fail(
                "provider.discovery",
                format!("the authorization endpoint is not a URL: {e}"),
            )
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &p.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if p.resync
            && matches!(
                &p.kind,
                warden_core::project::ProviderKind::Oidc {
                    preset: "google",
                    ..
                }
            )
        {
            // Google hands out a refresh token only when asked this way.
            url.query_pairs_mut()
                .append_pair("access_type", "offline")
                .append_pair("prompt", "consent");
        }
        Ok(url.to_string())
    }

    /// The `iss` the authorization response carried (RFC 9207): it must be this issuer, and
    /// must be there when the provider says it sends it.
    pub(super) async fn check_response_issuer(
        &self,
        http: &reqwest::Client,
        iss: Option<&str>,
    ) -> Result<(), SsoFailure> {
        let m = self.metadata(http).await?;
        match iss {
            Some(i) if i == self.issuer => Ok(()),
            Some(i) => Err(fail(
                "sso.iss",
                format!(
                    "the sign-in response came from issuer '{i}', not {} (a mix-up attack, or a misconfigured provider)",
                    self.issuer
                ),
            )),
            None if m.authorization_response_iss_parameter_supported => Err(fail(
                "sso.iss",
                "the provider promises an `iss` in its sign-in response and this one has none",
            )),
            None => Ok(()),
        }
    }

    fn client_auth(
        m: &Metadata,
        p: &LoginProvider,
        form: &mut Vec<(&'static str, String)>,
    ) -> Option<(String, String)> {
        let methods = m
            .token_endpoint_auth_methods_supported
            .as_deref()
            .unwrap_or(&[]);
        let basic = methods.is_empty() || methods.iter().any(|x| x == "client_secret_basic");
        if basic {
            Some((p.client_id.clone(), p.client_secret.clone()))
        } else {
            form.push(("client_id", p.client_id.clone()));
            form.push(("client_secret", p.client_secret.clone()));
            None
        }
    }

    /// Code for tokens; the ID token checked (with the nonce), then userinfo.
    pub(super) async fn redeem(
        &self,
        http: &reqwest::Client,
        p: &LoginProvider,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<Proven, SsoFailure> {
        let m = self.metadata(http).await?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", redirect_uri.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        let basic = Self::client_auth(&m, p, &mut form);
        let tokens = post_form(http, &m.token_endpoint, &form, basic).await?;
        self.proven(http, &m, p, &tokens, Some(nonce), None).await
    }

    /// A refresh at the provider: fresh claims (from a new ID token, or userinfo), the
    /// subject unchanged.
    pub(super) async fn refresh(
        &self,
        http: &reqwest::Client,
        p: &LoginProvider,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Proven, SsoFailure> {
        let m = self.metadata(http).await?;
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh_token.to_string()),
        ];
        let basic = Self::client_auth(&m, p, &mut form);
        let mut tokens = post_form(http, &m.token_endpoint, &form, basic).await?;
        // A provider that does not rotate keeps the old refresh token valid.
        if tokens.get("refresh_token").is_none()
            && let Some(t) = tokens.as_object_mut()
        {
            t.insert(
                "refresh_token".into(),
                Value::String(refresh_token.to_string()),
            );
        }
        self.proven(http, &m, p, &tokens, None, Some(subject)).await
    }

    async fn proven(
        &self,
        http: &reqwest::Client,
        m: &Metadata,
        p: &LoginProvider,
        tokens: &Value,
        nonce: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Proven, SsoFailure> {
        let access = tokens.get("access_token").and_then(Value::as_str);
        let mut claims = match tokens.get("id_token").and_then(Value::as_str) {
            Some(t) => {
                let keys = self.keys_for(http, &m.jwks_uri, t).await?;
                let now = chrono::Utc::now().timestamp();
                id_token::verify(
                    t,
                    &keys,
                    Expect {
                        issuer: &self.issuer,
                        client_id: &p.client_id,
                        nonce,
                        now,
                    },
                )
                .map_err(|r| fail(r.rule, r.reason))?
            }
            // A refresh may come without a new ID token; the claims then come from userinfo.
            None if subject.is_some() => {
                let mut c = Map::new();
                c.insert(
                    "sub".into(),
                    Value::String(subject.unwrap_or_default().to_string()),
                );
                c
            }
            None => {
                return Err(fail(
                    "id_token.missing",
                    "the provider's token response has no ID token (is the `openid` scope asked for?)",
                ));
            }
        };
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(expected) = subject
            && sub != expected
        {
            return Err(fail(
                "id_token.sub",
                "the refreshed ID token names another person than the sign-in did",
            ));
        }
        if let (Some(endpoint), Some(access)) = (&m.userinfo_endpoint, access) {
            let info = get_json(http, endpoint, Some(access)).await?;
            let Value::Object(info) = info else {
                return Err(fail(
                    "provider.userinfo",
                    "the provider's userinfo is not a JSON object",
                ));
            };
            if info.get("sub").and_then(Value::as_str) != Some(sub.as_str()) {
                return Err(fail(
                    "provider.userinfo",
                    "the provider's userinfo names another subject than the ID token",
                ));
            }
            for (k, v) in info {
                if !matches!(
                    k.as_str(),
                    "iss" | "sub" | "aud" | "azp" | "exp" | "iat" | "nonce"
                ) {
                    claims.insert(k, v);
                }
            }
        } else if nonce.is_none() && tokens.get("id_token").is_none() {
            return Err(fail(
                "provider.userinfo",
                "the refresh gave no ID token and the provider has no userinfo; the claims cannot be re-read",
            ));
        }
        let mut proven = Proven::from_claims(
            self.issuer.clone(),
            claims,
            tokens.get("refresh_token").and_then(Value::as_str),
        );
        // Entra ID sends no email_verified; its optional claim xms_edov says the domain
        // owner verified the address (the tenant is the issuer's, checked above).
        if matches!(
            &p.kind,
            warden_core::project::ProviderKind::Oidc {
                preset: "microsoft",
                ..
            }
        ) {
            proven.email_verified = proven
                .claims
                .get("xms_edov")
                .is_some_and(|v| v == &Value::Bool(true) || v == "1" || v == "true");
        }
        Ok(proven)
    }
}
