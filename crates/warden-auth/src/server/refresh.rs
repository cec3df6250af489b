//! `grant_type=refresh_token`: the refresh token rotates on every use, a reused one revokes
//! its grant, and the live membership is re-read before new tokens are handed out.

use chrono::Utc;
use warden_store::RotateOutcome;

use super::{AuthServer, STEP_UP_WINDOW, TokenError, TokenResponse, at};
use crate::token::{self, RawToken, TokenKind};

/// Why a refresh is held back after a step-up challenge.
const STEP_UP_PENDING: &str = "this connection was just asked for more access (mcp:write), which a refresh cannot add; start a new authorization so the person can allow it";

impl AuthServer {
    /// `grant_type=refresh_token`: rotate, then re-check the live membership.
    pub async fn refresh(
        &self,
        refresh_token: Option<&str>,
        client_id: Option<&str>,
        resource: Option<&str>,
        addr: &str,
    ) -> Result<TokenResponse, TokenError> {
        self.check_token_rate(addr).await?;
        // A refresh held back by a step-up challenge is the client following the protocol,
        // not a guess: it is answered before, and apart from, the failures that count.
        self.hold_for_step_up(refresh_token).await?;
        let result = self
            .refresh_inner(refresh_token, client_id, resource, addr)
            .await;
        if matches!(&result, Err(e) if !e.internal) {
            self.token_failed(addr).await;
        }
        result
    }

    /// A refresh cannot widen a grant. After a step-up challenge the client needs a new
    /// authorization, not the same scopes again: its refreshes are refused (the token stays
    /// unused) until the person answers one, or the window passes. See
    /// `AuthServer::note_step_up`.
    async fn hold_for_step_up(&self, refresh_token: Option<&str>) -> Result<(), TokenError> {
        let Some(presented) = refresh_token else {
            return Ok(());
        };
        let now = Utc::now();
        let since = now - chrono::Duration::from_std(STEP_UP_WINDOW).unwrap_or_default();
        let hash = RawToken::from_client(presented).hash();
        if let Some(grant) = self
            .store
            .step_up_pending(hash.as_str(), since, now)
            .await?
        {
            tracing::info!(grant = %grant, "refresh after a step-up challenge refused; the client must re-authorize");
            return Err(TokenError::new("invalid_grant", STEP_UP_PENDING));
        }
        Ok(())
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
        let presented_hash = RawToken::from_client(presented).hash();
        let access = token::generate(TokenKind::AccessToken)?;
        let refresh = token::generate(TokenKind::RefreshToken)?;
        let outcome = self
            .store
            .rotate_refresh_token(
                presented_hash.as_str(),
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
        // A grant from a provider sign-in with resync: what the provider says now first.
        self.resync_grant(&grant, addr).await?;
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
}
