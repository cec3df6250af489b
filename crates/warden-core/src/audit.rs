//! Audit: the record every call and security event leaves behind.
//!
//! Pipeline position: last. [`crate::pipeline::Pipeline`] builds one [`Event`] per tool call,
//! resource read and prompt, and one per refusal it answers before a call is read
//! (admission, scope step-up, listing), and hands it to a [`Sink`]; the call's response is released
//! only once the sink says the event is durable. For a write, the event is made durable
//! *before* the data transaction commits, so no change can exist without its record.
//!
//! This module only describes events. Where they go (the hash-chained, group-committed log)
//! is `warden-store`'s `audit` module.

use std::fmt;
use std::sync::Mutex;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use crate::project::Tool;

/// The marker stored in place of a sensitive or secret value.
pub const REDACTED: &str = "[redacted]";

/// Longest string argument recorded in full; longer ones are cut and marked.
pub const MAX_RECORDED_CHARS: usize = 2048;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// MCP over Streamable HTTP.
    Http,
    /// MCP over stdio.
    Stdio,
    /// The sign-in and consent pages, the OAuth endpoints.
    Dashboard,
    /// The `warden` command line.
    Cli,
    /// The web console (`/console`): a signed-in person managing their keys and apps, or an
    /// Admin their organisation.
    Console,
    /// Warden itself (startup, retention).
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "mcp_http",
            Self::Stdio => "mcp_stdio",
            Self::Dashboard => "dashboard",
            Self::Cli => "cli",
            Self::Console => "console",
            Self::System => "system",
        }
    }
}

/// Whether the call or action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Allowed, but it failed (bad arguments, a database error, nothing found).
    ToolError,
    Denied,
    /// A write was previewed; nothing changed until it is confirmed.
    ConfirmationRequired,
    /// The client was asked for input (MCP 2026-07-28 multi round-trip); nothing ran yet.
    InputRequired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ToolError => "tool_error",
            Self::Denied => "denied",
            Self::ConfirmationRequired => "confirmation_required",
            Self::InputRequired => "input_required",
        }
    }
}

/// One audited event, before it is placed on its organisation's chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened: `tool_call`, `resource_read`, `prompt_get`, `login_succeeded`, ...
    pub kind: &'static str,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-21T13:45:01.123Z`.
    pub ts: String,
    /// Ties together the records of one request (a write's record and a follow-up).
    pub request_id: String,
    /// The organisation's slug; `None` for events outside any organisation.
    pub org: Option<String>,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    /// `oauth`, `api_key`, `session`, `password`, `magic_link`, or `none`.
    pub auth_method: Option<String>,
    /// The OAuth client id or API key id.
    pub credential: Option<String>,
    pub source: Source,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The tool, resource, prompt or action.
    pub action: String,
    /// Sanitized parameters: sensitive values and secrets replaced by [`REDACTED`].
    pub params: Option<Value>,
    pub decision: Decision,
    pub stage: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub outcome: Outcome,
    pub duration_us: Option<u64>,
    /// For writes: the ids of the rows changed.
    pub affected: Option<Vec<String>>,
    /// Anything else worth keeping (rows affected, policy version, ...).
    pub detail: Option<Value>,
    /// The W3C trace id (32 lowercase hex digits) of the request's `traceparent`, so the
    /// record can be joined with logs and traces.
    pub trace_id: Option<String>,
}

impl Event {
    /// An allowed, successful event of `kind` on `action`, now; fill in the rest.
    pub fn new(kind: &'static str, source: Source, action: impl Into<String>) -> Self {
        Self {
            kind,
            ts: now(),
            request_id: uuid::Uuid::new_v4().to_string(),
            org: None,
            user_id: None,
            user_email: None,
            auth_method: None,
            credential: None,
            source,
            remote_addr: None,
            user_agent: None,
            action: action.into(),
            params: None,
            decision: Decision::Allowed,
            stage: None,
            rule: None,
            reason: None,
            outcome: Outcome::Success,
            duration_us: None,
            affected: None,
            detail: None,
            trace_id: None,
        }
    }

    /// Marks the event denied at `stage` by `rule`.
    pub fn denied(mut self, stage: &str, rule: &str, reason: impl Into<String>) -> Self {
        self.deny(stage, rule, reason);
        self
    }

    /// [`Event::denied`], in place.
    pub fn deny(&mut self, stage: &str, rule: &str, reason: impl Into<String>) {
        self.decision = Decision::Denied;
        self.outcome = Outcome::Denied;
        self.stage = Some(stage.to_string());
        self.rule = Some(rule.to_string());
        self.reason = Some(reason.into());
    }

    pub fn org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }

    pub fn user(mut self, id: impl Into<String>, email: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self.user_email = Some(email.into());
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The current time as records store it.
pub fn now() -> String {
    // The same text as the strftime pattern `%Y-%m-%dT%H:%M:%S%.3fZ`, without parsing a
    // pattern on every call (two calls per tool call).
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Where the request came from: the network peer, and what the edge read about the request
/// that the record and the metrics keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    /// The trace id of a valid W3C `traceparent` header (32 lowercase hex digits).
    pub trace_id: Option<String>,
    /// The MCP protocol revision of the connection, one the edge knows (never a client's
    /// text), for metrics.
    pub protocol_version: Option<&'static str>,
}

/// The audit store refused or failed to make an event durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail cannot record this request ({0}); it was refused and nothing was changed")]
pub struct AuditError(pub String);

/// Why a sink cannot take events now: a fixed phrase (no paths, versions or database
/// errors), fit for an unauthenticated readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub &'static str);

/// Where events go. `record` resolves once the event is durable (or with the reason it
/// cannot be); nothing that depends on the event may be released before that.
pub trait Sink: Send + Sync + fmt::Debug {
    fn record(&self, event: Event) -> BoxFuture<'static, Result<(), AuditError>>;

    /// Whether an event could be made durable now, without recording one. Cheap enough to
    /// be asked by every readiness probe.
    fn ready(&self) -> BoxFuture<'static, Result<(), NotReady>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether events are kept at all (`audit: { enabled: false }` turns it off).
    fn enabled(&self) -> bool {
        true
    }
}

/// Audit switched off (`audit: { enabled: false }`): for benchmarks only.
#[derive(Debug, Default, Clone, Copy)]
pub struct Disabled;

impl Sink for Disabled {
    fn record(&self, _: Event) -> BoxFuture<'static, Result<(), AuditError>> {
        Box::pin(async { Ok(()) })
    }
    fn enabled(&self) -> bool {
        false
    }
}

/// Keeps events in memory; for tests. Can be told to fail, to test that failures refuse.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<Event>>,
    failing: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Sink for MemorySink {
    fn ready(&self) -> BoxFuture<'static, Result<(), NotReady>> {
        let failing = self.failing.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if failing {
                Err(NotReady("audit trail cannot append"))
            } else {
                Ok(())
            }
        })
    }

    fn record(&self, event: Event) -> BoxFuture<'static, Result<(), AuditError>> {
        let r = if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(AuditError("the memory sink was told to fail".into()))
        } else {
            match self.events.lock() {
                Ok(mut e) => {
                    e.push(event);
                    Ok(())
                }
                Err(_) => Err(AuditError("the memory sink is poisoned".into())),
            }
        };
        Box::pin(async move { r })
    }
}

/// The arguments as they may be recorded: a tool's `sensitive` parameters, the confirmation
/// token and any argument the tool does not declare (it could be anything) are replaced by
/// [`REDACTED`]; very long strings are cut.
pub fn sanitize_arguments(tool: &Tool, args: Option<&Map<String, Value>>) -> Option<Value> {
    let args = args?;
    let mut out = Map::new();
    for (k, v) in args {
        let value = if k == crate::confirm::CONFIRM {
            v.clone()
        } else {
            match tool.params.iter().find(|p| &p.name == k) {
                Some(p) if !p.sensitive => cut(v),
                _ => Value::String(REDACTED.into()),
            }
        };
        out.insert(k.clone(), value);
    }
    Some(Value::Object(out))
}

/// Arguments of something without declared sensitivity (URI variables, prompt arguments).
pub fn plain_arguments(args: &Map<String, Value>) -> Value {
    Value::Object(args.iter().map(|(k, v)| (k.clone(), cut(v))).collect())
}

fn cut(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > MAX_RECORDED_CHARS => {
            let kept: String = s.chars().take(MAX_RECORDED_CHARS).collect();
            Value::String(format!(
                "{kept}…[cut: {} more characters]",
                s.chars().count() - MAX_RECORDED_CHARS
            ))
        }
        Value::Array(a) => Value::Array(a.iter().map(cut).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), cut(v))).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_and_marked() {
        let long = "x".repeat(MAX_RECORDED_CHARS + 5);
        let Value::String(s) = cut(&Value::String(long)) else {
            panic!("not a string")
        };
        assert!(s.ends_with("…[cut: 5 more characters]"));
    }

    #[test]
    fn timestamps_sort_as_text() {
        let a = now();
        assert_eq!(a.len(), "2026-11-21T13:45:01.123Z".len());
        assert!(a.ends_with('Z'));
        // Exactly the fixed-width layout records have always had (a purge and `--since`
        // compare these as text), at any instant, including whole seconds.
        for t in [
            chrono::DateTime::from_timestamp_millis(1_795_000_000_000).unwrap(),
            chrono::DateTime::from_timestamp_millis(1_795_000_000_007).unwrap(),
            chrono::Utc::now(),
        ] {
            assert_eq!(
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
    }
}
