//! Transport, HTTP layer: the axum router, and the layers every `/mcp` request passes
//! before rmcp sees it, one file each, in this order:
//!
//! 1. `origin.rs`: a foreign `Origin` (403);
//! 2. `admission.rs`: a 401 from the bearer gate is counted by the pipeline; the bearer gate
//!    itself (`web/oauth/bearer.rs`, 401); whether the principal may connect at all (403);
//! 3. `../session.rs`: a session this principal did not open (404);
//! 4. `body.rs`: body size (413) and JSON-RPC shape (400);
//! 5. `step_up.rs`: a connection whose scopes do not cover the tool (403 with a challenge);
//! 6. rmcp, which checks `Host` against the configured hosts (403), then the protocol.
//!
//! `headers.rs` adds the security headers to every response (and HSTS over HTTPS). The
//! pipeline makes every decision; these layers only ask it and write its answer on the wire.
//! Below them all, `accept.rs` holds each TCP connection to the connection limits and
//! timeouts, and `tls.rs` terminates HTTPS.

pub(crate) mod accept;
mod admission;
mod body;
mod headers;
mod origin;
mod step_up;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden_core::pipeline::{LivePipeline, Source};
use warden_core::project::ServerConfig;

pub use body::{ToolCallPeek, check_jsonrpc};
pub use origin::origin_allowed;

use super::mcp::WardenMcp;
use super::session::{SessionOwners, bind_to_owner};
use crate::web::oauth::{AuthState, require_bearer};

#[derive(Debug, Clone)]
pub(super) struct EdgeConfig {
    allowed_origins: Arc<[String]>,
    max_body_bytes: usize,
    body_timeout: std::time::Duration,
}

/// The whole HTTP surface. With `auth`, every `/mcp` request needs a bearer and the OAuth
/// endpoints are served; without it (`auth: none`), nothing is authenticated. `shutdown`
/// ends open MCP sessions and their SSE streams.
pub fn router(
    pipeline: LivePipeline,
    auth: Option<AuthState>,
    shutdown: CancellationToken,
) -> Router {
    // `server` cannot change without a restart (a reload refuses it), so it is read once.
    let server = pipeline.current().project().server.clone();
    let edge = EdgeConfig {
        allowed_origins: server.allowed_origins.clone().into(),
        max_body_bytes: server.max_body_bytes,
        body_timeout: server.limits.body_timeout,
    };
    let sessions = Arc::new(LocalSessionManager::default());
    let owners = SessionOwners::new(sessions.clone(), shutdown.clone());
    let mcp = mcp_service(pipeline.clone(), &server, sessions, shutdown);
    let mut mcp_routes = Router::new().fallback_service(mcp);
    if let Some(auth) = &auth {
        let s = step_up::StepUp {
            pipeline: pipeline.clone(),
            resource_metadata: auth.prm_url(),
            auth: auth.auth.clone(),
        };
        mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(s, step_up::step_up));
    }
    let mut mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(
        edge.clone(),
        body::check_body,
    ));
    if !server.stateless {
        // Stateless serving has no sessions to bind.
        mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(owners, bind_to_owner));
    }
    let mut mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(
        pipeline.clone(),
        admission::admit,
    ));
    if let Some(auth) = &auth {
        // Authenticate before reading the body: an anonymous request costs nothing.
        mcp_routes = mcp_routes
            .layer(middleware::from_fn_with_state(auth.clone(), require_bearer))
            .layer(middleware::from_fn_with_state(
                pipeline.clone(),
                admission::note_unauthenticated,
            ));
    }
    let mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(
        edge.clone(),
        origin::check_origin,
    ));
    // Signed file URLs: the same bearer as `/mcp`, then the pipeline checks the URL.
    let mut files = crate::web::files::routes(pipeline.clone());
    if let Some(auth) = &auth {
        files = files
            .layer(middleware::from_fn_with_state(auth.clone(), require_bearer))
            .layer(middleware::from_fn_with_state(
                pipeline.clone(),
                admission::note_unauthenticated,
            ));
    }
    let files = files.layer(middleware::from_fn_with_state(edge, origin::check_origin));
    let mut app = crate::observe::probes(pipeline)
        .nest_service("/mcp", mcp_routes)
        .merge(files);
    if let Some(auth) = auth {
        // Form bodies must arrive in time too (`/mcp` says so itself, in `body.rs`).
        let pages = crate::web::console::routes(auth.clone())
            .merge(crate::web::oauth::routes(auth))
            .layer(middleware::from_fn_with_state(
                server.limits.body_timeout,
                body::read_in_time,
            ));
        app = app.merge(pages);
    }
    let app = app
        .layer(middleware::from_fn(headers::security_headers))
        .layer(middleware::from_fn(close_after_refusal));
    if server.trusted_proxies.is_empty() {
        app
    } else {
        let trusted: Arc<[std::net::IpAddr]> = server.trusted_proxies.clone().into();
        app.layer(middleware::from_fn_with_state(trusted, forwarded_for))
    }
}

fn mcp_service(
    pipeline: LivePipeline,
    server: &ServerConfig,
    sessions: Arc<LocalSessionManager>,
    shutdown: CancellationToken,
) -> StreamableHttpService<WardenMcp, LocalSessionManager> {
    // rmcp compares the Host header without IPv6 brackets.
    let hosts: Vec<String> = server
        .allowed_hosts
        .iter()
        .map(|h| h.trim_matches(['[', ']']).to_string())
        .collect();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(server.max_body_bytes)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        // Stateless: no session is created or looked up, so any instance serves any request,
        // and a GET for a server-to-client stream is answered 405 (which the SDKs expect).
        .with_legacy_session_mode(!server.stateless)
        .with_cancellation_token(shutdown.child_token());
    let handler = super::mcp::handler_for(pipeline, Source::Http);
    StreamableHttpService::new(move || Ok(handler.clone()), sessions, config)
}

/// A JSON-RPC error object as an HTTP response (no id: the request could not be read).
pub(super) fn jsonrpc_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message.into() } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The answer when a refusal could not be recorded: refused all the same.
pub(super) fn audit_unavailable(id: Value, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": message } });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `app` with `Strict-Transport-Security: value` on every response: for HTTPS only.
pub(crate) fn with_hsts(app: Router, value: &str) -> Router {
    match axum::http::HeaderValue::from_str(value) {
        Ok(v) => app.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            v,
        )),
        Err(_) => app,
    }
}

/// Every request answered with 308 to the same path and query under `target`.
pub(crate) fn redirect_to_https(target: String) -> Router {
    let target: Arc<str> = target.trim_end_matches('/').into();
    Router::new().fallback(move |uri: axum::http::Uri| {
        let target = target.clone();
        async move {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, format!("{target}{path}"))],
            )
        }
    })
}

/// A request refused before its body was read (401 before authentication reads anything, 403
/// on a foreign origin, 413): the connection is closed after the answer, and the answer says
/// so. Otherwise, when the body had not all arrived as the answer went out, the server would
/// close the connection anyway, and a client reusing it would see its next request dropped.
async fn close_after_refusal(req: axum::extract::Request, next: middleware::Next) -> Response {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut res = next.run(req).await;
    if has_body && res.status().is_client_error() {
        res.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    res
}

/// Behind a trusted proxy, the client is the address its `X-Forwarded-For` names: the
/// right-most entry that is not itself a trusted proxy (entries further left were written by
/// the client and prove nothing). Everything that reads the connection's address (per-address
/// sign-in limits, the 401 tally, the audit trail) then sees the client. From any other peer
/// the header is ignored.
async fn forwarded_for(
    axum::extract::State(trusted): axum::extract::State<Arc<[std::net::IpAddr]>>,
    mut req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer
        && trusted.contains(&peer.ip())
    {
        let client = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map_while(|a| a.parse::<std::net::IpAddr>().ok())
            .find(|ip| !trusted.contains(ip));
        if let Some(ip) = client {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(ip, 0)));
        }
    }
    next.run(req).await
}
