//! Policy: CEL rules on what goes into a tool and what comes out of it.
//!
//! Pipeline position: the input policy runs after authorization and argument checks, before
//! execution; the output policy runs on the result, before it is returned.
//!
//! Fail closed, always: an expression that errors (a missing attribute, a type error) or
//! yields anything but a boolean denies the call as a "policy error" naming the rule. It is
//! never read as "condition false". Filtering and masking act on every object at any depth,
//! arrays included, and report exactly which fields they touched.
//!
//! `names.rs` checks, at load, that a rule names only what its stage provides.

mod names;

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use names::{Fields, NameProblem, REQUEST_FIELDS, Scope, Stage, TOOL_FIELDS, USER_FIELDS};

/// The text a masked value is replaced with.
pub const MASK: &str = "****";

/// A compiled CEL condition, with its source for messages. Cloning shares the compiled
/// program.
#[derive(Clone)]
pub struct Condition {
    pub source: String,
    program: std::sync::Arc<cel::Program>,
    reads_response: bool,
    /// Every variable the expression names, found once at compile time: only these are
    /// converted into a call's CEL context.
    variables: Vec<String>,
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl Condition {
    /// Compiles `source`; the error is the parser's message.
    pub fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source).map_err(|e| e.to_string())?;
        let references = program.references();
        let reads_response = references.has_variable("response");
        let variables = references
            .variables()
            .into_iter()
            .map(str::to_string)
            .collect();
        Ok(Self {
            source: source.to_string(),
            program: std::sync::Arc::new(program),
            reads_response,
            variables,
        })
    }

    /// Whether the expression reads the variable `name` (e.g. `response`).
    pub fn reads(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }

    /// The names of the variables the expression reads.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Evaluates with one variable, `name`, bound to `value` (an identity provider's
    /// mapping rule over `claims`). Anything but a boolean is an error.
    pub fn holds_over(&self, name: &str, value: &Value) -> Result<bool, String> {
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value(name.to_string(), to_cel(value));
        self.eval(&ctx)
    }

    /// Evaluates to a boolean; anything else is an error (and so a denial).
    fn eval(&self, ctx: &cel::Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("the condition gave {other:?}, not true or false")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct InputRule {
    pub name: String,
    pub condition: Condition,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputAction {
    Deny,
    FilterFields(Vec<String>),
    MaskFields(Vec<String>),
    FilterSensitive,
}

#[derive(Debug, Clone)]
pub struct OutputRule {
    pub name: String,
    /// Applies when true; always without one.
    pub condition: Option<Condition>,
    pub action: OutputAction,
    pub reason: String,
}

/// The rules that apply to one tool: the project's global rules, then the tool's own.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub input: Vec<InputRule>,
    pub output: Vec<OutputRule>,
    /// Paths of the tool's output fields marked `sensitive`.
    pub sensitive: Vec<String>,
    /// SHA-256 of the policy text this set was built from: which version decided.
    pub version: String,
}

/// What the policy stage did, for the caller and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyReport {
    pub version: String,
    /// Rules that fired (denied, filtered or masked), in order.
    pub fired: Vec<String>,
    pub filtered: BTreeSet<String>,
    pub masked: BTreeSet<String>,
}

/// A policy refused the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (policy rule '{rule}')")]
pub struct PolicyDenial {
    pub rule: String,
    pub reason: String,
    /// The rule itself failed to evaluate; the call is denied all the same.
    pub error: Option<String>,
    pub version: String,
}

/// The CEL standard library, built once: building it per call costs more than every rule.
fn stdlib() -> std::sync::Arc<cel::Env> {
    thread_local! {
        static ENV: std::sync::Arc<cel::Env> = std::sync::Arc::new(cel::Env::stdlib());
    }
    ENV.with(std::sync::Arc::clone)
}

/// One CEL context for all the rules of a stage: the variables are converted once, and
/// only those some rule of the stage reads (converting a JSON value to CEL is most of a
/// simple rule's cost). A rule naming a variable that is absent still fails, and denies.
fn context(
    vars: &Map<String, Value>,
    read: impl Fn(&str) -> bool,
) -> cel::Context<'static, 'static> {
    let mut ctx = cel::Context::with_env(stdlib());
    for (k, v) in vars.iter().filter(|(k, _)| read(k)) {
        // Every kind `to_cel` produces converts to a CEL value without error.
        ctx.add_variable_from_value(k.clone(), to_cel(v));
    }
    ctx
}

/// A JSON value as CEL sees it, built directly rather than through serde (which first
/// clones the JSON and then drives a serializer per node). The mapping is the one cel's
/// serializer applies to JSON: non-negative integers are `uint`, negative ones `int`,
/// other numbers `double`.
fn to_cel(v: &Value) -> cel::Value {
    use std::sync::Arc;
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => cel::Value::UInt(u),
            (None, Some(i)) => cel::Value::Int(i),
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => cel::Value::Map(cel::objects::Map {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

pub fn version_of(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl PolicySet {
    /// Whether any rule, of either stage, reads the variable `name`.
    pub fn reads(&self, name: &str) -> bool {
        self.input.iter().any(|r| r.condition.reads(name))
            || self
                .output
                .iter()
                .any(|r| r.condition.as_ref().is_some_and(|c| c.reads(name)))
    }

    /// No rules at all: the policy stage has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.input.is_empty() && self.output.is_empty()
    }

    fn deny(&self, rule: &str, reason: &str, error: Option<String>) -> PolicyDenial {
        let reason = match &error {
            Some(e) => format!("policy error in rule '{rule}': {e}; the call is denied"),
            None => reason.to_string(),
        };
        PolicyDenial {
            rule: rule.to_string(),
            reason,
            error,
            version: self.version.clone(),
        }
    }

    /// Runs the input rules with `vars` (`user`, `args`, `tool`, `request`).
    pub fn check_input(&self, vars: &Map<String, Value>) -> Result<(), PolicyDenial> {
        if self.input.is_empty() {
            return Ok(());
        }
        let ctx = context(vars, |k| self.input.iter().any(|r| r.condition.reads(k)));
        for rule in &self.input {
            match rule.condition.eval(&ctx) {
                Ok(false) => {}
                Ok(true) => return Err(self.deny(&rule.name, &rule.reason, None)),
                Err(e) => return Err(self.deny(&rule.name, &rule.reason, Some(e))),
            }
        }
        Ok(())
    }

    /// Runs the output rules on `response`, changing it in place.
    pub fn apply_output(
        &self,
        vars: &mut Map<String, Value>,
        response: &mut Value,
    ) -> Result<PolicyReport, PolicyDenial> {
        let mut report = PolicyReport {
            version: self.version.clone(),
            ..PolicyReport::default()
        };
        let mut ctx: Option<cel::Context<'static, 'static>> = None;
        // Whether `response` in the context reflects the current result.
        let mut response_fresh = false;
        for rule in &self.output {
            if let Some(c) = &rule.condition {
                let cx = match ctx.as_mut() {
                    Some(cx) => cx,
                    None => {
                        vars.remove("response");
                        ctx.insert(context(vars, |k| {
                            self.output
                                .iter()
                                .any(|r| r.condition.as_ref().is_some_and(|c| c.reads(k)))
                        }))
                    }
                };
                // `response` is converted only for rules that read it, and again only after
                // an action changed it.
                if c.reads_response && !response_fresh {
                    cx.add_variable_from_value("response", to_cel(response));
                    response_fresh = true;
                }
                match c.eval(cx) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => return Err(self.deny(&rule.name, &rule.reason, Some(e))),
                }
            }
            let touched = match &rule.action {
                OutputAction::Deny => return Err(self.deny(&rule.name, &rule.reason, None)),
                OutputAction::FilterFields(paths) => {
                    edit(response, paths, Edit::Remove, &mut report.filtered)
                }
                OutputAction::MaskFields(paths) => {
                    edit(response, paths, Edit::Mask, &mut report.masked)
                }
                OutputAction::FilterSensitive => edit(
                    response,
                    &self.sensitive,
                    Edit::Remove,
                    &mut report.filtered,
                ),
            };
            if touched {
                report.fired.push(rule.name.clone());
                response_fresh = false;
            }
        }
        Ok(report)
    }
}

#[derive(Clone, Copy)]
enum Edit {
    Remove,
    Mask,
}

/// Applies `edit` to every field matching one of `paths` (dotted, matched at any depth,
/// through arrays); records which paths were touched. Returns whether anything changed.
fn edit(value: &mut Value, paths: &[String], how: Edit, touched: &mut BTreeSet<String>) -> bool {
    let mut any = false;
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        if walk(value, &segments, how) {
            touched.insert(path.clone());
            any = true;
        }
    }
    any
}

/// Finds `segments` starting at this value or any value below it.
fn walk(value: &mut Value, segments: &[&str], how: Edit) -> bool {
    let mut changed = at(value, segments, how);
    match value {
        Value::Object(map) => {
            for child in map.values_mut() {
                changed |= walk(child, segments, how);
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= walk(item, segments, how);
            }
        }
        _ => {}
    }
    changed
}

/// Matches `segments` exactly from this value down (arrays are crossed transparently).
fn at(value: &mut Value, segments: &[&str], how: Edit) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return false;
    };
    match value {
        Value::Object(map) => {
            if rest.is_empty() {
                match how {
                    Edit::Remove => map.remove(*first).is_some(),
                    Edit::Mask => match map.get_mut(*first) {
                        Some(v) if !v.is_null() => {
                            *v = Value::String(MASK.into());
                            true
                        }
                        _ => false,
                    },
                }
            } else {
                map.get_mut(*first)
                    .is_some_and(|child| at(child, rest, how))
            }
        }
        Value::Array(items) => {
            let mut any = false;
            for item in items {
                any |= at(item, segments, how);
            }
            any
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
