//! `grant_type=authorization_code`: a single-use code, its PKCE verifier and redirect URI
//! become the first access and refresh tokens of a grant. A replayed code revokes the grant.

use chrono::{DateTime, Utc};
use warden_store::{CodeOutcome, Grant};

use super::{AuthServer, TokenError, TokenResponse, at};
use crate::pkce;
use crate::token::{self, RawToken, TokenKind};

impl AuthServer {
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
        self.check_token_rate(addr).await?;
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
}
