//! The questions a tool asks its caller's client before its SQL runs (`elicit`, `sample`,
//! `roots`), and how their answers are bound.
//!
//! An older client is asked over its open connection, one question after another. A client
//! of MCP 2026-07-28 is asked through the result (multi round-trip requests): the questions
//! of the first unanswered round come back as `input_required` with a `requestState`, and
//! the client calls again with the answers and the state. The state is a single-use,
//! 5-minute token of the confirmation ledger, bound to the caller, the tool and the
//! arguments, and to the answers of earlier rounds, which it carries
//! (`<token>.<base64url(JSON)>`): an edited answer, like an edited token, is refused.
//!
//! An answer adds no authority (the client that gives it could give it when asked), so
//! answers sent without a state are taken as they are; a state, when sent, must be valid.
//! A write's confirmation is not an answer: it never runs without its state (`confirm.rs`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::confirm::{Binding, LedgerError, Refusal};
use crate::exec::SqlValue;
use crate::project::{
    ANSWERS, ELICIT_ACTION, ELICIT_CONTENT, ParamType, Question, QuestionKind, ROOTS, SAMPLE_TEXT,
    Tool,
};

use super::Pipeline;
use super::arguments::bind_extra;
use super::error::CallError;
use super::request::{Ask, CallRequest, Elicited, InputRequired, InputRound};

/// The confirmation ledger's tool name prefix for request states.
const INPUT_STATE_TOOL: &str = "input-state:";

impl Pipeline {
    /// An older client: asked now, over its open connection (server-to-client requests),
    /// in order.
    pub(super) async fn ask_now(
        &self,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
    ) -> Result<(), CallError> {
        if tool.questions.is_empty() {
            return Ok(());
        }
        let mut answers = Map::new();
        for q in &tool.questions {
            let answer = match self.ask(tool, q, args)? {
                Ask::Elicit { message, schema } => {
                    let a = req
                        .channel
                        .elicit(message, schema)
                        .await
                        .map_err(CallError::Client)?;
                    match a.content {
                        Some(c) => json!({ "action": a.action, "content": c }),
                        None => json!({ "action": a.action }),
                    }
                }
                Ask::Sample { prompt, max_tokens } => {
                    let text = req
                        .channel
                        .sample(prompt, max_tokens)
                        .await
                        .map_err(CallError::Client)?;
                    json!({ "role": "assistant", "content": { "type": "text", "text": text } })
                }
                Ask::Roots => {
                    let roots = req.channel.list_roots().await.map_err(CallError::Client)?;
                    json!({ "roots": roots })
                }
            };
            answers.insert(q.key.clone(), answer);
        }
        bind_answers(tool, args, &answers)
    }

    /// A 2026-07-28 client: the answers come with the call. Nothing runs until every
    /// question is answered; a state that is tampered with, replayed, expired, someone
    /// else's or bound to other arguments refuses the call.
    pub(super) async fn answered(
        &self,
        tool: &Tool,
        args: &mut [SqlValue],
        req: &CallRequest<'_>,
        round: &InputRound,
    ) -> Result<(), CallError> {
        if tool.questions.is_empty() {
            return Ok(());
        }
        // Never ask what the client did not say it can answer.
        if let Some(q) = tool
            .questions
            .iter()
            .find(|q| !round.can(q.kind.capability()))
        {
            return Err(CallError::MissingCapability(q.kind.capability()));
        }
        let mut answers = match &round.state {
            Some(state) => self.redeem_state(tool, args, req, state).await?,
            None => Map::new(),
        };
        for q in &tool.questions {
            if answers.contains_key(&q.key) {
                continue;
            }
            if let Some(v) = round.responses.get(&q.key).filter(|v| valid(q, v)) {
                answers.insert(q.key.clone(), v.clone());
            }
        }
        let pending: Vec<&Question> = tool
            .questions
            .iter()
            .filter(|q| !answers.contains_key(&q.key))
            .collect();
        if let Some(next) = pending.iter().map(|q| q.round).min() {
            let mut asks = Vec::new();
            for q in pending.into_iter().filter(|q| q.round == next) {
                asks.push((q.key.clone(), self.ask(tool, q, args)?));
            }
            let state = self.mint_state(tool, args, req, &answers).await?;
            return Err(CallError::InputRequired(Box::new(InputRequired {
                asks,
                state,
            })));
        }
        bind_answers(tool, args, &answers)
    }

    /// The question as the client is to see it, its templates rendered with the arguments.
    fn ask(&self, tool: &Tool, q: &Question, args: &[SqlValue]) -> Result<Ask, CallError> {
        Ok(match &q.kind {
            QuestionKind::Elicit { schema, .. } => Ask::Elicit {
                message: self.templates.render_question(tool, &q.key, args)?,
                schema: schema.clone(),
            },
            QuestionKind::Sample { max_tokens, .. } => Ask::Sample {
                prompt: self.templates.render_question(tool, &q.key, args)?,
                max_tokens: *max_tokens,
            },
            QuestionKind::Roots => Ask::Roots,
        })
    }

    async fn mint_state(
        &self,
        tool: &Tool,
        args: &[SqlValue],
        req: &CallRequest<'_>,
        carried: &Map<String, Value>,
    ) -> Result<String, CallError> {
        let carried = if carried.is_empty() {
            String::new()
        } else {
            Value::Object(carried.clone()).to_string()
        };
        let token = self
            .confirmations
            .mint(state_binding(req, tool, args, &carried))
            .await
            .map_err(|e| CallError::RequestState(format!("no state can be issued now ({e})")))?;
        Ok(if carried.is_empty() {
            token
        } else {
            format!("{token}.{}", URL_SAFE_NO_PAD.encode(carried))
        })
    }

    /// The answers of earlier rounds a valid state carries.
    async fn redeem_state(
        &self,
        tool: &Tool,
        args: &[SqlValue],
        req: &CallRequest<'_>,
        state: &str,
    ) -> Result<Map<String, Value>, CallError> {
        let altered = || CallError::RequestState(state_refusal(&Refusal::Unknown));
        let (token, carried) = match state.split_once('.') {
            None => (state, String::new()),
            Some((token, b64)) => {
                let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| altered())?;
                (token, String::from_utf8(bytes).map_err(|_| altered())?)
            }
        };
        self.confirmations
            .redeem(token, &state_binding(req, tool, args, &carried))
            .await
            .map_err(|e| match e {
                LedgerError::Refused(r) => CallError::RequestState(state_refusal(&r)),
                LedgerError::Internal(m) => {
                    CallError::RequestState(format!("it cannot be checked now ({m})"))
                }
            })?;
        if carried.is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str(&carried) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(altered()),
        }
    }
}

/// A state's binding: the caller, the tool (under its own prefix, so that a confirmation
/// token and a state never stand for each other), the arguments and the carried answers.
fn state_binding(req: &CallRequest<'_>, tool: &Tool, args: &[SqlValue], carried: &str) -> Binding {
    let name = format!("{INPUT_STATE_TOOL}{}", tool.name);
    if carried.is_empty() {
        return super::confirm::binding(req, tool, name, args);
    }
    let mut with = args.to_vec();
    with.push(SqlValue::Text(carried.to_string()));
    super::confirm::binding(req, tool, name, &with)
}

fn state_refusal(r: &Refusal) -> String {
    match r {
        Refusal::Unknown => "it is not one this server issued (altered, or from elsewhere)",
        Refusal::Used => "it was already used; each round's state works once",
        Refusal::Expired => "it has expired (states last 5 minutes)",
        Refusal::OtherUser => "it was issued to another user",
        Refusal::OtherOrg => "it was issued in another organisation",
        Refusal::OtherTool => "it was issued for another tool",
        Refusal::ArgumentsChanged => "it was issued for other arguments or other answers",
    }
    .to_string()
}

/// Is `v` an answer of the kind `q` asks for?
fn valid(q: &Question, v: &Value) -> bool {
    match q.kind {
        QuestionKind::Elicit { .. } => elicit_answer(v).is_some(),
        QuestionKind::Sample { .. } => sample_answer(v).is_some(),
        QuestionKind::Roots => roots_answer(v).is_some(),
    }
}

/// Binds every answer: the first elicitation as `:elicit_action` and `:elicit_content`, the
/// model's reply as `:sample_text`, the roots as `:roots`, and all of them under their keys
/// in `:answers` (JSON text: an elicitation as `{action, content}`, a reply as its text,
/// roots as their list).
fn bind_answers(
    tool: &Tool,
    args: &mut [SqlValue],
    answers: &Map<String, Value>,
) -> Result<(), CallError> {
    let mut all = Map::new();
    let mut first_elicit = true;
    for q in &tool.questions {
        let Some(v) = answers.get(&q.key) else {
            return Err(CallError::Client(format!(
                "the answer to '{}' is missing",
                q.key
            )));
        };
        let bad = || CallError::Client(format!("the answer to '{}' is not of its kind", q.key));
        match q.kind {
            QuestionKind::Elicit { .. } => {
                let a = elicit_answer(v).ok_or_else(bad)?;
                all.insert(
                    q.key.clone(),
                    json!({ "action": a.action, "content": a.content }),
                );
                if first_elicit {
                    first_elicit = false;
                    bind_extra(tool, args, ELICIT_ACTION, SqlValue::Text(a.action));
                    let content = a.content.map_or(SqlValue::Null(ParamType::String), |c| {
                        SqlValue::Text(c.to_string())
                    });
                    bind_extra(tool, args, ELICIT_CONTENT, content);
                }
            }
            QuestionKind::Sample { .. } => {
                let text = sample_answer(v).ok_or_else(bad)?;
                all.insert(q.key.clone(), Value::String(text.clone()));
                bind_extra(tool, args, SAMPLE_TEXT, SqlValue::Text(text));
            }
            QuestionKind::Roots => {
                let roots = roots_answer(v).ok_or_else(bad)?;
                bind_extra(tool, args, ROOTS, SqlValue::Text(roots.to_string()));
                all.insert(q.key.clone(), roots);
            }
        }
    }
    bind_extra(
        tool,
        args,
        ANSWERS,
        SqlValue::Text(Value::Object(all).to_string()),
    );
    Ok(())
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

/// A ListRootsResult's roots: each an object with a string `uri` (and perhaps a `name`),
/// kept as `{uri, name}` only.
fn roots_answer(v: &Value) -> Option<Value> {
    let roots = v.get("roots")?.as_array()?;
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        let uri = r.get("uri")?.as_str()?;
        let mut root = Map::new();
        root.insert("uri".into(), Value::String(uri.to_string()));
        if let Some(name) = r.get("name").and_then(Value::as_str) {
            root.insert("name".into(), Value::String(name.to_string()));
        }
        out.push(Value::Object(root));
    }
    Some(Value::Array(out))
}
