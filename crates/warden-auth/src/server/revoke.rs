//! Token revocation (RFC 7009): an access or refresh token is revoked; unknown tokens are
//! not an error.

use chrono::Utc;

use super::{AuthServer, InternalError};
use crate::token::{RawToken, TokenKind};

impl AuthServer {
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
}
