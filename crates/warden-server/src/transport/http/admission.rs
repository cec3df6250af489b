//! Around the bearer gate: a request it answered 401 is counted by the pipeline (never
//! recorded one by one), and an authenticated principal whose role may not connect an
//! assistant is refused with 403 before any MCP message is read. The pipeline decides and
//! records both.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use warden_core::pipeline::{LivePipeline, Rejection, Source};

use super::{audit_unavailable, jsonrpc_error};

/// Tells the pipeline about every request the bearer gate answered 401, so that it can keep
/// count of them (bounded: see `Pipeline::note_unauthenticated`).
pub(super) async fn note_unauthenticated(
    State(pipeline): State<LivePipeline>,
    req: Request,
    next: Next,
) -> Response {
    // Only the address is counted; it is turned into text only for a 401.
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        pipeline
            .current()
            .note_unauthenticated(&warden_core::audit::Peer {
                remote_addr: addr.map(|a| a.to_string()),
                ..Default::default()
            });
    }
    res
}

/// Whether the authenticated principal may connect an assistant at all (Auxiliary Members
/// and Service Accounts may not): 403 before any MCP message is read. The pipeline decides
/// and records (`Pipeline::admit`).
pub(super) async fn admit(
    State(pipeline): State<LivePipeline>,
    req: Request,
    next: Next,
) -> Response {
    let Some(principal) = req
        .extensions()
        .get::<warden_core::identity::Principal>()
        .cloned()
    else {
        return next.run(req).await;
    };
    let peer = super::super::mcp::lazy_peer(&req);
    let refused = match pipeline
        .current()
        .admit(&principal, Source::Http, peer)
        .await
    {
        Ok(()) => None,
        Err(Rejection::Denied(denial)) => {
            Some(jsonrpc_error(StatusCode::FORBIDDEN, -32003, denial.reason))
        }
        Err(Rejection::Audit(e)) => Some(audit_unavailable(Value::Null, &e.to_string())),
    };
    match refused {
        Some(res) => res,
        None => next.run(req).await,
    }
}
