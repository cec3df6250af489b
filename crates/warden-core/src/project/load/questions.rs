//! A tool's questions to its caller's client (`elicit`, `sample`, `roots`), and how a client
//! of the MCP tasks extension gets it (`task`, `ask`).

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::Checker;
use crate::project::{Question, QuestionKind, TaskMode, model};

/// What `tool` took from a tool's entry besides its questions.
pub(super) struct TaskSettings {
    pub task: Option<TaskMode>,
    pub ask_before_task: bool,
}

impl Checker<'_> {
    /// The questions, ordered by round (declaration order within one), each key once.
    pub(super) fn questions(
        &mut self,
        elicit: Option<Spanned<model::OneOrMany<model::ElicitSpec>>>,
        sample: Option<Spanned<model::SampleSpec>>,
        roots: Option<Spanned<model::RootsSpec>>,
        at: serde_saphyr::Location,
        field: &str,
    ) -> Vec<Question> {
        let mut out = Vec::new();
        if let Some(e) = elicit {
            let list = matches!(e.value, model::OneOrMany::Many(_));
            let loc = e.referenced;
            let items = e.value.into_vec();
            if items.is_empty() {
                self.at(
                    loc,
                    format!("{field}.elicit"),
                    "an empty list asks nothing; remove `elicit` or add a question",
                );
            }
            for (i, q) in items.into_iter().enumerate() {
                let qfield = if list {
                    format!("{field}.elicit[{i}]")
                } else {
                    format!("{field}.elicit")
                };
                let default = if i == 0 {
                    "elicit".to_string()
                } else {
                    format!("elicit_{}", i + 1)
                };
                let key = self.answer_key(q.key.as_ref(), &default, &format!("{qfield}.key"));
                let round = self.round(q.round.as_ref(), &qfield);
                if let Err(err) = minijinja::Environment::new().template_from_str(&q.message) {
                    self.at(
                        loc,
                        format!("{qfield}.message"),
                        format!("template error: {err}"),
                    );
                }
                match q.schema.value {
                    serde_json::Value::Object(m)
                        if m.get("type").and_then(|v| v.as_str()) == Some("object") =>
                    {
                        out.push(Question {
                            key,
                            round,
                            kind: QuestionKind::Elicit {
                                message: q.message,
                                schema: m,
                            },
                        });
                    }
                    _ => self.err(
                        &q.schema,
                        format!("{qfield}.schema"),
                        "must be a JSON Schema object with `type: object`",
                    ),
                }
            }
        }
        if let Some(s) = sample {
            if let Err(e) = minijinja::Environment::new().template_from_str(&s.value.prompt.value) {
                self.err(
                    &s.value.prompt,
                    format!("{field}.sample.prompt"),
                    format!("template error: {e}"),
                );
            }
            let key = self.answer_key(
                s.value.key.as_ref(),
                "sample",
                &format!("{field}.sample.key"),
            );
            let round = self.round(s.value.round.as_ref(), &format!("{field}.sample"));
            out.push(Question {
                key,
                round,
                kind: QuestionKind::Sample {
                    prompt: s.value.prompt.value,
                    max_tokens: s.value.max_tokens.unwrap_or(256),
                },
            });
        }
        if let Some(r) = roots {
            let key = self.answer_key(r.value.key.as_ref(), "roots", &format!("{field}.roots.key"));
            let round = self.round(r.value.round.as_ref(), &format!("{field}.roots"));
            out.push(Question {
                key,
                round,
                kind: QuestionKind::Roots,
            });
        }
        let mut seen = HashSet::new();
        for q in &out {
            if !seen.insert(q.key.clone()) {
                self.at(
                    at,
                    field,
                    format!(
                        "two questions use the key '{}'; give each its own `key`",
                        q.key
                    ),
                );
            }
        }
        // A stable sort: within a round, the order written.
        out.sort_by_key(|q| q.round);
        let rounds: std::collections::BTreeSet<u32> = out.iter().map(|q| q.round).collect();
        if let Some((expected, round)) = (1..).zip(rounds).find(|(e, r)| e != r) {
            self.at(
                at,
                field,
                format!("no question is asked in round {expected}, but one is in round {round}; number the rounds 1, 2, 3, ... without gaps"),
            );
        }
        out
    }

    fn round(&mut self, round: Option<&Spanned<u32>>, field: &str) -> u32 {
        match round {
            None => 1,
            Some(r) if (1..=10).contains(&r.value) => r.value,
            Some(r) => {
                self.err(r, format!("{field}.round"), "must be 1 to 10");
                1
            }
        }
    }

    /// `task` and `ask`.
    pub(super) fn task_settings(
        &mut self,
        task: Option<&Spanned<String>>,
        ask: Option<&Spanned<String>>,
        write: bool,
        asks_anything: bool,
        field: &str,
    ) -> TaskSettings {
        let mode = task.and_then(|t| match t.value.as_str() {
            "optional" => Some(TaskMode::Optional),
            "required" => Some(TaskMode::Required),
            other => {
                self.err(
                    t,
                    format!("{field}.task"),
                    format!("'{other}' is not a task mode; use optional or required"),
                );
                None
            }
        });
        if let (Some(t), true) = (task, write) {
            self.err(
                t,
                format!("{field}.task"),
                "a write is confirmed by its caller before it runs, and runs at once; `task` is for read tools",
            );
        }
        if let Some(t) = task
            && self.stateless
        {
            self.err(
                t,
                format!("{field}.task"),
                "a task lives in the memory of the instance that runs it, and `server.sessions` is stateless (several instances); remove `task`, or serve one instance with `sessions: stateful`",
            );
        }
        let before = match ask {
            None => true,
            Some(a) => {
                if task.is_none() {
                    self.err(
                        a,
                        format!("{field}.ask"),
                        "only a tool with `task` has a choice of when to ask; remove `ask`",
                    );
                } else if !asks_anything {
                    self.err(
                        a,
                        format!("{field}.ask"),
                        "this tool asks nothing (no elicit, sample or roots); remove `ask`",
                    );
                }
                match a.value.as_str() {
                    "before" => true,
                    "during" => false,
                    other => {
                        self.err(
                            a,
                            format!("{field}.ask"),
                            format!("'{other}' is not a choice; use before (the task starts once every question is answered) or during (the task asks them)"),
                        );
                        true
                    }
                }
            }
        };
        TaskSettings {
            task: mode,
            ask_before_task: before,
        }
    }
}
