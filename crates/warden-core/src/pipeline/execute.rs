//! Execute: what the tool asks of the client (log lines, an elicitation, a model's reply,
//! progress), then its statement on the caller's own data, with the permit the authorize
//! stage gave. A write's statement commits only through the audit gate.

use serde_json::Value;

use crate::audit::AuditError;
use crate::authz::Permit;
use crate::confirm::{LedgerError, Refusal};
use crate::exec::{ExecError, Gate, QueryOutput, SqlValue};
use crate::project::{ParamType, Tool};

use super::Pipeline;
use super::arguments::bind_extra;
use super::error::CallError;
use super::request::{Ask, CallRequest, Elicited, InputRequired, InputRound};

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
            other => CallError::Execution(other),
        })?;
        if steps > 0 {
            req.channel
                .progress(steps, steps, format!("step {steps} of {steps}"))
                .await;
        }
        Ok(output)
    }

    /// An older client: asked now, over its open connection (server-to-client requests).
    async fn ask_now(
        &self,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
    ) -> Result<(), CallError> {
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
        Ok(())
    }

    /// A 2026-07-28 client (multi round-trip requests): the answers come with the call,
    /// under a `requestState` Warden minted for exactly this caller, tool and arguments
    /// (single use, 5 minutes, in the confirmation ledger under its own tool name, so that
    /// neither kind of token stands for the other). A state that is tampered with, replayed,
    /// expired, someone else's or bound to other arguments refuses the call; answers sent
    /// without a state are not trusted and the questions are asked again. Nothing runs
    /// until every question is answered.
    async fn answered(
        &self,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
        round: &InputRound,
    ) -> Result<(), CallError> {
        if tool.elicit.is_none() && tool.sample.is_none() {
            return Ok(());
        }
        if tool.elicit.is_some() && !round.can_elicit {
            return Err(CallError::MissingCapability("elicitation"));
        }
        if tool.sample.is_some() && !round.can_sample {
            return Err(CallError::MissingCapability("sampling"));
        }
        let binding =
            super::confirm::binding(req, tool, format!("{INPUT_STATE_TOOL}{}", tool.name), args);
        let trusted = match &round.state {
            Some(state) => {
                self.confirmations
                    .redeem(state, &binding)
                    .await
                    .map_err(|e| match e {
                        LedgerError::Refused(r) => CallError::RequestState(state_refusal(&r)),
                        LedgerError::Internal(m) => {
                            CallError::RequestState(format!("it cannot be checked now ({m})"))
                        }
                    })?;
                Some(&round.responses)
            }
            None => None,
        };
        let answer = |key: &str| trusted.and_then(|r| r.get(key));
        let mut asks = Vec::new();
        let mut elicited = None;
        if let Some(ask) = &tool.elicit {
            match answer(&ask.key).and_then(elicit_answer) {
                Some(a) => elicited = Some(a),
                None => asks.push((
                    ask.key.clone(),
                    Ask::Elicit {
                        message: ask.message.clone(),
                        schema: ask.schema.clone(),
                    },
                )),
            }
        }
        let mut sampled = None;
        if let Some(sample) = &tool.sample {
            match answer(&sample.key).and_then(sample_answer) {
                Some(t) => sampled = Some(t),
                None => asks.push((
                    sample.key.clone(),
                    Ask::Sample {
                        prompt: self.templates.render_sample(tool, args)?,
                        max_tokens: sample.max_tokens,
                    },
                )),
            }
        }
        if !asks.is_empty() {
            let state = self.confirmations.mint(binding).await.map_err(|e| {
                CallError::RequestState(format!("no state can be issued now ({e})"))
            })?;
            return Err(CallError::InputRequired(Box::new(InputRequired {
                asks,
                state,
            })));
        }
        if let Some(a) = elicited {
            bind_extra(tool, args, "elicit_action", SqlValue::Text(a.action));
            let content = a.content.map_or(SqlValue::Null(ParamType::String), |c| {
                SqlValue::Text(c.to_string())
            });
            bind_extra(tool, args, "elicit_content", content);
        }
        if let Some(text) = sampled {
            bind_extra(tool, args, "sample_text", SqlValue::Text(text));
        }
        Ok(())
    }
}

/// The confirmation ledger's tool name prefix for request states.
const INPUT_STATE_TOOL: &str = "input-state:";

fn state_refusal(r: &Refusal) -> String {
    match r {
        Refusal::Unknown => "it is not one this server issued (altered, or from elsewhere)",
        Refusal::Used => "it was already used; each round's state works once",
        Refusal::Expired => "it has expired (states last 5 minutes)",
        Refusal::OtherUser => "it was issued to another user",
        Refusal::OtherOrg => "it was issued in another organisation",
        Refusal::OtherTool => "it was issued for another tool",
        Refusal::ArgumentsChanged => "it was issued for other arguments",
    }
    .to_string()
}

/// An ElicitResult: `action` accept, decline or cancel; with accept, `content` an object.
fn elicit_answer(v: &Value) -> Option<Elicited> {
    let action = v.get("action")?.as_str()?;
    match action {
        "accept" => Some(Elicited {
            action: action.to_string(),
            content: Some(v.get("content").filter(|c| c.is_object())?.clone()),
        }),
        "decline" | "cancel" => Some(Elicited {
            action: action.to_string(),
            content: None,
        }),
        _ => None,
    }
}

/// A CreateMessageResult's text.
fn sample_answer(v: &Value) -> Option<String> {
    let content = v.get("content")?;
    let text = match content {
        Value::Array(parts) => parts
            .iter()
            .find_map(|p| p.get("text").and_then(Value::as_str)),
        other => other.get("text").and_then(Value::as_str),
    }?;
    Some(text.to_string())
}
