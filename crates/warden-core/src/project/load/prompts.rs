//! One entry of `prompts`: its arguments, and a template or messages whose templates use
//! only declared arguments; a resource message with a fixed URI must name one of this
//! project's resources.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::{Checker, is_name, is_tool_name};
use crate::project::{
    Prompt, PromptArgument, PromptMessage, Resource, ResourceUri, Speaker, model,
};

impl Checker<'_> {
    pub(super) fn prompt(
        &mut self,
        mut p: model::PromptSpec,
        field: &str,
        resources: &[Resource],
    ) -> Option<Prompt> {
        let before = self.errors.len();
        if let Some(e) = &p.elicit
            && self.stateless
        {
            self.err(e, format!("{field}.elicit"), "asking the user mid-request needs MCP sessions, and `server.sessions` is stateless; remove `elicit`, or serve one instance with `sessions: stateful`");
        }
        let questions = self.questions(p.elicit.take(), None, None, p.name.referenced, field);
        if !is_tool_name(&p.name.value) {
            self.err(
                &p.name,
                format!("{field}.name"),
                format!("'{}' is not a valid prompt name", p.name.value),
            );
        }
        let mut arguments = Vec::new();
        for (i, a) in p.arguments.into_iter().enumerate() {
            if !is_name(&a.value.name.value) {
                self.err(
                    &a.value.name,
                    format!("{field}.arguments[{i}].name"),
                    "start with a letter or '_', then letters, digits or '_'",
                );
            }
            arguments.push(PromptArgument {
                name: a.value.name.value,
                description: a.value.description,
                required: a.value.required,
                completions: a.value.completions,
            });
        }
        let mut declared: HashSet<&str> = arguments.iter().map(|a| a.name.as_str()).collect();
        if !questions.is_empty() {
            for a in &arguments {
                if [
                    crate::project::ANSWERS,
                    crate::project::ELICIT_ACTION,
                    crate::project::ELICIT_CONTENT,
                ]
                .contains(&a.name.as_str())
                {
                    self.err(
                        &p.name,
                        format!("{field}.arguments"),
                        format!("'{}' is reserved for the answers to this prompt's questions; rename the argument", a.name),
                    );
                }
            }
            // The answers, which the prompt's questions provide.
            declared.extend([
                crate::project::ANSWERS,
                crate::project::ELICIT_ACTION,
                crate::project::ELICIT_CONTENT,
            ]);
        }
        let mut messages = Vec::new();
        let check_template = |me: &mut Self, t: &Spanned<String>, tfield: String| {
            let env = minijinja::Environment::new();
            match env.template_from_str(&t.value) {
                Ok(tmpl) => {
                    for v in tmpl.undeclared_variables(false) {
                        if !declared.contains(v.as_str()) {
                            me.err(
                                t,
                                tfield.clone(),
                                format!("uses {{{{ {v} }}}}, which is not a declared argument"),
                            );
                        }
                    }
                }
                Err(e) => me.err(t, tfield, format!("template error: {e}")),
            }
        };
        match (&p.template, p.messages.is_empty()) {
            (Some(t), true) => {
                check_template(self, t, format!("{field}.template"));
                messages.push(PromptMessage::Text {
                    role: Speaker::User,
                    template: t.value.clone(),
                });
            }
            (None, false) => {
                for (i, m) in p.messages.iter().enumerate() {
                    let mfield = format!("{field}.messages[{i}]");
                    let role = match m.value.role.as_ref().map(|r| r.value.as_str()) {
                        None | Some("user") => Speaker::User,
                        Some("assistant") => Speaker::Assistant,
                        Some(other) => {
                            self.err(
                                m,
                                format!("{mfield}.role"),
                                format!("'{other}' is not a role; use user or assistant"),
                            );
                            Speaker::User
                        }
                    };
                    match (&m.value.text, &m.value.resource, &m.value.image) {
                        (Some(t), None, None) => {
                            check_template(self, t, format!("{mfield}.text"));
                            messages.push(PromptMessage::Text {
                                role,
                                template: t.value.clone(),
                            });
                        }
                        (None, Some(u), None) if u.value.contains("{{") => {
                            check_template(self, u, format!("{mfield}.resource"));
                            messages.push(PromptMessage::Resource {
                                role,
                                uri: u.value.clone(),
                            });
                        }
                        (None, Some(u), None) => {
                            let known = resources.iter().any(|r| match &r.uri {
                                ResourceUri::Fixed(f) => f == &u.value,
                                ResourceUri::Template(t) => t.matches(&u.value).is_some(),
                            });
                            if !known {
                                self.err(
                                    u,
                                    format!("{mfield}.resource"),
                                    format!("'{}' is not one of this project's resources", u.value),
                                );
                            }
                            messages.push(PromptMessage::Resource {
                                role,
                                uri: u.value.clone(),
                            });
                        }
                        (None, None, Some(data)) => match &m.value.mime_type {
                            Some(mime) => messages.push(PromptMessage::Image {
                                role,
                                data: data.clone(),
                                mime_type: mime.clone(),
                            }),
                            None => self.err(
                                m,
                                format!("{mfield}.mime_type"),
                                "an image message needs mime_type",
                            ),
                        },
                        _ => self.err(m, mfield, "give exactly one of text, resource or image"),
                    }
                }
            }
            _ => self.err(
                &p.name,
                field.to_string(),
                "give either `template` or `messages`",
            ),
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Prompt {
            name: p.name.value,
            title: p.title,
            description: p.description,
            arguments,
            messages,
            questions,
        })
    }
}
