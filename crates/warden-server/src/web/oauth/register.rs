//! `POST /register`: dynamic client registration (RFC 7591). The rules for which metadata is
//! accepted live in `warden_auth::registration`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use warden_auth::registration::ClientMetadata;

use super::{AuthState, SCOPES, json_no_store, oauth_error};

pub(super) async fn register(State(s): State<AuthState>, body: axum::body::Bytes) -> Response {
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
    match s.auth.register(&meta).await {
        Ok(client) => json_no_store(
            StatusCode::CREATED,
            json!({
                "client_id": client.id.to_string(),
                "client_id_issued_at": client.created_at.timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "scope": SCOPES.join(" "),
            }),
        ),
        Err(e) => oauth_error(StatusCode::BAD_REQUEST, e.code(), e.description()),
    }
}
