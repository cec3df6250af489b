//! Transport, MCP layer: the only module that knows rmcp's types. It turns MCP requests into
//! the pipeline's plain types and the pipeline's answers back into MCP results.
//!
//! `list_tools` and `call_tool` are written by hand (no rmcp tool macros) so that every call
//! goes through [`Pipeline::call_tool`], where the security stages live.

// rmcp marks logging and sampling deprecated (SEP-2577, a future protocol revision); the
// 2025-11-25 and 2025-06-18 revisions Warden serves still define both.
#![allow(deprecated)]

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::future::BoxFuture;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
    ClientCapabilities, CompleteRequestParams, CompleteResult, CompletionInfo, ContentBlock,
    CreateMessageRequestParams, CreateTaskResult, CustomRequest, CustomResult, ElicitRequestParams,
    ElicitationSchema, ErrorCode, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    GetTaskParams, GetTaskResult, Implementation, InitializeResult, InputRequest, InputRequests,
    InputRequiredResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, Prompt, PromptArgument,
    PromptMessage, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, SamplingMessage, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, TASKS_EXTENSION_ID, Tool, ToolAnnotations,
    UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tracing::Instrument;
use warden_auth::AuthServer;
use warden_auth::server::AuthnError;
use warden_core::audit::Peer;
use warden_core::identity::Principal;
use warden_core::pipeline::{
    Ask, CallError, CallRequest, ClientChannel, Content, Elicited, InputRequired, InputRound,
    LivePipeline, Pipeline, PromptError, PromptRequest, Rejection, ResourceBody, ResourceError,
    Source,
};
use warden_core::project::{Access, ResourceUri, Speaker, TaskMode};

use super::tasks::{self, Tasks};

/// One MCP connection's handler. Cheap to create: rmcp's HTTP service makes one per session.
#[derive(Debug, Clone)]
pub struct WardenMcp {
    /// Taken once per request: a session never pins the project it was opened under, and a
    /// request runs to its end on the one it took (see `warden_core::pipeline::LivePipeline`).
    pipeline: LivePipeline,
    source: Source,
    /// Lowest logging level the client asked to receive (`logging/setLevel`), as syslog
    /// severity: 0 = emergency .. 7 = debug.
    log_level: Arc<AtomicU8>,
    /// Prepended to the `initialize` instructions (the no-auth warning).
    notice: Option<Arc<str>>,
    /// Over stdio, the API key that identifies the caller; re-checked on every request.
    stdio_key: Option<Arc<StdioKey>>,
    /// Calls made tasks (the MCP tasks extension), shared by every session of the server.
    tasks: Arc<Tasks>,
}

/// The caller's API key over stdio, and the server that checks it.
pub struct StdioKey {
    pub auth: Arc<AuthServer>,
    pub key: String,
}

impl std::fmt::Debug for StdioKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StdioKey(<redacted>)")
    }
}

impl WardenMcp {
    pub fn new(pipeline: LivePipeline, source: Source) -> Self {
        Self {
            pipeline,
            source,
            log_level: Arc::new(AtomicU8::new(6)),
            notice: None,
            stdio_key: None,
            tasks: Arc::new(Tasks::default()),
        }
    }

    pub fn with_notice(mut self, notice: impl Into<Arc<str>>) -> Self {
        self.notice = Some(notice.into());
        self
    }

    fn tool(t: &warden_core::project::Tool) -> Tool {
        let read = t.access == Access::Read;
        let annotations = ToolAnnotations::new()
            .read_only(read)
            .destructive(!read)
            .idempotent(read || t.idempotent)
            .open_world(false);
        let mut tool = Tool::new(
            t.name.clone(),
            t.description.clone(),
            t.input_schema.clone(),
        )
        .with_annotations(annotations);
        if let Some(title) = &t.title {
            tool = tool.with_title(title.clone());
        }
        if let Some(schema) = &t.output_schema {
            tool = tool.with_raw_output_schema(Arc::new(schema.clone()));
        }
        tool
    }
}

/// Shown first in `initialize` instructions when the project runs without authentication.
pub const NO_AUTH_NOTICE: &str = "WARNING: this Warden server runs with `auth: none` (local development only): \
     it does not know who is calling, and anyone who can reach it can use every tool.";

/// The handler for a project, with the no-authentication notice when it applies.
pub fn handler_for(pipeline: LivePipeline, source: Source) -> WardenMcp {
    // `auth` cannot change without a restart, so the notice is decided once.
    let no_auth = pipeline.current().project().auth.mode == warden_core::project::AuthMode::None;
    let handler = WardenMcp::new(pipeline, source);
    if no_auth {
        handler.with_notice(NO_AUTH_NOTICE)
    } else {
        handler
    }
}

impl WardenMcp {
    /// Identifies every stdio request by this API key.
    pub fn with_stdio_key(mut self, key: StdioKey) -> Self {
        self.stdio_key = Some(Arc::new(key));
        self
    }

    /// May the caller list resources or prompts? The pipeline decides and records a refusal.
    async fn may_list(
        &self,
        pipeline: &Pipeline,
        principal: Option<&Principal>,
        method: &str,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        pipeline
            .may_list(principal, method, self.source, &peer(ctx))
            .await
            .map_err(rejection_error)
    }

    /// The authenticated caller: over HTTP, the principal the bearer gate attached to the
    /// request; over stdio, the API key re-checked now (so a revoked key or a removed member
    /// stops the session at the next request).
    async fn principal(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Option<Principal>, ErrorData> {
        if let Some(stdio) = &self.stdio_key {
            return match stdio.auth.authenticate(&stdio.key).await {
                Ok(p) => Ok(Some(p)),
                Err(AuthnError::Internal(e)) => {
                    tracing::error!(error = %e, "authentication failed internally");
                    Err(ErrorData::internal_error(
                        "authentication is temporarily unavailable",
                        None,
                    ))
                }
                Err(e) => Err(ErrorData::new(
                    ErrorCode(-32001),
                    format!("WARDEN_API_KEY no longer grants access: {e}"),
                    None,
                )),
            };
        }
        // No principal only under `auth: none`; if one were missing on an authenticated
        // project, the pipeline's authorize stage refuses (and records) the request.
        Ok(ctx
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<Principal>())
            .cloned())
    }
}

/// Wire form of one content block.
fn block(c: Content) -> ContentBlock {
    match c {
        Content::Text(t) => ContentBlock::text(t),
        Content::Image { data, mime_type } => ContentBlock::image(data, mime_type),
        Content::Audio { data, mime_type } => ContentBlock::audio(data, mime_type),
        Content::Resource {
            uri,
            text,
            mime_type,
        } => {
            let mut rc = ResourceContents::text(text, uri);
            if let Some(m) = mime_type {
                rc = rc.with_mime_type(m);
            }
            ContentBlock::resource(rc)
        }
    }
}

/// The JSON-RPC error code of a call refused by a rate limit or quota.
pub const LIMITED: i32 = -32029;

/// The one place a pipeline failure becomes MCP. An unknown tool is a protocol error
/// (-32602); everything else is a tool result with `isError`, so the model sees the message
/// and can correct itself.
fn call_error(e: CallError) -> Result<CallToolResponse, ErrorData> {
    match e {
        // MCP 2026-07-28: the questions, and the state to send back with the answers.
        CallError::InputRequired(i) => return Ok(input_required(*i)?.into()),
        CallError::RequestState(_) => return Err(ErrorData::invalid_params(e.to_string(), None)),
        CallError::MissingCapability(c) => return Err(missing_capability(c)),
        _ => {}
    }
    if let CallError::Limited(l) = &e {
        // A JSON-RPC error, not a tool result: the client, not only the model, must see it
        // and wait. -32029: "429", in the range JSON-RPC leaves to servers.
        return Err(ErrorData::new(
            ErrorCode(LIMITED),
            e.to_string(),
            Some(json!({ "limit": l.limit, "retry_after_seconds": l.retry_after_secs() })),
        ));
    }
    if let CallError::LimitUnavailable(_) = &e {
        return Err(ErrorData::internal_error(e.to_string(), None));
    }
    if e.is_tool_error() {
        Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]).into())
    } else {
        Err(ErrorData::invalid_params(e.to_string(), None))
    }
}

/// -32021 naming the client capability (`elicitation`, `sampling`, `roots`) a question
/// needs.
fn missing_capability(capability: &str) -> ErrorData {
    let caps: rmcp::model::ClientCapabilities =
        serde_json::from_value(json!({ capability: {} })).unwrap_or_default();
    ErrorData::missing_required_client_capability(caps)
}

/// Warden's questions as an `input_required` result.
fn input_required(i: InputRequired) -> Result<InputRequiredResult, ErrorData> {
    let mut requests = InputRequests::new();
    for (key, ask) in i.asks {
        requests.insert(key, input_request(ask)?);
    }
    Ok(InputRequiredResult::new(Some(requests), Some(i.state)))
}

/// One question, as the request the client is to answer.
pub(super) fn input_request(ask: Ask) -> Result<InputRequest, ErrorData> {
    let request = match ask {
        Ask::Elicit { message, schema } => json!({
            "method": "elicitation/create",
            "params": { "mode": "form", "message": message, "requestedSchema": schema },
        }),
        Ask::Sample { prompt, max_tokens } => json!({
            "method": "sampling/createMessage",
            "params": {
                "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
                "maxTokens": max_tokens,
            },
        }),
        Ask::Roots => json!({ "method": "roots/list", "params": {} }),
    };
    serde_json::from_value(request)
        .map_err(|e| ErrorData::internal_error(format!("cannot ask the client: {e}"), None))
}

/// What a 2026-07-28 client sent with this round (its answers and state) and may be asked;
/// `None` for older clients, which are asked over their connection.
fn input_round(
    ctx: &RequestContext<RoleServer>,
    responses: Option<&rmcp::model::InputResponses>,
    state: &Option<String>,
) -> Option<InputRound> {
    modern(ctx).then(|| {
        let caps = ctx.client_capabilities().unwrap_or_default();
        InputRound {
            responses: responses
                .cloned()
                .map(|r| r.into_iter().collect())
                .unwrap_or_default(),
            state: state.clone(),
            can_elicit: caps.elicitation.is_some(),
            can_sample: caps.sampling.is_some(),
            can_list_roots: caps.roots.is_some(),
        }
    })
}

/// A pipeline result as MCP's.
pub(super) fn tool_result(result: warden_core::pipeline::ToolResult) -> CallToolResult {
    let mut r = CallToolResult::success(result.content.into_iter().map(block).collect());
    r.structured_content = result.structured;
    r
}

/// A task's failure as MCP says it: a tool result (the task completes) or a JSON-RPC error
/// (it fails).
pub(super) fn task_error(e: CallError) -> Result<CallToolResult, ErrorData> {
    match call_error(e)? {
        CallToolResponse::Complete(r) => Ok(r),
        _ => Err(ErrorData::internal_error(
            "the call asked something a task cannot ask",
            None,
        )),
    }
}

fn resource_error(e: ResourceError) -> ErrorData {
    match e {
        ResourceError::NotFound(uri) => ErrorData::resource_not_found(
            format!(
                "no resource has the URI '{uri}'; call resources/list or resources/templates/list"
            ),
            Some(json!({ "uri": uri })),
        ),
        ResourceError::NoRow { ref uri, .. } => {
            let uri = uri.clone();
            ErrorData::resource_not_found(e.to_string(), Some(json!({ "uri": uri })))
        }
        ResourceError::Execution(e) => ErrorData::internal_error(e.to_string(), None),
        // A refusal, stated plainly (-32003, as for other denials).
        ResourceError::Denied(d) => ErrorData::new(ErrorCode(-32003), d.reason, None),
        ResourceError::Policy(d) => ErrorData::new(ErrorCode(-32003), d.to_string(), None),
        ResourceError::Audit(e) => ErrorData::internal_error(e.to_string(), None),
    }
}

/// A refusal the pipeline made before running anything (listing).
fn rejection_error(r: Rejection) -> ErrorData {
    match r {
        Rejection::Denied(d) => ErrorData::new(ErrorCode(-32003), d.reason, None),
        Rejection::Audit(e) => ErrorData::internal_error(e.to_string(), None),
    }
}

/// The network peer of an MCP request, for the audit trail (empty over stdio), with the
/// connection's protocol revision.
fn peer(ctx: &RequestContext<RoleServer>) -> Peer {
    let parts = ctx.extensions.get::<http::request::Parts>();
    let mut peer = parts.map_or_else(Peer::default, |p| peer_of(&p.headers, &p.extensions));
    // The revision a Streamable HTTP request names, else the one the client asked for at
    // `initialize`; either way only a revision rmcp knows, never the client's own text.
    let named = parts
        .and_then(|p| p.headers.get("mcp-protocol-version"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            ctx.peer
                .peer_info()
                .map(|i| i.protocol_version.as_str().to_string())
        });
    peer.protocol_version = named.and_then(|v| {
        rmcp::model::ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .find(|k| k.as_str() == v)
            .map(|k| known_version(k.as_str()))
    });
    peer
}

/// Caching hints (MCP 2026-07-28, SEP-2549) on every list made for one caller: what a caller
/// sees depends on their role and scopes, so it is `cacheScope: private`, and reusable for
/// this long (lists change only with a reload or a change of role, and a call is authorized
/// afresh whatever the list said).
pub const LIST_TTL_MS: u64 = 60_000;

/// The `'static` name of a protocol revision rmcp knows.
fn known_version(v: &str) -> &'static str {
    match v {
        "2024-11-05" => "2024-11-05",
        "2025-03-26" => "2025-03-26",
        "2025-06-18" => "2025-06-18",
        "2025-11-25" => "2025-11-25",
        "2026-07-28" => "2026-07-28",
        _ => "other",
    }
}

/// The span a call runs in: it carries the request's trace id (from a valid
/// `traceparent`), as the call's audit record does.
fn call_span(method: &'static str, peer: &Peer) -> tracing::Span {
    match &peer.trace_id {
        Some(id) => tracing::info_span!("mcp_request", mcp.method.name = method, trace_id = %id),
        None => tracing::info_span!("mcp_request", mcp.method.name = method),
    }
}

/// The network peer of an HTTP request, to be made only if it is needed: what it needs is
/// taken now (an address and a header value, both cheap to copy), so the request itself can
/// move on.
pub(crate) fn lazy_peer(req: &http::Request<axum::body::Body>) -> impl FnOnce() -> Peer + Send {
    let addr = connected_addr(req.extensions());
    let agent = req.headers().get(http::header::USER_AGENT).cloned();
    move || peer_from(addr, agent.as_ref())
}

fn connected_addr(extensions: &http::Extensions) -> Option<std::net::SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

fn peer_from(addr: Option<std::net::SocketAddr>, agent: Option<&http::HeaderValue>) -> Peer {
    Peer {
        remote_addr: addr.map(|a| a.to_string()),
        user_agent: agent
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
        ..Peer::default()
    }
}

/// The network peer of an HTTP request: its address (from the connection), user agent (at
/// most 256 characters) and the trace id of a valid `traceparent` (one header only: two
/// are ignored).
pub(crate) fn peer_of(headers: &http::HeaderMap, extensions: &http::Extensions) -> Peer {
    let mut peer = peer_from(
        connected_addr(extensions),
        headers.get(http::header::USER_AGENT),
    );
    let mut traceparents = headers.get_all("traceparent").iter();
    if let (Some(one), None) = (traceparents.next(), traceparents.next()) {
        peer.trace_id = one.to_str().ok().and_then(super::trace::trace_id);
    }
    peer
}

fn prompt_error(e: PromptError) -> ErrorData {
    match e {
        PromptError::Resource(r) => resource_error(r),
        PromptError::MissingCapability(c) => missing_capability(c),
        PromptError::Client(m) => ErrorData::internal_error(m, None),
        PromptError::Render(m) => {
            ErrorData::internal_error(format!("cannot render the prompt: {m}"), None)
        }
        other => ErrorData::invalid_params(other.to_string(), None),
    }
}

/// MCP logging levels, most severe first (RFC 5424 order).
const LEVELS: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
];

/// Whether the request speaks MCP 2026-07-28 or later (stateless: no initialize, no
/// session-wide log level or subscriptions).
fn modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28)
}

/// The answer to a method 2026-07-28 removed: -32601, which the transport sends as 404.
fn removed_in_2026(method: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        Cow::Owned(format!(
            "{method} is not part of MCP 2026-07-28 (use server/discover, and _meta.logLevel per request)"
        )),
        None,
    )
}

/// Talks back to the client during a call: progress, logs, elicitation and sampling.
struct PeerChannel<'a> {
    ctx: &'a RequestContext<RoleServer>,
    log_level: &'a AtomicU8,
    /// A 2026-07-28 client's answers on this round; `None` for older clients.
    round: Option<InputRound>,
}

impl ClientChannel for PeerChannel<'_> {
    fn input_round(&self) -> Option<&InputRound> {
        self.round.as_ref()
    }

    fn progress(&self, done: u32, total: u32, message: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(token) = self.ctx.meta.get_progress_token() {
                let p = ProgressNotificationParam::new(token, f64::from(done))
                    .with_total(f64::from(total))
                    .with_message(message);
                if let Err(e) = self.ctx.peer.notify_progress(p).await {
                    tracing::debug!(error = %e, "progress notification not delivered");
                }
            }
        })
    }

    fn log(&self, message: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // "info" is severity 6; send only if the client asked for info or more verbose:
            // per request on 2026-07-28 (no level asked, no log), per session before.
            let severity = if modern(self.ctx) {
                let asked = self.ctx.meta.log_level().and_then(|l| {
                    let name = serde_json::to_value(l).ok()?;
                    LEVELS.iter().position(|n| Some(*n) == name.as_str())
                });
                match asked {
                    Some(s) => s as u8,
                    None => return,
                }
            } else {
                self.log_level.load(Ordering::Relaxed)
            };
            if severity < 6 {
                return;
            }
            let param = rmcp::model::LoggingMessageNotificationParam::new(
                rmcp::model::LoggingLevel::Info,
                json!(message),
            )
            .with_logger("warden");
            let sent = self.ctx.peer.notify_logging_message(param).await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, "log notification not delivered");
            }
        })
    }

    fn elicit(
        &self,
        message: String,
        schema: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Elicited, String>> {
        Box::pin(async move {
            let schema = ElicitationSchema::from_json_schema(schema)
                .map_err(|e| format!("invalid elicitation schema: {e}"))?;
            let params = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message,
                requested_schema: schema,
            };
            let r = self
                .ctx
                .peer
                .create_elicitation(params)
                .await
                .map_err(|e| e.to_string())?;
            let action = serde_json::to_value(r.action)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            Ok(Elicited {
                action,
                content: r.content,
            })
        })
    }

    fn list_roots(&self) -> BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(async move {
            let r = self
                .ctx
                .peer
                .list_roots()
                .await
                .map_err(|e| e.to_string())?;
            Ok(r.roots
                .into_iter()
                .filter_map(|root| serde_json::to_value(root).ok())
                .collect())
        })
    }

    fn sample(&self, prompt: String, max_tokens: u32) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let params = CreateMessageRequestParams::new(
                vec![SamplingMessage::user_text(prompt)],
                max_tokens,
            );
            let r = self
                .ctx
                .peer
                .create_message(params)
                .await
                .map_err(|e| e.to_string())?;
            let text = r
                .message
                .content
                .into_vec()
                .into_iter()
                .find_map(|c| c.as_text().map(|t| t.text.clone()));
            text.ok_or_else(|| "the client's model returned no text".to_string())
        })
    }
}

impl ServerHandler for WardenMcp {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_completions()
            .enable_logging()
            .build();
        let pipeline = self.pipeline.current();
        let project = pipeline.project();
        let mut caps = caps;
        if project.tools.iter().any(|t| t.task.is_some()) {
            caps.extensions
                .get_or_insert_with(Default::default)
                .insert(TASKS_EXTENSION_ID.to_string(), Map::new());
        }
        let mut instructions = String::new();
        if let Some(n) = &self.notice {
            instructions.push_str(n);
        }
        if let Some(i) = &project.instructions {
            if !instructions.is_empty() {
                instructions.push_str("\n\n");
            }
            instructions.push_str(i);
        }
        let mut implementation = Implementation::new("warden", env!("CARGO_PKG_VERSION"))
            .with_title(format!("Warden: {}", project.name));
        if let Some(d) = &project.description {
            implementation = implementation.with_description(d.clone());
        }
        let mut info = InitializeResult::new(caps).with_server_info(implementation);
        if !instructions.is_empty() {
            info = info.with_instructions(instructions);
        }
        info
    }

    async fn list_tools(
        &self,
        _req: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let principal = self.principal(&ctx).await?;
        Ok(ListToolsResult::with_all_items(
            self.pipeline
                .current()
                .visible_tools(principal.as_ref())
                .map(Self::tool)
                .collect(),
        )
        .with_cache_scope(CacheScope::Private)
        .with_ttl_ms(LIST_TTL_MS))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.pipeline.current().project().tool(name).map(Self::tool)
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = self.principal(&ctx).await?;
        // A 2026-07-28 client is asked through the result (multi round-trip requests).
        let round = input_round(&ctx, req.input_responses.as_ref(), &req.request_state);
        let pipeline = self.pipeline.current();
        if let Some(round) = &round
            && let Some(mode) = pipeline.project().tool(&req.name).and_then(|t| {
                let asking_first = t.ask_before_task
                    && !t.questions.is_empty()
                    && req.request_state.is_none()
                    && req.input_responses.is_none();
                t.task.filter(|_| !asking_first)
            })
        {
            let declared = ctx
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
            if declared {
                let call = tasks::Call {
                    pipeline: self.pipeline.clone(),
                    caller: principal.clone(),
                    tool: req.name.to_string(),
                    arguments: req.arguments.clone(),
                    source: self.source,
                    peer: peer(&ctx),
                    first: round.clone(),
                };
                let task = self.tasks.start(call)?;
                return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
            }
            if mode == TaskMode::Required {
                return Err(ErrorData::missing_required_client_capability(
                    ClientCapabilities::builder().enable_tasks().build(),
                ));
            }
        }
        let channel = PeerChannel {
            ctx: &ctx,
            log_level: &self.log_level,
            round,
        };
        let peer = peer(&ctx);
        let span = call_span("tools/call", &peer);
        let request = CallRequest {
            tool: req.name.as_ref(),
            caller: principal.as_ref(),
            arguments: req.arguments.as_ref(),
            source: self.source,
            peer,
            cancel: ctx.ct.clone(),
            channel: &channel,
        };
        match pipeline.call_tool(request).instrument(span).await {
            Ok(result) => Ok(tool_result(result).into()),
            Err(e) => call_error(e),
        }
    }

    async fn list_resources(
        &self,
        _req: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let pipeline = self.pipeline.current();
        self.may_list(&pipeline, principal.as_ref(), "resources/list", &ctx)
            .await?;
        let resources = pipeline
            .resources()
            .filter_map(|r| match &r.uri {
                ResourceUri::Fixed(uri) => {
                    let mut res = Resource::new(uri.clone(), r.name.clone());
                    if let Some(t) = &r.title {
                        res = res.with_title(t.clone());
                    }
                    if let Some(d) = &r.description {
                        res = res.with_description(d.clone());
                    }
                    if let Some(m) = &r.mime_type {
                        res = res.with_mime_type(m.clone());
                    }
                    Some(res)
                }
                ResourceUri::Template(_) => None,
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources)
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(LIST_TTL_MS))
    }

    async fn list_resource_templates(
        &self,
        _req: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let pipeline = self.pipeline.current();
        self.may_list(
            &pipeline,
            principal.as_ref(),
            "resources/templates/list",
            &ctx,
        )
        .await?;
        let templates = pipeline
            .resources()
            .filter_map(|r| match &r.uri {
                ResourceUri::Template(t) => {
                    let mut rt = ResourceTemplate::new(t.as_str().to_string(), r.name.clone());
                    if let Some(d) = &r.description {
                        rt = rt.with_description(d.clone());
                    }
                    if let Some(m) = &r.mime_type {
                        rt = rt.with_mime_type(m.clone());
                    }
                    Some(rt)
                }
                ResourceUri::Fixed(_) => None,
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates)
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(LIST_TTL_MS))
    }

    async fn read_resource(
        &self,
        req: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let peer = peer(&ctx);
        let r = self
            .pipeline
            .current()
            .read_resource(&req.uri, principal.as_ref(), self.source, &peer, &ctx.ct)
            .instrument(call_span("resources/read", &peer))
            .await
            .map_err(resource_error)?;
        let mut contents = match r.body {
            ResourceBody::Text(t) => ResourceContents::text(t, r.uri),
            ResourceBody::Blob(b) => ResourceContents::blob(b, r.uri),
        };
        if let Some(m) = r.mime_type {
            contents = contents.with_mime_type(m);
        }
        // Rows of the organisation's data, read for this caller now: nobody else's cache may
        // keep them, and this caller's should not serve them again without asking.
        Ok(ReadResourceResult::new(vec![contents])
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(0)
            .into())
    }

    async fn subscribe(
        &self,
        req: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if modern(&ctx) {
            return Err(removed_in_2026("resources/subscribe"));
        }
        // Resources are read on demand; a subscription is accepted for any known resource.
        self.known_resource(&req.uri)
    }

    async fn unsubscribe(
        &self,
        req: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if modern(&ctx) {
            return Err(removed_in_2026("resources/unsubscribe"));
        }
        self.known_resource(&req.uri)
    }

    async fn list_prompts(
        &self,
        _req: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let pipeline = self.pipeline.current();
        self.may_list(&pipeline, principal.as_ref(), "prompts/list", &ctx)
            .await?;
        let prompts = pipeline
            .prompts()
            .map(|p| {
                let args: Vec<PromptArgument> = p
                    .arguments
                    .iter()
                    .map(|a| {
                        let mut pa = PromptArgument::new(a.name.clone()).with_required(a.required);
                        if let Some(d) = &a.description {
                            pa = pa.with_description(d.clone());
                        }
                        pa
                    })
                    .collect();
                let mut prompt = Prompt::new(
                    p.name.clone(),
                    p.description.clone(),
                    (!args.is_empty()).then_some(args),
                );
                if let Some(t) = &p.title {
                    prompt = prompt.with_title(t.clone());
                }
                prompt
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(prompts)
            .with_cache_scope(CacheScope::Private)
            .with_ttl_ms(LIST_TTL_MS))
    }

    async fn get_prompt(
        &self,
        req: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let channel = PeerChannel {
            ctx: &ctx,
            log_level: &self.log_level,
            round: input_round(&ctx, req.input_responses.as_ref(), &req.request_state),
        };
        let args = req.arguments.unwrap_or_default();
        let peer = peer(&ctx);
        let pipeline = self.pipeline.current();
        let messages = match pipeline
            .get_prompt(PromptRequest {
                name: &req.name,
                arguments: &args,
                caller: principal.as_ref(),
                source: self.source,
                peer: &peer,
                cancel: &ctx.ct,
                channel: &channel,
            })
            .instrument(call_span("prompts/get", &peer))
            .await
        {
            Ok(m) => m,
            Err(PromptError::InputRequired(i)) => {
                return Ok(GetPromptResponse::InputRequired(input_required(*i)?));
            }
            Err(e) => return Err(prompt_error(e)),
        };
        let messages = messages
            .into_iter()
            .map(|m| {
                let role = match m.speaker {
                    Speaker::User => rmcp::model::Role::User,
                    Speaker::Assistant => rmcp::model::Role::Assistant,
                };
                PromptMessage::new(role, block(m.content))
            })
            .collect();
        let mut result = GetPromptResult::new(messages);
        if let Some(d) = pipeline
            .project()
            .prompt(&req.name)
            .and_then(|p| p.description.clone())
        {
            result = result.with_description(d);
        }
        Ok(result.into())
    }

    async fn complete(
        &self,
        req: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let values = match req.r#ref.as_prompt_name() {
            Some(prompt) => self.pipeline.current().complete_prompt_argument(
                prompt,
                &req.argument.name,
                &req.argument.value,
            ),
            None => Vec::new(),
        };
        let info = CompletionInfo::new(values).map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(CompleteResult::new(info))
    }

    async fn set_level(
        &self,
        req: rmcp::model::SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if modern(&ctx) {
            return Err(removed_in_2026("logging/setLevel"));
        }
        let name = serde_json::to_value(req.level)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let severity = LEVELS.iter().position(|l| *l == name).unwrap_or(6);
        self.log_level.store(severity as u8, Ordering::Relaxed);
        Ok(())
    }

    async fn get_task(
        &self,
        req: GetTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let principal = self.principal(&ctx).await?;
        let task = self.tasks.get(principal.as_ref(), &req.task_id)?;
        Ok(GetTaskResult::new(task))
    }

    async fn update_task(
        &self,
        req: UpdateTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let principal = self.principal(&ctx).await?;
        self.tasks.update(
            principal.as_ref(),
            peer(&ctx),
            &req.task_id,
            req.input_responses,
        )
    }

    async fn cancel_task(
        &self,
        req: CancelTaskParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let principal = self.principal(&ctx).await?;
        self.tasks.cancel(principal.as_ref(), &req.task_id)
    }

    /// MCP 2026-07-28 `subscriptions/listen`: the stream is held open (rmcp acknowledges it
    /// first, tagged with its id, and ends it when the client goes). Of what was asked, only
    /// updates of resources this project serves are kept; rmcp narrows the rest to what
    /// `get_info` advertises (no list-changed notifications: lists change only with a reload
    /// or a role, and a call is authorized afresh whatever a list said).
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let pipeline = self.pipeline.current();
        let mut accepted = requested.clone();
        if let Some(uris) = &mut accepted.resource_subscriptions {
            uris.retain(|u| pipeline.find_resource(u).is_some());
        }
        Some(accepted)
    }

    /// rmcp routes a known method whose params do not parse here; answer -32602 (invalid
    /// params) naming the method rather than -32601 (method not found).
    async fn on_custom_request(
        &self,
        req: CustomRequest,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        const REMOVED: [&str; 5] = [
            "initialize",
            "ping",
            "logging/setLevel",
            "resources/subscribe",
            "resources/unsubscribe",
        ];
        if modern(&ctx) && REMOVED.contains(&req.method.as_str()) {
            return Err(removed_in_2026(&req.method));
        }
        const KNOWN: [&str; 15] = [
            "tasks/get",
            "tasks/update",
            "tasks/cancel",
            "tools/call",
            "tools/list",
            "resources/read",
            "resources/list",
            "resources/templates/list",
            "resources/subscribe",
            "resources/unsubscribe",
            "prompts/get",
            "prompts/list",
            "completion/complete",
            "logging/setLevel",
            "initialize",
        ];
        if KNOWN.contains(&req.method.as_str()) {
            return Err(ErrorData::invalid_params(
                format!(
                    "invalid params for {}; see the MCP specification for this method's parameters",
                    req.method
                ),
                None,
            ));
        }
        Err(ErrorData::new(
            ErrorCode::METHOD_NOT_FOUND,
            Cow::Owned(format!("method not found: {}", req.method)),
            None,
        ))
    }
}

impl WardenMcp {
    fn known_resource(&self, uri: &str) -> Result<(), ErrorData> {
        match self.pipeline.current().find_resource(uri) {
            Some(_) => Ok(()),
            None => Err(resource_error(ResourceError::NotFound(uri.to_string()))),
        }
    }
}
