//! `policies`, at the top level and per tool: input and output rules with their CEL
//! conditions compiled at load, and the stable text the policy version is hashed from.

use std::collections::HashSet;

use super::{Checker, first_line};
use crate::project::model;

impl Checker<'_> {
    /// Compiles a set of policy rules; with `report`, every problem becomes a load error.
    pub(super) fn policies(
        &mut self,
        spec: &model::PoliciesSpec,
        field: &str,
        report: bool,
    ) -> (
        Vec<crate::policy::InputRule>,
        Vec<crate::policy::OutputRule>,
    ) {
        use crate::policy::{Condition, InputRule, OutputAction, OutputRule};
        let mut names = HashSet::new();
        let mut input = Vec::new();
        for (i, r) in spec.input.iter().enumerate() {
            let f = format!("{field}.input[{i}]");
            let r = &r.value;
            if report && !names.insert(r.name.value.clone()) {
                self.err(
                    &r.name,
                    format!("{f}.name"),
                    format!("duplicate rule name '{}'", r.name.value),
                );
            }
            match Condition::compile(&r.condition.value) {
                Ok(c) if c.reads("response") => {
                    if report {
                        self.err(&r.condition, format!("{f}.condition"), "an input rule runs before the tool, so it cannot read `response`; use an output rule");
                    }
                }
                Ok(condition) => input.push(InputRule {
                    name: r.name.value.clone(),
                    condition,
                    reason: r.reason.value.clone(),
                }),
                Err(e) => {
                    if report {
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
            if report && !names.insert(r.name.value.clone()) {
                self.err(
                    &r.name,
                    format!("{f}.name"),
                    format!("duplicate rule name '{}'", r.name.value),
                );
            }
            let needs_fields = matches!(r.action.value.as_str(), "filter_fields" | "mask_fields");
            if report && needs_fields && r.fields.is_empty() {
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
                    if report {
                        self.err(&r.action, format!("{f}.action"), format!("unknown action '{other}'; use deny, filter_fields, mask_fields or filter_sensitive_fields"));
                    }
                    None
                }
            };
            let condition = match &r.condition {
                None => Ok(None),
                Some(c) => Condition::compile(&c.value).map(Some).map_err(|e| (c, e)),
            };
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
                    if report {
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
