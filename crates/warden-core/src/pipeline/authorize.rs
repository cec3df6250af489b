//! Authorize: the role and scope check in front of everything that runs SQL, and the two
//! questions the edge asks before rmcp reads a message (may this principal connect at all;
//! do this connection's scopes cover this tool). Decisions are [`authz`]'s; this stage
//! applies them, and records every refusal it answers itself.

use crate::audit::{Event, Peer};
use crate::authz::{self, Denial, Permit, Stage};
use crate::identity::Principal;
use crate::project::{Access, Tool};

use super::Pipeline;
use super::error::Rejection;
use super::record;
use super::request::Source;

impl Pipeline {
    /// The decision for `caller` (or for no caller, under `auth: none`) to use something of
    /// this `access` kind.
    pub(super) fn authorize(
        &self,
        caller: Option<&Principal>,
        access: Access,
    ) -> Result<Permit, Denial> {
        match caller {
            Some(c) => authz::decide(c, access),
            None => authz::decide_unauthenticated(self.project.auth.mode, access),
        }
    }

    /// Whether an authenticated principal may connect an assistant at all, asked before any
    /// MCP message is read. A refusal (Auxiliary Members, Service Accounts) is recorded;
    /// `peer` is asked for only then.
    pub async fn admit(
        &self,
        caller: &Principal,
        source: Source,
        peer: impl FnOnce() -> Peer,
    ) -> Result<(), Rejection> {
        let Err(denial) = authz::may_connect(caller) else {
            return Ok(());
        };
        let event = record::refusal("connect", "mcp", Some(caller), source, &peer(), &denial);
        self.refuse(event, denial).await
    }

    /// Scope step-up (MCP authorization, insufficient scope): whether this connection's
    /// scopes cover `tool`, asked before the call is read so that the edge can answer with an
    /// HTTP challenge naming the scope to ask for. Only a scope refusal is answered (and
    /// recorded) here; any other outcome is left to [`Pipeline::call_tool`], which decides
    /// again, explains and records it. `peer` is asked for only when there is a refusal to
    /// record.
    pub async fn step_up(
        &self,
        caller: &Principal,
        tool: &str,
        source: Source,
        peer: impl FnOnce() -> Peer,
    ) -> Result<(), Rejection> {
        let Some(tool) = self.project.tool(tool) else {
            return Ok(());
        };
        match authz::decide(caller, tool.access) {
            Err(denial) if denial.stage == Stage::Scope => {
                let event = record::refusal(
                    "tool_call",
                    &tool.name,
                    Some(caller),
                    source,
                    &peer(),
                    &denial,
                );
                self.refuse(event, denial).await
            }
            _ => Ok(()),
        }
    }

    /// Whether `caller` may list resources or prompts (`method`, e.g. `resources/list`).
    /// A refusal is recorded.
    pub async fn may_list(
        &self,
        caller: Option<&Principal>,
        method: &str,
        source: Source,
        peer: &Peer,
    ) -> Result<(), Rejection> {
        let Err(denial) = self.authorize(caller, Access::Read) else {
            return Ok(());
        };
        let event = record::refusal("listing", method, caller, source, peer, &denial);
        self.refuse(event, denial).await
    }

    /// The tools `tools/list` shows this caller: those it may call, and with
    /// `show_write_tools` also write tools it may not (calling them is still refused).
    pub fn visible_tools<'a>(
        &'a self,
        caller: Option<&'a Principal>,
    ) -> impl Iterator<Item = &'a Tool> + 'a {
        let show = self.project.show_write_tools;
        self.project.tools.iter().filter(move |t| match caller {
            Some(c) => authz::visible(c, t.access, show),
            None => self.authorize(None, t.access).is_ok(),
        })
    }

    /// Records a refusal the pipeline answers itself, and returns it. If the trail cannot
    /// take the record, the request is refused all the same and the trail's failure is
    /// what the caller hears.
    async fn refuse(&self, event: Event, denial: Denial) -> Result<(), Rejection> {
        match self.audit.record(event).await {
            Ok(()) => Err(Rejection::Denied(denial)),
            Err(e) => {
                tracing::error!(error = %e.0, "a refusal could not be recorded; refusing all the same");
                Err(Rejection::Audit(e))
            }
        }
    }
}
