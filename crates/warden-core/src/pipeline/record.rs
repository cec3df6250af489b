//! Audit (the pipeline's half): the one place a call's [`Event`] is built. Every tool call,
//! resource read and prompt gets exactly one record of how it ended (a write whose outcome
//! changes after its record was made gets a second, saying so), and every refusal the
//! pipeline answers gets one too. Where the events go is the [`crate::audit::Sink`]'s
//! business.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

use crate::audit::{self, Event, Outcome, Peer, Sink};
use crate::authz::Denial;
use crate::exec::QueryOutput;
use crate::identity::Principal;
use crate::project::Tool;

use super::error::{CallError, PromptError, ResourceError};
use super::measure;
use super::request::Source;
use super::response::ToolResult;

/// An event for a call by `caller` (or an unauthenticated one, with `auth: none`).
pub(super) fn call_event(
    kind: &'static str,
    action: &str,
    caller: Option<&Principal>,
    source: Source,
    peer: &Peer,
) -> Event {
    let mut e = Event::new(kind, source, action);
    match caller {
        Some(c) => {
            e.org = Some(c.org.clone());
            e.user_id = Some(c.user_id.clone());
            e.user_email = Some(c.email.clone());
            e.auth_method = Some(c.method.to_string());
            e.credential = Some(c.credential.clone()).filter(|c| !c.is_empty());
        }
        None => e.auth_method = Some("none".into()),
    }
    e.remote_addr = peer.remote_addr.clone();
    e.user_agent = peer.user_agent.clone();
    e.trace_id = peer.trace_id.clone();
    e
}

/// The record of a refusal made by the authorize stage itself.
pub(super) fn refusal(
    kind: &'static str,
    action: &str,
    caller: Option<&Principal>,
    source: Source,
    peer: &Peer,
    denial: &Denial,
) -> Event {
    call_event(kind, action, caller, source, peer).denied(
        denial.stage.as_str(),
        denial.rule,
        denial.reason.clone(),
    )
}

/// Fills in how a tool call ended.
pub(super) fn finish_tool(e: &mut Event, result: &Result<ToolResult, CallError>, started: Instant) {
    e.ts = audit::now();
    e.duration_us = Some(started.elapsed().as_micros() as u64);
    let err = match result {
        Ok(r) => {
            e.outcome = Outcome::Success;
            if !r.policy.fired.is_empty() {
                e.detail =
                    Some(json!({"policy": {"fired": r.policy.fired, "version": r.policy.version}}));
            }
            if let Some(Value::Object(d)) = &r.detail {
                let mut all = match e.detail.take() {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                all.extend(d.clone());
                e.detail = Some(Value::Object(all));
            }
            return;
        }
        Err(err) => err,
    };
    match err {
        CallError::UnknownTool { .. } => {
            e.deny("lookup", "tool.unknown", err.to_string());
        }
        CallError::Denied(d) => e.deny(d.stage.as_str(), d.rule, d.reason.clone()),
        CallError::Policy(d) => {
            measure::policy_denial(&d.rule);
            e.deny("policy", &d.rule, policy_reason(d));
            e.detail = Some(json!({"policy": {"version": d.version}}));
        }
        CallError::Confirmation(m) => {
            e.deny("confirmation", "confirmation.refused", m.clone());
        }
        CallError::Limited(l) => e.deny("limit", &l.limit, l.to_string()),
        CallError::LimitUnavailable(m) => e.deny("limit", "limits.unavailable", m.clone()),
        CallError::InputRequired(i) => {
            // Never the state: it is a single-use secret.
            e.outcome = Outcome::InputRequired;
            e.detail =
                Some(json!({"asked": i.asks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()}));
        }
        CallError::RequestState(m) => e.deny("input", "input.request_state", m.clone()),
        CallError::MissingCapability(c) => {
            e.deny(
                "input",
                "input.capability",
                format!("the client did not declare `{c}`"),
            );
        }
        CallError::ConfirmationRequired(p) => {
            // Never the token: it is a secret.
            e.outcome = Outcome::ConfirmationRequired;
            e.detail = Some(json!({"preview_rows_affected": p.rows_affected}));
        }
        CallError::Arguments(_)
        | CallError::Execution(_)
        | CallError::NotFound(_)
        | CallError::Client(_)
        | CallError::Audit(_) => {
            e.outcome = Outcome::ToolError;
            e.reason = Some(err.to_string());
        }
    }
}

/// Measures how a tool call ended (`mcp.server.operation.duration`): once per call, on
/// every path. `tool` is the project's tool, `None` for a name it does not define.
pub(super) fn measure_tool(
    tool: Option<&Tool>,
    peer: &Peer,
    result: &Result<ToolResult, CallError>,
    started: Instant,
) {
    let name = tool.map_or_else(|| measure::UNKNOWN.to_string(), |t| t.name.clone());
    measure::operation(
        "tools/call",
        Some(("gen_ai.tool.name", name)),
        measure::tool_outcome(result),
        peer,
        started,
    );
}

/// Measures a resource read or prompt by how its record says it ended (`None`: the trail
/// could not record it). `name` is the project's prompt name, if any.
pub(super) fn measure_outcome(
    method: &'static str,
    name: Option<(&'static str, String)>,
    outcome: Option<Outcome>,
    peer: &Peer,
    started: Instant,
) {
    let outcome = outcome.map_or("error", measure::outcome_label);
    measure::operation(method, name, outcome, peer, started);
}

/// Fills in how a resource read ended.
pub(super) fn finish_resource<T>(
    e: &mut Event,
    result: &Result<T, ResourceError>,
    started: Instant,
) {
    e.ts = audit::now();
    e.duration_us = Some(started.elapsed().as_micros() as u64);
    if let Err(err) = result {
        resource_failure(e, err);
    }
}

/// Fills in how a prompt request ended (with the resources it embeds).
pub(super) fn finish_prompt<T>(e: &mut Event, result: &Result<T, PromptError>, started: Instant) {
    e.ts = audit::now();
    e.duration_us = Some(started.elapsed().as_micros() as u64);
    match result {
        Ok(_) => {}
        Err(PromptError::Resource(r)) => resource_failure(e, r),
        Err(err @ PromptError::Unknown(_)) => e.deny("lookup", "prompt.unknown", err.to_string()),
        Err(PromptError::InputRequired(i)) => {
            // Never the state: it is a single-use secret.
            e.outcome = Outcome::InputRequired;
            e.detail =
                Some(json!({"asked": i.asks.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()}));
        }
        Err(PromptError::RequestState(m)) => e.deny("input", "input.request_state", m.clone()),
        Err(err @ PromptError::MissingCapability(_)) => {
            e.deny("input", "input.capability", err.to_string());
        }
        Err(err) => {
            e.outcome = Outcome::ToolError;
            e.reason = Some(err.to_string());
        }
    }
}

fn resource_failure(e: &mut Event, err: &ResourceError) {
    match err {
        ResourceError::Denied(d) => e.deny(d.stage.as_str(), d.rule, d.reason.clone()),
        ResourceError::Policy(d) => {
            measure::policy_denial(&d.rule);
            e.deny("policy", &d.rule, policy_reason(d));
            e.detail = Some(json!({"policy": {"version": d.version}}));
        }
        ResourceError::NotFound(_) => e.deny("lookup", "resource.unknown", err.to_string()),
        ResourceError::NoRow { .. } | ResourceError::Execution(_) | ResourceError::Audit(_) => {
            e.outcome = Outcome::ToolError;
            e.reason = Some(err.to_string());
        }
    }
}

fn policy_reason(d: &crate::policy::PolicyDenial) -> String {
    match &d.error {
        Some(error) => format!("{} (the rule failed: {error})", d.reason),
        None => d.reason.clone(),
    }
}

/// The gate between a write's statement and its COMMIT: makes the call's record (with the
/// rows it changed) durable first, so no change can exist without its record.
pub(super) fn write_gate(
    sink: Arc<dyn Sink>,
    mut event: Event,
    tool: &Tool,
    started: Instant,
    recorded: Arc<AtomicBool>,
    extra: Option<Value>,
) -> crate::exec::Gate {
    let inserts = tool
        .statement
        .text
        .trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("insert"));
    // A generated write names its table and the row's key (as the sanitized arguments hold
    // it) in its record.
    let key = tool
        .generated
        .as_ref()
        .filter(|g| g.ingest.is_none())
        .map(|g| {
            let args = event.params.as_ref().and_then(Value::as_object);
            let key: serde_json::Map<String, Value> = g
                .key
                .iter()
                .map(|k| {
                    let v = args.and_then(|a| a.get(k)).cloned().unwrap_or(Value::Null);
                    (k.clone(), v)
                })
                .collect();
            json!({"table": g.table, "verb": g.verb, "key": key})
        });
    Box::new(move |out: &QueryOutput| {
        event.ts = audit::now();
        event.duration_us = Some(started.elapsed().as_micros() as u64);
        event.affected = Some(affected_ids(out, inserts));
        let mut detail = json!({"rows_affected": out.rows_affected});
        if let (Some(Value::Object(k)), Value::Object(d)) = (key, &mut detail) {
            d.extend(k);
        }
        if let (Some(Value::Object(x)), Value::Object(d)) = (extra, &mut detail) {
            d.extend(x);
        }
        event.detail = Some(detail);
        Box::pin(async move {
            sink.record(event).await.map_err(|e| e.0)?;
            recorded.store(true, Ordering::Release);
            Ok(())
        })
    })
}

/// The ids of the rows a write changed: its `RETURNING` rows' `id` (or first) column, or,
/// for a one-row SQLite `INSERT` without `RETURNING`, the new rowid.
fn affected_ids(out: &QueryOutput, inserts: bool) -> Vec<String> {
    let ids: Vec<String> = out
        .rows
        .iter()
        .filter_map(|r| r.get("id").or_else(|| r.values().next()))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    if ids.is_empty()
        && inserts
        && out.rows_affected == 1
        && let Some(id) = out.last_insert_id
    {
        return vec![id.to_string()];
    }
    ids
}
