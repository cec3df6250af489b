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
//!
//! One file per job: `bearer.rs` resolves a bearer at `/mcp`; `register.rs` takes client
//! registrations; `authorize.rs` checks an authorization request and turns consent into a
//! code; `token_endpoint.rs` holds what the token grants share, `exchange.rs` and
//! `refresh.rs` are the two grants, `revoke.rs` is RFC 7009; `sign_in.rs` is password and
//! link sign-in and browser sessions; `sso.rs` sign-in through an identity provider and the
//! resync of grants that came from one; `limits.rs` keeps the limiter's counters in the state
//! store; `abuse.rs` limits the request rate per address on the endpoints anyone may call,
//! and `flood.rs` records its refusals boundedly; `events.rs` builds the audit events they
//! record;
//! `error.rs` holds their refusals.

mod abuse;
mod authorize;
mod bearer;
mod error;
mod events;
mod exchange;
mod flood;
mod limits;
mod refresh;
mod register;
mod revoke;
mod sign_in;
mod sso;
mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use warden_core::audit::Sink;
use warden_core::project::AbuseLimits;
use warden_store::Store;

use crate::limiter::{Limiter, LimiterConfig};
use crate::password::PasswordHasher;
use crate::rate::SharedLimiter;

pub use abuse::{AbuseRefusal, Endpoint, RATE_LIMITED, whole_seconds};
pub use authorize::{AuthorizeParams, ValidAuthorize};
pub use bearer::{AUTH_FAILURES, refused};
pub use error::{AuthnError, AuthorizeError, InternalError, LoginError, TokenError};
pub use register::{RegisterError, purge_unused_clients_once};
pub use sign_in::{SignedIn, recently_authenticated};
pub use sso::{SSO_FLOW_TTL, SsoCallback, SsoError, SsoSignedIn, SsoStart};
pub use token_endpoint::TokenResponse;

pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// A browser session unused for this long is over (sign in again), whatever its TTL.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// How recent a sign-in (or a password confirmation) must be for a console action that
/// mints a credential, grants power or removes someone.
pub const REAUTH_WINDOW: Duration = Duration::from_secs(5 * 60);
pub const MAGIC_LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// How long after a step-up challenge a refresh of the same grant is refused, so that the
/// client re-authorizes (see [`AuthServer::note_step_up`]).
pub const STEP_UP_WINDOW: Duration = Duration::from_secs(10 * 60);

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
    /// The key under which limiter keys are hashed, read from (or created in) the state store
    /// on first use.
    failure_key: tokio::sync::OnceCell<[u8; 32]>,
    last_purge: limits::LastPurge,
    /// Request rates per address on the endpoints anyone may call, and the cap on unused
    /// clients.
    abuse_limits: AbuseLimits,
    rate: SharedLimiter,
    floods: Arc<flood::Floods>,
    last_bucket_purge: limits::LastPurge,
    audit: Arc<dyn Sink>,
    /// The consent seal's key, read from (or created in) the state store on first use.
    consent_key: tokio::sync::OnceCell<[u8; 32]>,
    /// The audit key for the console's trail pages; `None` when audit is disabled.
    trail: Option<crate::console::TrailKeys>,
    /// The identity providers people may sign in with (`login.providers`); `None` without.
    federation: Option<Arc<crate::sso::Federation>>,
    /// Fetches Client ID Metadata Documents (a `client_id` that is an https URL); without
    /// one, such a `client_id` is refused.
    documents: Option<Arc<crate::cimd::CimdFetcher>>,
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
            store: store.clone(),
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
            failure_key: tokio::sync::OnceCell::new(),
            last_purge: limits::LastPurge::default(),
            abuse_limits: AbuseLimits::default(),
            rate: SharedLimiter::new(store.clone()),
            floods: flood::Floods::new(audit.clone()),
            last_bucket_purge: limits::LastPurge::default(),
            audit,
            consent_key: tokio::sync::OnceCell::new(),
            trail: None,
            federation: None,
            documents: None,
        })
    }

    /// Authorization codes live 5 minutes unless shortened here (never lengthened).
    pub fn with_code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl.min(Duration::from_secs(5 * 60));
        self
    }

    /// The per-address limits and the cap on unused clients (defaults unless set here).
    pub fn with_abuse_limits(mut self, limits: AbuseLimits) -> Self {
        self.abuse_limits = limits;
        self
    }

    /// The audit key the console's trail pages verify from and sign exports with.
    pub fn with_audit_signer(mut self, signer: Option<Arc<warden_store::audit::Signer>>) -> Self {
        self.trail = signer.map(crate::console::TrailKeys::new);
        self
    }

    /// The fetcher for client metadata documents (`CimdFetcher::new` when serving; tests: a
    /// simulated resolver and a test CA), or none (a URL `client_id` is then refused).
    pub fn with_client_documents(
        mut self,
        documents: Option<Arc<crate::cimd::CimdFetcher>>,
    ) -> Self {
        self.documents = documents;
        self
    }

    /// Sign-in through identity providers.
    pub fn with_federation(mut self, federation: Option<Arc<crate::sso::Federation>>) -> Self {
        self.federation = federation;
        self
    }

    pub fn federation(&self) -> Option<&crate::sso::Federation> {
        self.federation.as_deref()
    }

    /// Whether a session opened without an identity provider may act for `org` (a slug):
    /// not when `login.provider_only` names it.
    pub fn password_session_allowed(&self, org: &str) -> bool {
        self.federation
            .as_ref()
            .is_none_or(|f| f.config().password_session_allowed(org))
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

    /// The web console's operations, on this server's state store and audit trail.
    pub fn console(&self) -> crate::console::Console {
        crate::console::Console::new(self.store.clone(), self.audit.clone())
            .with_trail(self.trail.clone())
            .with_provider_only(
                self.federation
                    .as_ref()
                    .map(|f| f.config().provider_only.clone())
                    .unwrap_or_default(),
            )
    }
}
