//! Transport, HTTP layer: the axum router, and the checks every `/mcp` request passes before
//! rmcp sees it.
//!
//! Order on `/mcp`: Origin (403) → bearer (401) → may the principal connect (403) → session
//! owner (404 for a session this principal did not open) → body size (413) → JSON-RPC shape (400) → scope step-up (403)
//! → rmcp, which checks `Host` against the configured hosts (403), then the protocol.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Limited};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden_core::pipeline::{Pipeline, Refusal, Source};
use warden_core::project::ServerConfig;

use super::mcp::WardenMcp;
use super::session::{SessionOwners, bind_to_owner};
use crate::web::oauth::{AuthState, require_bearer};

#[derive(Debug, Clone)]
struct EdgeConfig {
    allowed_origins: Arc<[String]>,
    max_body_bytes: usize,
}

/// The whole HTTP surface. With `auth`, every `/mcp` request needs a bearer and the OAuth
/// endpoints are served; without it (`auth: none`), nothing is authenticated. `shutdown`
/// ends open MCP sessions and their SSE streams.
pub fn router(
    pipeline: Arc<Pipeline>,
    auth: Option<AuthState>,
    shutdown: CancellationToken,
) -> Router {
    let server = pipeline.project().server.clone();
    let edge = EdgeConfig {
        allowed_origins: server.allowed_origins.clone().into(),
        max_body_bytes: server.max_body_bytes,
    };
    let sessions = Arc::new(LocalSessionManager::default());
    let owners = SessionOwners::new(sessions.clone(), shutdown.clone());
    let mcp = mcp_service(pipeline.clone(), &server, sessions, shutdown);
    let mut mcp_routes = Router::new().fallback_service(mcp);
    if let Some(auth) = &auth {
        let s = StepUp {
            pipeline: pipeline.clone(),
            resource_metadata: auth.prm_url(),
        };
        mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(s, step_up));
    }
    let mut mcp_routes = mcp_routes
        .layer(middleware::from_fn_with_state(edge.clone(), check_body))
        .layer(middleware::from_fn_with_state(owners, bind_to_owner))
        .layer(middleware::from_fn_with_state(pipeline.clone(), admit));
    if let Some(auth) = &auth {
        // Authenticate before reading the body: an anonymous request costs nothing.
        mcp_routes = mcp_routes
            .layer(middleware::from_fn_with_state(auth.clone(), require_bearer))
            .layer(middleware::from_fn_with_state(
                pipeline.clone(),
                note_unauthenticated,
            ));
    }
    let mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(edge, check_origin));
    let mut app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest_service("/mcp", mcp_routes);
    if let Some(auth) = auth {
        app = app.merge(crate::web::oauth::routes(auth));
    }
    app.layer(middleware::from_fn(security_headers))
}

fn mcp_service(
    pipeline: Arc<Pipeline>,
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
        .with_cancellation_token(shutdown.child_token());
    let handler = super::mcp::handler_for(pipeline, Source::Http);
    StreamableHttpService::new(move || Ok(handler.clone()), sessions, config)
}

/// A JSON-RPC error object as an HTTP response (no id: the request could not be read).
fn jsonrpc_error(status: StatusCode, code: i64, message: impl Into<String>) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message.into() } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// True when `origin` is a loopback page or one of the configured origins. Browsers send
/// `Origin` on cross-site requests; refusing foreign ones stops DNS-rebinding pages from
/// driving a local server. Requests without `Origin` (non-browser clients) pass.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = origin.trim().to_ascii_lowercase();
    if allowed.iter().any(|a| a == &origin) {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    let port_ok = match authority.strip_prefix(host) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())),
        None => false,
    };
    port_ok && matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

async fn check_origin(State(edge): State<EdgeConfig>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &edge.allowed_origins));
        if !ok {
            let shown = String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(200)
                .collect::<String>();
            tracing::warn!(origin = %shown, "refused a request from a foreign origin");
            return jsonrpc_error(
                StatusCode::FORBIDDEN,
                -32600,
                format!(
                    "Origin '{shown}' is not allowed; add it to server.allowed_origins in the project file if it is yours"
                ),
            );
        }
    }
    next.run(req).await
}

/// Reads a POST body within the size limit and checks it is one JSON-RPC message, so that
/// bad input gets a precise JSON-RPC error rather than a transport-level one.
async fn check_body(State(edge): State<EdgeConfig>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let too_large = || {
        jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!(
                "request body is larger than the {} byte limit (server.max_body_bytes)",
                edge.max_body_bytes
            ),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > edge.max_body_bytes as u64) {
        return too_large();
    }
    let bytes: Bytes = match Limited::new(body, edge.max_body_bytes).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                format!("could not read the request body: {e}"),
            );
        }
    };
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    let mut parts = parts;
    if is_json {
        match check_jsonrpc(&bytes) {
            Err(message) => {
                let code = if message.starts_with("parse error") {
                    -32700
                } else {
                    -32600
                };
                return jsonrpc_error(StatusCode::BAD_REQUEST, code, message);
            }
            Ok(Some(call)) => {
                parts.extensions.insert(call);
            }
            Ok(None) => {}
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A `tools/call` seen in a request body: which tool, and the request id to answer with.
#[derive(Debug, Clone)]
pub struct ToolCallPeek {
    id: Value,
    tool: String,
}

#[derive(Debug, Clone)]
struct StepUp {
    pipeline: Arc<Pipeline>,
    resource_metadata: String,
}

/// Scope step-up (MCP authorization, insufficient scope): a write call on a connection
/// without `mcp:write` gets HTTP 403 with a challenge naming the scope to ask for, so the
/// client can re-authorize. The pipeline decides and records ([`Pipeline::step_up`]); this
/// only writes the answer.
async fn step_up(State(s): State<StepUp>, req: Request, next: Next) -> Response {
    let call = req.extensions().get::<ToolCallPeek>().cloned();
    let principal = req.extensions().get::<warden_auth::Principal>().cloned();
    let (Some(call), Some(principal)) = (call, principal) else {
        return next.run(req).await;
    };
    let peer = super::mcp::peer_of(req.headers(), req.extensions());
    match s
        .pipeline
        .step_up(&principal.caller(), &call.tool, Source::Http, &peer)
        .await
    {
        Ok(()) => next.run(req).await,
        Err(Refusal::Denied(denial)) => {
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
            res
        }
        Err(Refusal::Audit(e)) => audit_unavailable(call.id, &e.to_string()),
    }
}

/// The answer when a refusal could not be recorded: refused all the same.
fn audit_unavailable(id: Value, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": message } });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Tells the pipeline about every request the bearer gate answered 401, so that it can keep
/// count of them (bounded: see `Pipeline::note_unauthenticated`).
async fn note_unauthenticated(
    State(pipeline): State<Arc<Pipeline>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = super::mcp::peer_of(req.headers(), req.extensions());
    let res = next.run(req).await;
    if res.status() == StatusCode::UNAUTHORIZED {
        pipeline.note_unauthenticated(&peer);
    }
    res
}

/// Whether the authenticated principal may connect an assistant at all (Auxiliary Members
/// and Service Accounts may not): 403 before any MCP message is read. The pipeline decides
/// and records ([`Pipeline::admit`]).
async fn admit(State(pipeline): State<Arc<Pipeline>>, req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<warden_auth::Principal>().cloned() else {
        return next.run(req).await;
    };
    let peer = super::mcp::peer_of(req.headers(), req.extensions());
    match pipeline
        .admit(&principal.caller(), Source::Http, &peer)
        .await
    {
        Ok(()) => next.run(req).await,
        Err(Refusal::Denied(denial)) => jsonrpc_error(StatusCode::FORBIDDEN, -32003, denial.reason),
        Err(Refusal::Audit(e)) => audit_unavailable(Value::Null, &e.to_string()),
    }
}

/// `Err` names what is wrong: not JSON (with line and column), a batch, or not JSON-RPC 2.0.
pub fn check_jsonrpc(bytes: &[u8]) -> Result<Option<ToolCallPeek>, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("parse error: the body is not valid JSON ({e})"))?;
    let Value::Object(msg) = value else {
        return Err(if value.is_array() {
            "invalid request: JSON-RPC batches are not supported; send one message per request"
                .into()
        } else {
            "invalid request: the body must be a JSON-RPC 2.0 object".into()
        });
    };
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("invalid request: \"jsonrpc\" must be \"2.0\"".into());
    }
    match msg.get("method") {
        Some(Value::String(_)) => {}
        Some(_) => return Err("invalid request: \"method\" must be a string".into()),
        None if msg.contains_key("result") || msg.contains_key("error") => {}
        None => return Err("invalid request: a \"method\" is required".into()),
    }
    if let Some(id) = msg.get("id")
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err("invalid request: \"id\" must be a string or an integer".into());
    }
    if let Some(p) = msg.get("params")
        && !(p.is_object() || p.is_array())
    {
        return Err("invalid request: \"params\" must be an object".into());
    }
    let call = (msg.get("method").and_then(Value::as_str) == Some("tools/call"))
        .then(|| {
            msg.get("params")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
        })
        .flatten()
        .map(|tool| ToolCallPeek {
            id: msg.get("id").cloned().unwrap_or(Value::Null),
            tool: tool.to_string(),
        });
    Ok(call)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages set a fuller policy of their own; keep it.
    if !h.contains_key("content-security-policy") {
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::{check_jsonrpc, origin_allowed};

    #[test]
    fn origins() {
        let allowed = vec!["https://app.example.com".to_string()];
        let cases = [
            ("http://localhost:6274", true),
            ("http://127.0.0.1", true),
            ("http://[::1]:8080", true),
            ("https://app.example.com", true),
            ("HTTPS://APP.EXAMPLE.COM", true),
            ("https://app.example.com:444", false),
            ("http://evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://127.0.0.1.nip.io", false),
            ("http://localhost:80@evil.example", false),
            ("null", false),
            ("file://", false),
        ];
        for (origin, want) in cases {
            assert_eq!(origin_allowed(origin, &allowed), want, "{origin}");
        }
    }

    #[test]
    fn jsonrpc_shapes() {
        assert!(check_jsonrpc(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_ok());
        assert!(
            check_jsonrpc(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_ok()
        );
        assert!(check_jsonrpc(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_ok());
        let bad = [
            (&br#"{"jsonrpc":"2.0","#[..], "parse error"),
            (br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, "batches"),
            (br#"{"id":1,"method":"ping"}"#, "\"jsonrpc\" must be"),
            (br#"{"jsonrpc":"2.0","id":1}"#, "\"method\" is required"),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                "\"method\" must be",
            ),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
                "\"params\" must be",
            ),
            (br#"42"#, "must be a JSON-RPC 2.0 object"),
        ];
        for (body, want) in bad {
            let err = check_jsonrpc(body).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
