//! `POST /register`: dynamic client registration (RFC 7591). The rules for which metadata is
//! accepted live in `warden_auth::registration`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use warden_auth::registration::ClientMetadata;
use warden_auth::server::{Endpoint, RegisterError};

use super::{AuthState, SCOPES, json_no_store, oauth_error};

pub(super) async fn register(
    State(s): State<AuthState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let meta: ClientMetadata = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                &format!("the body is not valid client metadata JSON: {e}"),
            );
        }
    };
    match s.auth.register(&meta, &addr.ip().to_string()).await {
        Ok(client) => {
            let mut body = json!({
                "client_id": client.id.to_string(),
                "client_id_issued_at": client.created_at.timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": SCOPES.join(" "),
            });
            if let Some(t) = &meta.application_type {
                body["application_type"] = json!(t);
            }
            json_no_store(StatusCode::CREATED, body)
        }
        Err(RegisterError::Invalid(e)) => {
            oauth_error(StatusCode::BAD_REQUEST, e.code(), e.description())
        }
        Err(RegisterError::Refused(r)) => super::abuse::refused(Endpoint::Register, r),
        Err(e @ RegisterError::Full) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &e.to_string(),
        ),
    }
}
