//! Why a call produced no result. The edge maps each variant to the wire in one place
//! (`warden-server`'s `transport/mcp.rs`).

use crate::audit::AuditError;
use crate::authz::Denial;
use crate::exec::ExecError;
use crate::policy::PolicyDenial;
use crate::project::ArgumentError;

use super::response::Preview;

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
    Policy(PolicyDenial),
    /// A confirmation that cannot be accepted.
    #[error("the write was not confirmed: {0}; nothing was changed")]
    Confirmation(String),
    /// The call could not be recorded, so it was refused (for a write: rolled back).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A rate limit or quota in the project's `limits` is used up.
    #[error("{0}")]
    Limited(super::limits::Limited),
    /// The client must answer questions first (MCP 2026-07-28): nothing ran.
    #[error("the client must answer {} question(s) and call again", .0.asks.len())]
    InputRequired(Box<super::request::InputRequired>),
    /// The `requestState` sent back is not one Warden gave for exactly this call.
    #[error("requestState is not valid for this call: {0}; call the tool again without it")]
    RequestState(String),
    /// The tool must ask the client something it did not say it can answer.
    #[error("this tool needs the client capability `{0}`, which this client did not declare")]
    MissingCapability(&'static str),
    /// The limits could not be checked, so the call was refused.
    #[error("the call limits cannot be checked now ({0}); nothing was run; try again shortly")]
    LimitUnavailable(String),
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
    /// The URI matches a resource (or template), but its query found no row.
    #[error(
        "'{uri}' matches the resource '{resource}', but nothing exists at that URI; check the identifier in it"
    )]
    NoRow { uri: String, resource: String },
    /// The authorize stage refused the read.
    #[error("{0}")]
    Denied(Denial),
    #[error(transparent)]
    Execution(#[from] ExecError),
    #[error("{0}")]
    Policy(PolicyDenial),
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
    /// MCP 2026-07-28: the client must answer these and ask again.
    #[error("the client must answer the prompt's questions first")]
    InputRequired(Box<super::request::InputRequired>),
    #[error("the requestState was refused: {0}")]
    RequestState(String),
    #[error("this prompt asks through {0}, which the client did not declare")]
    MissingCapability(&'static str),
    #[error("the client could not be asked: {0}")]
    Client(String),
    #[error(transparent)]
    Resource(#[from] ResourceError),
}

/// A request the pipeline refused before it was read (connecting, scope step-up, listing):
/// the denial, already recorded, or the trail's failure to record it.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Denied(Denial),
    #[error(transparent)]
    Audit(#[from] AuditError),
}
