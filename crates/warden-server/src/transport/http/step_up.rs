//! Scope step-up: a call whose tool the connection's scopes do not cover is answered 403
//! with a `WWW-Authenticate` challenge naming the scope to ask for, before rmcp reads it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warden_core::pipeline::{LivePipeline, Rejection, Source};

use super::ToolCallPeek;
use super::audit_unavailable;
use crate::web::oauth::OAuthGrant;

#[derive(Debug, Clone)]
pub(super) struct StepUp {
    pub(super) pipeline: LivePipeline,
    pub(super) resource_metadata: String,
    pub(super) auth: Arc<warden_auth::server::AuthServer>,
}

/// Scope step-up (MCP authorization, insufficient scope): a write call on a connection
/// without `mcp:write` gets HTTP 403 with a challenge naming the scope to ask for, so the
/// client can re-authorize. The pipeline decides and records (`Pipeline::step_up`); this
/// only writes the answer.
pub(super) async fn step_up(State(s): State<StepUp>, req: Request, next: Next) -> Response {
    let (Some(call), Some(principal)) = (
        req.extensions().get::<ToolCallPeek>().cloned(),
        req.extensions()
            .get::<warden_core::identity::Principal>()
            .cloned(),
    ) else {
        return next.run(req).await;
    };
    let peer = super::super::mcp::lazy_peer(&req);
    // The call itself takes the pipeline again in rmcp's handler; should a reload land
    // between the two, its authorize stage checks the scope once more on the project it runs.
    let refused = match s
        .pipeline
        .current()
        .step_up(&principal, &call.tool, Source::Http, peer)
        .await
    {
        Ok(()) => None,
        Err(Rejection::Denied(denial)) => {
            if let Some(OAuthGrant(grant)) = req.extensions().get::<OAuthGrant>()
                && let Err(e) = s.auth.note_step_up(grant).await
            {
                // The challenge still goes out; only the refresh hint is lost.
                tracing::warn!(error = %e, "could not note a step-up challenge on its grant");
            }
            let challenge = format!(
                r#"Bearer error="insufficient_scope", scope="mcp:read mcp:write", resource_metadata="{}", error_description="{} needs the mcp:write scope""#,
                s.resource_metadata,
                call.tool.replace(['"', '\\'], "")
            );
            let body = json!({ "jsonrpc": "2.0", "id": call.id, "error": { "code": -32003, "message": denial.reason } });
            let mut res = (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            Some(res)
        }
        Err(Rejection::Audit(e)) => Some(audit_unavailable(call.id, &e.to_string())),
    };
    match refused {
        Some(res) => res,
        None => next.run(req).await,
    }
}
