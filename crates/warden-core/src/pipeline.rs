//! The call pipeline: the one place every tool call, resource read and prompt request passes
//! through, in order.
//!
//! ```text
//! transport ─▶ authenticate ─▶ authorize ─▶ input policy ─▶ execute ─▶ output policy ─▶ audit
//! (edge)       (later)         (later)      (later)         exec::     (later)          (later)
//! ```
//!
//! The edge builds a [`CallRequest`] from whatever arrived on the wire and gets back a
//! [`ToolResult`] or a [`CallError`]; it never runs SQL or checks arguments itself. Later
//! stages slot in here, between argument checking and execution, so that nothing can reach
//! `exec` around them.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::audit::{self, AuditError, Event, Outcome, Peer, Sink};
use crate::authz::{self, Caller, Denial};
use crate::confirm::{self, Ledger};
use crate::exec::{DataSource, ExecError, QueryOutput, SqlValue};
use crate::project::{
    ArgumentError, ContentBlock, ParamType, Project, Prompt, PromptMessage, Resource, ResourceUri,
    Returns, Role, Tool,
};

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Http,
    Stdio,
}

/// What the pipeline may ask of the caller's client while a call runs. The edge implements
/// it over MCP notifications and requests; tests implement it in memory.
pub trait ClientChannel: Send + Sync {
    fn progress(&self, done: u32, total: u32, message: String) -> BoxFuture<'_, ()>;
    fn log(&self, message: String) -> BoxFuture<'_, ()>;
    /// Asks the user for structured input; `None` when the client cannot be asked.
    fn elicit(
        &self,
        message: String,
        schema: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Elicited, String>>;
    /// Asks the client's model for a completion.
    fn sample(&self, prompt: String, max_tokens: u32) -> BoxFuture<'_, Result<String, String>>;
}

/// The user's answer to an elicitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Elicited {
    /// `accept`, `decline` or `cancel`.
    pub action: String,
    pub content: Option<Value>,
}

/// A channel for callers that cannot be asked anything (CLI, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChannel;

impl ClientChannel for NoChannel {
    fn progress(&self, _: u32, _: u32, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn log(&self, _: String) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
    fn elicit(&self, _: String, _: Map<String, Value>) -> BoxFuture<'_, Result<Elicited, String>> {
        Box::pin(async { Err("this client cannot be asked for input".to_string()) })
    }
    fn sample(&self, _: String, _: u32) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async { Err("this client offers no model to ask".to_string()) })
    }
}

impl std::fmt::Debug for CallRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments may hold sensitive values; they are never printed.
        f.debug_struct("CallRequest")
            .field("tool", &self.tool)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

pub struct CallRequest<'a> {
    pub tool: &'a str,
    /// The authenticated caller; `None` only when the project runs with `auth: none`.
    pub caller: Option<&'a Caller>,
    pub arguments: Option<&'a Map<String, Value>>,
    pub source: Source,
    /// The network peer, for the audit trail.
    pub peer: Peer,
    pub cancel: CancellationToken,
    pub channel: &'a dyn ClientChannel,
}

/// One block of a tool's result, independent of any wire format.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Image {
        data: String,
        mime_type: String,
    },
    Audio {
        data: String,
        mime_type: String,
    },
    Resource {
        uri: String,
        text: String,
        mime_type: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub content: Vec<Content>,
    /// Set when the tool declares an output schema.
    pub structured: Option<Value>,
    /// What the output policy did: rules fired, fields filtered or masked, policy version.
    pub policy: crate::policy::PolicyReport,
}

/// Why a call produced no result. The edge maps each variant to the wire in one place.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool '{name}'; call tools/list to see the tools this server offers")]
    UnknownTool { name: String },
    #[error(transparent)]
    Arguments(#[from] ArgumentError),
    #[error(transparent)]
    Execution(#[from] ExecError),
    #[error("no matching row: {0}")]
    NotFound(String),
    #[error("the client's answer could not be used: {0}")]
    Client(String),
    /// The authorize stage refused the call.
    #[error("{0}")]
    Denied(Denial),
    /// A write without `confirm: true`: nothing changed; here is what would, and the token
    /// to confirm it with.
    #[error("{}", .0.message())]
    ConfirmationRequired(Box<Preview>),
    /// A policy rule denied the call (or failed, which denies too).
    #[error("{0}")]
    Policy(crate::policy::PolicyDenial),
    /// A confirmation that cannot be accepted.
    #[error("the write was not confirmed: {0}; nothing was changed")]
    Confirmation(String),
    /// The call could not be recorded, so it was refused (for a write: rolled back).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What a previewed write would do.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub tool: String,
    pub rows_affected: u64,
    /// The rows as they would be after the write (its `RETURNING` rows).
    pub rows: Vec<Map<String, Value>>,
    pub token: String,
    pub expires_in_secs: u64,
}

impl Preview {
    pub fn message(&self) -> String {
        let rows = serde_json::to_string(&self.rows).unwrap_or_default();
        format!(
            "Confirmation required: this is a preview and nothing was changed. {tool} would change {n} row(s){after}. \
             Show this to the user; if they agree, call {tool} again with exactly the same arguments plus \
             \"confirm\": true and \"confirmation_token\": \"{token}\" (valid {secs} seconds, once).",
            tool = self.tool,
            n = self.rows_affected,
            after = if self.rows.is_empty() {
                String::new()
            } else {
                format!("; afterwards they would read: {rows}")
            },
            token = self.token,
            secs = self.expires_in_secs,
        )
    }
}

impl CallError {
    /// Whether the caller should see this as a failed tool run (MCP `isError` result) rather
    /// than as a malformed request.
    pub fn is_tool_error(&self) -> bool {
        !matches!(self, Self::UnknownTool { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("no resource has the URI '{0}'; call resources/list or resources/templates/list")]
    NotFound(String),
    #[error(transparent)]
    Execution(#[from] ExecError),
    #[error("{0}")]
    Policy(crate::policy::PolicyDenial),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("unknown prompt '{0}'; call prompts/list to see the prompts this server offers")]
    Unknown(String),
    #[error("argument '{0}' is required")]
    MissingArgument(String),
    #[error("argument '{0}' is not an argument of this prompt")]
    UnknownArgument(String),
    #[error("cannot render the prompt: {0}")]
    Render(String),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptMessageOut {
    pub role: Role,
    pub content: Content,
}

/// A resource's body.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    Text(String),
    /// Base64.
    Blob(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceContents {
    pub uri: String,
    pub mime_type: Option<String>,
    pub body: ResourceBody,
}

/// A loaded project and its open data source: everything needed to serve calls.
#[derive(Debug, Clone)]
pub struct Pipeline {
    project: Arc<Project>,
    data: Data,
    confirmations: Arc<dyn Ledger>,
    audit: Arc<dyn Sink>,
}

/// Where tool SQL runs: one shared data source, or one per organisation (`{org}` in the
/// data location), opened on first use and kept.
#[derive(Debug, Clone)]
enum Data {
    Shared(DataSource),
    PerOrg {
        config: crate::project::DataConfig,
        open: Arc<tokio::sync::Mutex<std::collections::HashMap<String, DataSource>>>,
    },
}

/// Names of values the pipeline binds from the authenticated caller.
pub const CALLER_ORG: &str = "caller_org";
pub const CALLER_USER_ID: &str = "caller_user_id";
pub const CALLER_EMAIL: &str = "caller_email";

impl Pipeline {
    pub fn new(
        project: Arc<Project>,
        data: DataSource,
        confirmations: Arc<dyn Ledger>,
        audit: Arc<dyn Sink>,
    ) -> Self {
        Self {
            project,
            data: Data::Shared(data),
            confirmations,
            audit,
        }
    }

    /// Opens the project's data: the shared data source now, or, with `{org}` in its
    /// location, each organisation's on its first call.
    pub async fn open(
        project: Arc<Project>,
        confirmations: Arc<dyn Ledger>,
        audit: Arc<dyn Sink>,
    ) -> Result<Self, ExecError> {
        let data = if project.data.per_org() {
            Data::PerOrg {
                config: project.data.clone(),
                open: Arc::default(),
            }
        } else {
            Data::Shared(DataSource::open(&project.data).await?)
        };
        Ok(Self {
            project,
            data,
            confirmations,
            audit,
        })
    }

    /// The data source for this caller: its own organisation's, never another's.
    async fn data_for(&self, caller: Option<&Caller>) -> Result<DataSource, ExecError> {
        match &self.data {
            Data::Shared(d) => Ok(d.clone()),
            Data::PerOrg { config, open } => {
                let org = caller.map(|c| c.org.as_str()).ok_or_else(|| {
                    ExecError::Connect("this project keeps data per organisation, so every call needs an authenticated caller".into())
                })?;
                if org.is_empty()
                    || !org
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(ExecError::Connect(format!(
                        "'{org}' is not a valid organisation name"
                    )));
                }
                let mut map = open.lock().await;
                if let Some(d) = map.get(org) {
                    return Ok(d.clone());
                }
                let d = DataSource::open(&config.for_org(org)).await?;
                map.insert(org.to_string(), d.clone());
                Ok(d)
            }
        }
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Where this pipeline's events go; the edge records what it refuses itself (a
    /// step-up challenge) through the same sink.
    pub fn audit(&self) -> &Arc<dyn Sink> {
        &self.audit
    }

    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.project.tools.iter()
    }

    /// The tools `tools/list` shows this caller (all of them with `auth: none`).
    pub fn visible_tools<'a>(
        &'a self,
        caller: Option<&'a Caller>,
    ) -> impl Iterator<Item = &'a Tool> + 'a {
        let show = self.project.show_write_tools;
        self.project
            .tools
            .iter()
            .filter(move |t| caller.is_none_or(|c| authz::visible(c, t.access, show)))
    }

    /// Runs one tool call through every stage, and records it: the response is released
    /// only once its record is durable. A write's record is made durable before the write
    /// commits (see [`Self::execute`]); if anything after that changes the outcome (the
    /// output policy denies, the commit fails), a second record with the same request id
    /// says so.
    pub async fn call_tool(&self, req: CallRequest<'_>) -> Result<ToolResult, CallError> {
        let started = Instant::now();
        let mut event = call_event("tool_call", req.tool, req.caller, req.source, &req.peer);
        if let Some(tool) = self.project.tool(req.tool) {
            event.params = audit::sanitize_arguments(tool, req.arguments);
        }
        let recorded = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let result = self.run_tool(&req, started, &event, recorded.clone()).await;
        tracing::debug!(
            tool = req.tool,
            ok = result.is_ok(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "tool call"
        );
        if let Err(CallError::Audit(e)) = &result {
            // The trail itself failed; there is nothing more to record it in.
            tracing::error!(tool = req.tool, error = %e.0, "call refused: the audit trail is unavailable");
            return result;
        }
        let already = recorded.load(std::sync::atomic::Ordering::Acquire);
        if already && result.is_ok() {
            return result;
        }
        finish_event(&mut event, &result, started);
        if already {
            event.detail = Some(
                json!({"follows": "the write's record: its outcome changed after it was recorded"}),
            );
        }
        self.audit.record(event).await?;
        result
    }

    async fn run_tool(
        &self,
        req: &CallRequest<'_>,
        started: Instant,
        event: &Event,
        recorded: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<ToolResult, CallError> {
        let tool = self
            .project
            .tool(req.tool)
            .ok_or_else(|| CallError::UnknownTool {
                name: req.tool.to_string(),
            })?;
        if let Some(caller) = req.caller {
            authz::decide(caller, tool.access).map_err(CallError::Denied)?;
        }
        let Split {
            confirm,
            token,
            own: own_args,
        } = split_confirmation(tool, req.arguments)?;
        let mut args = tool.bind_arguments(own_args.as_ref())?;
        bind_caller(&tool.statement.names, &mut args, req.caller);
        // Most tools have no rules: build the policy variables only for those that do.
        let mut vars = if tool.policies.is_empty() {
            Map::new()
        } else {
            policy_vars(tool, own_args.as_ref(), req)
        };
        tool.policies
            .check_input(&vars)
            .map_err(CallError::Policy)?;
        if tool.access == crate::project::Access::Write {
            self.confirm(tool, &args, confirm, token, req).await?;
        }
        let gate = (tool.access == crate::project::Access::Write)
            .then(|| write_gate(self.audit.clone(), event.clone(), tool, started, recorded));
        self.execute(tool, &mut args, req, &mut vars, gate).await
    }
    /// The third key for writes: without `confirm`, preview and mint a token; with it,
    /// redeem the token for exactly this call.
    async fn confirm(
        &self,
        tool: &Tool,
        args: &[SqlValue],
        confirm: bool,
        token: Option<String>,
        req: &CallRequest<'_>,
    ) -> Result<(), CallError> {
        let binding = confirm::Binding {
            user: req
                .caller
                .map_or_else(|| "local".to_string(), |c| c.user_id.clone()),
            org: req
                .caller
                .map_or_else(|| "local".to_string(), |c| c.org.clone()),
            tool: tool.name.clone(),
            args_hash: confirm::args_hash(&tool.name, args),
        };
        if !confirm {
            let preview = self
                .data_for(req.caller)
                .await?
                .dry_run(&tool.statement, args, &req.cancel)
                .await?;
            let token = self
                .confirmations
                .mint(binding)
                .await
                .map_err(|e| CallError::Confirmation(e.to_string()))?;
            return Err(CallError::ConfirmationRequired(Box::new(Preview {
                tool: tool.name.clone(),
                rows_affected: preview.rows_affected,
                rows: preview.rows,
                token,
                expires_in_secs: confirm::TTL.as_secs(),
            })));
        }
        let token = token.ok_or_else(|| {
            CallError::Confirmation(
                "confirm: true needs the confirmation_token from the preview; call the tool without confirm first".into(),
            )
        })?;
        self.confirmations
            .redeem(&token, &binding)
            .await
            .map_err(|e| CallError::Confirmation(e.to_string()))
    }

    async fn execute(
        &self,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
        vars: &mut Map<String, Value>,
        gate: Option<crate::exec::Gate>,
    ) -> Result<ToolResult, CallError> {
        for line in &tool.log {
            req.channel.log(line.clone()).await;
        }
        if let Some(ask) = &tool.elicit {
            let answer = req
                .channel
                .elicit(ask.message.clone(), ask.schema.clone())
                .await
                .map_err(CallError::Client)?;
            self.bind_extra(tool, args, "elicit_action", SqlValue::Text(answer.action));
            let content = answer
                .content
                .map_or(SqlValue::Null(ParamType::String), |c| {
                    SqlValue::Text(c.to_string())
                });
            self.bind_extra(tool, args, "elicit_content", content);
        }
        if let Some(sample) = &tool.sample {
            let prompt = render_with_args(&sample.prompt, tool, args)?;
            let text = req
                .channel
                .sample(prompt, sample.max_tokens)
                .await
                .map_err(CallError::Client)?;
            self.bind_extra(tool, args, "sample_text", SqlValue::Text(text));
        }
        let steps = tool.progress_steps;
        for step in 1..=steps.saturating_sub(1) {
            req.channel
                .progress(step, steps, format!("step {step} of {steps}"))
                .await;
        }
        let data = self.data_for(req.caller).await?;
        let output = match gate {
            Some(gate) => {
                data.run_gated(&tool.statement, args, &req.cancel, gate)
                    .await
            }
            None => {
                data.run(&tool.statement, args, tool.access, &req.cancel)
                    .await
            }
        }
        .map_err(|e| match e {
            ExecError::Refused(reason) => CallError::Audit(AuditError(reason)),
            other => CallError::Execution(other),
        })?;
        if steps > 0 {
            req.channel
                .progress(steps, steps, format!("step {steps} of {steps}"))
                .await;
        }
        shape(tool, output, vars)
    }

    /// Fills a value the pipeline produced itself (an elicitation answer, a model's reply)
    /// into every position of the statement that names it.
    fn bind_extra(&self, tool: &Tool, args: &mut [SqlValue], name: &str, value: SqlValue) {
        for (slot, n) in args.iter_mut().zip(&tool.statement.names) {
            if n == name {
                *slot = value.clone();
            }
        }
    }

    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.project.resources.iter()
    }

    /// Reads a resource for `caller`, and records the read.
    pub async fn read_resource(
        &self,
        uri: &str,
        caller: Option<&Caller>,
        source: Source,
        peer: &Peer,
        cancel: &CancellationToken,
    ) -> Result<ResourceContents, ResourceError> {
        let started = Instant::now();
        let result = self.read_resource_unrecorded(uri, caller, cancel).await;
        let mut event = call_event("resource_read", uri, caller, source, peer);
        event.duration_us = Some(started.elapsed().as_micros() as u64);
        match &result {
            Ok(_) => {}
            Err(ResourceError::Policy(d)) => {
                event.deny("policy", &d.rule, d.reason.clone());
            }
            Err(ResourceError::Audit(_)) => return result,
            Err(e) => {
                event.outcome = Outcome::ToolError;
                event.reason = Some(e.to_string());
            }
        }
        self.audit.record(event).await?;
        result
    }

    async fn read_resource_unrecorded(
        &self,
        uri: &str,
        caller: Option<&Caller>,
        cancel: &CancellationToken,
    ) -> Result<ResourceContents, ResourceError> {
        let (resource, vars) = self
            .project
            .resources
            .iter()
            .find_map(|r| match &r.uri {
                ResourceUri::Fixed(f) if f == uri => Some((r, Vec::new())),
                ResourceUri::Template(t) => t.matches(uri).map(|v| (r, v)),
                ResourceUri::Fixed(_) => None,
            })
            .ok_or_else(|| ResourceError::NotFound(uri.to_string()))?;
        let mut args: Vec<SqlValue> = resource
            .statement
            .names
            .iter()
            .map(|n| {
                vars.iter()
                    .find(|(k, _)| k == n)
                    .map_or(SqlValue::Null(ParamType::String), |(_, v)| {
                        SqlValue::Text(v.clone())
                    })
            })
            .collect();
        bind_caller(&resource.statement.names, &mut args, caller);
        let uri_vars: Map<String, Value> = vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut policy_vars = resource_policy_vars(&resource.name, "resource", &uri_vars, caller);
        self.project
            .policies
            .check_input(&policy_vars)
            .map_err(ResourceError::Policy)?;
        let out = self
            .data_for(caller)
            .await?
            .run(
                &resource.statement,
                &args,
                crate::project::Access::Read,
                cancel,
            )
            .await?;
        let first = out
            .rows
            .first()
            .and_then(|row| row.values().next())
            .filter(|v| !v.is_null())
            .ok_or_else(|| ResourceError::NotFound(uri.to_string()))?;
        let text = match first {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Output rules edit JSON content; any other content can only be denied.
        let text = match serde_json::from_str::<Value>(&text) {
            Ok(mut json) if !resource.binary => {
                self.project
                    .policies
                    .apply_output(&mut policy_vars, &mut json)
                    .map_err(ResourceError::Policy)?;
                json.to_string()
            }
            _ => {
                self.project
                    .policies
                    .apply_output(&mut policy_vars, &mut Value::Null)
                    .map_err(ResourceError::Policy)?;
                text
            }
        };
        let body = if resource.binary {
            ResourceBody::Blob(text)
        } else {
            ResourceBody::Text(text)
        };
        Ok(ResourceContents {
            uri: uri.to_string(),
            mime_type: resource.mime_type.clone(),
            body,
        })
    }

    pub fn prompts(&self) -> impl Iterator<Item = &Prompt> {
        self.project.prompts.iter()
    }

    /// Renders a prompt for `caller`, and records it (with the resources it embeds).
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        caller: Option<&Caller>,
        source: Source,
        peer: &Peer,
        cancel: &CancellationToken,
    ) -> Result<Vec<PromptMessageOut>, PromptError> {
        let started = Instant::now();
        let result = self
            .get_prompt_unrecorded(name, arguments, caller, cancel)
            .await;
        let mut event = call_event("prompt_get", name, caller, source, peer);
        event.params = Some(audit::plain_arguments(arguments));
        event.duration_us = Some(started.elapsed().as_micros() as u64);
        match &result {
            Ok(_) => {}
            Err(PromptError::Resource(ResourceError::Policy(d))) => {
                event.deny("policy", &d.rule, d.reason.clone());
            }
            Err(PromptError::Resource(ResourceError::Audit(_))) => return result,
            Err(e) => {
                event.outcome = Outcome::ToolError;
                event.reason = Some(e.to_string());
            }
        }
        self.audit
            .record(event)
            .await
            .map_err(|e| PromptError::Resource(ResourceError::Audit(e)))?;
        result
    }

    async fn get_prompt_unrecorded(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        caller: Option<&Caller>,
        cancel: &CancellationToken,
    ) -> Result<Vec<PromptMessageOut>, PromptError> {
        let prompt = self
            .project
            .prompt(name)
            .ok_or_else(|| PromptError::Unknown(name.to_string()))?;
        if let Some(k) = arguments
            .keys()
            .find(|k| !prompt.arguments.iter().any(|a| &a.name == *k))
        {
            return Err(PromptError::UnknownArgument(k.clone()));
        }
        if let Some(a) = prompt
            .arguments
            .iter()
            .find(|a| a.required && !arguments.contains_key(&a.name))
        {
            return Err(PromptError::MissingArgument(a.name.clone()));
        }
        let policy_vars = resource_policy_vars(&prompt.name, "prompt", arguments, caller);
        self.project
            .policies
            .check_input(&policy_vars)
            .map_err(|d| PromptError::Resource(ResourceError::Policy(d)))?;
        let env = minijinja::Environment::new();
        let ctx = template_value(&Value::Object(arguments.clone()));
        let mut out = Vec::with_capacity(prompt.messages.len());
        for m in &prompt.messages {
            out.push(match m {
                PromptMessage::Text { role, template } => {
                    let text = env
                        .render_str(template, &ctx)
                        .map_err(|e| PromptError::Render(e.to_string()))?;
                    PromptMessageOut {
                        role: *role,
                        content: Content::Text(text),
                    }
                }
                PromptMessage::Resource { role, uri } => {
                    let uri = env
                        .render_str(uri, &ctx)
                        .map_err(|e| PromptError::Render(e.to_string()))?;
                    let r = self.read_resource_unrecorded(&uri, caller, cancel).await?;
                    let text = match r.body {
                        ResourceBody::Text(t) | ResourceBody::Blob(t) => t,
                    };
                    PromptMessageOut {
                        role: *role,
                        content: Content::Resource {
                            uri: r.uri,
                            text,
                            mime_type: r.mime_type,
                        },
                    }
                }
                PromptMessage::Image {
                    role,
                    data,
                    mime_type,
                } => PromptMessageOut {
                    role: *role,
                    content: Content::Image {
                        data: data.clone(),
                        mime_type: mime_type.clone(),
                    },
                },
            });
        }
        Ok(out)
    }

    /// Values offered for a prompt argument, filtered by what the user typed so far.
    pub fn complete_prompt_argument(
        &self,
        prompt: &str,
        argument: &str,
        prefix: &str,
    ) -> Vec<String> {
        self.project
            .prompt(prompt)
            .and_then(|p| p.arguments.iter().find(|a| a.name == argument))
            .map(|a| {
                a.completions
                    .iter()
                    .filter(|c| c.starts_with(prefix))
                    .take(100)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn close(&self) {
        match &self.data {
            Data::Shared(d) => d.close().await,
            Data::PerOrg { open, .. } => {
                for d in open.lock().await.values() {
                    d.close().await;
                }
            }
        }
    }
}

/// An event for a call by `caller` (or an unauthenticated one, with `auth: none`).
fn call_event(
    kind: &'static str,
    action: &str,
    caller: Option<&Caller>,
    source: Source,
    peer: &Peer,
) -> Event {
    let source = match source {
        Source::Http => audit::Source::Http,
        Source::Stdio => audit::Source::Stdio,
    };
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
    e
}

/// Fills in how a call ended.
fn finish_event(e: &mut Event, result: &Result<ToolResult, CallError>, started: Instant) {
    e.ts = audit::now();
    e.duration_us = Some(started.elapsed().as_micros() as u64);
    let err = match result {
        Ok(r) => {
            e.outcome = Outcome::Success;
            if !r.policy.fired.is_empty() {
                e.detail =
                    Some(json!({"policy": {"fired": r.policy.fired, "version": r.policy.version}}));
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
            let reason = match &d.error {
                Some(error) => format!("{} (the rule failed: {error})", d.reason),
                None => d.reason.clone(),
            };
            e.deny("policy", &d.rule, reason);
            e.detail = Some(json!({"policy": {"version": d.version}}));
        }
        CallError::Confirmation(m) => {
            e.deny("confirmation", "confirmation.refused", m.clone());
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

/// The gate between a write's statement and its COMMIT: makes the call's record (with the
/// rows it changed) durable first, so no change can exist without its record.
fn write_gate(
    sink: Arc<dyn Sink>,
    mut event: Event,
    tool: &Tool,
    started: Instant,
    recorded: Arc<std::sync::atomic::AtomicBool>,
) -> crate::exec::Gate {
    let inserts = tool
        .statement
        .text
        .trim_start()
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("insert"));
    Box::new(move |out: &QueryOutput| {
        event.ts = audit::now();
        event.duration_us = Some(started.elapsed().as_micros() as u64);
        event.affected = Some(affected_ids(out, inserts));
        event.detail = Some(json!({"rows_affected": out.rows_affected}));
        Box::pin(async move {
            sink.record(event).await.map_err(|e| e.0)?;
            recorded.store(true, std::sync::atomic::Ordering::Release);
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

fn render_with_args(template: &str, tool: &Tool, args: &[SqlValue]) -> Result<String, CallError> {
    let mut ctx = Map::new();
    for (name, v) in tool.statement.names.iter().zip(args) {
        let j = match v {
            SqlValue::Null(_) => Value::Null,
            SqlValue::Int(i) => json!(i),
            SqlValue::Float(f) => json!(f),
            SqlValue::Text(s) => json!(s),
            SqlValue::Bool(b) => json!(b),
        };
        ctx.insert(name.clone(), j);
    }
    minijinja::Environment::new()
        .render_str(template, template_value(&Value::Object(ctx)))
        .map_err(|e| CallError::Client(format!("cannot render a template of this tool: {e}")))
}

/// JSON to a template value; templates see arguments exactly as the client sent them.
fn template_value(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN)),
            minijinja::Value::from,
        ),
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(a) => minijinja::Value::from(a.iter().map(template_value).collect::<Vec<_>>()),
        Value::Object(m) => {
            minijinja::Value::from_pairs(m.iter().map(|(k, v)| (k.as_str(), template_value(v))))
        }
    }
}

/// Turns rows into the tool's declared result shape and content blocks.
fn shape(
    tool: &Tool,
    out: QueryOutput,
    vars: &mut Map<String, Value>,
) -> Result<ToolResult, CallError> {
    let mut value = match (tool.returns, tool.access) {
        (Returns::Row, _) => match out.rows.into_iter().next() {
            Some(row) => Value::Object(row),
            None => {
                return Err(CallError::NotFound(format!(
                    "{} found nothing for these arguments",
                    tool.name
                )));
            }
        },
        (Returns::Rows, crate::project::Access::Write) if out.rows.is_empty() => {
            json!({ "rows_affected": out.rows_affected })
        }
        (Returns::Rows, _) => {
            let mut m = Map::new();
            m.insert("row_count".into(), json!(out.rows.len()));
            m.insert(
                "rows".into(),
                Value::Array(out.rows.into_iter().map(Value::Object).collect()),
            );
            m.insert("truncated".into(), json!(out.truncated));
            if tool.access == crate::project::Access::Write {
                m.insert("rows_affected".into(), json!(out.rows_affected));
            }
            Value::Object(m)
        }
    };
    // The output policy sees (and edits) the whole result before anything is rendered.
    let report = tool
        .policies
        .apply_output(vars, &mut value)
        .map_err(CallError::Policy)?;
    if !tool.content.is_empty() {
        let rows: Vec<Map<String, Value>> = match value {
            Value::Object(mut m) if tool.returns == Returns::Rows => match m.remove("rows") {
                Some(Value::Array(rows)) => rows
                    .into_iter()
                    .filter_map(|r| {
                        if let Value::Object(o) = r {
                            Some(o)
                        } else {
                            None
                        }
                    })
                    .collect(),
                _ => Vec::new(),
            },
            Value::Object(row) => vec![row],
            _ => Vec::new(),
        };
        let mut r = content_result(tool, rows)?;
        r.policy = report;
        return Ok(r);
    }
    let text = serde_json::to_string(&value).unwrap_or_default();
    Ok(ToolResult {
        content: vec![Content::Text(text)],
        structured: tool.output_schema.is_some().then_some(value),
        policy: report,
    })
}

/// Builds the declared content blocks from each row.
fn content_result(tool: &Tool, rows: Vec<Map<String, Value>>) -> Result<ToolResult, CallError> {
    let col = |row: &Map<String, Value>, c: &str| -> Result<String, CallError> {
        match row.get(c) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(CallError::NotFound(format!(
                "column '{c}' is missing or null in the result"
            ))),
            Some(other) => Ok(other.to_string()),
        }
    };
    let mut content = Vec::new();
    for row in &rows {
        for block in &tool.content {
            content.push(match block {
                ContentBlock::Text { column } => Content::Text(col(row, column)?),
                ContentBlock::Image { column, mime_type } => Content::Image {
                    data: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
                ContentBlock::Audio { column, mime_type } => Content::Audio {
                    data: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
                ContentBlock::Resource {
                    uri_column,
                    column,
                    mime_type,
                } => Content::Resource {
                    uri: col(row, uri_column)?,
                    text: col(row, column)?,
                    mime_type: mime_type.clone(),
                },
            });
        }
    }
    Ok(ToolResult {
        content,
        structured: None,
        policy: Default::default(),
    })
}

/// Takes `confirm` and `confirmation_token` out of a write tool's arguments (checking their
/// types); a read tool has no such arguments, so they stay and are refused as unknown.
/// What policy expressions can read: `user`, `args` (with defaults), `tool` and `request`.
/// Without an authenticated caller there is no `user`, so a rule that reads it errors and
/// denies.
fn policy_vars(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    req: &CallRequest<'_>,
) -> Map<String, Value> {
    // Only what some rule of the tool reads: each stage converts no more than that anyway.
    variables_where(tool, args, req.caller, req.source, |name| {
        tool.policies.reads(name)
    })
}

/// The variables policy expressions see for a call of `tool` by `caller`.
pub fn policy_variables(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    caller: Option<&Caller>,
    source: Source,
) -> Map<String, Value> {
    variables_where(tool, args, caller, source, |_| true)
}

/// [`policy_variables`], leaving out those `wanted` says no to.
fn variables_where(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    caller: Option<&Caller>,
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
        let read = tool.access == crate::project::Access::Read;
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
                "source": match source { Source::Http => "http", Source::Stdio => "stdio" },
                "client": caller.map(|c| c.credential.clone()).unwrap_or_default(),
                "method": caller.map(|c| c.method).unwrap_or("none"),
                "time": chrono::Utc::now().to_rfc3339(),
            }),
        );
    }
    vars
}

/// The caller as policy expressions see it: `user`.
fn user_value(c: &Caller) -> Value {
    json!({
        "id": c.user_id,
        "email": c.email,
        "role": c.role.as_str(),
        "org": c.org,
        "scopes": c.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "attributes": {},
    })
}

/// Policy variables for a resource read or a prompt: `args` are the URI's variables or the
/// prompt's arguments; `tool` describes the resource or prompt.
fn resource_policy_vars(
    name: &str,
    kind: &str,
    args: &Map<String, Value>,
    caller: Option<&Caller>,
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

/// Fills `:caller_org`, `:caller_user_id` and `:caller_email` from the authenticated caller
/// (NULL without one): the only way tool SQL learns who calls.
fn bind_caller(names: &[String], args: &mut [SqlValue], caller: Option<&Caller>) {
    for (slot, name) in args.iter_mut().zip(names) {
        let value = match name.as_str() {
            CALLER_ORG => caller.map(|c| c.org.clone()),
            CALLER_USER_ID => caller.map(|c| c.user_id.clone()),
            CALLER_EMAIL => caller.map(|c| c.email.clone()),
            _ => continue,
        };
        *slot = value.map_or(SqlValue::Null(ParamType::String), SqlValue::Text);
    }
}

/// A call's arguments with the confirmation ones taken out.
struct Split {
    confirm: bool,
    token: Option<String>,
    own: Option<Map<String, Value>>,
}

fn split_confirmation(tool: &Tool, args: Option<&Map<String, Value>>) -> Result<Split, CallError> {
    let Some(args) = args else {
        return Ok(Split {
            confirm: false,
            token: None,
            own: None,
        });
    };
    if tool.access != crate::project::Access::Write {
        return Ok(Split {
            confirm: false,
            token: None,
            own: Some(args.clone()),
        });
    }
    let mut own = args.clone();
    let confirm = match own.remove(confirm::CONFIRM) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            return Err(ArgumentError {
                param: confirm::CONFIRM.into(),
                message: "expected boolean".into(),
            }
            .into());
        }
    };
    let token = match own.remove(confirm::TOKEN) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => {
            return Err(ArgumentError {
                param: confirm::TOKEN.into(),
                message: "expected string".into(),
            }
            .into());
        }
    };
    Ok(Split {
        confirm,
        token,
        own: Some(own),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::template_value;

    #[test]
    fn templates_see_arguments_by_name() {
        let ctx = template_value(&json!({ "arg1": "hello", "n": 3, "nested": { "k": true } }));
        let out = minijinja::Environment::new()
            .render_str("{{ arg1 }} {{ n + 1 }} {{ nested.k }}", ctx)
            .unwrap();
        // Jinja semantics: booleans render as True/False.
        assert_eq!(out, "hello 4 True");
    }
}
