//! The client side of MCP over Streamable HTTP, as much as a load generator needs:
//! initialize, `notifications/initialized`, `tools/call` and DELETE of the session.

use std::error::Error as StdError;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Client, Response, StatusCode, Url};
use serde_json::{Value, json};

pub const PROTOCOL_VERSION: &str = "2025-11-25";
const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// How long to wait for the end of an SSE stream after its response has arrived.
pub const DRAIN_GRACE: Duration = Duration::from_millis(250);
/// How much of an unexpected body to quote in an error.
const SNIPPET: usize = 200;

/// What every session shares: the client, the endpoint and the request body to send.
#[derive(Debug)]
pub struct Target {
    client: Client,
    url: Url,
    timeout: Duration,
    /// `tools/call` body up to the id, and after it.
    call_prefix: String,
    call_suffix: String,
}

impl Target {
    pub fn new(
        client: Client,
        url: Url,
        timeout: Duration,
        tool: &str,
        args: &serde_json::Map<String, Value>,
    ) -> Self {
        let params = json!({ "name": tool, "arguments": args });
        Self {
            client,
            url,
            timeout,
            call_prefix: r#"{"jsonrpc":"2.0","id":"#.to_owned(),
            call_suffix: format!(r#","method":"tools/call","params":{params}}}"#),
        }
    }

    fn call_body(&self, id: u64) -> String {
        let mut body = String::with_capacity(self.call_prefix.len() + self.call_suffix.len() + 20);
        body.push_str(&self.call_prefix);
        body.push_str(&id.to_string());
        body.push_str(&self.call_suffix);
        body
    }

    fn post(&self, body: String) -> reqwest::RequestBuilder {
        self.client
            .post(self.url.clone())
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, ACCEPT_BOTH)
            .timeout(self.timeout)
            .body(body)
    }

    /// A transport failure during setup, phrased for the person running the benchmark.
    fn setup_error(&self, step: &str, err: &reqwest::Error) -> anyhow::Error {
        if err.is_connect() {
            anyhow!(
                "cannot reach {}: {} — is `warden serve` (or `warden demo`) running there?",
                self.url,
                transport_cause(err)
            )
        } else {
            anyhow!("{step} to {} failed: {}", self.url, describe_transport(err))
        }
    }

    fn setup_failure(&self, step: &str, failure: Failure) -> anyhow::Error {
        match failure {
            Failure::Transport(e) => self.setup_error(step, &e),
            Failure::Status(status, body) => anyhow!(
                "{step} at {} answered HTTP {status}: {body}{}",
                self.url,
                status_hint(status)
            ),
            Failure::Protocol(message) => anyhow!("{step} at {}: {message}", self.url),
        }
    }

    /// Open a session: initialize, then `notifications/initialized`.
    pub async fn open(&self) -> anyhow::Result<Session> {
        let init = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "warden-bench", "version": "0.1" }
            }
        });
        let reply = self
            .exchange(self.post(init.to_string()), 1)
            .await
            .map_err(|f| self.setup_failure("initialize", f))?;
        if let Some(err) = reply.value.get("error") {
            bail!(
                "initialize at {} was refused: {}",
                self.url,
                rpc_error_text(err)
            );
        }
        let version = reply
            .value
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                anyhow!(
                    "initialize at {}: the result has no protocolVersion",
                    self.url
                )
            })?;
        let version = HeaderValue::from_str(version).with_context(|| {
            format!(
                "initialize at {}: unusable protocolVersion {version:?}",
                self.url
            )
        })?;

        let session = Session {
            id: reply.session_id,
            version,
            next_id: 2,
        };
        let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let resp = session
            .headers(self.post(note.to_string()))
            .send()
            .await
            .map_err(|e| self.setup_error("notifications/initialized", &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.setup_error("reading the notifications/initialized response", &e))?;
        if status != StatusCode::ACCEPTED {
            bail!(
                "notifications/initialized at {} answered HTTP {status} (expected 202 Accepted): {}{}",
                self.url,
                snippet(&body),
                status_hint(status)
            );
        }
        Ok(session)
    }

    /// One `tools/call`.
    pub async fn call(&self, session: &mut Session) -> Answer {
        let id = session.next_id;
        session.next_id += 1;
        match self
            .exchange(session.headers(self.post(self.call_body(id))), id)
            .await
        {
            Ok(reply) => Answer {
                result: classify(&reply.value),
                at: reply.at,
                left_open: reply.left_open,
            },
            Err(failure) => Answer {
                result: Err(match failure {
                    Failure::Transport(e) => describe_transport(&e),
                    Failure::Status(status, body) => format!("HTTP {status}: {body}"),
                    Failure::Protocol(message) => message,
                }),
                at: Instant::now(),
                left_open: false,
            },
        }
    }

    /// Send a request and find the JSON-RPC response with `id`, in a JSON body or in an
    /// SSE stream. The stream is read to its end, so that the connection can be reused;
    /// if the server keeps it open past the response, it is dropped after a short grace.
    async fn exchange(&self, req: reqwest::RequestBuilder, id: u64) -> Result<Reply, Failure> {
        let mut resp = req.send().await.map_err(Failure::Transport)?;
        let status = resp.status();
        let session_id = resp.headers().get(SESSION_ID).cloned();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() || media_type(content_type.as_deref()) != "text/event-stream" {
            let body = resp.bytes().await.map_err(Failure::Transport)?;
            let at = Instant::now();
            if !status.is_success() {
                return Err(Failure::Status(status, snippet(&body)));
            }
            let value =
                find_response(content_type.as_deref(), &body, id).map_err(Failure::Protocol)?;
            return Ok(Reply {
                value,
                at,
                left_open: false,
                session_id,
            });
        }
        let mut buf: Vec<u8> = Vec::new();
        // `buf[..scanned]` holds whole events already looked at.
        let mut scanned = 0;
        while let Some(chunk) = resp.chunk().await.map_err(Failure::Transport)? {
            buf.extend_from_slice(&chunk);
            let Some(end) = complete_events_end(&buf).filter(|&end| end > scanned) else {
                continue;
            };
            let found = find_in_sse(utf8(&buf[scanned..end])?, id).map_err(Failure::Protocol)?;
            scanned = end;
            if let Some(value) = found {
                let at = Instant::now();
                let left_open = !drain(&mut resp).await;
                return Ok(Reply {
                    value,
                    at,
                    left_open,
                    session_id,
                });
            }
        }
        let at = Instant::now();
        match find_in_sse(utf8(&buf[scanned..])?, id).map_err(Failure::Protocol)? {
            Some(value) => Ok(Reply {
                value,
                at,
                left_open: false,
                session_id,
            }),
            None => Err(Failure::Protocol(format!(
                "the SSE stream ended without a response to request id {id}"
            ))),
        }
    }

    /// End the session. Servers may answer 405 when they do not let clients end sessions.
    pub async fn close(&self, session: &Session) -> Result<(), String> {
        if session.id.is_none() {
            return Ok(());
        }
        let req = session.headers(self.client.delete(self.url.clone()).timeout(self.timeout));
        let resp = req.send().await.map_err(|e| describe_transport(&e))?;
        let status = resp.status();
        if status.is_success()
            || status == StatusCode::METHOD_NOT_ALLOWED
            || status == StatusCode::NOT_FOUND
        {
            Ok(())
        } else {
            Err(format!("DELETE answered HTTP {status}"))
        }
    }
}

/// How one `tools/call` went.
#[derive(Debug)]
pub struct Answer {
    /// `Err` carries a one-line reason.
    pub result: Result<(), String>,
    /// When the response was in hand (for latency).
    pub at: Instant,
    /// The server kept the SSE stream open after the response.
    pub left_open: bool,
}

#[derive(Debug)]
struct Reply {
    value: Value,
    at: Instant,
    left_open: bool,
    session_id: Option<HeaderValue>,
}

#[derive(Debug)]
enum Failure {
    Transport(reqwest::Error),
    /// A non-success status and a snippet of the body.
    Status(StatusCode, String),
    Protocol(String),
}

/// Read the rest of a stream for at most `DRAIN_GRACE`; false if it was still open then.
async fn drain(resp: &mut Response) -> bool {
    let to_end = async { while let Ok(Some(_)) = resp.chunk().await {} };
    tokio::time::timeout(DRAIN_GRACE, to_end).await.is_ok()
}

/// The end of the last blank line in `buf`: everything before it is whole SSE events.
fn complete_events_end(buf: &[u8]) -> Option<usize> {
    (1..buf.len()).rev().find_map(|i| {
        let blank = buf[i] == b'\n'
            && (buf[i - 1] == b'\n' || (i >= 2 && buf[i - 1] == b'\r' && buf[i - 2] == b'\n'));
        blank.then_some(i + 1)
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(bytes)
        .map_err(|_| Failure::Protocol("the SSE stream is not UTF-8".to_owned()))
}

fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// One MCP session: its id (servers may run without) and the negotiated protocol version.
#[derive(Debug)]
pub struct Session {
    id: Option<HeaderValue>,
    version: HeaderValue,
    next_id: u64,
}

impl Session {
    pub fn protocol_version(&self) -> &str {
        self.version.to_str().unwrap_or("?")
    }

    fn headers(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header(PROTOCOL_HEADER, self.version.clone());
        match &self.id {
            Some(id) => req.header(SESSION_ID, id.clone()),
            None => req,
        }
    }
}

/// Find the JSON-RPC response with `id` in a whole body that is either an SSE stream or JSON.
pub fn find_response(content_type: Option<&str>, body: &[u8], id: u64) -> Result<Value, String> {
    let media = media_type(content_type);
    let text =
        std::str::from_utf8(body).map_err(|_| "the response body is not UTF-8".to_owned())?;
    match media.as_str() {
        "text/event-stream" => find_in_sse(text, id)?
            .ok_or_else(|| format!("the SSE stream ended without a response to request id {id}")),
        "application/json" => {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| format!("the JSON body does not parse ({e}): {}", snippet(body)))?;
            match v {
                Value::Array(items) => items.into_iter().find(|v| is_reply(v, id)),
                v if is_reply(&v, id) => Some(v),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "the JSON body holds no response to request id {id}: {}",
                    snippet(body)
                )
            })
        }
        "" => Err(format!(
            "the response has no Content-Type: {}",
            snippet(body)
        )),
        other => Err(format!(
            "unexpected Content-Type {other}: {}",
            snippet(body)
        )),
    }
}

/// A response (not a server request or notification) to our request `id`.
fn is_reply(v: &Value, id: u64) -> bool {
    v.get("id").and_then(Value::as_u64) == Some(id) && v.get("method").is_none()
}

/// Look for the response to `id` among the events in `text`. Events that are not
/// responses to it (priming events, notifications, server requests) are skipped.
fn find_in_sse(text: &str, id: u64) -> Result<Option<Value>, String> {
    for data in sse_data(text) {
        if data.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&data).map_err(|_| {
            format!(
                "an SSE event's data is not JSON: {}",
                snippet(data.as_bytes())
            )
        })?;
        match v {
            Value::Array(items) => {
                if let Some(found) = items.into_iter().find(|v| is_reply(v, id)) {
                    return Ok(Some(found));
                }
            }
            v if is_reply(&v, id) => return Ok(Some(v)),
            _ => {}
        }
    }
    Ok(None)
}

/// The `data` of each event in an SSE stream (multi-line data joined with `\n`).
/// An unterminated last event is kept too: the stream has been read to its end.
pub fn sse_data(text: &str) -> Vec<String> {
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(d) = data.take() {
                events.push(d);
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    if let Some(d) = data {
        events.push(d);
    }
    events
}

/// OK only for a `result` whose `isError` is not true.
pub fn classify(reply: &Value) -> Result<(), String> {
    if let Some(err) = reply.get("error") {
        return Err(rpc_error_text(err));
    }
    let Some(result) = reply.get("result") else {
        return Err("the response has neither result nor error".to_owned());
    };
    if result.get("isError") == Some(&Value::Bool(true)) {
        let text = result
            .get("content")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find_map(|item| item.get("text").and_then(Value::as_str))
            })
            .unwrap_or("(no text content)");
        return Err(format!("tool error: {}", truncate(text, SNIPPET)));
    }
    Ok(())
}

fn rpc_error_text(err: &Value) -> String {
    let code = err
        .get("code")
        .map_or_else(|| "?".to_owned(), Value::to_string);
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)");
    format!("JSON-RPC error {code}: {}", truncate(message, SNIPPET))
}

fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => " (does the server want --header 'Authorization: Bearer ...'?)",
        StatusCode::FORBIDDEN => " (check the server's allowed hosts/origins and any credentials)",
        StatusCode::NOT_FOUND => " (is the path right? Warden serves MCP at /mcp)",
        _ => "",
    }
}

/// A transport error with its root cause, e.g. "connection refused" or "timed out".
pub fn describe_transport(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out (see --timeout)".to_owned();
    }
    let cause = transport_cause(err);
    if err.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        cause
    }
}

fn transport_cause(err: &reqwest::Error) -> String {
    let mut cur: &(dyn StdError + 'static) = err;
    loop {
        if let Some(io) = cur.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset by the server".to_owned(),
                std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                _ => io.to_string(),
            };
        }
        match cur.source() {
            Some(next) => cur = next,
            None => return cur.to_string(),
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() {
        "(empty body)".to_owned()
    } else {
        truncate(&one_line, SNIPPET)
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE: &str = "id: a::1\nretry: 5000\ndata: \n\nevent: message\nid: a::2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\nevent: message\r\ndata: {\"result\":{\"content\":[]},\r\ndata: \"jsonrpc\":\"2.0\",\"id\":7}\r\n\r\n";

    #[test]
    fn sse_events_and_multiline_data() {
        let events = sse_data(SSE);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0], "");
        assert_eq!(
            events[2],
            "{\"result\":{\"content\":[]},\n\"jsonrpc\":\"2.0\",\"id\":7}"
        );
    }

    #[test]
    fn finds_the_matching_response_in_sse() {
        let v = find_response(Some("text/event-stream"), SSE.as_bytes(), 7).unwrap();
        assert_eq!(v["id"], 7);
        assert!(classify(&v).is_ok());
        assert!(find_response(Some("text/event-stream"), SSE.as_bytes(), 8).is_err());
    }

    #[test]
    fn unterminated_last_event_counts() {
        let body = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}";
        assert!(find_response(Some("text/event-stream"), body.as_bytes(), 3).is_ok());
    }

    #[test]
    fn json_bodies() {
        let one = br#"{"jsonrpc":"2.0","id":4,"result":{"content":[]}}"#;
        assert!(find_response(Some("application/json; charset=utf-8"), one, 4).is_ok());
        let batch =
            br#"[{"jsonrpc":"2.0","id":9,"result":{}},{"jsonrpc":"2.0","id":4,"result":{}}]"#;
        assert_eq!(
            find_response(Some("application/json"), batch, 4).unwrap()["id"],
            4
        );
        assert!(find_response(Some("application/json"), one, 5).is_err());
        assert!(find_response(Some("text/html"), b"<html>", 4).is_err());
    }

    #[test]
    fn server_requests_with_the_same_id_are_not_responses() {
        let body = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"elicitation/create\"}\n\n\
                    data: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        let v = find_response(Some("text/event-stream"), body.as_bytes(), 2).unwrap();
        assert!(v.get("result").is_some());
    }

    #[test]
    fn whole_events_end_at_the_last_blank_line() {
        assert_eq!(complete_events_end(b"data: x"), None);
        assert_eq!(complete_events_end(b"data: x\n"), None);
        assert_eq!(complete_events_end(b"data: x\n\ndata: y"), Some(9));
        assert_eq!(complete_events_end(b"data: x\r\n\r\ndata: y\r\n"), Some(11));
        assert_eq!(complete_events_end(b"\n\n"), Some(2));
    }

    #[test]
    fn ids_must_match_exactly() {
        assert!(is_reply(&json!({"id":3,"result":{}}), 3));
        assert!(!is_reply(&json!({"id":"3","result":{}}), 3));
        assert!(!is_reply(&json!({"id":3,"method":"ping"}), 3));
    }

    #[test]
    fn classification() {
        assert!(classify(&json!({"id":1,"result":{"content":[],"isError":false}})).is_ok());
        let tool_err = classify(
            &json!({"id":1,"result":{"content":[{"type":"text","text":"no such vendor"}],"isError":true}}),
        );
        assert_eq!(tool_err, Err("tool error: no such vendor".to_owned()));
        let rpc_err = classify(&json!({"id":1,"error":{"code":-32602,"message":"Unknown tool"}}));
        assert_eq!(
            rpc_err,
            Err("JSON-RPC error -32602: Unknown tool".to_owned())
        );
        assert!(classify(&json!({"id":1})).is_err());
    }

    #[test]
    fn call_body_is_valid_json_rpc() {
        let mut args = serde_json::Map::new();
        args.insert("query".into(), json!("a\"b"));
        let target = Target::new(
            Client::new(),
            Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            Duration::from_secs(1),
            "search_vendors",
            &args,
        );
        let v: Value = serde_json::from_str(&target.call_body(42)).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_vendors","arguments":{"query":"a\"b"}}})
        );
    }
}
