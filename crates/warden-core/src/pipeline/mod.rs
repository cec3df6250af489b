//! The call pipeline: the one place every tool call, resource read and prompt request passes
//! through, in order, and the one place their audit records are made.
//!
//! ```text
//! transport ─▶ authenticate ─▶ authorize ─▶ input policy ─▶ execute ─▶ output policy ─▶ audit
//! (edge)       (warden-auth)   authorize.rs  arguments.rs   execute.rs  output.rs        record.rs
//!                                            input_policy.rs
//!                                            confirm.rs (writes)
//! ```
//!
//! Read it in that order. The entry points are each a short sequence of stage calls:
//! [`Pipeline::call_tool`] (`tool.rs`), [`Pipeline::read_resource`] (`resource.rs`) and
//! [`Pipeline::get_prompt`] (`prompt.rs`); the edge also asks [`Pipeline::admit`] whether an
//! authenticated principal may connect at all and [`Pipeline::step_up`] whether a
//! connection's scopes cover a tool, before rmcp has read the call (`authorize.rs`).
//!
//! The edge builds plain requests (`request.rs`) from whatever arrived on the wire and gets
//! back plain results (`response.rs`) or errors (`error.rs`); it never decides, runs SQL or
//! builds an audit event itself. SQL runs only with an [`authz::Permit`], which only the
//! authorize stage can obtain, so nothing reaches `exec` around it. Every refusal, at any
//! stage, leaves exactly one record.
//!
//! `reload.rs` replaces the whole pipeline when the project file is re-read
//! ([`LivePipeline`]); a request runs on the one it took.
//!
//! [`authz::Permit`]: crate::authz::Permit

mod arguments;
mod authorize;
mod confirm;
mod data;
mod error;
mod execute;
mod explain;
mod files;
mod ingest;
mod input_policy;
pub mod limits;
mod measure;
mod output;
mod paging;
mod prompt;
mod questions;
mod record;
mod reload;
mod request;
mod resource;
mod response;
mod template;
mod tool;
mod unauthenticated;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use arguments::{CALLER_EMAIL, CALLER_ORG, CALLER_USER_ID};
pub use confirm::CONFIRM_KEY;
pub use error::{CallError, PromptError, Rejection, ResourceError};
pub use explain::explain;
pub use files::{Download, FileRefusal, FileUse, Files};
pub use input_policy::policy_variables;
pub use measure::{OPERATION_DURATION, POLICY_DENIALS, UNKNOWN};
pub use paging::CursorKey;
pub use reload::{LivePipeline, RestartNeeded, RestartSection};
pub use request::{
    Ask, CallRequest, ClientChannel, Elicited, InputRequired, InputRound, NoChannel, PromptRequest,
    Source,
};
pub use response::{
    Content, Preview, PromptMessageOut, ResourceBody, ResourceContents, ToolResult,
};

use crate::audit::Sink;
use crate::confirm::Ledger;
use crate::exec::{DataSource, ExecError};
use crate::project::{Project, Prompt, Resource, Tool};

/// A loaded project and its open data source: everything needed to serve calls.
#[derive(Debug, Clone)]
pub struct Pipeline {
    project: Arc<Project>,
    data: data::Data,
    /// The project's prompt and sampling templates, compiled once here.
    templates: Arc<template::Templates>,
    confirmations: Arc<dyn Ledger>,
    audit: Arc<dyn Sink>,
    /// Requests refused for want of a credential, counted and recorded per address per
    /// minute.
    unauthenticated: Arc<unauthenticated::Tally>,
    /// The shared buckets behind the project's `limits`; `None` limits nothing.
    limiter: Option<Arc<dyn limits::CallLimiter>>,
    /// Calls refused by a limit, tallied so that a flood is recorded once a minute a bucket.
    limited: Arc<limits::Tally>,
    /// Signs the cursors of paged tools (`tables:`).
    cursors: paging::CursorKey,
    /// Objects and signed URLs (`files:`), shared by reloaded pipelines.
    files: Option<Arc<files::Files>>,
}

impl Pipeline {
    /// A pipeline over one shared, already open data source.
    pub fn new(
        project: Arc<Project>,
        data: DataSource,
        confirmations: Arc<dyn Ledger>,
        audit: Arc<dyn Sink>,
    ) -> Self {
        Self {
            templates: Arc::new(template::Templates::compile(&project)),
            project,
            data: data::Data::Shared(data),
            confirmations,
            unauthenticated: unauthenticated::Tally::new(audit.clone()),
            audit,
            limiter: None,
            limited: Arc::default(),
            cursors: paging::CursorKey::random(),
            files: None,
        }
    }

    /// Opens the project's data: the shared data source now, or, with `{org}` in its
    /// location, each organisation's on its first call.
    pub async fn open(
        project: Arc<Project>,
        confirmations: Arc<dyn Ledger>,
        audit: Arc<dyn Sink>,
    ) -> Result<Self, ExecError> {
        let data = data::Data::open(&project).await?;
        Ok(Self {
            templates: Arc::new(template::Templates::compile(&project)),
            project,
            data,
            confirmations,
            unauthenticated: unauthenticated::Tally::new(audit.clone()),
            audit,
            limiter: None,
            limited: Arc::default(),
            cursors: paging::CursorKey::random(),
            files: None,
        })
    }

    /// Applies the project's `limits` with `limiter`'s buckets (kept across reloads).
    pub fn with_limiter(mut self, limiter: Arc<dyn limits::CallLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Signs paged tools' cursors with `key` (kept across reloads): instances given the same
    /// key accept each other's cursors.
    pub fn with_cursor_key(mut self, key: CursorKey) -> Self {
        self.cursors = key;
        self
    }

    /// The limits that apply to `caller` calling `tool`, each with how many calls it has left
    /// now (for `warden why`). Empty when nothing is limited.
    pub async fn limits_left(
        &self,
        caller: &crate::identity::Principal,
        tool: &Tool,
    ) -> Vec<(limits::Applied, Result<f64, String>)> {
        let now = chrono::Utc::now();
        let applied = limits::applicable(&self.project.limits, caller, tool, now);
        let mut out = Vec::new();
        for a in applied {
            let left = match &self.limiter {
                Some(l) => l.left(a.key.clone(), a.rate, now).await,
                None => Err("no limiter is running".into()),
            };
            out.push((a, left));
        }
        out
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.project.tools.iter()
    }

    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.project.resources.iter()
    }

    pub fn prompts(&self) -> impl Iterator<Item = &Prompt> {
        self.project.prompts.iter()
    }

    /// Notes a request the edge refused for want of a valid credential (HTTP 401). It is
    /// counted, not recorded at once: see `unauthenticated.rs`.
    pub fn note_unauthenticated(&self, peer: &crate::audit::Peer) {
        self.unauthenticated.count(peer.remote_addr.as_deref());
    }

    /// Whether this pipeline can serve calls now: its audit trail can append (a call whose
    /// record cannot be made is refused, so a pipeline whose trail cannot append is not
    /// ready). The reason is a fixed phrase, safe to show anyone.
    pub async fn ready(&self) -> Result<(), crate::audit::NotReady> {
        self.audit.ready().await
    }

    /// Connections open in the data pools (summed over organisations' data sources); for
    /// metrics. Per-organisation sources being opened right now are skipped.
    pub fn data_pools(&self) -> crate::exec::PoolStats {
        self.data.pools()
    }

    pub async fn close(&self) {
        self.unauthenticated.flush().await;
        self.data.close().await;
    }
}
