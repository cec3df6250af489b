//! The discovery documents: protected resource metadata (RFC 9728) for `/mcp`, and
//! authorization server metadata (RFC 8414).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{AuthState, SCOPES, json_no_store};

pub(super) async fn protected_resource(State(s): State<AuthState>) -> Response {
    json_no_store(
        StatusCode::OK,
        json!({
            "resource": s.auth.resource(),
            "authorization_servers": [s.auth.issuer()],
            "scopes_supported": SCOPES,
            "bearer_methods_supported": ["header"],
            "resource_name": "Warden MCP",
        }),
    )
}

pub(super) async fn authorization_server(State(s): State<AuthState>) -> Response {
    let i = s.auth.issuer();
    json_no_store(
        StatusCode::OK,
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "registration_endpoint": format!("{i}/register"),
            "client_id_metadata_document_supported": true,
            "revocation_endpoint": format!("{i}/revoke"),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}
