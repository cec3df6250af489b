//! Templates: a prompt's messages and resource URIs and a tool's sampling prompt are
//! minijinja templates, compiled once when the pipeline is built (the loader has already
//! checked their syntax) and only rendered per call. Templates see arguments by name,
//! exactly as the client sent them.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::exec::SqlValue;
use crate::project::{Project, PromptMessage, QuestionKind, Tool};

use super::error::{CallError, PromptError};

#[derive(Debug)]
pub(super) struct Templates {
    env: minijinja::Environment<'static>,
    /// Templates that did not compile, with why (the loader refuses these, so this stays
    /// empty for any project that was served).
    broken: HashMap<String, String>,
}

fn question_key(tool: &str, key: &str) -> String {
    format!("tool/{tool}/q/{key}")
}

fn prompt_question_key(prompt: &str, key: &str) -> String {
    format!("prompt/{prompt}/q/{key}")
}

fn message_key(prompt: &str, index: usize) -> String {
    format!("prompt/{prompt}/{index}")
}

impl Templates {
    pub(super) fn compile(project: &Project) -> Self {
        let mut t = Self {
            env: minijinja::Environment::new(),
            broken: HashMap::new(),
        };
        for tool in &project.tools {
            for q in &tool.questions {
                let source = match &q.kind {
                    QuestionKind::Elicit { message, .. } => message,
                    QuestionKind::Sample { prompt, .. } => prompt,
                    QuestionKind::Roots => continue,
                };
                t.add(question_key(&tool.name, &q.key), source.clone());
            }
        }
        for p in &project.prompts {
            for q in &p.questions {
                if let QuestionKind::Elicit { message, .. } = &q.kind {
                    t.add(prompt_question_key(&p.name, &q.key), message.clone());
                }
            }
            for (i, m) in p.messages.iter().enumerate() {
                match m {
                    PromptMessage::Text { template, .. } => {
                        t.add(message_key(&p.name, i), template.clone());
                    }
                    PromptMessage::Resource { uri, .. } => {
                        t.add(message_key(&p.name, i), uri.clone());
                    }
                    PromptMessage::Image { .. } => {}
                }
            }
        }
        t
    }

    fn add(&mut self, key: String, source: String) {
        if let Err(e) = self.env.add_template_owned(key.clone(), source) {
            self.broken.insert(key, e.to_string());
        }
    }

    fn render(&self, key: &str, ctx: minijinja::Value) -> Result<String, String> {
        if let Some(why) = self.broken.get(key) {
            return Err(why.clone());
        }
        self.env
            .get_template(key)
            .and_then(|t| t.render(ctx))
            .map_err(|e| e.to_string())
    }

    /// A question's text (an elicitation's message, a sampling prompt), with the call's
    /// bound values by parameter name.
    pub(super) fn render_question(
        &self,
        tool: &Tool,
        key: &str,
        args: &[SqlValue],
    ) -> Result<String, CallError> {
        let mut ctx = Map::new();
        for (name, v) in tool.statement.names.iter().zip(args) {
            let j = match v {
                SqlValue::Null(_) => Value::Null,
                SqlValue::Int(i) => json!(i),
                SqlValue::Float(f) => json!(f),
                SqlValue::Text(s) => json!(s),
                SqlValue::Bool(b) => json!(b),
            };
            ctx.insert(name.clone(), j);
        }
        self.render(&question_key(&tool.name, key), value(&Value::Object(ctx)))
            .map_err(|e| CallError::Client(format!("cannot render a template of this tool: {e}")))
    }

    /// A prompt's question, rendered with its arguments.
    pub(super) fn render_prompt_question(
        &self,
        prompt: &str,
        key: &str,
        ctx: &minijinja::Value,
    ) -> Result<String, PromptError> {
        self.render(&prompt_question_key(prompt, key), ctx.clone())
            .map_err(PromptError::Render)
    }

    /// Message `index` of prompt `prompt` (its text, or its resource URI).
    pub(super) fn render_message(
        &self,
        prompt: &str,
        index: usize,
        ctx: &minijinja::Value,
    ) -> Result<String, PromptError> {
        self.render(&message_key(prompt, index), ctx.clone())
            .map_err(PromptError::Render)
    }
}

/// JSON to a template value.
pub(super) fn value(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN)),
            minijinja::Value::from,
        ),
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(a) => minijinja::Value::from(a.iter().map(value).collect::<Vec<_>>()),
        Value::Object(m) => {
            minijinja::Value::from_pairs(m.iter().map(|(k, v)| (k.as_str(), value(v))))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn templates_see_arguments_by_name() {
        let ctx = super::value(&json!({ "arg1": "hello", "n": 3, "nested": { "k": true } }));
        let out = minijinja::Environment::new()
            .render_str("{{ arg1 }} {{ n + 1 }} {{ nested.k }}", ctx)
            .unwrap();
        // Jinja semantics: booleans render as True/False.
        assert_eq!(out, "hello 4 True");
    }
}
