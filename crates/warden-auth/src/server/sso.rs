//! Sign-in through an identity provider, and the resync of a grant that came from one.
//!
//! Going out (`sso_begin`): a fresh state, nonce and PKCE verifier; the state's hash, the
//! nonce and the verifier are kept server-side for ten minutes, and the browser keeps the
//! state in a cookie. Coming back (`sso_finish`): the state must match the cookie and a
//! stored, unused, unexpired flow (taken once); then the provider proves the person
//! (`crate::sso`); then the identity (issuer, subject) is found or linked or provisioned, as
//! the provider allows; then the mapping rules set the memberships in every organisation
//! the provider's rules name. Each refusal is recorded as `sso_refused` with its rule; a
//! sign-in as `sso_login`; each membership change as `role_synced`.

use chrono::Utc;
use serde_json::json;
use warden_core::audit::{Event, Source};
use warden_store::{FederatedIdentity, Grant, SsoFlow, User};

use super::{AuthServer, InternalError, LoginError, TokenError, at};
use crate::sso::{Mapped, Proven, SsoFailure, fail, map_claims};
use crate::token::{self, RawToken, TokenHash};

/// How long a person may take at the provider.
pub const SSO_FLOW_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Where to send the person, and the state for their cookie.
#[derive(Debug)]
pub struct SsoStart {
    pub redirect: String,
    pub state: String,
}

/// What came back on the callback.
#[derive(Debug, Default)]
pub struct SsoCallback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
}

#[derive(Debug)]
pub struct SsoSignedIn {
    pub user: User,
    pub session: RawToken,
    pub continue_to: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// Refused (and recorded): the person sees the reason.
    #[error("{0}")]
    Refused(SsoFailure),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<warden_store::StoreError> for SsoError {
    fn from(e: warden_store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<warden_core::audit::AuditError> for SsoError {
    fn from(e: warden_core::audit::AuditError) -> Self {
        Self::Internal(InternalError::Other(format!(
            "the audit trail refused the record: {e}"
        )))
    }
}

impl From<LoginError> for SsoError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Internal(i) => Self::Internal(i),
            other => Self::Internal(InternalError::Other(other.to_string())),
        }
    }
}

fn random(n: usize) -> Result<String, InternalError> {
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(&token::random_id("")?);
    }
    Ok(s)
}

impl AuthServer {
    fn sso_event(kind: &'static str, provider: &str, addr: &str) -> Event {
        let mut e = Event::new(kind, Source::Dashboard, kind);
        e.auth_method = Some(format!("sso:{provider}"));
        e.remote_addr = Some(addr.to_string()).filter(|a| !a.is_empty());
        e
    }

    /// Records a refusal and hands it back.
    async fn sso_refused(
        &self,
        provider: &str,
        f: SsoFailure,
        who: Option<(&User, &Proven)>,
        addr: &str,
    ) -> SsoError {
        tracing::info!(target: "warden::security", provider, rule = f.rule, reason = %f.reason, "identity-provider sign-in refused");
        let mut e = Self::sso_event("sso_refused", provider, addr).denied(
            "authenticate",
            f.rule,
            f.reason.clone(),
        );
        if let Some((u, p)) = who {
            e = e.user(u.id.to_string(), u.email.clone());
            e.detail =
                Some(json!({"provider": provider, "issuer": p.issuer, "subject": p.subject}));
        } else {
            e.detail = Some(json!({"provider": provider}));
        }
        match self.record(e).await {
            Ok(()) => SsoError::Refused(f),
            Err(e) => e.into(),
        }
    }

    /// Starts a sign-in at provider `name`, continuing to `continue_to` (already checked
    /// by the caller) once back.
    pub async fn sso_begin(
        &self,
        name: &str,
        continue_to: &str,
        addr: &str,
    ) -> Result<SsoStart, SsoError> {
        let Some(fed) = &self.federation else {
            return Err(SsoError::Refused(fail(
                "sso.provider",
                "sign-in through an identity provider is not set up here",
            )));
        };
        if fed.provider(name).is_none() {
            return Err(self
                .sso_refused(
                    name,
                    fail(
                        "sso.provider",
                        format!("there is no identity provider named '{name}' here"),
                    ),
                    None,
                    addr,
                )
                .await);
        }
        let state = random(2)?;
        let nonce = random(2)?;
        let verifier = random(2)?;
        let challenge = crate::pkce::challenge_s256(&verifier);
        let redirect = match fed
            .authorization_url(name, &state, &nonce, &challenge)
            .await
        {
            Ok(r) => r,
            Err(f) => return Err(self.sso_refused(name, f, None, addr).await),
        };
        let now = Utc::now();
        let flow = SsoFlow {
            provider: name.to_string(),
            nonce,
            pkce_verifier: verifier,
            continue_to: continue_to.to_string(),
        };
        self.store
            .create_sso_flow(
                TokenHash::of(&state).as_str(),
                &flow,
                now,
                at(now, SSO_FLOW_TTL),
            )
            .await?;
        Ok(SsoStart { redirect, state })
    }

    /// The person is back from provider `name`. `cookie_state` is the state the browser kept.
    pub async fn sso_finish(
        &self,
        name: &str,
        cb: SsoCallback<'_>,
        cookie_state: Option<&str>,
        addr: &str,
    ) -> Result<SsoSignedIn, SsoError> {
        let Some(fed) = self.federation.clone() else {
            return Err(SsoError::Refused(fail(
                "sso.provider",
                "sign-in through an identity provider is not set up here",
            )));
        };
        let Some(provider) = fed.provider(name).cloned() else {
            return Err(self
                .sso_refused(
                    name,
                    fail(
                        "sso.provider",
                        format!("there is no identity provider named '{name}' here"),
                    ),
                    None,
                    addr,
                )
                .await);
        };
        let state = cb.state.unwrap_or_default();
        let cookie = cookie_state.unwrap_or_default();
        if state.is_empty() || !token::secrets_equal(state.as_bytes(), cookie.as_bytes()) {
            return Err(self
                .sso_refused(name, fail("sso.state", "this sign-in's state does not match the one this browser started (an old tab, another browser, or a forged link); start the sign-in again"), None, addr)
                .await);
        }
        let now = Utc::now();
        let flow = match self
            .store
            .take_sso_flow(TokenHash::of(state).as_str(), now)
            .await?
        {
            Some(f) if f.provider == name => f,
            Some(_) => {
                return Err(self
                    .sso_refused(
                        name,
                        fail("sso.state", "this sign-in was started for another provider"),
                        None,
                        addr,
                    )
                    .await);
            }
            None => {
                return Err(self
                    .sso_refused(
                        name,
                        fail(
                            "sso.state",
                            "this sign-in has expired or was already used; start it again",
                        ),
                        None,
                        addr,
                    )
                    .await);
            }
        };
        if let Some(error) = cb.error {
            let text = format!(
                "{} refused the sign-in: {error} {}",
                provider.label,
                cb.error_description.unwrap_or("")
            )
            .trim()
            .to_string();
            return Err(self
                .sso_refused(name, fail("provider.refused", text), None, addr)
                .await);
        }
        let Some(code) = cb.code.filter(|c| !c.is_empty()) else {
            return Err(self
                .sso_refused(
                    name,
                    fail("sso.code", "the provider sent no code back"),
                    None,
                    addr,
                )
                .await);
        };
        let proven = match fed
            .redeem(name, cb.iss, code, &flow.pkce_verifier, &flow.nonce)
            .await
        {
            Ok(p) => p,
            Err(f) => return Err(self.sso_refused(name, f, None, addr).await),
        };
        let mapped = match map_claims(&provider, &proven.claims) {
            Ok(m) => m,
            Err(f) => return Err(self.sso_refused(name, f, None, addr).await),
        };
        let (user, identity) = self
            .sso_identity(name, &provider, &proven, &mapped, addr)
            .await?;
        if user.disabled_at.is_some() {
            return Err(self
                .sso_refused(
                    name,
                    fail(
                        "sso.disabled",
                        "this Warden account is disabled; ask an Admin",
                    ),
                    Some((&user, &proven)),
                    addr,
                )
                .await);
        }
        self.apply_mapping(name, &user, &mapped, addr).await?;
        if mapped.grants.is_empty() {
            return Err(self
                .sso_refused(
                    name,
                    fail("sso.unmapped", format!("{} signed you in, but none of its mapping rules gives you an organisation here (ask an Admin to check your groups)", provider.label)),
                    Some((&user, &proven)),
                    addr,
                )
                .await);
        }
        let sealed = match (&proven.refresh_token, provider.resync) {
            (Some(t), true) => Some(
                fed.sealer()
                    .seal(&identity.id, t)
                    .map_err(|e| InternalError::Other(e.to_string()))?,
            ),
            _ => None,
        };
        self.store
            .identity_signed_in(
                &identity.id,
                proven.email.as_deref(),
                sealed.as_deref(),
                now,
            )
            .await?;
        let session = self.new_session(user.id).await?;
        self.store
            .set_session_identity(session.hash().as_str(), &identity.id)
            .await?;
        self.limit_clear(&format!("account:{}", user.email.trim().to_lowercase()))
            .await;
        let mut e =
            Self::sso_event("sso_login", name, addr).user(user.id.to_string(), user.email.clone());
        e.detail = Some(json!({
            "provider": name,
            "issuer": proven.issuer,
            "subject": proven.subject,
            "orgs": mapped.grants.iter().map(|(o, r, i)| json!({"org": o, "role": r.as_str(), "rule": format!("map[{i}]")})).collect::<Vec<_>>(),
        }));
        self.record(e).await?;
        Ok(SsoSignedIn {
            user,
            session,
            continue_to: flow.continue_to,
        })
    }

    /// The Warden account behind the proven person: linked before, linked now by a
    /// verified e-mail (when the provider allows), or created (when it provisions and a
    /// rule maps them). Never linked by an e-mail alone.
    async fn sso_identity(
        &self,
        name: &str,
        provider: &warden_core::project::LoginProvider,
        proven: &Proven,
        mapped: &Mapped,
        addr: &str,
    ) -> Result<(User, FederatedIdentity), SsoError> {
        if let Some(identity) = self
            .store
            .federated_identity(&proven.issuer, &proven.subject)
            .await?
        {
            let user = self
                .store
                .user_by_id(identity.user_id)
                .await?
                .ok_or_else(|| {
                    InternalError::Other("a linked identity's user is missing".into())
                })?;
            return Ok((user, identity));
        }
        let existing = match &proven.email {
            Some(e) => self.store.user_by_email(e).await?,
            None => None,
        };
        match existing {
            Some(user) if provider.link_verified_email && proven.email_verified => {
                let identity = self
                    .store
                    .link_identity(&proven.issuer, &proven.subject, user.id, name, proven.email.as_deref())
                    .await?;
                let mut e = Self::sso_event("identity_linked", name, addr).user(user.id.to_string(), user.email.clone());
                e.detail = Some(json!({"provider": name, "issuer": proven.issuer, "subject": proven.subject, "by": "verified e-mail"}));
                self.record(e).await?;
                Ok((user, identity))
            }
            Some(user) => {
                let why = if provider.link_verified_email {
                    "the provider does not say this e-mail address is verified"
                } else {
                    "this provider does not link accounts by e-mail"
                };
                Err(self
                    .sso_refused(
                        name,
                        fail("sso.unlinked_email", format!("A Warden account with this e-mail exists, but it is not linked to {}, and {why}. Sign in the way you usually do, or ask an Admin.", provider.label)),
                        Some((&user, proven)),
                        addr,
                    )
                    .await)
            }
            None if !provider.provision => Err(self
                .sso_refused(
                    name,
                    fail("sso.no_account", format!("{} signed you in, but you have no Warden account, and this provider does not create them. Ask an Admin to add you.", provider.label)),
                    None,
                    addr,
                )
                .await),
            None if mapped.grants.is_empty() => Err(self
                .sso_refused(
                    name,
                    fail("sso.unmapped", format!("{} signed you in, but none of its mapping rules gives you an organisation here (ask an Admin to check your groups)", provider.label)),
                    None,
                    addr,
                )
                .await),
            None => {
                let Some(email) = proven.email.as_deref().filter(|_| proven.email_verified) else {
                    return Err(self
                        .sso_refused(name, fail("sso.no_email", format!("{} gave no verified e-mail address, which a new Warden account needs", provider.label)), None, addr)
                        .await);
                };
                let display = proven.name.clone().unwrap_or_else(|| email.to_string());
                let (user, identity) = self
                    .store
                    .provision_identity(email, &display, &proven.issuer, &proven.subject, name)
                    .await?;
                let mut e = Self::sso_event("user_provisioned", name, addr).user(user.id.to_string(), user.email.clone());
                e.detail = Some(json!({"provider": name, "issuer": proven.issuer, "subject": proven.subject}));
                self.record(e).await?;
                Ok((user, identity))
            }
        }
    }

    /// Brings the memberships in every organisation the provider's rules name in line with
    /// what the rules gave, recording each change as `role_synced`.
    async fn apply_mapping(
        &self,
        provider: &str,
        user: &User,
        mapped: &Mapped,
        addr: &str,
    ) -> Result<(), SsoError> {
        let mut changed = false;
        for slug in &mapped.governed {
            let Some(org) = self.store.org_by_slug(slug).await? else {
                tracing::warn!(provider, org = %slug, "a mapping rule names an organisation that does not exist; create it with `warden org create`");
                continue;
            };
            let target = mapped.grants.iter().find(|(o, _, _)| o == slug);
            let current = self
                .store
                .membership(org.id, user.id)
                .await?
                .map(|m| m.role);
            let to = target.map(|(_, r, _)| *r);
            if current == to {
                continue;
            }
            let mut grants_revoked = 0;
            match to {
                Some(role) => {
                    self.store.set_membership(org.id, user.id, role).await?;
                }
                None => {
                    // As any removal: the membership, their keys there, and every connected
                    // app there, whose access tokens would otherwise live until they expire.
                    self.store.remove_membership(org.id, user.id).await?;
                    grants_revoked = self
                        .store
                        .revoke_grants_of_member(
                            org.id,
                            user.id,
                            &format!("removed by {provider}'s mapping"),
                            Utc::now(),
                        )
                        .await?;
                }
            }
            changed = true;
            let mut e = Self::sso_event("role_synced", provider, addr)
                .user(user.id.to_string(), user.email.clone());
            e.org = Some(slug.clone());
            e.reason = Some(match (current, to) {
                (None, Some(r)) => format!("added as {r} by {provider}'s mapping"),
                (Some(f), Some(t)) => format!("role {f} -> {t} by {provider}'s mapping"),
                (Some(f), None) => {
                    format!("removed (was {f}): no mapping rule of {provider} holds any more")
                }
                (None, None) => String::new(),
            });
            e.detail = Some(json!({
                "provider": provider,
                "from": current.map(|r| r.as_str()),
                "to": to.map(|r| r.as_str()),
                "rule": target.map(|(_, _, i)| format!("map[{i}]")),
                "grants_revoked": grants_revoked,
            }));
            self.record(e).await?;
        }
        if changed {
            self.store.auth_changed();
        }
        Ok(())
    }

    /// Before a refresh of a grant approved in a provider sign-in with `resync`: the claims
    /// are read again at the provider and the mapping applied, so the membership check that
    /// follows sees what the provider says now. Any failure refuses the refresh (and
    /// revokes the grant): fail closed.
    pub(super) async fn resync_grant(&self, grant: &Grant, addr: &str) -> Result<(), TokenError> {
        let Some(identity_id) = self.store.grant_identity(&grant.id).await? else {
            return Ok(());
        };
        let failure = match self.resync_identity(&identity_id, addr).await {
            Ok(()) => return Ok(()),
            Err(SsoError::Refused(f)) => f,
            Err(SsoError::Internal(e)) => {
                tracing::error!(error = %e, "resync failed internally");
                fail(
                    "sso.resync",
                    "the identity provider's answer could not be checked",
                )
            }
        };
        self.store
            .revoke_grant(
                &grant.id,
                "the identity provider no longer confirms this sign-in",
                Utc::now(),
            )
            .await?;
        let e = self
            .grant_event("grant_revoked", grant, None, addr)
            .await
            .denied("connect", failure.rule, failure.reason.clone());
        self.record(e).await?;
        Err(TokenError::new(
            "invalid_grant",
            format!(
                "your identity provider no longer confirms your access ({}); sign in again",
                failure.reason
            ),
        ))
    }

    async fn resync_identity(&self, identity_id: &str, addr: &str) -> Result<(), SsoError> {
        let Some(fed) = self.federation.clone() else {
            return Err(SsoError::Refused(fail(
                "sso.provider",
                "identity-provider sign-in is no longer set up here",
            )));
        };
        let identity = self
            .store
            .federated_identity_by_id(identity_id)
            .await?
            .ok_or_else(|| {
                SsoError::Refused(fail(
                    "sso.identity",
                    "the sign-in this connection came from is gone",
                ))
            })?;
        let name = identity.provider.clone();
        let Some(provider) = fed.provider(&name).cloned() else {
            return Err(SsoError::Refused(fail(
                "sso.provider",
                format!("the identity provider '{name}' is no longer set up here"),
            )));
        };
        if !provider.resync {
            return Ok(());
        }
        let user = self
            .store
            .user_by_id(identity.user_id)
            .await?
            .ok_or_else(|| InternalError::Other("a linked identity's user is missing".into()))?;
        let sealed = match identity.refresh_sealed.as_deref() {
            Some(s) => s,
            None => {
                let f = fail(
                    "sso.resync",
                    format!(
                        "{} gave no refresh token at sign-in, so access cannot be re-checked",
                        provider.label
                    ),
                );
                return Err(self.sso_refused(&name, f, None, addr).await);
            }
        };
        let refresh = match fed.sealer().open(&identity.id, sealed) {
            Ok(r) => r,
            Err(e) => {
                return Err(self
                    .sso_refused(&name, fail("sso.resync", e.to_string()), None, addr)
                    .await);
            }
        };
        let proven = match fed.refresh(&name, &refresh, &identity.subject).await {
            Ok(p) => p,
            Err(f) => {
                let e = self.sso_refused(&name, f, None, addr).await;
                self.store.set_identity_refresh(&identity.id, None).await?;
                return Err(e);
            }
        };
        if let Some(t) = &proven.refresh_token {
            let sealed = fed
                .sealer()
                .seal(&identity.id, t)
                .map_err(|e| InternalError::Other(e.to_string()))?;
            self.store
                .set_identity_refresh(&identity.id, Some(&sealed))
                .await?;
        }
        let mapped = match map_claims(&provider, &proven.claims) {
            Ok(m) => m,
            Err(f) => {
                return Err(self
                    .sso_refused(&name, f, Some((&user, &proven)), addr)
                    .await);
            }
        };
        self.apply_mapping(&name, &user, &mapped, addr).await
    }
}
