//! What arrives: a call as the edge hands it over, and what the pipeline may ask of the
//! caller's client while it runs.

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::audit::Peer;
use crate::identity::Principal;

/// Where a call came from: the audit trail's word for it (`Http` or `Stdio` for MCP).
pub use crate::audit::Source;

/// What the pipeline may ask of the caller's client while a call runs. The edge implements
/// it over MCP notifications and requests; tests implement it in memory.
pub trait ClientChannel: Send + Sync {
    fn progress(&self, done: u32, total: u32, message: String) -> BoxFuture<'_, ()>;
    fn log(&self, message: String) -> BoxFuture<'_, ()>;
    /// Asks the user for structured input; `Err` when the client cannot be asked.
    fn elicit(
        &self,
        message: String,
        schema: Map<String, Value>,
    ) -> BoxFuture<'_, Result<Elicited, String>>;
    /// Asks the client's model for a completion.
    fn sample(&self, prompt: String, max_tokens: u32) -> BoxFuture<'_, Result<String, String>>;
    /// Asks the client for its roots (each `{uri, name}`).
    fn list_roots(&self) -> BoxFuture<'_, Result<Vec<Value>, String>> {
        Box::pin(async { Err("this client cannot be asked for its roots".to_string()) })
    }
    /// For a client of MCP 2026-07-28, which is never sent requests of the server's own:
    /// what it sent back on this round of the call (multi round-trip requests). `None`
    /// for an older client, which is asked through [`Self::elicit`] and [`Self::sample`].
    fn input_round(&self) -> Option<&InputRound> {
        None
    }
}

/// What a 2026-07-28 client sent with this round of a call: its answers by key, the
/// `requestState` Warden gave it on the round before, and what it may be asked.
#[derive(Debug, Clone, Default)]
pub struct InputRound {
    pub responses: Map<String, Value>,
    pub state: Option<String>,
    pub can_elicit: bool,
    pub can_sample: bool,
    pub can_list_roots: bool,
}

impl InputRound {
    /// May the client be asked what needs `capability` (`elicitation`, `sampling`, `roots`)?
    pub fn can(&self, capability: &str) -> bool {
        match capability {
            "elicitation" => self.can_elicit,
            "sampling" => self.can_sample,
            "roots" => self.can_list_roots,
            _ => false,
        }
    }
}

/// One question for the client, under the key its answer comes back with.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Elicit {
        message: String,
        schema: Map<String, Value>,
    },
    Sample {
        prompt: String,
        max_tokens: u32,
    },
    Roots,
}

/// The client must answer `asks` and call again with them and `state`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    pub asks: Vec<(String, Ask)>,
    /// Single-use, bound to the caller, the tool and its arguments, for 5 minutes.
    pub state: String,
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

/// One `prompts/get`.
pub struct PromptRequest<'a> {
    pub name: &'a str,
    pub arguments: &'a Map<String, Value>,
    /// The authenticated caller; `None` only under `auth: none`.
    pub caller: Option<&'a Principal>,
    pub source: Source,
    pub peer: &'a Peer,
    pub cancel: &'a CancellationToken,
    /// Where the prompt's questions are asked.
    pub channel: &'a dyn ClientChannel,
}

/// One `tools/call`.
pub struct CallRequest<'a> {
    pub tool: &'a str,
    /// The authenticated caller; `None` only when the project runs with `auth: none` (an
    /// authenticated project refuses a call without one at the authorize stage).
    pub caller: Option<&'a Principal>,
    pub arguments: Option<&'a Map<String, Value>>,
    pub source: Source,
    /// The network peer, for the audit trail.
    pub peer: Peer,
    pub cancel: CancellationToken,
    pub channel: &'a dyn ClientChannel,
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

impl std::fmt::Debug for PromptRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments are never printed.
        f.debug_struct("PromptRequest")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}
