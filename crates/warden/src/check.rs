//! `warden check`: loads a project file and lists every problem in it, with its line and
//! field; then, once the file itself is valid, prepares every tool's and resource's
//! statement on the configured database (`database.rs`), so that a missing table or column,
//! a syntax error or a missing data file is found here rather than on the first call.
//! Nothing is served, run, written or created.

mod database;

use std::path::PathBuf;
use std::process::ExitCode;

use warden_core::project::{self, ProjectError};

pub(crate) use database::missing_data_file;

/// Exit status 0 when the project is valid, 1 otherwise.
pub(crate) async fn run(project: PathBuf) -> anyhow::Result<ExitCode> {
    let mut p = match project::load_file(&project) {
        Ok(p) => p,
        Err(e) => return Ok(failed(&e.errors)),
    };
    if let Some(problem) = database::missing_data_file(&p)
        && !p.tables.is_empty()
    {
        return Ok(failed(&[problem]));
    }
    let expanded = match warden_core::tables::expand(&mut p).await {
        Ok(x) => x,
        Err(problems) => return Ok(failed(&problems)),
    };
    let report = database::check(&p).await;
    if !report.problems.is_empty() {
        return Ok(failed(&report.problems));
    }
    println!(
        "{}: ok ({} tools, {} resources, {} prompts; {})",
        project.display(),
        p.tools.len(),
        p.resources.len(),
        p.prompts.len(),
        report.summary
    );
    sign_in(&p);
    generated(&p, &expanded);
    too_many_tools(&p);
    Ok(ExitCode::SUCCESS)
}

/// Clients cap how many tools they take (some at 40, and each tool's description costs the
/// model's context): a warning, per role, when one would be shown more.
pub(crate) const MAX_TOOLS_SHOWN: usize = 40;

fn too_many_tools(p: &project::Project) {
    use warden_core::identity::{Principal, Role, Scopes};
    for role in Role::ALL.into_iter().filter(|r| r.can_connect()) {
        let caller = Principal {
            user_id: "check".into(),
            email: "check@local".into(),
            org: "check".into(),
            role,
            scopes: Scopes::READ_WRITE,
            method: "api_key",
            credential: String::new(),
        };
        let shown = p
            .tools
            .iter()
            .filter(|t| warden_core::authz::visible(&caller, t.access, p.show_write_tools))
            .count();
        if shown > MAX_TOOLS_SHOWN {
            println!(
                "warning: a {} with read and write access is shown {shown} tools; many clients take at most {MAX_TOOLS_SHOWN}. Narrow the set: split the project by audience, merge tools that differ only by a filter into one tool with a parameter, serve fewer verbs of each table in `tables:` (their read and write lists), or leave show_write_tools off so read-only connections do not list write tools",
                role.title()
            );
        }
    }
}

/// The tools each table of `tables:` generates, each with its parameters as its input
/// schema states them (`?` after an optional one).
fn generated(p: &project::Project, expanded: &warden_core::tables::Expanded) {
    for (table, names) in &expanded.tables {
        println!("table {table}: {} tools", names.len());
        for name in names {
            let Some(tool) = p.tool(name) else { continue };
            println!("  {}", signature(tool));
        }
    }
}

/// `name(param: type, optional?: type, ...)` from a tool's input schema, with `enum`,
/// ranges and patterns where it states them.
pub(crate) fn signature(tool: &project::Tool) -> String {
    use serde_json::Value;
    let schema = &tool.input_schema;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(Value::Object(props)) = schema.get("properties") {
        for (name, p) in props {
            let ty = match p.get("type").and_then(Value::as_str) {
                Some("array") => format!(
                    "[{}]",
                    p.pointer("/items/type")
                        .and_then(Value::as_str)
                        .unwrap_or("any")
                ),
                Some(t) => t.to_string(),
                None => "any".into(),
            };
            let mut extra = Vec::new();
            if let Some(e) = p.get("enum").and_then(Value::as_array) {
                let v: Vec<String> = e
                    .iter()
                    .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                    .collect();
                extra.push(v.join("|"));
            }
            if let (Some(lo), Some(hi)) = (p.get("minimum"), p.get("maximum")) {
                extra.push(format!("{lo}..{hi}"));
            }
            let opt = if required.contains(&name.as_str()) {
                ""
            } else {
                "?"
            };
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(" ({})", extra.join(", "))
            };
            parts.push(format!("{name}{opt}: {ty}{extra}"));
        }
    }
    format!(
        "{}({}) [{}]",
        tool.name,
        parts.join(", "),
        tool.access.as_str()
    )
}

/// Each identity provider and the redirect URI to register at it.
fn sign_in(p: &project::Project) {
    let base = p
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", p.server.bind));
    for provider in &p.auth.sign_in.providers {
        let preset = match &provider.kind {
            project::ProviderKind::Oidc { preset, .. } => preset,
            project::ProviderKind::GitHub { .. } => &"github",
        };
        println!(
            "sign-in: {} ({preset}, {}, {} mapping rule(s)); register the redirect URI {base}/login/sso/{}/callback",
            provider.name,
            provider.kind.issuer(),
            provider.map.len(),
            provider.name
        );
    }
    if !p.auth.sign_in.providers.is_empty() && p.server.public_url.is_none() {
        println!(
            "note: server.public_url is not set, so the redirect URI above assumes the bind address; set public_url to the address people use"
        );
    }
}

fn failed(problems: &[ProjectError]) -> ExitCode {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s) found; nothing was served.", problems.len());
    ExitCode::FAILURE
}
