//! Input policy: the variables CEL rules see (`user`, `args`, `tool`, `request`), built only
//! as far as some rule reads them; the rules themselves are compiled at load
//! ([`crate::policy`]). A rule that errors denies.

use serde_json::{Map, Value, json};

use crate::identity::Principal;
use crate::project::{Access, Tool};

use super::request::{CallRequest, Source};

/// What a tool call's rules can read: `user`, `args` (with defaults), `tool` and `request`.
/// Without an authenticated caller there is no `user`, so a rule that reads it errors and
/// denies.
pub(super) fn tool_variables(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    req: &CallRequest<'_>,
) -> Map<String, Value> {
    // Only what some rule of the tool reads: each stage converts no more than that anyway.
    variables_where(tool, args, req.caller, req.source, |name| {
        tool.policies.reads(name)
    })
}

/// The variables policy expressions see for a call of `tool` by `caller` (all of them; for
/// `warden policy test` and benchmarks).
pub fn policy_variables(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    caller: Option<&Principal>,
    source: Source,
) -> Map<String, Value> {
    variables_where(tool, args, caller, source, |_| true)
}

/// [`policy_variables`], leaving out those `wanted` says no to.
fn variables_where(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    caller: Option<&Principal>,
    source: Source,
    wanted: impl Fn(&str) -> bool,
) -> Map<String, Value> {
    let mut vars = Map::new();
    if let Some(c) = caller
        && wanted("user")
    {
        vars.insert("user".into(), user_value(c));
    }
    if wanted("args") {
        let mut a = Map::new();
        for p in &tool.params {
            let v = args
                .and_then(|m| m.get(&p.name))
                .filter(|v| !v.is_null())
                .or(p.default.as_ref())
                .cloned()
                .unwrap_or(Value::Null);
            a.insert(p.name.clone(), v);
        }
        vars.insert("args".into(), Value::Object(a));
    }
    if wanted("tool") {
        let read = tool.access == Access::Read;
        vars.insert(
            "tool".into(),
            json!({"name": tool.name, "kind": "tool", "access": tool.access.as_str(),
                   "annotations": {"readOnlyHint": read, "destructiveHint": !read}}),
        );
    }
    if wanted("request") {
        vars.insert(
            "request".into(),
            json!({
                "source": match source {
                    Source::Http => "http",
                    Source::Stdio => "stdio",
                    Source::Dashboard => "dashboard",
                    Source::Cli => "cli",
                    Source::Console => "console",
                    Source::System => "system",
                },
                "client": caller.map(|c| c.credential.clone()).unwrap_or_default(),
                "method": caller.map(|c| c.method).unwrap_or("none"),
                "time": chrono::Utc::now().to_rfc3339(),
            }),
        );
    }
    vars
}

/// The caller as policy expressions see it: `user`.
fn user_value(c: &Principal) -> Value {
    json!({
        "id": c.user_id,
        "email": c.email,
        "role": c.role.as_str(),
        "org": c.org,
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "attributes": {},
    })
}

/// Variables for a resource read or a prompt: `args` are the URI's variables or the
/// prompt's arguments; `tool` describes the resource or prompt.
pub(super) fn resource_variables(
    name: &str,
    kind: &str,
    args: &Map<String, Value>,
    caller: Option<&Principal>,
) -> Map<String, Value> {
    let mut vars = Map::new();
    if let Some(c) = caller {
        vars.insert("user".into(), user_value(c));
    }
    vars.insert("args".into(), Value::Object(args.clone()));
    vars.insert("tool".into(), json!({"name": name, "kind": kind, "access": "read", "annotations": {"readOnlyHint": true}}));
    vars.insert(
        "request".into(),
        json!({"time": chrono::Utc::now().to_rfc3339()}),
    );
    vars
}
