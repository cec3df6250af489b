//! The OAuth 2.1 authorization server's rules and bearer authentication, independent of
//! HTTP. The edge parses requests into the plain types here and renders the results.
//!
//! Rules that hold for every path through this module:
//! - raw secrets are generated here, returned once, and only their hashes are stored;
//! - a code is single-use, expires after 5 minutes, and a replay revokes its grant;
//! - a refresh token rotates on every use, and a reused one revokes its grant;
//! - every refresh re-reads the live membership: removal revokes, demotion downgrades;
//! - PKCE is S256 only and the verifier is compared in constant time;
//! - a token is accepted only for this server's resource (no token passthrough).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use warden_core::audit::{AuditError, Event, Sink, Source};
use warden_store::{
    CodeOutcome, Grant, GrantId, OAuthClient, OrgId, Organization, Role, RotateOutcome, Scope,
    Scopes, Store, StoreError, User, UserId,
};

use crate::limiter::{Limiter, LimiterConfig, Verdict};
use crate::password::PasswordHasher;
use crate::pkce;
use crate::principal::{AuthMethod, Principal, can_connect, can_write};
use crate::registration::{self, ClientMetadata, RegistrationError};
use crate::token::{self, RandomnessError, RawToken, TokenKind};

pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
pub const MAGIC_LINK_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    #[error("{0}")]
    Other(String),
}

/// Why a bearer was refused at `/mcp`.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// No usable credential: 401 with a challenge.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential whose holder may not connect: 403.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for AuthnError {
    fn from(e: StoreError) -> Self {
        Self::Internal(InternalError::Store(e))
    }
}

/// An OAuth error for the token or revocation endpoint (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct TokenError {
    pub code: &'static str,
    pub description: String,
    /// Set when the failure is ours, not the client's (HTTP 500).
    pub internal: bool,
}

impl TokenError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            internal: false,
        }
    }
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store failure in the token endpoint");
        Self {
            code: "server_error",
            description: "the authorization server could not complete the request".into(),
            internal: true,
        }
    }
}

impl From<AuditError> for TokenError {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "audit failure in the token endpoint");
        Self {
            code: "server_error",
            description:
                "the authorization server cannot record this request right now; try again later"
                    .into(),
            internal: true,
        }
    }
}

impl From<AuditError> for LoginError {
    fn from(e: AuditError) -> Self {
        Self::Internal(InternalError::Other(e.to_string()))
    }
}

impl From<RandomnessError> for TokenError {
    fn from(e: RandomnessError) -> Self {
        tracing::error!(error = %e, "randomness failure in the token endpoint");
        Self {
            code: "server_error",
            description: "the authorization server could not complete the request".into(),
            internal: true,
        }
    }
}

/// An authorization request that failed validation.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show the error, never redirect.
    #[error("{0}")]
    NoRedirect(String),
    /// Report to the client at its (validated) redirect URI.
    #[error("{code}: {description}")]
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        code: &'static str,
        description: String,
    },
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        Self::Internal(InternalError::Store(e))
    }
}

/// The parameters of `/authorize`, as received.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

impl AuthorizeParams {
    /// The parameters as name/value pairs, to carry through the login and consent forms.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        let mut push = |k: &'static str, val: &Option<String>| {
            if let Some(val) = val {
                v.push((k, val.clone()));
            }
        };
        push("response_type", &self.response_type);
        push("client_id", &self.client_id);
        push("redirect_uri", &self.redirect_uri);
        push("scope", &self.scope);
        push("state", &self.state);
        push("code_challenge", &self.code_challenge);
        push("code_challenge_method", &self.code_challenge_method);
        push("resource", &self.resource);
        v
    }
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct ValidAuthorize {
    pub client: OAuthClient,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: Scopes,
}

/// Tokens handed to a client. `Debug` never shows them.
pub struct TokenResponse {
    pub access_token: RawToken,
    pub refresh_token: RawToken,
    pub expires_in: u64,
    pub scopes: Scopes,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in failed; the messages never reveal whether the account exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("The email or password is not right.")]
    BadCredentials,
    #[error("Too many failed sign-ins; try again in {} minutes.", .retry_after.as_secs().div_ceil(60))]
    Locked { retry_after: Duration },
    #[error("This sign-in link is invalid, used or expired; ask for a new one.")]
    BadLink,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        Self::Internal(InternalError::Store(e))
    }
}

#[derive(Debug)]
pub struct AuthServer {
    store: Store,
    issuer: String,
    resource: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    code_ttl: Duration,
    passwords: PasswordHasher,
    logins: Limiter,
    token_failures: Limiter,
    audit: Arc<dyn Sink>,
    /// The consent seal's key, read from (or created in) the state store on first use.
    consent_key: tokio::sync::OnceCell<[u8; 32]>,
}

fn at(now: DateTime<Utc>, after: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX)
}

impl AuthServer {
    /// `issuer` is the server's base URL with no trailing slash; the protected resource is
    /// `{issuer}/mcp`.
    pub fn new(
        store: Store,
        audit: Arc<dyn Sink>,
        issuer: &str,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, InternalError> {
        let issuer = issuer.trim_end_matches('/').to_string();
        let passwords = PasswordHasher::new(2).map_err(|e| InternalError::Other(e.to_string()))?;
        Ok(Self {
            store,
            resource: format!("{issuer}/mcp"),
            issuer,
            access_ttl,
            refresh_ttl,
            code_ttl: Duration::from_secs(5 * 60),
            passwords,
            logins: Limiter::new(LimiterConfig::default()),
            token_failures: Limiter::new(LimiterConfig {
                free_failures: 10,
                lockout_after: 50,
                ..LimiterConfig::default()
            }),
            audit,
            consent_key: tokio::sync::OnceCell::new(),
        })
    }

    async fn consent_key(&self) -> Result<&[u8; 32], InternalError> {
        self.consent_key
            .get_or_try_init(|| self.store.server_key(crate::consent::KEY_NAME))
            .await
            .map_err(InternalError::from)
    }

    /// The seal binding a consent page for `user` (with CSRF token `csrf`) to `params`.
    pub async fn consent_seal(
        &self,
        user: UserId,
        csrf: &str,
        params: &AuthorizeParams,
    ) -> Result<String, InternalError> {
        crate::consent::seal(self.consent_key().await?, user, csrf, params)
            .ok_or_else(|| InternalError::Other("cannot key the consent seal".into()))
    }

    /// Whether a consent answer's parameters are the ones its page was shown for.
    pub async fn consent_seal_ok(
        &self,
        user: UserId,
        csrf: &str,
        params: &AuthorizeParams,
        presented: &str,
    ) -> Result<bool, InternalError> {
        Ok(crate::consent::verify(
            self.consent_key().await?,
            user,
            csrf,
            params,
            presented,
        ))
    }

    /// Records a security event; the operation it describes fails if it cannot be recorded.
    async fn record(&self, event: Event) -> Result<(), AuditError> {
        self.audit.record(event).await
    }

    /// An event about a grant (its organisation, user and client), from the OAuth endpoints.
    /// `email` is the grant's user's, when the caller has already read the user.
    async fn grant_event(
        &self,
        kind: &'static str,
        grant: &Grant,
        email: Option<String>,
        addr: &str,
    ) -> Event {
        let mut e = Event::new(kind, Source::Dashboard, kind);
        e.org = self
            .store
            .org_by_id(grant.org_id)
            .await
            .ok()
            .flatten()
            .map(|o| o.slug);
        e.user_id = Some(grant.user_id.to_string());
        e.user_email = email;
        e.auth_method = Some("oauth".into());
        e.credential = Some(grant.client_id.to_string());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e.detail = Some(
            serde_json::json!({"grant": grant.id.to_string(), "scopes": grant.scopes.to_string()}),
        );
        e
    }

    /// A code or refresh token of one client presented by another: the grant was revoked.
    async fn record_misuse(
        &self,
        grant: &Grant,
        presented_by: &OAuthClient,
        addr: &str,
        what: &str,
    ) -> Result<(), AuditError> {
        let mut e = self
            .grant_event("token_misuse_detected", grant, None, addr)
            .await
            .denied(
                "token",
                "token.other_client",
                format!("{what} was presented by another client; its grant was revoked"),
            );
        e.detail = Some(serde_json::json!({
            "grant": grant.id.to_string(),
            "presented_by": presented_by.id.to_string(),
            "grant_revoked": true,
        }));
        self.record(e).await
    }

    /// An event about a grant known only by id (it was revoked on reuse).
    fn grant_id_event(kind: &'static str, grant_id: &GrantId, addr: &str, reason: &str) -> Event {
        let mut e =
            Event::new(kind, Source::Dashboard, kind).denied("token", kind, reason.to_string());
        e.auth_method = Some("oauth".into());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e.detail = Some(serde_json::json!({"grant": grant_id.to_string(), "grant_revoked": true}));
        e
    }

    fn login_event(kind: &'static str, method: &str, addr: &str) -> Event {
        let mut e = Event::new(kind, Source::Dashboard, kind);
        e.auth_method = Some(method.to_string());
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e
    }

    /// Authorization codes live 5 minutes unless shortened here (never lengthened).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl.min(Duration::from_secs(5 * 60));
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }

    // ----- bearer authentication -------------------------------------------------------

    /// Resolves a bearer presented at `/mcp`.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthnError> {
        let raw = RawToken::from_client(bearer);
        let now = Utc::now();
        let invalid = || {
            AuthnError::Unauthenticated("the bearer token is invalid, expired or revoked".into())
        };
        match raw.kind() {
            Some(TokenKind::AccessToken) => {
                let (grant, holder) = self
                    .store
                    .access_token_identity(raw.hash().as_str(), now)
                    .await?
                    .ok_or_else(invalid)?;
                if grant.resource != self.resource {
                    return Err(AuthnError::Unauthenticated(format!(
                        "this token was issued for '{}', not for this server",
                        grant.resource
                    )));
                }
                let method = AuthMethod::OAuth {
                    grant_id: grant.id,
                    client_id: grant.client_id,
                };
                Self::principal_of(
                    grant.user_id,
                    grant.org_id,
                    grant.role,
                    grant.scopes,
                    method,
                    holder,
                )
            }
            Some(TokenKind::ApiKey) => {
                let (key, holder, role) = self
                    .store
                    .api_key_identity(raw.hash().as_str())
                    .await?
                    .ok_or_else(invalid)?;
                let role = role.ok_or_else(|| {
                    AuthnError::Unauthenticated(
                        "this API key's owner is no longer a member of its organisation".into(),
                    )
                })?;
                // At most one write a minute per key, skipped here when the row shows a recent use.
                if key
                    .last_used_at
                    .is_none_or(|t| now - t >= chrono::Duration::minutes(1))
                {
                    self.store.touch_api_key(&key.id, now).await?;
                }
                let method = AuthMethod::ApiKey { key_id: key.id };
                Self::principal_of(key.user_id, key.org_id, role, key.scopes, method, holder)
            }
            Some(TokenKind::Session) => {
                let session = self
                    .store
                    .session(raw.hash().as_str(), now)
                    .await?
                    .ok_or_else(invalid)?;
                let orgs: Vec<_> = self
                    .store
                    .orgs_of_user(session.user_id)
                    .await?
                    .into_iter()
                    .filter(|(_, m)| can_connect(m.role))
                    .collect();
                match orgs.as_slice() {
                    [(org, m)] => self.principal(session.user_id, org.id, m.role, Scopes::READ_WRITE, AuthMethod::Session).await,
                    [] => Err(AuthnError::Forbidden("your roles do not allow connecting an assistant".into())),
                    _ => Err(AuthnError::Forbidden(
                        "you belong to several organisations; connect through OAuth or an API key, which name one".into(),
                    )),
                }
            }
            _ => Err(AuthnError::Unauthenticated(
                "the bearer token is not a Warden token".into(),
            )),
        }
    }

    fn principal_of(
        user_id: UserId,
        org_id: OrgId,
        role: Role,
        scopes: Scopes,
        method: AuthMethod,
        holder: warden_store::Holder,
    ) -> Result<Principal, AuthnError> {
        if !can_connect(role) {
            return Err(AuthnError::Forbidden(format!(
                "the role {role} cannot connect an assistant; ask an Admin for a Member, Siloed Member or Guest role"
            )));
        }
        if holder.user_disabled {
            return Err(AuthnError::Unauthenticated(
                "this account is disabled".into(),
            ));
        }
        Ok(Principal {
            user_id,
            email: holder.email,
            org_id,
            org_slug: holder.org_slug,
            role,
            scopes,
            method,
        })
    }

    async fn principal(
        &self,
        user_id: UserId,
        org_id: OrgId,
        role: Role,
        scopes: Scopes,
        method: AuthMethod,
    ) -> Result<Principal, AuthnError> {
        if !can_connect(role) {
            return Err(AuthnError::Forbidden(format!(
                "the role {role} cannot connect an assistant; ask an Admin for a Member, Siloed Member or Guest role"
            )));
        }
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AuthnError::Unauthenticated("unknown user".into()))?;
        if user.disabled_at.is_some() {
            return Err(AuthnError::Unauthenticated(
                "this account is disabled".into(),
            ));
        }
        let org = self
            .store
            .org_by_id(org_id)
            .await?
            .ok_or_else(|| AuthnError::Unauthenticated("unknown organisation".into()))?;
        Ok(Principal {
            user_id,
            email: user.email,
            org_id,
            org_slug: org.slug,
            role,
            scopes,
            method,
        })
    }

    // ----- registration ---------------------------------------------------------------

    pub async fn register(&self, meta: &ClientMetadata) -> Result<OAuthClient, RegistrationError> {
        let accepted = registration::validate(meta)?;
        self.store
            .create_client(&accepted.name, &accepted.redirect_uris, Utc::now())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot store a client registration");
                RegistrationError::InvalidMetadata(
                    "the registration could not be stored; try again".into(),
                )
            })
    }

    // ----- authorization --------------------------------------------------------------

    /// Validates `/authorize` parameters. Errors about the client or redirect URI are never
    /// sent to the redirect URI.
    pub async fn check_authorize(
        &self,
        p: &AuthorizeParams,
    ) -> Result<ValidAuthorize, AuthorizeError> {
        let client_id = p
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthorizeError::NoRedirect("client_id is missing".into()))?;
        let id: warden_store::ClientId = client_id
            .parse()
            .map_err(|_| AuthorizeError::NoRedirect(format!("unknown client_id '{client_id}'")))?;
        let client = self
            .store
            .client(&id)
            .await?
            .filter(|c| c.revoked_at.is_none())
            .ok_or_else(|| {
                AuthorizeError::NoRedirect(format!(
                    "unknown or revoked client_id '{client_id}'; the app must register again"
                ))
            })?;
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_string(),
            Some(r) => {
                return Err(AuthorizeError::NoRedirect(format!(
                    "redirect_uri '{r}' is not registered for this client (it must match exactly)"
                )));
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(AuthorizeError::NoRedirect(
                    "redirect_uri is required for a client with several".into(),
                ));
            }
        };
        let fail = |code: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: p.state.clone(),
            code,
            description,
        };
        if p.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
        let challenge = p.code_challenge.as_deref().ok_or_else(|| {
            fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256".into(),
            )
        })?;
        match p.code_challenge_method.as_deref() {
            Some("S256") => {}
            Some(other) => {
                return Err(fail(
                    "invalid_request",
                    format!("code_challenge_method '{other}' is not supported; use S256"),
                ));
            }
            None => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method is required and must be S256 (plain is refused)".into(),
                ));
            }
        }
        if !pkce::is_valid_challenge(challenge) {
            return Err(fail(
                "invalid_request",
                "code_challenge must be 43 base64url characters (the SHA-256 of the verifier)"
                    .into(),
            ));
        }
        if let Some(resource) = &p.resource
            && resource.trim_end_matches('/') != self.resource
        {
            return Err(fail(
                "invalid_target",
                format!("resource must be {}", self.resource),
            ));
        }
        let scopes = match p.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Scopes::READ,
            Some(s) => s
                .parse::<Scopes>()
                .map_err(|e| fail("invalid_scope", e.to_string()))?,
        };
        Ok(ValidAuthorize {
            client,
            redirect_uri,
            state: p.state.clone(),
            code_challenge: challenge.to_string(),
            scopes,
        })
    }

    /// Organisations in which `user` may connect an assistant.
    pub async fn connectable_orgs(
        &self,
        user: UserId,
    ) -> Result<Vec<(Organization, Role)>, StoreError> {
        Ok(self
            .store
            .orgs_of_user(user)
            .await?
            .into_iter()
            .filter(|(_, m)| can_connect(m.role))
            .map(|(o, m)| (o, m.role))
            .collect())
    }

    /// The user allowed the request: records the grant and returns the redirect URL with a
    /// fresh code. Write access is granted only if the client asked, the user ticked it,
    /// and the role can write.
    pub async fn approve(
        &self,
        user: UserId,
        org_slug: &str,
        req: &ValidAuthorize,
        allow_write: bool,
    ) -> Result<String, AuthorizeError> {
        let fail = |code: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            code,
            description,
        };
        let org = self
            .store
            .org_by_slug(org_slug)
            .await?
            .ok_or_else(|| fail("access_denied", "unknown organisation".into()))?;
        let membership = self.store.membership(org.id, user).await?.ok_or_else(|| {
            fail(
                "access_denied",
                "you are not a member of that organisation".into(),
            )
        })?;
        if !can_connect(membership.role) {
            return Err(fail(
                "access_denied",
                format!("the role {} cannot connect an assistant", membership.role),
            ));
        }
        let mut scopes = Scopes::READ;
        if allow_write && req.scopes.contains(Scope::Write) && can_write(membership.role) {
            scopes = scopes.with(Scope::Write);
        }
        let now = Utc::now();
        let grant = self
            .store
            .create_grant(
                org.id,
                user,
                &req.client.id,
                scopes,
                membership.role,
                &self.resource,
                now,
            )
            .await?;
        let code = token::generate(TokenKind::AuthorizationCode).map_err(InternalError::from)?;
        self.store
            .insert_code(
                code.hash().as_str(),
                &grant.id,
                &req.redirect_uri,
                &req.code_challenge,
                now,
                at(now, self.code_ttl),
            )
            .await?;
        Ok(self.redirect_with(
            &req.redirect_uri,
            &[
                ("code", code.expose()),
                ("state", req.state.as_deref().unwrap_or_default()),
            ],
            req.state.is_some(),
        ))
    }

    /// The redirect for a denial or an error, with `state` and `iss` (RFC 9207).
    pub fn redirect_error(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        code: &str,
        description: &str,
    ) -> String {
        self.redirect_with(
            redirect_uri,
            &[
                ("error", code),
                ("error_description", description),
                ("state", state.unwrap_or_default()),
            ],
            state.is_some(),
        )
    }

    fn redirect_with(
        &self,
        redirect_uri: &str,
        pairs: &[(&str, &str)],
        with_state: bool,
    ) -> String {
        let mut url = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => return redirect_uri.to_string(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                if *k == "state" && !with_state {
                    continue;
                }
                q.append_pair(k, v);
            }
            q.append_pair("iss", &self.issuer);
        }
        url.to_string()
    }

    // ----- token endpoint -------------------------------------------------------------

    fn check_token_rate(&self, addr: &str) -> Result<(), TokenError> {
        match self
            .token_failures
            .check(&[format!("token-addr:{addr}")], Instant::now())
        {
            Verdict::Locked { retry_after } => Err(TokenError::new(
                "invalid_request",
                format!(
                    "too many failed token requests from this address; retry in {} s",
                    retry_after.as_secs()
                ),
            )),
            Verdict::Proceed(_) => Ok(()),
        }
    }

    async fn token_failed(&self, addr: &str) {
        for key in self
            .token_failures
            .fail(&[format!("token-addr:{addr}")], Instant::now())
        {
            tracing::warn!(target: "warden::security", key = %key, "token endpoint lockout");
            let e = Self::login_event("lockout", "oauth", addr).denied(
                "rate_limit",
                "token.lockout",
                format!("too many failed token requests ({key})"),
            );
            if let Err(err) = self.record(e).await {
                tracing::error!(error = %err, "could not record a lockout");
            }
        }
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        code: Option<&str>,
        verifier: Option<&str>,
        redirect_uri: Option<&str>,
        client_id: Option<&str>,
        resource: Option<&str>,
        addr: &str,
    ) -> Result<TokenResponse, TokenError> {
        self.check_token_rate(addr)?;
        let result = self
            .exchange_code_inner(code, verifier, redirect_uri, client_id, resource, addr)
            .await;
        if matches!(&result, Err(e) if !e.internal) {
            self.token_failed(addr).await;
        }
        result
    }

    async fn exchange_code_inner(
        &self,
        code: Option<&str>,
        verifier: Option<&str>,
        redirect_uri: Option<&str>,
        client_id: Option<&str>,
        resource: Option<&str>,
        addr: &str,
    ) -> Result<TokenResponse, TokenError> {
        let code = code.ok_or_else(|| TokenError::new("invalid_request", "code is missing"))?;
        let verifier = verifier.ok_or_else(|| {
            TokenError::new(
                "invalid_request",
                "code_verifier is missing (PKCE is required)",
            )
        })?;
        let client = self.client(client_id).await?;
        if let Some(r) = resource
            && r.trim_end_matches('/') != self.resource
        {
            return Err(TokenError::new(
                "invalid_target",
                format!("resource must be {}", self.resource),
            ));
        }
        let now = Utc::now();
        let outcome = self
            .store
            .consume_code(RawToken::from_client(code).hash().as_str(), now)
            .await?;
        let (grant, stored_redirect, challenge) = match outcome {
            CodeOutcome::Fresh {
                grant,
                redirect_uri,
                code_challenge,
            } => (grant, redirect_uri, code_challenge),
            CodeOutcome::Replayed { grant_id } => {
                self.store
                    .revoke_grant(&grant_id, "authorization code replayed", now)
                    .await?;
                tracing::warn!(target: "warden::security", grant = %grant_id, "authorization code replayed; grant revoked");
                self.record(Self::grant_id_event(
                    "token_reuse_detected",
                    &grant_id,
                    addr,
                    "an authorization code was presented twice; its grant was revoked",
                ))
                .await?;
                return Err(TokenError::new(
                    "invalid_grant",
                    "this code was already used; every token issued from it is now revoked",
                ));
            }
            CodeOutcome::Expired => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "the code has expired; start the sign-in again",
                ));
            }
            CodeOutcome::Revoked | CodeOutcome::Unknown => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "the code is invalid or revoked",
                ));
            }
        };
        if grant.client_id != client.id {
            self.store
                .revoke_grant(&grant.id, "code presented by another client", now)
                .await?;
            self.record_misuse(&grant, &client, addr, "an authorization code")
                .await?;
            return Err(TokenError::new(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if redirect_uri != Some(stored_redirect.as_str()) {
            return Err(TokenError::new(
                "invalid_grant",
                "redirect_uri does not match the one used to get the code",
            ));
        }
        if !pkce::verify_s256(verifier, &challenge) {
            return Err(TokenError::new(
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            ));
        }
        let email = self.check_live(&grant, now, addr).await?;
        let issued = self.issue(&grant, now).await?;
        let e = self
            .grant_event("token_issued", &grant, Some(email), addr)
            .await;
        self.record(e).await?;
        Ok(issued)
    }

    async fn client(&self, client_id: Option<&str>) -> Result<OAuthClient, TokenError> {
        let id =
            client_id.ok_or_else(|| TokenError::new("invalid_client", "client_id is missing"))?;
        let parsed: warden_store::ClientId = id
            .parse()
            .map_err(|_| TokenError::new("invalid_client", "unknown client_id"))?;
        self.store
            .client(&parsed)
            .await?
            .filter(|c| c.revoked_at.is_none())
            .ok_or_else(|| TokenError::new("invalid_client", "unknown or revoked client_id"))
    }

    /// Re-reads the member's live role. Removed, or demoted to a role that cannot connect:
    /// the grant is revoked. Demoted otherwise: the grant takes the new role.
    /// Returns the user's email, for the record of what the grant is used for.
    async fn check_live(
        &self,
        grant: &Grant,
        now: DateTime<Utc>,
        addr: &str,
    ) -> Result<String, TokenError> {
        let membership = self.store.membership(grant.org_id, grant.user_id).await?;
        let user = self.store.user_by_id(grant.user_id).await?;
        match (membership, user) {
            (Some(m), Some(u)) if can_connect(m.role) && u.disabled_at.is_none() => {
                if m.role != grant.role {
                    self.store.set_grant_role(&grant.id, m.role, now).await?;
                    tracing::info!(target: "warden::security", grant = %grant.id, from = %grant.role, to = %m.role, "grant role updated on refresh");
                    let mut e = self
                        .grant_event("grant_role_changed", grant, Some(u.email.clone()), addr)
                        .await;
                    e.reason = Some(format!("the member's role is now {}", m.role));
                    self.record(e).await?;
                }
                Ok(u.email)
            }
            (_, user) => {
                self.store
                    .revoke_grant(
                        &grant.id,
                        "membership removed or no longer allowed to connect",
                        now,
                    )
                    .await?;
                let email = user.map(|u| u.email);
                let e = self
                    .grant_event("grant_revoked", grant, email, addr)
                    .await
                    .denied(
                        "connect",
                        "membership.lost",
                        "membership removed or no longer allowed to connect",
                    );
                self.record(e).await?;
                Err(TokenError::new(
                    "invalid_grant",
                    "you no longer have access to this organisation; ask an Admin",
                ))
            }
        }
    }

    async fn issue(&self, grant: &Grant, now: DateTime<Utc>) -> Result<TokenResponse, TokenError> {
        let access = token::generate(TokenKind::AccessToken)?;
        let refresh = token::generate(TokenKind::RefreshToken)?;
        self.store
            .insert_access_token(
                access.hash().as_str(),
                &grant.id,
                now,
                at(now, self.access_ttl),
            )
            .await?;
        self.store
            .insert_refresh_token(
                refresh.hash().as_str(),
                &grant.id,
                now,
                at(now, self.refresh_ttl),
            )
            .await?;
        Ok(TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.access_ttl.as_secs(),
            scopes: grant.scopes,
        })
    }

    /// `grant_type=refresh_token`: rotate, then re-check the live membership.
    pub async fn refresh(
        &self,
        refresh_token: Option<&str>,
        client_id: Option<&str>,
        resource: Option<&str>,
        addr: &str,
    ) -> Result<TokenResponse, TokenError> {
        self.check_token_rate(addr)?;
        let result = self
            .refresh_inner(refresh_token, client_id, resource, addr)
            .await;
        if matches!(&result, Err(e) if !e.internal) {
            self.token_failed(addr).await;
        }
        result
    }

    async fn refresh_inner(
        &self,
        refresh_token: Option<&str>,
        client_id: Option<&str>,
        resource: Option<&str>,
        addr: &str,
    ) -> Result<TokenResponse, TokenError> {
        let presented = refresh_token
            .ok_or_else(|| TokenError::new("invalid_request", "refresh_token is missing"))?;
        let client = self.client(client_id).await?;
        if let Some(r) = resource
            && r.trim_end_matches('/') != self.resource
        {
            return Err(TokenError::new(
                "invalid_target",
                format!("resource must be {}", self.resource),
            ));
        }
        let now = Utc::now();
        let access = token::generate(TokenKind::AccessToken)?;
        let refresh = token::generate(TokenKind::RefreshToken)?;
        let outcome = self
            .store
            .rotate_refresh_token(
                RawToken::from_client(presented).hash().as_str(),
                refresh.hash().as_str(),
                access.hash().as_str(),
                now,
                at(now, self.access_ttl),
                at(now, self.refresh_ttl),
            )
            .await?;
        let grant = match outcome {
            RotateOutcome::Rotated { grant } => grant,
            RotateOutcome::Reused { grant_id } => {
                tracing::warn!(target: "warden::security", grant = %grant_id, "refresh token reused; grant revoked");
                self.record(Self::grant_id_event(
                    "token_reuse_detected",
                    &grant_id,
                    addr,
                    "a used refresh token was presented again; its grant was revoked",
                ))
                .await?;
                return Err(TokenError::new(
                    "invalid_grant",
                    "this refresh token was already used; every token of this connection is now revoked; sign in again",
                ));
            }
            RotateOutcome::Expired => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "the refresh token has expired; sign in again",
                ));
            }
            RotateOutcome::Revoked | RotateOutcome::Unknown => {
                return Err(TokenError::new(
                    "invalid_grant",
                    "the refresh token is invalid or revoked; sign in again",
                ));
            }
        };
        if grant.client_id != client.id {
            self.store
                .revoke_grant(&grant.id, "refresh token presented by another client", now)
                .await?;
            self.record_misuse(&grant, &client, addr, "a refresh token")
                .await?;
            return Err(TokenError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        let email = self.check_live(&grant, now, addr).await?;
        let e = self
            .grant_event("token_refreshed", &grant, Some(email), addr)
            .await;
        self.record(e).await?;
        Ok(TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: self.access_ttl.as_secs(),
            scopes: grant.scopes,
        })
    }

    /// RFC 7009: revokes an access or refresh token; unknown tokens are not an error.
    pub async fn revoke(&self, token: &str, addr: &str) -> Result<(), InternalError> {
        let raw = RawToken::from_client(token);
        let now = Utc::now();
        // Only a revocation that revoked something is recorded: the endpoint takes
        // unauthenticated requests, which must not be able to fill the trail.
        let kind = match raw.kind() {
            Some(TokenKind::AccessToken)
                if self
                    .store
                    .revoke_access_token(raw.hash().as_str(), now)
                    .await? =>
            {
                "access"
            }
            Some(TokenKind::RefreshToken)
                if self
                    .store
                    .revoke_refresh_token(raw.hash().as_str(), now)
                    .await? =>
            {
                "refresh"
            }
            _ => return Ok(()),
        };
        let mut e = Self::login_event("token_revoked", "oauth", addr);
        e.detail = Some(serde_json::json!({"token": kind}));
        self.record(e)
            .await
            .map_err(|e| InternalError::Other(e.to_string()))
    }

    // ----- sign-in --------------------------------------------------------------------

    fn login_keys(email: &str, addr: &str) -> Vec<String> {
        vec![
            format!("account:{}", email.trim().to_lowercase()),
            format!("addr:{addr}"),
        ]
    }

    async fn wait_turn(&self, keys: &[String]) -> Result<(), LoginError> {
        match self.logins.check(keys, Instant::now()) {
            Verdict::Locked { retry_after } => Err(LoginError::Locked { retry_after }),
            Verdict::Proceed(delay) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
        }
    }

    async fn login_failed(&self, keys: &[String], addr: &str) -> Result<(), AuditError> {
        for key in self.logins.fail(keys, Instant::now()) {
            tracing::warn!(target: "warden::security", key = %key, "sign-in lockout");
            let e = Self::login_event("lockout", "password", addr).denied(
                "rate_limit",
                "login.lockout",
                format!("too many failed attempts ({key})"),
            );
            self.record(e).await?;
        }
        Ok(())
    }

    /// Password sign-in; on success, a new browser session.
    pub async fn login_password(
        &self,
        email: &str,
        password: &str,
        addr: &str,
    ) -> Result<(User, RawToken), LoginError> {
        let keys = Self::login_keys(email, addr);
        self.wait_turn(&keys).await?;
        let user = self.store.user_by_email(email).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        let ok = self.passwords.verify(password, hash).await;
        match user {
            Some(u) if ok && u.disabled_at.is_none() => {
                self.logins.succeed(&keys[0]);
                tracing::info!(target: "warden::security", user = %u.id, "sign-in succeeded");
                let session = self.new_session(u.id).await?;
                let e = Self::login_event("login_succeeded", "password", addr)
                    .user(u.id.to_string(), u.email.clone());
                self.record(e).await?;
                Ok((u, session))
            }
            known => {
                self.login_failed(&keys, addr).await?;
                tracing::info!(target: "warden::security", "sign-in failed");
                // The typed email is kept only when it names an account: an unknown one may
                // be a password typed into the wrong field.
                let mut e = Self::login_event("login_failed", "password", addr).denied(
                    "authenticate",
                    "login.bad_credentials",
                    if known.is_some() {
                        "wrong password or disabled account"
                    } else {
                        "no such account"
                    },
                );
                if let Some(u) = known {
                    e = e.user(u.id.to_string(), u.email);
                }
                self.record(e).await?;
                Err(LoginError::BadCredentials)
            }
        }
    }

    async fn new_session(&self, user: UserId) -> Result<RawToken, LoginError> {
        let session = token::generate(TokenKind::Session).map_err(InternalError::from)?;
        let now = Utc::now();
        self.store
            .create_session(session.hash().as_str(), user, now, at(now, SESSION_TTL))
            .await?;
        Ok(session)
    }

    /// The signed-in user behind a session cookie.
    pub async fn session_user(&self, raw: &str) -> Result<Option<User>, StoreError> {
        let raw = RawToken::from_client(raw);
        if raw.kind() != Some(TokenKind::Session) {
            return Ok(None);
        }
        let Some(s) = self.store.session(raw.hash().as_str(), Utc::now()).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .user_by_id(s.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none()))
    }

    /// Creates a single-use sign-in link token for `email`, if such a user exists. The
    /// caller sends it and always shows the same message, so the page does not reveal
    /// which emails have accounts.
    pub async fn magic_link(
        &self,
        email: &str,
        addr: &str,
    ) -> Result<Option<(User, RawToken)>, LoginError> {
        // Link requests have their own counters: they may slow or stop more link mail (no
        // flooding an inbox), but never lock the account out of password sign-in.
        let keys = vec![
            format!("link:{}", email.trim().to_lowercase()),
            format!("link-addr:{addr}"),
        ];
        self.wait_turn(&keys).await?;
        self.login_failed(&keys, addr).await?;
        let Some(user) = self
            .store
            .user_by_email(email)
            .await?
            .filter(|u| u.disabled_at.is_none())
        else {
            return Ok(None);
        };
        let link = token::generate(TokenKind::MagicLink).map_err(InternalError::from)?;
        let now = Utc::now();
        self.store
            .create_magic_link(link.hash().as_str(), user.id, now, at(now, MAGIC_LINK_TTL))
            .await?;
        self.store.purge_magic_links(now).await?;
        Ok(Some((user, link)))
    }

    /// Redeems a sign-in link (once) for a session.
    pub async fn redeem_magic_link(&self, raw: &str) -> Result<(User, RawToken), LoginError> {
        let raw = RawToken::from_client(raw);
        if raw.kind() != Some(TokenKind::MagicLink) {
            return Err(LoginError::BadLink);
        }
        let user_id = self
            .store
            .consume_magic_link(raw.hash().as_str(), Utc::now())
            .await?
            .ok_or(LoginError::BadLink)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(LoginError::BadLink)?;
        self.logins.succeed(&format!("account:{}", user.email));
        let session = self.new_session(user.id).await?;
        let e = Self::login_event("login_succeeded", "magic_link", "")
            .user(user.id.to_string(), user.email.clone());
        self.record(e).await?;
        Ok((user, session))
    }

    pub async fn logout(&self, raw_session: &str) -> Result<(), StoreError> {
        self.store
            .revoke_session(
                RawToken::from_client(raw_session).hash().as_str(),
                Utc::now(),
            )
            .await
            .map(|_| ())
    }
}
