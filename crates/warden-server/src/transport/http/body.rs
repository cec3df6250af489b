//! The body of a POST: within `server.max_body_bytes` (413) and one JSON-RPC 2.0 message
//! (400 with -32700 or -32600), so bad input gets a precise error rather than a
//! transport-level one, and within `server.limits.body_timeout_ms` (408). A `tools/call` is
//! noted for the step-up.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use super::{EdgeConfig, jsonrpc_error};

/// Reads a POST body within the size limit and checks it is one JSON-RPC message, so that
/// bad input gets a precise JSON-RPC error rather than a transport-level one.
pub(super) async fn check_body(
    State(edge): State<EdgeConfig>,
    req: Request,
    next: Next,
) -> Response {
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
    // A body that trickles in holds a connection and a task: it must arrive in time.
    let read = tokio::time::timeout(
        edge.body_timeout,
        Limited::new(body, edge.max_body_bytes).collect(),
    );
    let Ok(read) = read.await else {
        let mut res = jsonrpc_error(
            StatusCode::REQUEST_TIMEOUT,
            -32600,
            format!(
                "the request body did not arrive within {} ms (server.limits.body_timeout_ms); send it whole, at once",
                edge.body_timeout.as_millis()
            ),
        );
        res.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return res;
    };
    let bytes: Bytes = match read {
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
    pub(super) id: Value,
    pub(super) tool: String,
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

/// Form bodies (the OAuth endpoints and sign-in pages) at most this large.
const FORM_BODY_LIMIT: usize = 64 * 1024;

/// For the endpoints outside `/mcp`: the whole body must arrive within `deadline` (408
/// otherwise, and the connection is closed) and be at most 64 KiB (413), before any handler
/// sees it. A per-frame timeout would not do: a body trickled a byte at a time never pauses.
pub(crate) async fn read_in_time(
    State(deadline): State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(deadline, Limited::new(body, FORM_BODY_LIMIT).collect());
    let bytes = match read.await {
        Err(_) => {
            let mut res = Response::new(Body::from(format!(
                "The request body did not arrive within {} ms (server.limits.body_timeout_ms); send it whole, at once.\n",
                deadline.as_millis()
            )));
            *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
            res.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return res;
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let mut res = Response::new(Body::from(format!(
                "The request body is larger than {FORM_BODY_LIMIT} bytes.\n"
            )));
            *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return res;
        }
        Ok(Err(e)) => {
            let mut res = Response::new(Body::from(format!(
                "Could not read the request body: {e}\n"
            )));
            *res.status_mut() = StatusCode::BAD_REQUEST;
            return res;
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::check_jsonrpc;

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
