//! Loading and checking a project file. Every problem is collected (not just the first), and
//! each names the file, the line and the field, so `warden check` can list them all at once.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::model::{self, ProjectFile};
use super::params::{ParamType, input_schema};
use super::uri_template::UriTemplate;
use super::{
    Access, AuditConfig, AuthConfig, AuthMode, ContentBlock, DataConfig, DataLocation, Dialect,
    MailerConfig, Param, Project, Prompt, PromptArgument, PromptMessage, Resource, ResourceUri,
    Returns, Role, ServerConfig, Tool, env,
};
use crate::exec::sql;

/// One problem in a project file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError {
    pub file: PathBuf,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Dotted path of the offending field, e.g. `tools[2].params[0].type`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a project file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<ProjectError>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and checks a project file; `${VAR}` comes from the process environment.
pub fn load_file(path: &Path) -> Result<Project, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        errors: vec![ProjectError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: String::new(),
            message: format!("cannot read the project file: {e}"),
        }],
    })?;
    load_str(&text, path, |name| std::env::var(name).ok())
}

/// Checks a project given as text. `file` names it in errors and anchors relative paths.
pub fn load_str(
    text: &str,
    file: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Project, LoadError> {
    let mut c = Checker {
        file: file.to_path_buf(),
        errors: Vec::new(),
        env: &env,
    };
    let raw: ProjectFile = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let loc = e.location();
            c.errors.push(ProjectError {
                file: file.to_path_buf(),
                line: loc.map(|l| l.line() as u32),
                column: loc.map(|l| l.column() as u32),
                field: String::new(),
                message: parse_message(&e.to_string()),
            });
            return Err(LoadError { errors: c.errors });
        }
    };
    let project = c.project(raw);
    if c.errors.is_empty() {
        project.ok_or_else(|| LoadError { errors: Vec::new() })
    } else {
        Err(LoadError { errors: c.errors })
    }
}

/// The YAML parser's message without its own `error: line N column M:` prefix, which
/// `ProjectError` already shows in `file:line:col` form.
fn parse_message(s: &str) -> String {
    let line = first_line(s);
    let rest = line.strip_prefix("error: ").unwrap_or(&line);
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((loc, msg)) if loc.contains(" column ") => msg.to_string(),
        _ => rest.to_string(),
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
}

const DEFAULT_BIND: &str = "127.0.0.1:8080";
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

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

    fn expand(&mut self, node: &Spanned<String>, field: &str) -> Option<String> {
        match env::expand(&node.value, self.env) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(node, field, m);
                None
            }
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
        let auth = self.auth(raw.auth, raw.state, raw.tokens, raw.login, server.as_ref());
        let dialect = data.as_ref().map_or(Dialect::Sqlite, DataConfig::dialect);

        let global_policies = raw.policies.map(|p| p.value).unwrap_or_default();
        // Checked once here; each tool gets its own compiled copy below.
        let (global_input, global_output) = self.policies(&global_policies, "policies", true);
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
            show_write_tools: raw
                .authorization
                .as_ref()
                .is_some_and(|a| a.show_write_tools),
            tools,
            resources,
            prompts,
            tool_index,
        })
    }

    fn audit(&mut self, a: Option<Spanned<model::AuditSection>>) -> AuditConfig {
        let a = a.map(|a| a.value).unwrap_or_default();
        let retention_days = match &a.retention_days {
            Some(d) if d.value == 0 => {
                self.err(
                    d,
                    "audit.retention_days",
                    "must be at least 1 (records are kept this many days)",
                );
                365
            }
            Some(d) => d.value,
            None => 365,
        };
        AuditConfig {
            enabled: a.enabled.is_none_or(|e| e.value),
            retention_days,
            signing_key: self.relative(
                a.signing_key
                    .as_ref()
                    .map_or(".warden/audit.key", |k| k.value.as_str()),
            ),
        }
    }

    fn server(&mut self, s: model::ServerSection) -> Option<ServerConfig> {
        let mut ok = true;
        let bind = match &s.bind {
            None => DEFAULT_BIND.parse().ok(),
            Some(b) => {
                let v = self.expand(b, "server.bind")?;
                match v.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.err(
                            b,
                            "server.bind",
                            format!(
                                "'{v}' is not host:port with an IP address, e.g. 127.0.0.1:8080"
                            ),
                        );
                        None
                    }
                }
            }
        };
        let mut allowed_hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
        let mut allowed_origins = Vec::new();
        let public_url = match &s.public_url {
            None => None,
            Some(u) => {
                let v = self.expand(u, "server.public_url")?;
                match split_origin(&v) {
                    Some((origin, host)) => {
                        allowed_hosts.push(host);
                        allowed_origins.push(origin);
                        Some(v.trim_end_matches('/').to_string())
                    }
                    None => {
                        self.err(
                            u,
                            "server.public_url",
                            format!("'{v}' is not an http:// or https:// URL"),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        for (i, h) in s.allowed_hosts.iter().enumerate() {
            let field = format!("server.allowed_hosts[{i}]");
            let Some(v) = self.expand(h, &field) else {
                continue;
            };
            if v.is_empty() || v.contains(['/', '*', ' ', ':']) && !v.starts_with('[') {
                self.err(h, field, format!("'{v}' must be a bare host name such as warden.example.com (no scheme, port or wildcard)"));
                ok = false;
            } else {
                allowed_hosts.push(v.to_ascii_lowercase());
            }
        }
        for (i, o) in s.allowed_origins.iter().enumerate() {
            let field = format!("server.allowed_origins[{i}]");
            let Some(v) = self.expand(o, &field) else {
                continue;
            };
            match split_origin(&v) {
                Some((origin, _)) if origin == v.trim_end_matches('/') => {
                    allowed_origins.push(origin)
                }
                _ => {
                    self.err(o, field, format!("'{v}' must be an origin like https://app.example.com (scheme, host and optional port; no path or wildcard)"));
                    ok = false;
                }
            }
        }
        let max_body_bytes = match &s.max_body_bytes {
            None => 1024 * 1024,
            Some(m) if (1024..=64 * 1024 * 1024).contains(&m.value) => m.value as usize,
            Some(m) => {
                self.err(
                    m,
                    "server.max_body_bytes",
                    "must be between 1024 and 67108864",
                );
                ok = false;
                0
            }
        };
        (ok && bind.is_some()).then(|| ServerConfig {
            bind: bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            public_url,
            allowed_hosts,
            allowed_origins,
            max_body_bytes,
        })
    }

    fn relative(&self, path: &str) -> PathBuf {
        let p = PathBuf::from(path);
        if p.is_absolute() {
            p
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    fn auth(
        &mut self,
        mode: Option<Spanned<String>>,
        state: Option<Spanned<model::StateSection>>,
        tokens: Option<Spanned<model::TokensSection>>,
        login: Option<Spanned<model::LoginSection>>,
        server: Option<&ServerConfig>,
    ) -> Option<AuthConfig> {
        let before = self.errors.len();
        let mode = match mode.as_ref().map(|m| m.value.as_str()) {
            None | Some("oauth") => AuthMode::OAuth,
            Some("none") => AuthMode::None,
            Some(other) => {
                if let Some(m) = &mode {
                    self.err(m, "auth", format!("'{other}' is not an authentication mode; use oauth, or none for local development"));
                }
                AuthMode::OAuth
            }
        };
        if mode == AuthMode::None
            && let Some(server) = server
            && !server.bind.ip().is_loopback()
        {
            self.errors.push(ProjectError {
                file: self.file.clone(),
                line: None,
                column: None,
                field: "server.bind".into(),
                message: format!(
                    "`auth: none` serves without authentication, so Warden binds only to loopback; {} is not a loopback address",
                    server.bind
                ),
            });
        }
        let state = state.map(|s| s.value).unwrap_or_default();
        let state = match (&state.sqlite, &state.postgres) {
            (None, None) => Some(DataLocation::Sqlite(self.relative(".warden/state.db"))),
            (Some(p), None) => self
                .expand(p, "state.sqlite")
                .map(|v| DataLocation::Sqlite(self.relative(&v))),
            (None, Some(u)) => match self.expand(u, "state.postgres") {
                Some(v) if v.starts_with("postgres://") || v.starts_with("postgresql://") => {
                    Some(DataLocation::Postgres(v))
                }
                Some(_) => {
                    self.err(
                        u,
                        "state.postgres",
                        "must be a postgres:// or postgresql:// URL",
                    );
                    None
                }
                None => None,
            },
            (Some(p), Some(_)) => {
                self.err(p, "state", "give only one of `sqlite` or `postgres`");
                None
            }
        };
        let tokens = tokens.map(|t| t.value).unwrap_or_default();
        let minutes = match &tokens.access_minutes {
            None => 15,
            Some(m) if (1..=1440).contains(&m.value) => m.value,
            Some(m) => {
                self.err(
                    m,
                    "tokens.access_minutes",
                    format!("must be between 1 and 1440, got {}", m.value),
                );
                15
            }
        };
        let days = match &tokens.refresh_days {
            None => 30,
            Some(d) if (1..=365).contains(&d.value) => d.value,
            Some(d) => {
                self.err(
                    d,
                    "tokens.refresh_days",
                    format!("must be between 1 and 365, got {}", d.value),
                );
                30
            }
        };
        let code_seconds = match &tokens.code_seconds {
            None => 300,
            Some(c) if (1..=300).contains(&c.value) => c.value,
            Some(c) => {
                self.err(
                    c,
                    "tokens.code_seconds",
                    format!("must be between 1 and 300, got {}", c.value),
                );
                300
            }
        };
        let login = login.map(|l| l.value).unwrap_or_default();
        let mailer = match (&login.outbox, &login.smtp) {
            (Some(o), Some(_)) => {
                self.err(o, "login", "give only one of `outbox` or `smtp`");
                None
            }
            (None, Some(smtp)) => {
                let s = &smtp.value;
                let host = self.expand(&s.host, "login.smtp.host");
                let from = self.expand(&s.from, "login.smtp.from");
                let username = s
                    .username
                    .as_ref()
                    .and_then(|u| self.expand(u, "login.smtp.username"));
                let password = s
                    .password
                    .as_ref()
                    .and_then(|p| self.expand(p, "login.smtp.password"));
                {
                    let tls = match s.tls.as_ref().map(|t| t.value.as_str()) {
                        None if s.port == Some(465) => Some(super::SmtpTls::Implicit),
                        None | Some("starttls") => Some(super::SmtpTls::StartTls),
                        Some("implicit") => Some(super::SmtpTls::Implicit),
                        Some("none") => Some(super::SmtpTls::None),
                        Some(other) => {
                            if let Some(t) = &s.tls {
                                self.err(t, "login.smtp.tls", format!("'{other}' is not a TLS mode; use starttls, implicit or none"));
                            }
                            None
                        }
                    };
                    let loopback = |h: &str| {
                        h == "localhost"
                            || h.parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    };
                    if tls == Some(super::SmtpTls::None)
                        && let (Some(h), Some(t)) = (&host, &s.tls)
                        && !loopback(h)
                    {
                        self.err(t, "login.smtp.tls", format!("`none` sends mail and credentials in clear; it is allowed only for a loopback relay, not {h}"));
                    }
                    Some(MailerConfig::Smtp {
                        host: host?,
                        port: s.port.unwrap_or(if tls == Some(super::SmtpTls::Implicit) {
                            465
                        } else {
                            587
                        }),
                        username,
                        password,
                        from: from?,
                        tls: tls?,
                    })
                }
            }
            (Some(o), None) => self
                .expand(o, "login.outbox")
                .map(|v| MailerConfig::Outbox(self.relative(&v))),
            (None, None) => Some(MailerConfig::Outbox(self.relative(".warden/outbox"))),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(AuthConfig {
            mode,
            state: state?,
            access_ttl: Duration::from_secs(minutes * 60),
            refresh_ttl: Duration::from_secs(days * 86_400),
            code_ttl: Duration::from_secs(code_seconds),
            mailer: mailer?,
        })
    }

    fn data(&mut self, d: Spanned<model::DataSection>) -> Option<DataConfig> {
        let loc = d.referenced;
        let d = d.value;
        let location = match (&d.sqlite, &d.postgres) {
            (Some(path), None) => {
                let v = self.expand(path, "data.sqlite")?;
                let p = PathBuf::from(&v);
                let base = self.file.parent().unwrap_or(Path::new("."));
                Some(DataLocation::Sqlite(if p.is_absolute() {
                    p
                } else {
                    base.join(p)
                }))
            }
            (None, Some(url)) => {
                let v = self.expand(url, "data.postgres")?;
                if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                    Some(DataLocation::Postgres(v))
                } else {
                    self.err(
                        url,
                        "data.postgres",
                        "must be a postgres:// or postgresql:// URL",
                    );
                    None
                }
            }
            _ => {
                self.at(
                    loc,
                    "data",
                    "give exactly one of `sqlite: FILE` or `postgres: URL`",
                );
                None
            }
        };
        let ranged =
            |c: &mut Self, v: &Option<Spanned<u64>>, field: &str, lo: u64, hi: u64, def: u64| {
                match v {
                    None => Some(def),
                    Some(n) if (lo..=hi).contains(&n.value) => Some(n.value),
                    Some(n) => {
                        c.err(
                            n,
                            field,
                            format!("must be between {lo} and {hi}, got {}", n.value),
                        );
                        None
                    }
                }
            };
        let timeout = ranged(
            self,
            &d.query_timeout_ms,
            "data.query_timeout_ms",
            1,
            600_000,
            5_000,
        );
        let max_rows = ranged(self, &d.max_rows, "data.max_rows", 1, 100_000, 1_000);
        let conns = d.max_connections.as_ref().map(|s| Spanned {
            value: u64::from(s.value),
            referenced: s.referenced,
            defined: s.defined,
        });
        let max_connections = ranged(self, &conns, "data.max_connections", 1, 100, 8);
        Some(DataConfig {
            location: location?,
            query_timeout: Duration::from_millis(timeout?),
            max_rows: max_rows? as usize,
            max_connections: max_connections? as u32,
        })
    }

    fn tool(
        &mut self,
        t: model::ToolSpec,
        field: &str,
        dialect: Dialect,
        global: &model::PoliciesSpec,
    ) -> Option<Tool> {
        let before = self.errors.len();
        if !is_tool_name(&t.name.value) {
            self.err(
                &t.name,
                format!("{field}.name"),
                format!(
                    "'{}' is not a valid tool name: use 1-128 letters, digits, '_', '-' or '.'",
                    t.name.value
                ),
            );
        }
        if t.description.value.trim().is_empty() {
            self.err(
                &t.description,
                format!("{field}.description"),
                "must not be empty: clients show it to the model to decide when to call the tool",
            );
        }
        let access = match t.access.value.as_str() {
            "read" => Access::Read,
            "write" => Access::Write,
            other => {
                self.err(
                    &t.access,
                    format!("{field}.access"),
                    format!("'{other}' is not an access kind; use read or write"),
                );
                Access::Read
            }
        };
        let mut params = Vec::new();
        let mut seen = HashSet::new();
        for (i, p) in t.params.into_iter().enumerate() {
            let pfield = format!("{field}.params[{i}]");
            if !seen.insert(p.value.name.value.clone()) {
                self.err(
                    &p.value.name,
                    format!("{pfield}.name"),
                    format!("duplicate parameter '{}'", p.value.name.value),
                );
            }
            if let Some(param) = self.param(p.value, &pfield) {
                params.push(param);
            }
        }
        let statement = match sql::compile(&t.sql.value, dialect) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(&t.sql, format!("{field}.sql"), e.to_string());
                None
            }
        };
        let mut provided: Vec<&str> = vec![
            crate::pipeline::CALLER_ORG,
            crate::pipeline::CALLER_USER_ID,
            crate::pipeline::CALLER_EMAIL,
        ];
        if t.elicit.is_some() {
            provided.extend([super::ELICIT_ACTION, super::ELICIT_CONTENT]);
        }
        if t.sample.is_some() {
            provided.push(super::SAMPLE_TEXT);
        }
        for p in &params {
            if [
                super::ELICIT_ACTION,
                super::ELICIT_CONTENT,
                super::SAMPLE_TEXT,
                crate::confirm::CONFIRM,
                crate::confirm::TOKEN,
                crate::pipeline::CALLER_ORG,
                crate::pipeline::CALLER_USER_ID,
                crate::pipeline::CALLER_EMAIL,
            ]
            .contains(&p.name.as_str())
            {
                self.err(
                    &t.sql,
                    format!("{field}.params"),
                    format!("'{}' is reserved for answers Warden binds itself", p.name),
                );
            }
        }
        let elicit = match t.elicit {
            None => None,
            Some(e) => match e.value.schema.value {
                serde_json::Value::Object(m)
                    if m.get("type").and_then(|v| v.as_str()) == Some("object") =>
                {
                    Some(super::Elicit {
                        message: e.value.message,
                        schema: m,
                    })
                }
                _ => {
                    self.err(
                        &e.value.schema,
                        format!("{field}.elicit.schema"),
                        "must be a JSON Schema object with `type: object`",
                    );
                    None
                }
            },
        };
        let sample = match t.sample {
            None => None,
            Some(s) => {
                if let Err(e) =
                    minijinja::Environment::new().template_from_str(&s.value.prompt.value)
                {
                    self.err(
                        &s.value.prompt,
                        format!("{field}.sample.prompt"),
                        format!("template error: {e}"),
                    );
                }
                Some(super::Sample {
                    prompt: s.value.prompt.value,
                    max_tokens: s.value.max_tokens.unwrap_or(256),
                })
            }
        };
        if let Some(s) = &statement {
            for n in &s.names {
                if !params.iter().any(|p| &p.name == n) && !provided.contains(&n.as_str()) {
                    self.err(
                        &t.sql,
                        format!("{field}.sql"),
                        format!("uses :{n}, which is not declared in params"),
                    );
                }
            }
            for p in &params {
                if !s.names.contains(&p.name) {
                    self.err(
                        &t.sql,
                        format!("{field}.sql"),
                        format!("never uses the declared parameter :{}", p.name),
                    );
                }
            }
        }
        let returns = match t.returns.as_ref().map(|r| r.value.as_str()) {
            None | Some("rows") => Returns::Rows,
            Some("row") => Returns::Row,
            Some(other) => {
                if let Some(r) = &t.returns {
                    self.err(
                        r,
                        format!("{field}.returns"),
                        format!("'{other}' is not a result shape; use rows or row"),
                    );
                }
                Returns::Rows
            }
        };
        let output_schema = match t.output_schema {
            None => None,
            Some(s) => match s.value {
                serde_json::Value::Object(m)
                    if m.get("type").and_then(|v| v.as_str()) == Some("object") =>
                {
                    Some(m)
                }
                _ => {
                    self.err(
                        &s,
                        format!("{field}.output_schema"),
                        "must be a JSON Schema object with `type: object`",
                    );
                    None
                }
            },
        };
        let mut content = Vec::new();
        for (i, c) in t.content.into_iter().enumerate() {
            let cfield = format!("{field}.content[{i}]");
            if let Some(b) = self.content(c, &cfield) {
                content.push(b);
            }
        }
        let progress_steps = match t.progress_steps {
            Some(p) if p.value > 100 => {
                self.err(&p, format!("{field}.progress_steps"), "must be at most 100");
                0
            }
            Some(p) => p.value,
            None => 0,
        };
        if self.errors.len() > before {
            return None;
        }
        let (mut input_rules, mut output_rules) = self.policies(global, "policies", false);
        let mut policy_text = describe_policies(global);
        if let Some(p) = &t.policies {
            let (i, o) = self.policies(&p.value, &format!("{field}.policies"), true);
            input_rules.extend(i);
            output_rules.extend(o);
            policy_text.push_str(&describe_policies(&p.value));
        }
        let sensitive: Vec<String> = t.sensitive.iter().map(|s| s.value.clone()).collect();
        policy_text.push_str(&format!("sensitive={sensitive:?}"));
        let policies = crate::policy::PolicySet {
            input: input_rules,
            output: output_rules,
            sensitive,
            version: crate::policy::version_of(&policy_text),
        };
        if self.errors.len() > before {
            return None;
        }
        let mut input_schema = input_schema(&params);
        if access == Access::Write {
            add_confirmation_params(&mut input_schema);
        }
        Some(Tool {
            name: t.name.value,
            title: t.title,
            description: t.description.value,
            access,
            params,
            statement: statement?,
            returns,
            output_schema,
            input_schema,
            content,
            progress_steps,
            log: t.log,
            idempotent: t.idempotent,
            elicit,
            sample,
            policies,
        })
    }

    /// Compiles a set of policy rules; with `report`, every problem becomes a load error.
    fn policies(
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

    fn param(&mut self, p: model::ParamSpec, field: &str) -> Option<Param> {
        let before = self.errors.len();
        const TENANT: [&str; 8] = [
            "org",
            "org_id",
            "organisation",
            "organization",
            "organisation_id",
            "organization_id",
            "tenant",
            "tenant_id",
        ];
        if TENANT.contains(&p.name.value.to_ascii_lowercase().as_str()) {
            self.err(
                &p.name,
                format!("{field}.name"),
                format!(
                    "'{}' would let the client choose the organisation; Warden takes it from the caller's credential: use :caller_org in the SQL instead",
                    p.name.value
                ),
            );
        }
        if !is_name(&p.name.value) {
            self.err(&p.name, format!("{field}.name"), format!("'{}' is not a valid parameter name: start with a letter or '_', then letters, digits or '_'", p.name.value));
        }
        let ty = ParamType::parse(&p.ty.value);
        if ty.is_none() {
            self.err(
                &p.ty,
                format!("{field}.type"),
                format!(
                    "unknown type '{}'; use string, integer, number or boolean",
                    p.ty.value
                ),
            );
        }
        let ty = ty.unwrap_or(ParamType::String);
        let numeric = matches!(ty, ParamType::Integer | ParamType::Number);
        for (opt, name) in [(&p.minimum, "minimum"), (&p.maximum, "maximum")] {
            if let Some(v) = opt
                && !numeric
            {
                self.err(
                    v,
                    format!("{field}.{name}"),
                    format!(
                        "applies only to integer and number parameters, not {}",
                        ty.as_str()
                    ),
                );
            }
        }
        for (opt, name) in [(&p.min_length, "min_length"), (&p.max_length, "max_length")] {
            if let Some(v) = opt
                && ty != ParamType::String
            {
                self.err(
                    v,
                    format!("{field}.{name}"),
                    format!("applies only to string parameters, not {}", ty.as_str()),
                );
            }
        }
        if let (Some(lo), Some(hi)) = (&p.minimum, &p.maximum)
            && lo.value > hi.value
        {
            self.err(lo, format!("{field}.minimum"), "is greater than maximum");
        }
        if let (Some(lo), Some(hi)) = (&p.min_length, &p.max_length)
            && lo.value > hi.value
        {
            self.err(
                lo,
                format!("{field}.min_length"),
                "is greater than max_length",
            );
        }
        let pattern = match &p.pattern {
            None => None,
            Some(s) if ty != ParamType::String => {
                self.err(
                    s,
                    format!("{field}.pattern"),
                    "applies only to string parameters",
                );
                None
            }
            Some(s) => match regex::Regex::new(&s.value) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.err(
                        s,
                        format!("{field}.pattern"),
                        format!("invalid regular expression: {}", first_line(&e.to_string())),
                    );
                    None
                }
            },
        };
        if let Some(e) = &p.enumeration {
            if e.value.is_empty() {
                self.err(e, format!("{field}.enum"), "must list at least one value");
            }
            for v in &e.value {
                if !ty.accepts(v) {
                    self.err(
                        e,
                        format!("{field}.enum"),
                        format!("value {v} is not a {}", ty.as_str()),
                    );
                }
            }
        }
        if let Some(d) = &p.default
            && p.required
        {
            self.err(
                d,
                format!("{field}.default"),
                "a required parameter cannot have a default; drop one of them",
            );
        }
        if self.errors.len() > before {
            return None;
        }
        let param = Param {
            name: p.name.value,
            ty,
            description: p.description,
            required: p.required,
            default: p.default.as_ref().map(|d| d.value.clone()),
            enumeration: p.enumeration.map(|e| e.value),
            minimum: p.minimum.map(|v| v.value),
            maximum: p.maximum.map(|v| v.value),
            min_length: p.min_length.map(|v| v.value),
            max_length: p.max_length.map(|v| v.value),
            pattern,
            sensitive: p.sensitive,
        };
        if let Some(d) = &p.default
            && let Err(e) = param.check(&d.value)
        {
            self.err(
                d,
                format!("{field}.default"),
                format!("the default fails its own rules: {}", e.message),
            );
            return None;
        }
        Some(param)
    }

    fn content(&mut self, c: Spanned<model::ContentSpec>, field: &str) -> Option<ContentBlock> {
        let c = c.value;
        let column = c.column.as_ref().map(|s| s.value.clone());
        let need = |me: &mut Self, what: &str| {
            me.err(
                &c.kind,
                field.to_string(),
                format!("a {} block needs `{what}`", c.kind.value),
            );
        };
        match c.kind.value.as_str() {
            "text" => match column {
                Some(column) => Some(ContentBlock::Text { column }),
                None => {
                    need(self, "column");
                    None
                }
            },
            kind @ ("image" | "audio") => match (column, c.mime_type) {
                (Some(column), Some(mime_type)) if kind == "image" => {
                    Some(ContentBlock::Image { column, mime_type })
                }
                (Some(column), Some(mime_type)) => Some(ContentBlock::Audio { column, mime_type }),
                _ => {
                    need(self, "column and mime_type");
                    None
                }
            },
            "resource" => match (c.uri_column, column) {
                (Some(u), Some(column)) => Some(ContentBlock::Resource {
                    uri_column: u.value,
                    column,
                    mime_type: c.mime_type,
                }),
                _ => {
                    need(self, "uri_column and column");
                    None
                }
            },
            other => {
                self.err(
                    &c.kind,
                    format!("{field}.type"),
                    format!("unknown content type '{other}'; use text, image, audio or resource"),
                );
                None
            }
        }
    }

    fn resource(
        &mut self,
        r: Spanned<model::ResourceSpec>,
        field: &str,
        dialect: Dialect,
    ) -> Option<Resource> {
        let loc = r.referenced;
        let r = r.value;
        let before = self.errors.len();
        let uri = match (&r.uri, &r.uri_template) {
            (Some(u), None) if u.value.contains("://") || u.value.contains(':') => {
                Some(ResourceUri::Fixed(u.value.clone()))
            }
            (Some(u), None) => {
                self.err(
                    u,
                    format!("{field}.uri"),
                    format!(
                        "'{}' is not a URI (it needs a scheme, e.g. vendor://all)",
                        u.value
                    ),
                );
                None
            }
            (None, Some(t)) => match UriTemplate::parse(&t.value) {
                Ok(t) => Some(ResourceUri::Template(t)),
                Err(m) => {
                    self.err(t, format!("{field}.uri_template"), m);
                    None
                }
            },
            _ => {
                self.at(
                    loc,
                    field.to_string(),
                    "give exactly one of `uri` or `uri_template`",
                );
                None
            }
        };
        if r.name.value.trim().is_empty() {
            self.err(&r.name, format!("{field}.name"), "must not be empty");
        }
        let statement = match sql::compile(&r.sql.value, dialect) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(&r.sql, format!("{field}.sql"), e.to_string());
                None
            }
        };
        if let (Some(uri), Some(s)) = (&uri, &statement) {
            let vars: Vec<&str> = match uri {
                ResourceUri::Fixed(_) => Vec::new(),
                ResourceUri::Template(t) => t.variables().collect(),
            };
            for n in &s.names {
                let from_caller = [
                    crate::pipeline::CALLER_ORG,
                    crate::pipeline::CALLER_USER_ID,
                    crate::pipeline::CALLER_EMAIL,
                ]
                .contains(&n.as_str());
                if !vars.contains(&n.as_str()) && !from_caller {
                    self.err(
                        &r.sql,
                        format!("{field}.sql"),
                        format!("uses :{n}, which is not a variable of the URI"),
                    );
                }
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Resource {
            uri: uri?,
            name: r.name.value,
            title: r.title,
            description: r.description,
            mime_type: r.mime_type,
            statement: statement?,
            binary: r.binary,
        })
    }

    fn prompt(
        &mut self,
        p: model::PromptSpec,
        field: &str,
        resources: &[Resource],
    ) -> Option<Prompt> {
        let before = self.errors.len();
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
        let declared: HashSet<&str> = arguments.iter().map(|a| a.name.as_str()).collect();
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
                    role: Role::User,
                    template: t.value.clone(),
                });
            }
            (None, false) => {
                for (i, m) in p.messages.iter().enumerate() {
                    let mfield = format!("{field}.messages[{i}]");
                    let role = match m.value.role.as_ref().map(|r| r.value.as_str()) {
                        None | Some("user") => Role::User,
                        Some("assistant") => Role::Assistant,
                        Some(other) => {
                            self.err(
                                m,
                                format!("{mfield}.role"),
                                format!("'{other}' is not a role; use user or assistant"),
                            );
                            Role::User
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
        })
    }
}

/// `(origin, lowercase host)` of an http(s) URL, e.g. `("https://a.example:8443", "a.example")`.
pub(crate) fn split_origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?.to_string()
    } else {
        authority.split(':').next()?.to_string()
    };
    Some((format!("{scheme}://{authority}"), host))
}

/// Write tools take `confirm` and `confirmation_token` besides their own parameters.
fn add_confirmation_params(schema: &mut serde_json::Map<String, serde_json::Value>) {
    if let Some(serde_json::Value::Object(props)) = schema.get_mut("properties") {
        props.insert(
            crate::confirm::CONFIRM.into(),
            serde_json::json!({"type": "boolean", "description": "Set to true, with confirmation_token, only after the user approved the preview returned by a call without it."}),
        );
        props.insert(
            crate::confirm::TOKEN.into(),
            serde_json::json!({"type": "string", "description": "The token from the preview of exactly this call."}),
        );
    }
}

#[cfg(test)]
mod tests;

/// A stable text of a rule set, hashed into the policy version.
fn describe_policies(p: &model::PoliciesSpec) -> String {
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
