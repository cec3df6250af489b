//! Bearer authentication, the authenticate stage at `/mcp`: an access token, an API key or
//! a browser session's token becomes a `Principal`, or an `AuthnError` saying why not.
//!
//! This says who is calling, not what they may do: a principal whose role may not connect
//! an assistant is returned like any other, and the pipeline's admission
//! (`Pipeline::admit`) refuses it with 403 and records the refusal.
//!
//! Every refusal is counted by reason ([`AUTH_FAILURES`]), from a fixed set: never the
//! token, the user or the organisation.

use chrono::Utc;
use warden_store::{GrantId, OrgId, Role, Scopes, UserId};

use super::{AuthServer, AuthnError};
use warden_core::identity::Principal;

use crate::principal::{AuthMethod, can_connect};
use crate::token::{RawToken, TokenKind};

/// Bearer authentication refusals, by `reason`: `missing` (counted by the edge's gate),
/// `malformed`, `invalid_token` (unknown, expired or revoked), `wrong_resource`,
/// `not_a_member`, `disabled`, `forbidden`.
pub const AUTH_FAILURES: &str = "warden.auth.failures";

/// Counts a refusal and hands it back.
pub fn refused(reason: &'static str, e: AuthnError) -> AuthnError {
    metrics::counter!(AUTH_FAILURES, "reason" => reason).increment(1);
    e
}

impl AuthServer {
    /// Resolves a bearer presented at `/mcp`.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthnError> {
        self.authenticate_bearer(bearer).await.map(|(p, _)| p)
    }

    /// Resolves a bearer presented at `/mcp`, with the grant behind an OAuth access token
    /// (for [`AuthServer::note_step_up`]).
    pub async fn authenticate_bearer(
        &self,
        bearer: &str,
    ) -> Result<(Principal, Option<GrantId>), AuthnError> {
        let raw = RawToken::from_client(bearer);
        let now = Utc::now();
        let invalid = || {
            refused(
                "invalid_token",
                AuthnError::Unauthenticated(
                    "the bearer token is invalid, expired or revoked".into(),
                ),
            )
        };
        match raw.kind() {
            Some(TokenKind::AccessToken) => {
                let (grant, holder) = self
                    .store
                    .access_token_identity(raw.hash().as_str(), now)
                    .await?
                    .ok_or_else(invalid)?;
                if grant.resource != self.resource {
                    return Err(refused(
                        "wrong_resource",
                        AuthnError::Unauthenticated(format!(
                            "this token was issued for '{}', not for this server",
                            grant.resource
                        )),
                    ));
                }
                let method = AuthMethod::OAuth {
                    grant_id: grant.id,
                    client_id: grant.client_id,
                };
                Self::principal_of(grant.user_id, grant.role, grant.scopes, method, holder)
                    .map(|p| (p, Some(grant.id)))
            }
            Some(TokenKind::ApiKey) => {
                let (key, holder, role) = self
                    .store
                    .api_key_identity(raw.hash().as_str())
                    .await?
                    .ok_or_else(invalid)?;
                let role = role.ok_or_else(|| {
                    refused(
                        "not_a_member",
                        AuthnError::Unauthenticated(
                            "this API key's owner is no longer a member of its organisation".into(),
                        ),
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
                Self::principal_of(key.user_id, role, key.scopes, method, holder).map(|p| (p, None))
            }
            Some(TokenKind::Session) => {
                let idle_since =
                    now - chrono::Duration::from_std(super::SESSION_IDLE).unwrap_or_default();
                let session = self
                    .store
                    .touch_session(raw.hash().as_str(), now, idle_since)
                    .await?
                    .ok_or_else(invalid)?;
                let all = self.store.orgs_of_user(session.user_id).await?;
                let connectable: Vec<_> = all.iter().filter(|(_, m)| can_connect(m.role)).collect();
                // The one organisation the session can act in. A single membership whose
                // role may not connect is still resolved: the pipeline's admission refuses
                // it, on the record.
                let (org, m) = match (connectable.as_slice(), all.as_slice()) {
                    ([(org, _)], _) | ([], [(org, _)])
                        if session.identity_id.is_none()
                            && !self.password_session_allowed(&org.slug) =>
                    {
                        return Err(refused(
                            "forbidden",
                            AuthnError::Forbidden(format!(
                                "{} signs its members in through its identity provider only; sign in with it",
                                org.name
                            )),
                        ));
                    }
                    ([one], _) => *one,
                    ([], [one]) => one,
                    ([], _) => {
                        return Err(refused(
                            "forbidden",
                            AuthnError::Forbidden(
                                "your roles do not allow connecting an assistant".into(),
                            ),
                        ));
                    }
                    _ => {
                        return Err(refused("forbidden", AuthnError::Forbidden(
                            "you belong to several organisations; connect through OAuth or an API key, which name one".into(),
                        )));
                    }
                };
                self.principal(
                    session.user_id,
                    org.id,
                    m.role,
                    Scopes::READ_WRITE,
                    AuthMethod::Session,
                )
                .await
                .map(|p| (p, None))
            }
            _ => Err(refused(
                "malformed",
                AuthnError::Unauthenticated("the bearer token is not a Warden token".into()),
            )),
        }
    }

    /// Notes that a call on `grant`'s access token was answered with a step-up challenge
    /// (403 insufficient_scope, naming `mcp:write`). A refresh cannot widen a grant, so the
    /// grant's refreshes are refused with `invalid_grant` until the person answers a new
    /// authorization for that app, or [`super::STEP_UP_WINDOW`] passes: a client that
    /// refreshes instead of re-authorizing (as some SDKs do first) then starts a new
    /// authorization, where the person is asked about the wider scope.
    pub async fn note_step_up(&self, grant: &GrantId) -> Result<(), AuthnError> {
        self.store.mark_step_up(grant, Utc::now()).await?;
        Ok(())
    }

    fn principal_of(
        user_id: UserId,
        role: Role,
        scopes: Scopes,
        method: AuthMethod,
        holder: warden_store::PrincipalRow,
    ) -> Result<Principal, AuthnError> {
        if holder.user_disabled {
            return Err(refused(
                "disabled",
                AuthnError::Unauthenticated("this account is disabled".into()),
            ));
        }
        Ok(Principal {
            user_id: user_id.to_string(),
            email: holder.email,
            org: holder.org_slug,
            role,
            scopes,
            method: method.as_str(),
            credential: method.credential(),
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
        let user = self.store.user_by_id(user_id).await?.ok_or_else(|| {
            refused(
                "invalid_token",
                AuthnError::Unauthenticated("unknown user".into()),
            )
        })?;
        if user.disabled_at.is_some() {
            return Err(refused(
                "disabled",
                AuthnError::Unauthenticated("this account is disabled".into()),
            ));
        }
        let org = self.store.org_by_id(org_id).await?.ok_or_else(|| {
            refused(
                "invalid_token",
                AuthnError::Unauthenticated("unknown organisation".into()),
            )
        })?;
        Ok(Principal {
            user_id: user_id.to_string(),
            email: user.email,
            org: org.slug,
            role,
            scopes,
            method: method.as_str(),
            credential: method.credential(),
        })
    }
}
