//! The questions a tool asks its caller's client before its SQL runs (`elicit`, `sample`,
//! `roots`), and a prompt before it is rendered (`elicit`), and how their answers are bound
//! (as SQL values for a tool, template values for a prompt).
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
use crate::identity::Principal;
use crate::project::{
    ANSWERS, ELICIT_ACTION, ELICIT_CONTENT, ParamType, Prompt, Question, QuestionKind, ROOTS,
    SAMPLE_TEXT, Tool,
};

use super::Pipeline;
use super::arguments::bind_extra;
use super::error::{CallError, PromptError};
use super::request::{Ask, CallRequest, ClientChannel, Elicited, InputRequired, InputRound};

/// The most answers a state carries from round to round, as JSON.
const MAX_CARRIED: usize = 64 * 1024;

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
        let answers = {
            let bound: &[SqlValue] = args;
            self.resolve(
                &tool.questions,
                round,
                &|carried| state_binding(req, tool, bound, carried),
                &|q| self.ask(tool, q, bound),
            )
            .await
            .map_err(|u| match u {
                Unanswered::Asked(i) => CallError::InputRequired(Box::new(i)),
                Unanswered::BadState(why) => CallError::RequestState(why),
                Unanswered::Missing(c) => CallError::MissingCapability(c),
                Unanswered::Render(e) => e,
            })?
        };
        bind_answers(tool, args, &answers)
    }

    /// The answers to `questions` this round completes (with those its state carries), or
    /// the next round's questions under a new state. `binding` binds a state to the call
    /// and the answers it carries; `ask` renders a question.
    pub(super) async fn resolve<E>(
        &self,
        questions: &[Question],
        round: &InputRound,
        binding: &(dyn Fn(&str) -> Binding + Sync),
        ask: &(dyn Fn(&Question) -> Result<Ask, E> + Sync),
    ) -> Result<Map<String, Value>, Unanswered<E>> {
        // Never ask what the client did not say it can answer.
        if let Some(q) = questions.iter().find(|q| !round.can(q.kind.capability())) {
            return Err(Unanswered::Missing(q.kind.capability()));
        }
        let mut answers = match &round.state {
            Some(state) => self
                .redeem_state(state, binding)
                .await
                .map_err(Unanswered::BadState)?,
            None => Map::new(),
        };
        for q in questions {
            if answers.contains_key(&q.key) {
                continue;
            }
            if let Some(v) = round.responses.get(&q.key).filter(|v| valid(q, v)) {
                answers.insert(q.key.clone(), v.clone());
            }
        }
        let pending: Vec<&Question> = questions
            .iter()
            .filter(|q| !answers.contains_key(&q.key))
            .collect();
        let Some(next) = pending.iter().map(|q| q.round).min() else {
            return Ok(answers);
        };
        let mut asks = Vec::new();
        for q in pending.into_iter().filter(|q| q.round == next) {
            asks.push((q.key.clone(), ask(q).map_err(Unanswered::Render)?));
        }
        let state = self
            .mint_state(&answers, binding)
            .await
            .map_err(Unanswered::BadState)?;
        Err(Unanswered::Asked(InputRequired { asks, state }))
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
        carried: &Map<String, Value>,
        binding: &(dyn Fn(&str) -> Binding + Sync),
    ) -> Result<String, String> {
        let carried = if carried.is_empty() {
            String::new()
        } else {
            Value::Object(carried.clone()).to_string()
        };
        if carried.len() > MAX_CARRIED {
            return Err(format!(
                "the answers so far are {} KiB, more than a state carries ({} KiB); answer more briefly",
                carried.len() / 1024,
                MAX_CARRIED / 1024
            ));
        }
        let token = self
            .confirmations
            .mint(binding(&carried))
            .await
            .map_err(|e| format!("no state can be issued now ({e})"))?;
        Ok(if carried.is_empty() {
            token
        } else {
            format!("{token}.{}", URL_SAFE_NO_PAD.encode(carried))
        })
    }

    /// The answers of earlier rounds a valid state carries.
    async fn redeem_state(
        &self,
        state: &str,
        binding: &(dyn Fn(&str) -> Binding + Sync),
    ) -> Result<Map<String, Value>, String> {
        let altered = || state_refusal(&Refusal::Unknown);
        let (token, carried) = match state.split_once('.') {
            None => (state, String::new()),
            Some((token, b64)) => {
                let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|_| altered())?;
                (token, String::from_utf8(bytes).map_err(|_| altered())?)
            }
        };
        self.confirmations
            .redeem(token, &binding(&carried))
            .await
            .map_err(|e| match e {
                LedgerError::Refused(r) => state_refusal(&r),
                LedgerError::Internal(m) => format!("it cannot be checked now ({m})"),
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

/// Why a round's questions did not resolve to answers.
pub(super) enum Unanswered<E> {
    /// The next round's questions, and the state to send back with their answers.
    Asked(InputRequired),
    /// The state sent is not valid (why), or none can be issued.
    BadState(String),
    /// The client did not declare this capability.
    Missing(&'static str),
    /// A question could not be rendered.
    Render(E),
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

impl Pipeline {
    /// A prompt's answers, as its templates see them: `answers` (each `{action, content}` by
    /// key), and the first as `elicit_action` and `elicit_content`. An older client is
    /// asked now; a 2026-07-28 client through the result, as for tools.
    pub(super) async fn prompt_answers(
        &self,
        prompt: &Prompt,
        arguments: &Map<String, Value>,
        caller: Option<&Principal>,
        channel: &dyn ClientChannel,
    ) -> Result<Map<String, Value>, PromptError> {
        let ctx = super::template::value(&Value::Object(arguments.clone()));
        let ask = |q: &Question| -> Result<Ask, PromptError> {
            match &q.kind {
                QuestionKind::Elicit { schema, .. } => Ok(Ask::Elicit {
                    message: self
                        .templates
                        .render_prompt_question(&prompt.name, &q.key, &ctx)?,
                    schema: schema.clone(),
                }),
                _ => Err(PromptError::Render("a prompt only asks the user".into())),
            }
        };
        let raw = match channel.input_round() {
            Some(round) => {
                let binding = |carried: &str| prompt_binding(caller, prompt, arguments, carried);
                self.resolve(&prompt.questions, round, &binding, &ask)
                    .await
                    .map_err(|u| match u {
                        Unanswered::Asked(i) => PromptError::InputRequired(Box::new(i)),
                        Unanswered::BadState(why) => PromptError::RequestState(why),
                        Unanswered::Missing(c) => PromptError::MissingCapability(c),
                        Unanswered::Render(e) => e,
                    })?
            }
            None => {
                let mut answers = Map::new();
                for q in &prompt.questions {
                    if let Ask::Elicit { message, schema } = ask(q)? {
                        let a = channel
                            .elicit(message, schema)
                            .await
                            .map_err(PromptError::Client)?;
                        answers.insert(
                            q.key.clone(),
                            json!({ "action": a.action, "content": a.content }),
                        );
                    }
                }
                answers
            }
        };
        let mut out = Map::new();
        let mut all = Map::new();
        for q in &prompt.questions {
            let Some(a) = raw.get(&q.key).and_then(elicit_answer) else {
                return Err(PromptError::Client(format!(
                    "the answer to '{}' is not an elicitation result",
                    q.key
                )));
            };
            let answer = json!({ "action": a.action, "content": a.content });
            if all.is_empty() {
                out.insert(ELICIT_ACTION.into(), answer["action"].clone());
                out.insert(ELICIT_CONTENT.into(), answer["content"].clone());
            }
            all.insert(q.key.clone(), answer);
        }
        out.insert(ANSWERS.into(), Value::Object(all));
        Ok(out)
    }
}

/// A prompt's state binding: the caller, the prompt (under the state prefix), its arguments
/// (by name, in order) and the answers the state carries.
fn prompt_binding(
    caller: Option<&Principal>,
    prompt: &Prompt,
    arguments: &Map<String, Value>,
    carried: &str,
) -> Binding {
    let mut values: Vec<SqlValue> = Vec::new();
    let mut names: Vec<&String> = arguments.keys().collect();
    names.sort();
    for n in names {
        values.push(SqlValue::Text(n.clone()));
        values.push(SqlValue::Text(arguments[n].to_string()));
    }
    if !carried.is_empty() {
        values.push(SqlValue::Text(carried.to_string()));
    }
    Binding {
        user: caller.map_or_else(|| "local".to_string(), |c| c.user_id.clone()),
        org: caller.map_or_else(|| "local".to_string(), |c| c.org.clone()),
        tool: format!("{INPUT_STATE_TOOL}prompt:{}", prompt.name),
        args_hash: crate::confirm::args_hash(&prompt.name, &values),
    }
}
