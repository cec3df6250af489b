//! Why a caller may or may not use a tool: the pipeline's own checks before execution,
//! spelled out rule by rule, for `warden why` and the console's "why" form. It calls the
//! same functions the pipeline does (`authz::decide`, argument binding, the input
//! policies), so its answer cannot drift from what a call would get.

/// The pipeline's stages before execution, in its order, for one caller: `Ok` names the rules
/// that let the call through, `Err` the stage and rule that stop it.
pub fn explain(
    tool: &crate::project::Tool,
    caller: &crate::identity::Principal,
    args: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<String, String> {
    let permit = crate::authz::decide(caller, tool.access).map_err(|d| {
        format!(
            "at the {} stage by rule {}: {}",
            d.stage.as_str(),
            d.rule,
            d.reason
        )
    })?;
    let rules: Vec<&str> = tool
        .policies
        .input
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    let confirm = if tool.access == crate::project::Access::Write {
        "; the write is then previewed and runs only when confirmed"
    } else {
        ""
    };
    let Some(args) = args else {
        let policies = match rules.len() {
            0 => "no input policy applies".to_string(),
            n => format!(
                "{n} input polic{} then check each call ({}); give arguments to check one",
                if n == 1 { "y" } else { "ies" },
                rules.join(", ")
            ),
        };
        return Ok(format!("by rule {}; {policies}{confirm}", permit.rule()));
    };
    tool.bind_arguments(Some(args))
        .map_err(|e| format!("at the arguments stage: {e}"))?;
    let vars = crate::pipeline::policy_variables(
        tool,
        Some(args),
        Some(caller),
        crate::pipeline::Source::Http,
    );
    tool.policies.check_input(&vars).map_err(|d| match &d.error {
        Some(e) => format!(
            "at the input policy stage: rule '{}' failed to evaluate ({e}), and a policy error denies",
            d.rule
        ),
        None => format!(
            "at the input policy stage by rule '{}': {}",
            d.rule, d.reason
        ),
    })?;
    let policies = match rules.len() {
        0 => "no input policy applies".to_string(),
        n => format!("no input policy denies ({n} checked: {})", rules.join(", ")),
    };
    Ok(format!(
        "by rule {}; arguments accepted; {policies}{confirm}",
        permit.rule()
    ))
}
