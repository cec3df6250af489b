//! Audit's companion: the counters and histograms every call leaves, recorded through the
//! `metrics` facade where the record stage already knows how a call ended. Nothing here
//! knows an exporter: without one installed (metrics are off by default) these are no-ops.
//!
//! Label values come only from fixed sets or from the project file (tool, prompt and
//! policy rule names). A name a client sent that the project does not define becomes
//! [`UNKNOWN`], never a label, so a client cannot grow the label space; no user,
//! organisation, credential or argument value is ever a label.

use std::time::Instant;

use crate::audit::{Outcome, Peer};

use super::error::CallError;
use super::response::ToolResult;

/// `mcp.server.operation.duration` (OpenTelemetry MCP semantic conventions), in seconds.
pub const OPERATION_DURATION: &str = "mcp.server.operation.duration";
/// Policy rules that denied a call, by rule name.
pub const POLICY_DENIALS: &str = "warden.policy.denials";

/// The label value for a tool or prompt name the project does not define.
pub const UNKNOWN: &str = "_unknown";

/// How a call ended, as a label: `ok`, `tool_error`, `denied`, `confirmation_required`,
/// or `error` (the audit trail could not record it).
pub(super) fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "ok",
        Outcome::ToolError => "tool_error",
        Outcome::Denied => "denied",
        Outcome::ConfirmationRequired => "confirmation_required",
        Outcome::InputRequired => "input_required",
    }
}

pub(super) fn tool_outcome(result: &Result<ToolResult, CallError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(
            CallError::UnknownTool { .. }
            | CallError::Denied(_)
            | CallError::Policy(_)
            | CallError::Confirmation(_),
        ) => "denied",
        Err(CallError::ConfirmationRequired(_)) => "confirmation_required",
        Err(CallError::InputRequired(_)) => "input_required",
        Err(CallError::RequestState(_) | CallError::MissingCapability(_)) => "denied",
        Err(CallError::Limited(_) | CallError::LimitUnavailable(_)) => "limited",
        Err(
            CallError::Arguments(_)
            | CallError::Execution(_)
            | CallError::NotFound(_)
            | CallError::Client(_),
        ) => "tool_error",
        Err(CallError::Audit(_)) => "error",
    }
}

/// One `mcp.server.operation.duration` observation. `name` is the project's own name for
/// the tool or prompt (or [`UNKNOWN`]), under the attribute the conventions give it.
pub(super) fn operation(
    method: &'static str,
    name: Option<(&'static str, String)>,
    outcome: &'static str,
    peer: &Peer,
    started: Instant,
) {
    let mut labels = vec![
        ("mcp.method.name", method.to_string()),
        ("outcome", outcome.to_string()),
        (
            "mcp.protocol.version",
            peer.protocol_version.unwrap_or("unknown").to_string(),
        ),
    ];
    if let Some((attribute, value)) = name {
        labels.push((attribute, value));
    }
    if outcome != "ok" {
        labels.push(("error.type", outcome.to_string()));
    }
    metrics::histogram!(OPERATION_DURATION, &labels).record(started.elapsed().as_secs_f64());
}

/// A policy rule (named in the project file) denied a call.
pub(super) fn policy_denial(rule: &str) {
    metrics::counter!(POLICY_DENIALS, "rule" => rule.to_string()).increment(1);
}
