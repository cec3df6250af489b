//! Loading and checking a project file. Every problem is collected (not just the first), and
//! each names the file, the line and the field, so `warden check` can list them all at once.
//!
//! `load_str` parses the YAML and `Checker::project` walks its sections in order; each
//! section is checked in its own file under `load/`: `server.rs`, `data.rs`, `auth.rs` (with
//! `state`, `tokens` and `login`), `audit.rs`, `tools.rs` (with their content blocks),
//! `params.rs` (tool parameters), `policies.rs`, `resources.rs` and `prompts.rs`. `parse.rs`
//! reads the YAML, finding every unknown field rather than the first; `suggest.rs` guesses
//! what a misspelt name meant; `error.rs` holds the problem types.
//!
//! Loading reads nothing but the file: whether the SQL runs on the real database is for
//! `warden check`, which prepares every statement after loading.

mod abuse_limits;
mod audit;
mod auth;
mod call_limits;
mod data;
mod error;
mod files;
mod params;
mod parse;
mod policies;
mod prompts;
mod questions;
mod resources;
mod server;
mod sign_in;
mod suggest;
mod tables;
mod tools;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::model::{self, ProjectFile};
use super::{AuthMode, DataConfig, Dialect, FieldLocation, Project, ResourceUri, env};

pub use error::{LoadError, ProjectError};
pub(crate) use tools::add_confirmation_params;

use policies::{Applies, describe_policies};

/// Reads and checks a project file; `${VAR}` comes from the process environment.
pub fn load_file(path: &Path) -> Result<Project, LoadError> {
    load_file_as(path, false)
}

/// [`load_file`] for a command that never serves (administration, the audit trail, `why`,
/// policy tests): an unset `${VAR}` in the `server` section is not an error there, and the
/// field keeps its default. Everything else is checked as for serving.
pub fn load_file_offline(path: &Path) -> Result<Project, LoadError> {
    load_file_as(path, true)
}

fn load_file_as(path: &Path, offline: bool) -> Result<Project, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        errors: vec![ProjectError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the project file: {e}"),
        }],
    })?;
    check_str(&text, path, &|name| std::env::var(name).ok(), offline)
}

/// Checks a project given as text. `file` names it in errors and anchors relative paths.
pub fn load_str(
    text: &str,
    file: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Project, LoadError> {
    check_str(text, file, &env, false)
}

fn check_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    offline: bool,
) -> Result<Project, LoadError> {
    let (raw, errors) = parse::parse(text, file);
    let mut c = Checker {
        file: file.to_path_buf(),
        errors,
        env,
        offline,
        signed_in: true,
        stateless: false,
    };
    let Some(raw) = raw else {
        return Err(LoadError { errors: c.errors });
    };
    let project = c.project(raw);
    if c.errors.is_empty() {
        project.ok_or_else(|| LoadError { errors: Vec::new() })
    } else {
        Err(LoadError { errors: c.errors })
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(s)
        .trim()
        .to_string()
}

struct Checker<'a> {
    file: PathBuf,
    errors: Vec<ProjectError>,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// For a command that never serves: see [`load_file_offline`].
    offline: bool,
    /// Whether callers sign in, so that rules can read `user` (not under `auth: none`).
    signed_in: bool,
    /// `server.sessions: stateless`: no tool may talk back to the client mid-call.
    stateless: bool,
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_tool_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

impl Checker<'_> {
    fn at(&mut self, loc: Location, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ProjectError {
            file: self.file.clone(),
            line: Some(loc.line() as u32),
            column: Some(loc.column() as u32),
            field: field.into(),
            message: message.into(),
        });
    }

    fn err<T>(&mut self, node: &Spanned<T>, field: impl Into<String>, message: impl Into<String>) {
        self.at(node.referenced, field, message);
    }

    /// Where `node` is written, kept in the `Project` for checks made after loading.
    fn located<T>(node: &Spanned<T>, field: impl Into<String>) -> FieldLocation {
        FieldLocation {
            field: field.into(),
            line: node.referenced.line() as u32,
            column: node.referenced.column() as u32,
        }
    }

    fn expand(&mut self, node: &Spanned<String>, field: &str) -> Option<String> {
        let base = self.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        match env::expand_with_files(&node.value, self.env, &base) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(node, field, m);
                None
            }
        }
    }

    fn relative(&self, path: &str) -> PathBuf {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn project(&mut self, raw: ProjectFile) -> Option<Project> {
        if raw.version.value != 1 {
            self.err(
                &raw.version,
                "version",
                format!(
                    "unsupported version {}; this Warden reads version 1",
                    raw.version.value
                ),
            );
        }
        if raw.name.value.trim().is_empty() {
            self.err(&raw.name, "name", "must not be empty");
        }
        let server = self.server(raw.server.map(|s| s.value).unwrap_or_default());
        let data = self.data(raw.data);
        self.signed_in = raw.auth.as_ref().map(|a| a.value.as_str()) != Some("none");
        let auth = self.auth(raw.auth, raw.state, raw.tokens, raw.login, server.as_ref());
        let dialect = data.as_ref().map_or(Dialect::Sqlite, DataConfig::dialect);

        let global_policies = raw.policies.map(|p| p.value).unwrap_or_default();
        // Checked once here; each tool gets its own compiled copy below.
        let arguments = every_argument(&raw.tools, &raw.resources, &raw.prompts);
        let (global_input, global_output) = self.policies(
            &global_policies,
            "policies",
            Some(Applies::Everywhere(&arguments)),
        );
        let project_policies = crate::policy::PolicySet {
            input: global_input,
            output: global_output,
            sensitive: Vec::new(),
            version: crate::policy::version_of(&describe_policies(&global_policies)),
        };
        let mut tools = Vec::new();
        let mut seen = HashSet::new();
        for (i, spec) in raw.tools.into_iter().enumerate() {
            let field = format!("tools[{i}]");
            if !seen.insert(spec.value.name.value.clone()) {
                self.err(
                    &spec.value.name,
                    format!("{field}.name"),
                    format!("duplicate tool name '{}'", spec.value.name.value),
                );
            }
            if let Some(t) = self.tool(spec.value, &field, dialect, &global_policies) {
                tools.push(t);
            }
        }
        let tables = self.tables(raw.tables, &global_policies);
        let (files, file_tools) = self.files(raw.files, &global_policies);
        for t in file_tools {
            if !seen.insert(t.name.clone()) {
                self.errors.push(ProjectError {
                    file: self.file.clone(),
                    line: None,
                    column: None,
                    field: "files".into(),
                    message: format!("with `files`, Warden provides the tool '{}'; rename your tool of that name", t.name),
                });
            }
            tools.push(t);
        }
        let mut resources = Vec::new();
        let mut uris = HashSet::new();
        for (i, spec) in raw.resources.into_iter().enumerate() {
            let field = format!("resources[{i}]");
            if let Some(r) = self.resource(spec, &field, dialect) {
                let key = match &r.uri {
                    ResourceUri::Fixed(u) => u.clone(),
                    ResourceUri::Template(t) => t.as_str().to_string(),
                };
                if !uris.insert(key.clone()) {
                    self.errors.push(ProjectError {
                        file: self.file.clone(),
                        line: None,
                        column: None,
                        field: format!("{field}.uri"),
                        message: format!("duplicate resource URI '{key}'"),
                    });
                }
                resources.push(r);
            }
        }
        let mut prompts = Vec::new();
        let mut names = HashSet::new();
        for (i, spec) in raw.prompts.into_iter().enumerate() {
            let field = format!("prompts[{i}]");
            if !names.insert(spec.value.name.value.clone()) {
                self.err(
                    &spec.value.name,
                    format!("{field}.name"),
                    format!("duplicate prompt name '{}'", spec.value.name.value),
                );
            }
            if let Some(p) = self.prompt(spec.value, &field, &resources) {
                prompts.push(p);
            }
        }
        if let (Some(d), Some(a)) = (&data, &auth)
            && d.per_org()
            && a.mode == AuthMode::None
        {
            self.errors.push(ProjectError {
                file: self.file.clone(),
                line: None,
                column: None,
                field: "data".into(),
                message: "`{org}` keeps a database per organisation, which needs authenticated callers; remove `auth: none`".into(),
            });
        }
        let tool_index = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Some(Project {
            file: self.file.clone(),
            name: raw.name.value,
            description: raw.description,
            instructions: raw.instructions,
            server: server?,
            data: data?,
            auth: auth?,
            policies: project_policies,
            audit: self.audit(raw.audit),
            limits: self.call_limits(raw.limits, &tools),
            show_write_tools: raw
                .authorization
                .as_ref()
                .is_some_and(|a| a.show_write_tools),
            tools,
            tables,
            files,
            resources,
            prompts,
            tool_index,
        })
    }
}

/// Every argument name a tool, resource (URI variable) or prompt declares: what a
/// project-wide rule may find in `args`.
fn every_argument(
    tools: &[Spanned<model::ToolSpec>],
    resources: &[Spanned<model::ResourceSpec>],
    prompts: &[Spanned<model::PromptSpec>],
) -> Vec<String> {
    let mut names: Vec<String> = tools
        .iter()
        .flat_map(|t| t.value.params.iter().map(|p| p.value.name.value.clone()))
        .chain(resources.iter().flat_map(|r| {
            r.value
                .uri_template
                .as_ref()
                .and_then(|t| super::uri_template::UriTemplate::parse(&t.value).ok())
                .map(|t| t.variables().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        }))
        .chain(
            prompts
                .iter()
                .flat_map(|p| p.value.arguments.iter().map(|a| a.value.name.value.clone())),
        )
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
