//! `POST /token` (the authorization-code and refresh-token grants) and `POST /revoke`
//! (RFC 7009); tokens and errors are OAuth JSON answers.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warden_auth::server::{TokenError, TokenResponse};

use super::{AuthState, json_no_store, oauth_error};

#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    code_verifier: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
}

fn token_response(r: Result<TokenResponse, TokenError>) -> Response {
    match r {
        Ok(t) => json_no_store(
            StatusCode::OK,
            json!({
                "access_token": t.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": t.expires_in,
                "refresh_token": t.refresh_token.expose(),
                "scope": t.scopes.to_string(),
            }),
        ),
        Err(e) => {
            let status = match (e.internal, e.code) {
                (true, _) => StatusCode::INTERNAL_SERVER_ERROR,
                (false, "invalid_client") => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            oauth_error(status, e.code, &e.description)
        }
    }
}

pub(super) async fn token_endpoint(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(f): Form<TokenForm>,
) -> Response {
    let addr = addr.ip().to_string();
    let r = match f.grant_type.as_deref() {
        Some("authorization_code") => {
            s.auth
                .exchange_code(
                    f.code.as_deref(),
                    f.code_verifier.as_deref(),
                    f.redirect_uri.as_deref(),
                    f.client_id.as_deref(),
                    f.resource.as_deref(),
                    &addr,
                )
                .await
        }
        Some("refresh_token") => {
            s.auth
                .refresh(
                    f.refresh_token.as_deref(),
                    f.client_id.as_deref(),
                    f.resource.as_deref(),
                    &addr,
                )
                .await
        }
        Some(other) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!(
                    "grant_type '{other}' is not supported; use authorization_code or refresh_token"
                ),
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    };
    token_response(r)
}

#[derive(Debug, Deserialize)]
pub(super) struct RevokeForm {
    token: Option<String>,
}

pub(super) async fn revoke(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Form(f): Form<RevokeForm>,
) -> Response {
    let Some(t) = f.token.filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    match s.auth.revoke(&t, &addr.ip().to_string()).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "revocation failed");
            oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the token could not be revoked; try again",
            )
        }
    }
}
