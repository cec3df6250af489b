//! `warden policy test`: runs YAML test cases against a project's policies, with the same
//! evaluation the server uses, and shows a readable diff when an output differs.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Map, Value};
use warden_core::identity::Principal;
use warden_core::identity::{Role, Scopes};
use warden_core::pipeline::{Source, policy_variables};
use warden_core::project::Project;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    user: UserSpec,
    tool: String,
    #[serde(default)]
    args: Map<String, Value>,
    /// A canned result to run the output rules on.
    #[serde(default)]
    response: Option<Value>,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    role: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    scopes: Option<String>,
    #[serde(default)]
    org: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// The call is allowed.
    #[serde(default)]
    allow: bool,
    /// The call is denied with a reason containing this text.
    #[serde(default)]
    deny: Option<String>,
    /// The exact result after filtering and masking (needs `response`).
    #[serde(default)]
    output: Option<Value>,
}

/// Runs every case; returns (passed, failed).
pub fn run(project: &Project, file: &Path) -> anyhow::Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cases: File = serde_saphyr::from_str(&text).map_err(|e| {
        // The parser names its input `<input>` and repeats the position; name the file once.
        let message = e
            .to_string()
            .replace("<input>", &file.display().to_string());
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        anyhow::anyhow!("{}: {message}", file.display())
    })?;
    let (mut passed, mut failed) = (0, 0);
    for case in &cases.cases {
        match check(project, case) {
            Ok(()) => {
                passed += 1;
                println!("ok    {}", case.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL  {}\n{}", case.name, indent(&why));
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    Ok((passed, failed))
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(project: &Project, case: &Case) -> Result<(), String> {
    let tool = project
        .tool(&case.tool)
        .ok_or_else(|| format!("no tool '{}' in the project", case.tool))?;
    let role: Role = case
        .user
        .role
        .parse()
        .map_err(|e| format!("user.role: {e}"))?;
    let scopes: Scopes = case
        .user
        .scopes
        .as_deref()
        .unwrap_or("mcp:read mcp:write")
        .parse()
        .map_err(|e| format!("user.scopes: {e}"))?;
    let caller = Principal {
        user_id: "policy-test".into(),
        email: case.user.email.clone().unwrap_or_default(),
        org: case.user.org.clone().unwrap_or_else(|| "test".into()),
        role,
        scopes,
        method: "test",
        credential: String::new(),
    };
    let mut vars = policy_variables(tool, Some(&case.args), Some(&caller), Source::Http);
    let outcome = tool
        .policies
        .check_input(&vars)
        .and_then(|()| match &case.response {
            Some(r) => {
                let mut out = r.clone();
                tool.policies
                    .apply_output(&mut vars, &mut out)
                    .map(|_| Some(out))
            }
            None => Ok(None),
        });
    match (&case.expect.deny, outcome) {
        (Some(want), Err(d)) if d.reason.contains(want.as_str()) => Ok(()),
        (Some(want), Err(d)) => Err(format!(
            "denied, as expected, but the reason differs\n  want: …{want}…\n  got:  {}",
            d.reason
        )),
        (Some(want), Ok(_)) => Err(format!(
            "expected a denial (…{want}…), but the call was allowed"
        )),
        (None, Err(d)) => Err(format!(
            "expected the call to be allowed, but it was denied: {}",
            d.reason
        )),
        (None, Ok(out)) => {
            if !case.expect.allow && case.expect.output.is_none() {
                return Err(
                    "the case expects nothing: give `allow: true`, `deny: ...` or `output: ...`"
                        .into(),
                );
            }
            match (&case.expect.output, out) {
                (Some(want), Some(got)) if *want == got => Ok(()),
                (Some(want), Some(got)) => Err(format!(
                    "the output differs (- expected, + actual):\n{}",
                    diff(want, &got)
                )),
                (Some(_), None) => Err("`output` needs a canned `response` to filter".into()),
                (None, _) => Ok(()),
            }
        }
    }
}

/// A line diff of two JSON values, pretty-printed (longest common subsequence).
fn diff(want: &Value, got: &Value) -> String {
    let a: Vec<String> = serde_json::to_string_pretty(want)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let b: Vec<String> = serde_json::to_string_pretty(got)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out.join("\n")
}
