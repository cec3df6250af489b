//! `tools/call`: every stage in order, and one record of how it ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;

use crate::audit::{self, Event};
use crate::project::Access;

use super::Pipeline;
use super::arguments::{Split, bind_caller, split_confirmation};
use super::error::CallError;
use super::input_policy::tool_variables;
use super::limits;
use super::output::shape;
use super::paging;
use super::record::{self, write_gate};
use super::request::CallRequest;
use super::response::ToolResult;

impl Pipeline {
    /// Runs one tool call through every stage, and records it: the response is released
    /// only once its record is durable. A write's record is made durable before the write
    /// commits (by the gate [`record::write_gate`] hands `exec`); if anything after that
    /// changes the outcome (the output policy denies, the commit fails), a second record with
    /// the same request id says so.
    pub async fn call_tool(&self, req: CallRequest<'_>) -> Result<ToolResult, CallError> {
        let started = Instant::now();
        let result = match self.limit(&req, started).await {
            Ok(row_quotas) => {
                let result = self.call_tool_recorded(&req, started).await;
                if let (Ok(r), Some(limiter)) = (&result, &self.limiter)
                    && !row_quotas.is_empty()
                {
                    limits::debit(limiter.as_ref(), &row_quotas, r.rows, chrono::Utc::now()).await;
                }
                result
            }
            Err(e) => Err(e),
        };
        record::measure_tool(self.project.tool(req.tool), &req.peer, &result, started);
        result
    }

    /// The limit stage: the project's `limits` for an authenticated caller. A refusal is
    /// recorded once a minute per bucket (see `limits.rs`); a limiter that cannot answer
    /// refuses, on the record.
    /// Returns the day's row quotas the call is to be counted against once it ran.
    async fn limit(
        &self,
        req: &CallRequest<'_>,
        started: Instant,
    ) -> Result<Vec<limits::Applied>, CallError> {
        let (Some(limiter), Some(caller), Some(tool)) =
            (&self.limiter, req.caller, self.project.tool(req.tool))
        else {
            return Ok(Vec::new());
        };
        if self.project.limits.is_empty() {
            return Ok(Vec::new());
        }
        let now = chrono::Utc::now();
        let applied = limits::applicable(&self.project.limits, caller, tool, now);
        let row_quotas = limits::row_quotas(&self.project.limits, caller, tool, now);
        let checked = match limits::check_rows(limiter.as_ref(), &row_quotas, now).await {
            Ok(()) => limits::take(limiter.as_ref(), &applied, now).await,
            Err(e) => Err(e),
        };
        let (err, detail) = match checked {
            Ok(()) => return Ok(row_quotas),
            Err(Ok((limited, key))) => match self.limited.refused(&key, now) {
                Some(before) => {
                    let d = limits::detail(&limited, before);
                    (CallError::Limited(limited), Some(d))
                }
                None => return Err(CallError::Limited(limited)),
            },
            Err(Err(reason)) => (CallError::LimitUnavailable(reason), None),
        };
        let mut event =
            record::call_event("tool_call", req.tool, req.caller, req.source, &req.peer);
        event.params = audit::sanitize_arguments(tool, req.arguments);
        let result: Result<ToolResult, CallError> = Err(err);
        record::finish_tool(&mut event, &result, started);
        event.detail = detail;
        self.audit.record(event).await?;
        result.map(|_| Vec::new())
    }

    async fn call_tool_recorded(
        &self,
        req: &CallRequest<'_>,
        started: Instant,
    ) -> Result<ToolResult, CallError> {
        let mut event =
            record::call_event("tool_call", req.tool, req.caller, req.source, &req.peer);
        if let Some(tool) = self.project.tool(req.tool) {
            event.params = audit::sanitize_arguments(tool, req.arguments);
        }
        let recorded = Arc::new(AtomicBool::new(false));
        let result = self.run_tool(req, started, &event, recorded.clone()).await;
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
        let already = recorded.load(Ordering::Acquire);
        if already && result.is_ok() {
            return result;
        }
        record::finish_tool(&mut event, &result, started);
        if already {
            event.detail = Some(
                json!({"follows": "the write's record: its outcome changed after it was recorded"}),
            );
        }
        self.audit.record(event).await?;
        result
    }

    /// The stages, in order: look up, authorize, arguments, input policy, confirm (writes),
    /// execute, output policy.
    async fn run_tool(
        &self,
        req: &CallRequest<'_>,
        started: Instant,
        event: &Event,
        recorded: Arc<AtomicBool>,
    ) -> Result<ToolResult, CallError> {
        let tool = self
            .project
            .tool(req.tool)
            .ok_or_else(|| CallError::UnknownTool {
                name: req.tool.to_string(),
            })?;
        let permit = self
            .authorize(req.caller, tool.access)
            .map_err(CallError::Denied)?;
        let Split {
            confirm,
            token,
            own: own_args,
        } = split_confirmation(tool, req.arguments)?;
        let mut args = tool.bind_arguments(own_args.as_ref())?;
        bind_caller(&tool.statement.names, &mut args, req.caller);
        let page = paging::bind(
            &self.cursors,
            tool,
            own_args.as_ref(),
            &mut args,
            req,
            self.project.data.max_rows,
        )?;
        // Most tools have no rules: build the policy variables only for those that do.
        let mut vars = if tool.policies.is_empty() {
            serde_json::Map::new()
        } else {
            tool_variables(tool, own_args.as_ref(), req)
        };
        tool.policies
            .check_input(&vars)
            .map_err(CallError::Policy)?;
        if let Some(builtin) = tool.builtin {
            return self
                .builtin(builtin, tool, own_args.as_ref(), req, &mut vars)
                .await;
        }
        if tool.generated.as_ref().is_some_and(|g| g.verb == "export") {
            return self.export(&permit, tool, &mut args, req, &mut vars).await;
        }
        if let Some(ingest) = tool.generated.as_ref().and_then(|g| g.ingest.clone()) {
            let call = super::ingest::WriteCall {
                permit: &permit,
                confirm,
                token,
                started,
                event,
                recorded,
            };
            return self
                .ingest(call, tool, &ingest, own_args.as_ref(), req, &mut vars)
                .await;
        }
        let gate = if tool.access == Access::Write {
            self.confirm(&permit, tool, &args, (confirm, token), req, &mut vars)
                .await?;
            Some(write_gate(
                self.audit.clone(),
                event.clone(),
                tool,
                started,
                recorded,
                None,
            ))
        } else {
            None
        };
        let mut output = self.execute(&permit, tool, &mut args, req, gate).await?;
        let next = page
            .as_ref()
            .and_then(|p| paging::finish(&self.cursors, p, &mut output));
        shape(tool, output, &mut vars, next)
    }
}
