//! What both grants of the token endpoint share: the tokens handed out, the per-address
//! limit on failed requests, the client lookup, and the re-check of the grant's live
//! membership.

use chrono::{DateTime, Utc};
use warden_store::{Grant, OAuthClient, Scopes};

use super::limits::Limit;
use super::{AuthServer, InternalError, TokenError};
use crate::limiter::Verdict;
use crate::principal::can_connect;
use crate::token::RawToken;

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

impl AuthServer {
    /// Refuses a locked-out address; refuses too when the counters cannot be read (fail
    /// closed).
    pub(super) async fn check_token_rate(&self, addr: &str) -> Result<(), TokenError> {
        let verdict = self
            .limit_check(Limit::Token, &[format!("token-addr:{addr}")], Utc::now())
            .await
            .map_err(unavailable)?;
        match verdict {
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

    /// Counts a failed request. The request is refused already; a failure to count it is
    /// logged, and the next request's check refuses if the store is still unreachable.
    pub(super) async fn token_failed(&self, addr: &str) {
        let locked = match self
            .limit_failure(Limit::Token, &[format!("token-addr:{addr}")], Utc::now())
            .await
        {
            Ok(locked) => locked,
            Err(e) => {
                tracing::error!(target: "warden::security", error = %e, "could not count a failed token request");
                Vec::new()
            }
        };
        for key in locked {
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

    pub(super) async fn client(&self, client_id: Option<&str>) -> Result<OAuthClient, TokenError> {
        let id =
            client_id.ok_or_else(|| TokenError::new("invalid_client", "client_id is missing"))?;
        if crate::cimd::is_document_url(id) {
            return self
                .store
                .client_by_document(id)
                .await?
                .filter(|c| c.revoked_at.is_none())
                .ok_or_else(|| TokenError::new("invalid_client", "unknown or revoked client_id"));
        }
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
    pub(super) async fn check_live(
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
}

fn unavailable(e: InternalError) -> TokenError {
    tracing::error!(target: "warden::security", error = %e, "token request refused: the failure counters cannot be reached");
    TokenError {
        code: "server_error",
        description:
            "the authorization server cannot check its request limits right now; try again later"
                .into(),
        internal: true,
    }
}
