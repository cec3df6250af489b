//! Execute: what the tool asks of the client (log lines, an elicitation, a model's reply,
//! progress), then its statement on the caller's own data, with the permit the authorize
//! stage gave. A write's statement commits only through the audit gate.

use crate::audit::AuditError;
use crate::authz::Permit;
use crate::exec::{ExecError, Gate, QueryOutput, SqlValue};
use crate::project::{ParamType, Tool};

use super::Pipeline;
use super::arguments::bind_extra;
use super::error::CallError;
use super::request::CallRequest;

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
        if let Some(ask) = &tool.elicit {
            let answer = req
                .channel
                .elicit(ask.message.clone(), ask.schema.clone())
                .await
                .map_err(CallError::Client)?;
            bind_extra(tool, args, "elicit_action", SqlValue::Text(answer.action));
            let content = answer
                .content
                .map_or(SqlValue::Null(ParamType::String), |c| {
                    SqlValue::Text(c.to_string())
                });
            bind_extra(tool, args, "elicit_content", content);
        }
        if let Some(sample) = &tool.sample {
            let prompt = self.templates.render_sample(tool, args)?;
            let text = req
                .channel
                .sample(prompt, sample.max_tokens)
                .await
                .map_err(CallError::Client)?;
            bind_extra(tool, args, "sample_text", SqlValue::Text(text));
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
