//! Confirm: the third key for writes. Without `confirm: true`, the write runs in a
//! transaction that is always rolled back (a preview) and a single-use token bound to
//! exactly this call is minted; with it, that token is redeemed before anything runs.

use serde_json::Value;

use crate::authz::Permit;
use crate::confirm::{self, Binding};
use crate::exec::SqlValue;
use crate::project::Tool;

use super::Pipeline;
use super::error::CallError;
use super::request::{Ask, CallRequest, InputRequired, InputRound};
use super::response::Preview;

impl Pipeline {
    /// `(confirm, token)`: what the call says of its confirmation.
    pub(super) async fn confirm(
        &self,
        permit: &Permit,
        tool: &Tool,
        args: &[SqlValue],
        (confirm, token): (bool, Option<String>),
        req: &CallRequest<'_>,
        vars: &mut serde_json::Map<String, Value>,
    ) -> Result<(), CallError> {
        // An MCP 2026-07-28 client that can be asked: the preview is a question in the
        // result, and the state it answers under is the confirmation token itself. (A write
        // tool asks no questions of its own: the loader refuses them.)
        if !confirm
            && tool.questions.is_empty()
            && let Some(round) = req.channel.input_round().filter(|r| r.can_elicit)
        {
            return self
                .confirm_by_question(permit, tool, args, round, req, vars)
                .await;
        }
        let binding = binding(req, tool, tool.name.clone(), args);
        if !confirm {
            let (preview, token) = self.preview(permit, tool, args, binding, req, vars).await?;
            return Err(CallError::ConfirmationRequired(Box::new(Preview {
                tool: tool.name.clone(),
                rows_affected: preview.rows_affected,
                rows: preview.rows,
                before: preview.before,
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

    /// The write run and rolled back, and a token minted for exactly this call.
    async fn preview(
        &self,
        permit: &Permit,
        tool: &Tool,
        args: &[SqlValue],
        binding: Binding,
        req: &CallRequest<'_>,
        vars: &mut serde_json::Map<String, Value>,
    ) -> Result<(Previewed, String), CallError> {
        let data = self.data.for_caller(req.caller).await?;
        // A generated update or delete shows the row as it is, read first.
        let before = match tool.generated.as_ref().and_then(|g| g.before.as_ref()) {
            Some(stmt) => {
                let bound = super::paging::rebind(&stmt.names, &tool.statement.names, args);
                Some(
                    data.dry_run(permit, stmt, &bound, &req.cancel)
                        .await
                        .map_err(|e| withheld(tool, e))?
                        .rows,
                )
            }
            None => None,
        };
        let out = data
            .dry_run(permit, &tool.statement, args, &req.cancel)
            .await
            .map_err(|e| withheld(tool, e))?;
        // What the caller may not see in a result, they do not see in a preview either.
        let mut seen = |rows: Vec<serde_json::Map<String, Value>>| -> Result<_, CallError> {
            let mut v = serde_json::json!({ "rows": rows });
            tool.policies
                .apply_output(vars, &mut v)
                .map_err(CallError::Policy)?;
            Ok(match v.get_mut("rows").map(Value::take) {
                Some(Value::Array(rows)) => rows
                    .into_iter()
                    .filter_map(|r| match r {
                        Value::Object(o) => Some(o),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
        };
        let preview = Previewed {
            rows_affected: out.rows_affected,
            rows: seen(out.rows)?,
            before: before.map(&mut seen).transpose()?,
        };
        let token = self
            .confirmations
            .mint(binding)
            .await
            .map_err(|e| CallError::Confirmation(e.to_string()))?;
        Ok((preview, token))
    }

    /// The round-trip form of confirmation: no state yet, the preview comes back as a
    /// question (key `confirm`) with a fresh confirmation token as its state; the answer
    /// "confirm: true" under that state redeems it, and only for exactly this call.
    async fn confirm_by_question(
        &self,
        permit: &Permit,
        tool: &Tool,
        args: &[SqlValue],
        round: &InputRound,
        req: &CallRequest<'_>,
        vars: &mut serde_json::Map<String, Value>,
    ) -> Result<(), CallError> {
        let binding = binding(req, tool, tool.name.clone(), args);
        if let Some(state) = &round.state {
            self.confirmations
                .redeem(state, &binding)
                .await
                .map_err(|e| CallError::RequestState(e.to_string()))?;
            let answer = round.responses.get(CONFIRM_KEY);
            let action = answer.and_then(|a| a.get("action")).and_then(Value::as_str);
            let yes = answer
                .and_then(|a| a.get("content"))
                .and_then(|c| c.get("confirm"))
                .and_then(Value::as_bool);
            return match (action, yes) {
                (Some("accept"), Some(true)) => Ok(()),
                _ => Err(CallError::Confirmation(
                    "the person did not confirm the change".into(),
                )),
            };
        }
        let (preview, token) = self.preview(permit, tool, args, binding, req, vars).await?;
        let rows = serde_json::to_string(&preview.rows).unwrap_or_default();
        let message = format!(
            "{} would change {} row(s){}{}. Make this change?",
            tool.name,
            preview.rows_affected,
            super::response::before_text(preview.before.as_deref()),
            if preview.rows.is_empty() {
                String::new()
            } else {
                format!("; afterwards they would read: {rows}")
            }
        );
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "confirm": { "type": "boolean", "title": "Make this change", "default": false }
            },
            "required": ["confirm"],
        });
        let serde_json::Value::Object(schema) = schema else {
            return Err(CallError::Confirmation("no question can be built".into()));
        };
        Err(CallError::InputRequired(Box::new(InputRequired {
            asks: vec![(CONFIRM_KEY.to_string(), Ask::Elicit { message, schema })],
            state: token,
        })))
    }
}

/// What a token for this call is bound to: the caller (or `local` under `auth: none`),
/// their organisation, `name` (the tool's, or a name of its own for another kind of token)
/// and the call's bound values.
pub(super) fn binding(
    req: &CallRequest<'_>,
    tool: &Tool,
    name: String,
    args: &[SqlValue],
) -> Binding {
    Binding {
        user: req
            .caller
            .map_or_else(|| "local".to_string(), |c| c.user_id.clone()),
        org: req
            .caller
            .map_or_else(|| "local".to_string(), |c| c.org.clone()),
        tool: name,
        args_hash: confirm::args_hash(&tool.name, args),
    }
}

fn withheld(tool: &Tool, e: crate::exec::ExecError) -> CallError {
    if super::execute::carries_sensitive(tool) {
        CallError::Execution(e.withheld())
    } else {
        CallError::Execution(e)
    }
}

/// What a preview found: the write's effect, and the rows before it when read.
struct Previewed {
    rows_affected: u64,
    rows: Vec<serde_json::Map<String, Value>>,
    before: Option<Vec<serde_json::Map<String, Value>>>,
}

/// The key a round-trip confirmation's question goes under.
pub const CONFIRM_KEY: &str = "confirm";
