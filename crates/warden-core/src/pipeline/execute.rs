//! Execute: what the tool asks of the client (log lines, an elicitation, a model's reply,
//! progress), then its statement on the caller's own data, with the permit the authorize
//! stage gave. A write's statement commits only through the audit gate.

use crate::audit::AuditError;
use crate::authz::Permit;
use crate::exec::{ExecError, Gate, QueryOutput, SqlValue};
use crate::project::Tool;

use super::Pipeline;
use super::error::CallError;
use super::request::CallRequest;

/// Whether a call of `tool` may bind a sensitive value (a database error could repeat it,
/// and errors are recorded).
pub(super) fn carries_sensitive(tool: &Tool) -> bool {
    match tool.generated.as_ref().and_then(|g| g.ingest.as_ref()) {
        Some(ingest) => ingest.columns.iter().any(|c| c.sensitive),
        None => tool.params.iter().any(|p| p.sensitive),
    }
}

impl Pipeline {
    pub(super) async fn execute(
        &self,
        permit: &Permit,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
        gate: Option<Gate>,
    ) -> Result<QueryOutput, CallError> {
        for line in &tool.log {
            req.channel.log(line.clone()).await;
        }
        if let Some(round) = req.channel.input_round() {
            self.answered(tool, args, req, round).await?;
        } else {
            self.ask_now(tool, args, req).await?;
        }
        let steps = tool.progress_steps;
        for step in 1..=steps.saturating_sub(1) {
            req.channel
                .progress(step, steps, format!("step {step} of {steps}"))
                .await;
        }
        let data = self.data.for_caller(req.caller).await?;
        let output = match gate {
            Some(gate) => {
                data.run_gated(permit, &tool.statement, args, &req.cancel, gate)
                    .await
            }
            None => data.run(permit, &tool.statement, args, &req.cancel).await,
        }
        .map_err(|e| match e {
            ExecError::Refused(reason) => CallError::Audit(AuditError(reason)),
            other if carries_sensitive(tool) => CallError::Execution(other.withheld()),
            other => CallError::Execution(other),
        })?;
        if steps > 0 {
            req.channel
                .progress(steps, steps, format!("step {steps} of {steps}"))
                .await;
        }
        Ok(output)
    }
}
