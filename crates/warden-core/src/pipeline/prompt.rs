//! `prompts/get`: find, authorize, arguments, input policy, render (reading the resources a
//! prompt embeds through the same stages), one record.

use std::time::Instant;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::audit;
use crate::identity::Principal;
use crate::project::{Access, PromptMessage};

use super::Pipeline;
use super::error::{PromptError, ResourceError};
use super::input_policy::resource_variables;
use super::record;
use super::request::{ClientChannel, PromptRequest};
use super::response::{Content, PromptMessageOut, ResourceBody};
use super::template;

impl Pipeline {
    /// Renders a prompt for `caller`, and records it (with the resources it embeds) or its
    /// refusal.
    pub async fn get_prompt(
        &self,
        req: PromptRequest<'_>,
    ) -> Result<Vec<PromptMessageOut>, PromptError> {
        let PromptRequest {
            name,
            arguments,
            caller,
            source,
            peer,
            cancel,
            channel,
        } = req;
        let started = Instant::now();
        let result = self
            .get_prompt_unrecorded(name, arguments, caller, cancel, channel)
            .await;
        let label = Some((
            "gen_ai.prompt.name",
            self.project
                .prompt(name)
                .map_or_else(|| super::UNKNOWN.to_string(), |p| p.name.clone()),
        ));
        if let Err(PromptError::Resource(ResourceError::Audit(_))) = &result {
            record::measure_outcome("prompts/get", label, None, peer, started);
            return result;
        }
        let mut event = record::call_event("prompt_get", name, caller, source, peer);
        event.params = Some(audit::plain_arguments(arguments));
        record::finish_prompt(&mut event, &result, started);
        let outcome = event.outcome;
        let recorded = self.audit.record(event).await;
        let outcome = recorded.as_ref().ok().map(|()| outcome);
        record::measure_outcome("prompts/get", label, outcome, peer, started);
        recorded.map_err(|e| PromptError::Resource(ResourceError::Audit(e)))?;
        result
    }

    async fn get_prompt_unrecorded(
        &self,
        name: &str,
        arguments: &Map<String, Value>,
        caller: Option<&Principal>,
        cancel: &CancellationToken,
        channel: &dyn ClientChannel,
    ) -> Result<Vec<PromptMessageOut>, PromptError> {
        let prompt = self
            .project
            .prompt(name)
            .ok_or_else(|| PromptError::Unknown(name.to_string()))?;
        self.authorize(caller, Access::Read)
            .map_err(|d| PromptError::Resource(ResourceError::Denied(d)))?;
        if let Some(k) = arguments
            .keys()
            .find(|k| !prompt.arguments.iter().any(|a| &a.name == *k))
        {
            return Err(PromptError::UnknownArgument(k.clone()));
        }
        if let Some(a) = prompt
            .arguments
            .iter()
            .find(|a| a.required && !arguments.contains_key(&a.name))
        {
            return Err(PromptError::MissingArgument(a.name.clone()));
        }
        let vars = resource_variables(&prompt.name, "prompt", arguments, caller);
        self.project
            .policies
            .check_input(&vars)
            .map_err(|d| PromptError::Resource(ResourceError::Policy(d)))?;
        let mut values = arguments.clone();
        if !prompt.questions.is_empty() {
            values.extend(
                self.prompt_answers(prompt, arguments, caller, channel)
                    .await?,
            );
        }
        let ctx = template::value(&Value::Object(values));
        let mut out = Vec::with_capacity(prompt.messages.len());
        for (i, m) in prompt.messages.iter().enumerate() {
            out.push(match m {
                PromptMessage::Text { role, .. } => PromptMessageOut {
                    speaker: *role,
                    content: Content::Text(self.templates.render_message(name, i, &ctx)?),
                },
                PromptMessage::Resource { role, .. } => {
                    let uri = self.templates.render_message(name, i, &ctx)?;
                    let r = self.read_resource_unrecorded(&uri, caller, cancel).await?;
                    let text = match r.body {
                        ResourceBody::Text(t) | ResourceBody::Blob(t) => t,
                    };
                    PromptMessageOut {
                        speaker: *role,
                        content: Content::Resource {
                            uri: r.uri,
                            text,
                            mime_type: r.mime_type,
                        },
                    }
                }
                PromptMessage::Image {
                    role,
                    data,
                    mime_type,
                } => PromptMessageOut {
                    speaker: *role,
                    content: Content::Image {
                        data: data.clone(),
                        mime_type: mime_type.clone(),
                    },
                },
            });
        }
        Ok(out)
    }

    /// Values offered for a prompt argument, filtered by what the user typed so far.
    pub fn complete_prompt_argument(
        &self,
        prompt: &str,
        argument: &str,
        prefix: &str,
    ) -> Vec<String> {
        self.project
            .prompt(prompt)
            .and_then(|p| p.arguments.iter().find(|a| a.name == argument))
            .map(|a| {
                a.completions
                    .iter()
                    .filter(|c| c.starts_with(prefix))
                    .take(100)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
