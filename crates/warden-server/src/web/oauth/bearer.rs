//! The bearer gate in front of `/mcp`, the transport's authentication step: no request
//! reaches the MCP handler without a `Principal` from `AuthServer::authenticate`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warden_auth::server::AuthnError;

use super::AuthState;

/// The grant behind an OAuth access token, beside the principal in a request's extensions:
/// the step-up layer notes its challenges against it.
#[derive(Debug, Clone)]
pub(crate) struct OAuthGrant(pub(crate) warden_store::GrantId);

/// Authentication for `/mcp`: every request needs a valid bearer. The principal travels in
/// the request's extensions to the MCP handler. Failures never reach rmcp.
pub(crate) async fn require_bearer(
    State(s): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let challenge = |error: Option<&str>, description: &str| {
        let mut v = format!(
            r#"Bearer resource_metadata="{}", scope="mcp:read""#,
            s.prm_url()
        );
        if let Some(e) = error {
            v.push_str(&format!(
                r#", error="{e}", error_description="{}""#,
                description.replace('"', "'")
            ));
        }
        let mut res = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": description}}).to_string(),
        )
            .into_response();
        if let Ok(h) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, h);
        }
        res
    };
    let Some(bearer) = bearer else {
        metrics::counter!(warden_auth::server::AUTH_FAILURES, "reason" => "missing").increment(1);
        return challenge(
            None,
            "authentication required: send an OAuth access token or API key as a Bearer token",
        );
    };
    match s.auth.authenticate_bearer(&bearer).await {
        Ok((principal, grant)) => {
            req.extensions_mut().insert(principal);
            if let Some(grant) = grant {
                req.extensions_mut().insert(OAuthGrant(grant));
            }
            next.run(req).await
        }
        Err(AuthnError::Unauthenticated(m)) => challenge(Some("invalid_token"), &m),
        Err(AuthnError::Forbidden(m)) => (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32003, "message": m}})
                .to_string(),
        )
            .into_response(),
        Err(AuthnError::Internal(e)) => {
            // Fail closed: a store outage refuses the call.
            tracing::error!(error = %e, "authentication failed internally");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication is temporarily unavailable",
            )
                .into_response()
        }
    }
}
