//! `policies`, at the top level and per tool: input and output rules with their CEL
//! conditions compiled at load, the names each condition reads checked against what its
//! stage provides, and the stable text the policy version is hashed from.

use std::collections::HashSet;

use serde_saphyr::Spanned;

use super::suggest::{did_you_mean, listed};
use super::{Checker, first_line};
use crate::policy::{Condition, NameProblem, Scope, Stage};
use crate::project::model;

/// Where a set of rules applies, which decides what `args` holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Applies<'a> {
    /// The project's own rules: every tool, resource and prompt, so `args` may hold any
    /// argument one of them declares.
    Everywhere(&'a [String]),
    /// One tool's rules: `args` holds its parameters.
    Tool { name: &'a str, params: &'a [String] },
}

impl Checker<'_> {
    /// Compiles a set of policy rules. With `report` (where they apply), every problem
    /// becomes a load error, names the conditions read included; without, they were
    /// reported elsewhere and are only compiled.
    pub(super) fn policies(
        &mut self,
        spec: &model::PoliciesSpec,
        field: &str,
        report: Option<Applies<'_>>,
    ) -> (
        Vec<crate::policy::InputRule>,
        Vec<crate::policy::OutputRule>,
    ) {
        use crate::policy::{InputRule, OutputAction, OutputRule};
        let mut names = HashSet::new();
        let mut input = Vec::new();
        for (i, r) in spec.input.iter().enumerate() {
            let f = format!("{field}.input[{i}]");
            let r = &r.value;
            if report.is_some() && !names.insert(r.name.value.clone()) {
                self.err(
                    &r.name,
                    format!("{f}.name"),
                    format!("duplicate rule name '{}'", r.name.value),
                );
            }
            match Condition::compile(&r.condition.value) {
                Ok(c) if c.reads("response") => {
                    if let Some(applies) = report {
                        self.err(&r.condition, format!("{f}.condition"), "an input rule runs before the tool, so it cannot read `response`; use an output rule");
                        self.names(&c, &r.name.value, &r.condition, &f, Stage::Input, applies);
                    }
                }
                Ok(condition) => {
                    if let Some(applies) = report {
                        self.names(
                            &condition,
                            &r.name.value,
                            &r.condition,
                            &f,
                            Stage::Input,
                            applies,
                        );
                    }
                    input.push(InputRule {
                        name: r.name.value.clone(),
                        condition,
                        reason: r.reason.value.clone(),
                    });
                }
                Err(e) => {
                    if report.is_some() {
                        self.err(
                            &r.condition,
                            format!("{f}.condition"),
                            format!("invalid CEL in rule '{}': {}", r.name.value, first_line(&e)),
                        );
                    }
                }
            }
        }
        let mut output = Vec::new();
        for (i, r) in spec.output.iter().enumerate() {
            let f = format!("{field}.output[{i}]");
            let r = &r.value;
            if report.is_some() && !names.insert(r.name.value.clone()) {
                self.err(
                    &r.name,
                    format!("{f}.name"),
                    format!("duplicate rule name '{}'", r.name.value),
                );
            }
            let needs_fields = matches!(r.action.value.as_str(), "filter_fields" | "mask_fields");
            if report.is_some() && needs_fields && r.fields.is_empty() {
                self.err(
                    &r.action,
                    format!("{f}.fields"),
                    format!("{} needs `fields`: the fields to act on", r.action.value),
                );
            }
            let action = match r.action.value.as_str() {
                "deny" => Some(OutputAction::Deny),
                "filter_fields" => Some(OutputAction::FilterFields(r.fields.clone())),
                "mask_fields" => Some(OutputAction::MaskFields(r.fields.clone())),
                "filter_sensitive_fields" => Some(OutputAction::FilterSensitive),
                other => {
                    if report.is_some() {
                        self.err(&r.action, format!("{f}.action"), format!("unknown action '{other}'; use deny, filter_fields, mask_fields or filter_sensitive_fields"));
                    }
                    None
                }
            };
            let condition = match &r.condition {
                None => Ok(None),
                Some(c) => Condition::compile(&c.value).map(Some).map_err(|e| (c, e)),
            };
            if let (Some(applies), Ok(Some(c)), Some(spanned)) = (report, &condition, &r.condition)
            {
                self.names(c, &r.name.value, spanned, &f, Stage::Output, applies);
            }
            match (action, condition) {
                (Some(action), Ok(condition)) => output.push(OutputRule {
                    name: r.name.value.clone(),
                    condition,
                    action,
                    reason: r.reason.clone().unwrap_or_else(|| {
                        format!("the result was withheld by policy rule '{}'", r.name.value)
                    }),
                }),
                (_, Err((c, e))) => {
                    if report.is_some() {
                        self.err(
                            c,
                            format!("{f}.condition"),
                            format!("invalid CEL in rule '{}': {}", r.name.value, first_line(&e)),
                        );
                    }
                }
                (None, _) => {}
            }
        }
        (input, output)
    }

    /// Reports each name `condition` reads that its stage does not provide where the rule
    /// applies: such a rule fails, and so denies, on every call.
    fn names(
        &mut self,
        condition: &Condition,
        rule: &str,
        at: &Spanned<String>,
        rule_field: &str,
        stage: Stage,
        applies: Applies<'_>,
    ) {
        let arguments = match applies {
            Applies::Everywhere(a) | Applies::Tool { params: a, .. } => a.to_vec(),
        };
        let scope = Scope::new(stage, self.signed_in, arguments);
        for problem in condition.unknown_names(&scope) {
            let message = match &problem {
                // Said once, by the input rule's own check.
                NameProblem::UnknownVariable { name }
                    if name == "response" && stage == Stage::Input =>
                {
                    continue;
                }
                NameProblem::UnknownVariable { name } if name == "user" && !self.signed_in => {
                    format!(
                        "rule '{rule}' reads `user`, but with `auth: none` nobody signs in, so there is no user and every call the rule applies to would be denied with a policy error; use `auth: oauth` (callers sign in) or remove the rule"
                    )
                }
                NameProblem::UnknownVariable { name } => format!(
                    "rule '{rule}' reads `{name}`, which is not a variable here; {}{} rules can read {}",
                    did_you_mean(name, scope.names()),
                    match stage {
                        Stage::Input => "input",
                        Stage::Output => "output",
                    },
                    listed(&scope.names()),
                ),
                NameProblem::UnknownField { variable, field } if variable == "args" => {
                    let declared: Vec<&str> = match applies {
                        Applies::Everywhere(a) | Applies::Tool { params: a, .. } => {
                            a.iter().map(String::as_str).collect()
                        }
                    };
                    let guess = did_you_mean(field, declared.iter().copied());
                    match applies {
                        Applies::Tool { name, .. } if declared.is_empty() => format!(
                            "rule '{rule}' reads `args.{field}`, but tool '{name}' has no parameters"
                        ),
                        Applies::Tool { name, .. } => format!(
                            "rule '{rule}' reads `args.{field}`, but tool '{name}' has no parameter `{field}`; {guess}its parameters are {}",
                            listed(&declared)
                        ),
                        Applies::Everywhere(_) => format!(
                            "rule '{rule}' reads `args.{field}`, but no tool, resource or prompt has an argument `{field}`, so the rule would fail on every call; {guess}check the name"
                        ),
                    }
                }
                NameProblem::UnknownField { variable, field } => {
                    let fields: Vec<&str> = match scope.variable(variable).map(|v| &v.fields) {
                        Some(crate::policy::Fields::Fixed(f)) => {
                            f.iter().map(String::as_str).collect()
                        }
                        _ => Vec::new(),
                    };
                    format!(
                        "rule '{rule}' reads `{variable}.{field}`, but `{variable}` has no field `{field}`; {}its fields are {}",
                        did_you_mean(field, fields.iter().copied()),
                        listed(&fields)
                    )
                }
            };
            self.err(at, format!("{rule_field}.condition"), message);
        }
    }
}

/// A stable text of a rule set, hashed into the policy version.
pub(super) fn describe_policies(p: &model::PoliciesSpec) -> String {
    let mut out = String::new();
    for r in &p.input {
        out.push_str(&format!(
            "in|{}|{}|{}\n",
            r.value.name.value, r.value.condition.value, r.value.reason.value
        ));
    }
    for r in &p.output {
        let c = r
            .value
            .condition
            .as_ref()
            .map(|c| c.value.as_str())
            .unwrap_or("");
        out.push_str(&format!(
            "out|{}|{}|{}|{:?}|{:?}\n",
            r.value.name.value, c, r.value.action.value, r.value.fields, r.value.reason
        ));
    }
    out
}
