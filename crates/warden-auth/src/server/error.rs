//! The authorization server's refusals, one type per endpoint family: `AuthnError` for a
//! bearer at `/mcp`, `AuthorizeError` for `/authorize`, `TokenError` for the token endpoint,
//! `LoginError` for sign-in; `InternalError` is a failure of ours. The edge maps each to the
//! wire.

use std::time::Duration;

use warden_core::audit::AuditError;
use warden_store::StoreError;

use crate::token::RandomnessError;

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
    pub(super) fn new(code: &'static str, description: impl Into<String>) -> Self {
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

/// Why a sign-in failed; the messages never reveal whether the account exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("The email or password is not right.")]
    BadCredentials,
    #[error("Too many failed sign-ins; try again in {} minutes.", .retry_after.as_secs().div_ceil(60))]
    Locked { retry_after: Duration },
    #[error("This sign-in link is invalid, used or expired; ask for a new one.")]
    BadLink,
    /// Another password attempt for this account is being checked right now.
    #[error("Another sign-in to this account is being checked; try again in a moment.")]
    Busy,
    /// The sign-in limits cannot be checked or counted (the state store is unreachable), so
    /// no attempt is let through.
    #[error("Sign-in is temporarily unavailable; try again in a minute.")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        Self::Internal(InternalError::Store(e))
    }
}
