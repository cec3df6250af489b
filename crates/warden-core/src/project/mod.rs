//! The project file (`warden.yaml`): what Warden serves and from where.
//!
//! Pipeline position: none. The project is the input every stage reads; it is loaded and
//! checked before anything is served, and then shared read-only. A reload loads and checks
//! a new one and swaps it in whole (`pipeline/reload.rs`); a project is never changed.
//!
//! `model` is the file's raw shape; `load` checks it and builds the types below, so the rest
//! of Warden only ever sees a project that passed every check.

mod env;
mod load;
pub mod model;
mod params;
pub(crate) use params::input_schema;
pub mod uri_template;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use env::read_secret;
pub(crate) use load::add_confirmation_params;
pub use load::{LoadError, ProjectError, load_file, load_file_offline, load_str};
pub use params::{ArgumentError, ParamType};

use crate::exec::sql::Statement;

/// A checked project.
#[derive(Debug)]
pub struct Project {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub instructions: Option<String>,
    pub server: ServerConfig,
    pub data: DataConfig,
    pub auth: AuthConfig,
    /// `authorization.show_write_tools`: read-only connections still see write tools.
    pub show_write_tools: bool,
    /// The project-wide policy rules; they also govern resources and prompts.
    pub policies: crate::policy::PolicySet,
    pub audit: AuditConfig,
    /// `limits`: rate limits and quotas on tool calls.
    pub limits: CallLimits,
    pub tools: Vec<Tool>,
    /// `tables:` as checked at load; their tools are generated once the schema is read
    /// (`crate::tables::expand`), and added to `tools`.
    pub tables: Vec<crate::tables::TableSpec>,
    /// `files`: objects and signed URLs; `None` serves no file tools or URLs.
    pub files: Option<FilesConfig>,
    pub resources: Vec<Resource>,
    pub prompts: Vec<Prompt>,
    tool_index: HashMap<String, usize>,
}

impl Project {
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tool_index.get(name).map(|&i| &self.tools[i])
    }

    /// Adds tools generated from `tables:`; a name already served is refused whole, and
    /// nothing is added.
    pub fn add_tools(&mut self, tools: Vec<Tool>) -> Result<(), String> {
        let mut seen: std::collections::HashSet<&str> =
            self.tools.iter().map(|t| t.name.as_str()).collect();
        for t in &tools {
            if !seen.insert(t.name.as_str()) {
                return Err(format!(
                    "the generated tool '{}' has the name of another tool; rename that tool or leave the verb out",
                    t.name
                ));
            }
        }
        for t in tools {
            self.tool_index.insert(t.name.clone(), self.tools.len());
            self.tools.push(t);
        }
        Ok(())
    }

    pub fn prompt(&self, name: &str) -> Option<&Prompt> {
        self.prompts.iter().find(|p| p.name == name)
    }
}

/// Where a field is written in the project file, kept for problems found after loading:
/// `warden check` prepares each statement against the database and names the field of
/// any that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLocation {
    /// Dotted path of the field, e.g. `tools[2].sql`.
    pub field: String,
    pub line: u32,
    pub column: u32,
}

/// The `audit` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub enabled: bool,
    pub retention_days: u32,
    /// How often the retention purge runs.
    pub purge_every: std::time::Duration,
    /// Absolute, or relative to the working directory.
    pub signing_key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub public_url: Option<String>,
    /// Host names (without port) accepted in the `Host` header, loopback names included.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) accepted besides loopback origins.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// HTTPS, when set.
    pub tls: Option<TlsConfig>,
    /// The `Strict-Transport-Security` value sent on every HTTPS response.
    pub hsts: String,
    /// A plain-HTTP listener that only redirects to HTTPS (with `tls`).
    pub redirect_http: Option<SocketAddr>,
    pub limits: ConnectionLimits,
    /// Per-address limits on the OAuth endpoints and sign-in pages, and the cap on clients
    /// registered and never used (`server.limits.unauthenticated`, `.unused_clients`).
    pub abuse_limits: AbuseLimits,
    /// No MCP sessions: every request stands alone, so any instance can serve it
    /// (`server.sessions: stateless`).
    pub stateless: bool,
    /// Proxies (a load balancer) whose `X-Forwarded-For` names the client's address, for
    /// per-address limits and the audit trail. Empty: the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Where `/metrics` is served (`server.metrics.bind`); `None`: metrics are off.
    pub metrics_bind: Option<SocketAddr>,
}

/// A certificate chain and private key, PEM files (relative paths already resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// How many connections the HTTP listener holds, and how long it waits on a quiet one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most; past it, new ones are closed at once.
    pub max_connections: usize,
    /// Open connections from one IP address at most.
    pub max_connections_per_address: usize,
    /// Longest wait for a TLS handshake, and for a request's headers (which also bounds how
    /// long an idle HTTP/1.1 keep-alive connection is kept).
    pub header_timeout: std::time::Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Longest wait for a request's whole body once its headers arrived (408 after it).
    pub body_timeout: std::time::Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_address: 256,
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(120),
            body_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The `limits` section: token buckets on tool calls (none by default), shared by every
/// instance through the state store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallLimits {
    pub per_user: Option<Bucket>,
    pub writes_per_user: Option<Bucket>,
    pub per_client: Option<Bucket>,
    pub per_org: Option<Bucket>,
    /// Replaces `per_user` for these roles.
    pub roles: Vec<(crate::identity::Role, Bucket)>,
    /// Per user and tool.
    pub tools: Vec<(String, Bucket)>,
    pub calls_per_user_per_day: Option<u64>,
    pub calls_per_org_per_day: Option<u64>,
    pub rows_returned_per_user_per_day: Option<u64>,
    pub rows_returned_per_org_per_day: Option<u64>,
    pub rows_written_per_user_per_day: Option<u64>,
    pub rows_written_per_org_per_day: Option<u64>,
}

impl CallLimits {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub burst: u32,
    pub per_minute: u32,
}

/// Limits per client address on the endpoints anyone may call, and on the clients anyone
/// may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    pub register: Bucket,
    /// `GET` and `POST /authorize`.
    pub authorize: Bucket,
    /// `/token`: refreshes are routine, so it allows more.
    pub token: Bucket,
    pub revoke: Bucket,
    /// `/login` and `/login/magic` (on top of the failure counting of sign-in).
    pub sign_in: Bucket,
    pub unused_clients: UnusedClients,
}

/// The cap on registered clients no one ever authorized, and their expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusedClients {
    pub per_address: u32,
    pub total: u32,
    /// Unused clients older than this are deleted...
    pub expire_after: std::time::Duration,
    /// ...by a purge this often.
    pub purge_every: std::time::Duration,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        Self {
            register: Bucket {
                burst: 20,
                per_minute: 10,
            },
            authorize: Bucket {
                burst: 100,
                per_minute: 60,
            },
            token: Bucket {
                burst: 100,
                per_minute: 120,
            },
            revoke: Bucket {
                burst: 50,
                per_minute: 30,
            },
            sign_in: Bucket {
                burst: 30,
                per_minute: 10,
            },
            unused_clients: UnusedClients {
                per_address: 20,
                total: 10_000,
                expire_after: std::time::Duration::from_secs(24 * 60 * 60),
                purge_every: std::time::Duration::from_secs(10 * 60),
            },
        }
    }
}

/// The HSTS value Warden sends unless the project says otherwise.
pub const DEFAULT_HSTS: &str = "max-age=31536000; includeSubDomains";

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Bearer tokens: OAuth access tokens, API keys or browser sessions.
    OAuth,
    /// No authentication. Local development only: loopback binds only, and every client is
    /// told so in `initialize`.
    None,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub state: DataLocation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub code_ttl: Duration,
    pub mailer: MailerConfig,
    /// Sign-in: password on or off, and the identity providers.
    pub sign_in: Arc<SignInConfig>,
}

/// How people sign in to the web pages (`login` in the project file, beside the mailer).
#[derive(Debug, Default)]
pub struct SignInConfig {
    /// Password and sign-in-link sign-in offered.
    pub password: bool,
    /// The file holding the key that seals providers' refresh tokens.
    pub secrets_key: PathBuf,
    pub providers: Vec<Arc<LoginProvider>>,
    /// Organisations whose members must sign in through a provider.
    pub provider_only: Vec<String>,
}

impl SignInConfig {
    pub fn provider(&self, name: &str) -> Option<&Arc<LoginProvider>> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Whether a session opened without a provider (password or sign-in link) may act
    /// for the organisation `org` (a slug).
    pub fn password_session_allowed(&self, org: &str) -> bool {
        !self.provider_only.iter().any(|o| o == org)
    }
}

/// One identity provider people may sign in with.
pub struct LoginProvider {
    pub name: String,
    /// "Continue with {label}".
    pub label: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    /// An existing account with the same e-mail is linked when the provider says the
    /// e-mail is verified.
    pub link_verified_email: bool,
    /// Someone with no account gets one when a rule maps them.
    pub provision: bool,
    /// Claims are re-read at every refresh of a grant that came from this provider.
    pub resync: bool,
    pub map: Vec<MapRule>,
}

impl std::fmt::Debug for LoginProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect (every preset but GitHub): discovery from the issuer.
    Oidc {
        issuer: String,
        preset: &'static str,
    },
    /// GitHub's OAuth 2.0 and REST API.
    GitHub { api_url: String, web_url: String },
}

impl ProviderKind {
    /// The issuer identities are keyed on.
    pub fn issuer(&self) -> &str {
        match self {
            Self::Oidc { issuer, .. } => issuer,
            Self::GitHub { web_url, .. } => web_url,
        }
    }
}

/// "When this holds over the person's claims, they are `role` in `org`."
#[derive(Debug)]
pub struct MapRule {
    /// `map[N]` in the provider, for records.
    pub index: usize,
    pub when: crate::policy::Condition,
    pub org: String,
    pub role: crate::identity::Role,
}

#[derive(Clone, PartialEq, Eq)]
pub enum MailerConfig {
    Outbox(PathBuf),
    Smtp {
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        from: String,
        tls: SmtpTls,
    },
}

/// How Warden talks TLS to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    /// Plain SMTP: accepted only for a loopback host (a local relay).
    None,
}

impl std::fmt::Debug for MailerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Outbox(p) => f.debug_tuple("Outbox").field(p).finish(),
            Self::Smtp {
                host,
                port,
                from,
                tls,
                ..
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("from", from)
                .field("tls", tls)
                .finish_non_exhaustive(),
        }
    }
}

/// `files`: where each organisation's objects are kept, the key URLs are signed with, and
/// the largest upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    pub dir: PathBuf,
    pub signing_key: PathBuf,
    pub max_upload: u64,
}

/// A tool Warden itself provides (with `files`), with no SQL of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `request_upload_url`: a PUT URL for a new object (needs write access).
    UploadUrl,
    /// `request_download_url`: a GET URL for a stored object.
    DownloadUrl,
    /// `list_files`: the organisation's stored objects.
    ListFiles,
}

/// In a data location, stands for the caller's organisation.
pub const ORG_PLACEHOLDER: &str = "{org}";

/// The organisations whose SQLite database `pattern` (a path with `{org}`) names and that
/// exist, sorted.
pub fn sqlite_organisations(pattern: &Path) -> Vec<String> {
    let mut dir = PathBuf::new();
    let mut found = Vec::new();
    for part in pattern.components() {
        let text = part.as_os_str().to_string_lossy();
        let Some((prefix, suffix)) = text.split_once(ORG_PLACEHOLDER) else {
            dir.push(part);
            continue;
        };
        let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        }) else {
            return Vec::new();
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(org) = name
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix(suffix))
                .filter(|o| is_org(o))
            {
                let path = PathBuf::from(pattern.to_string_lossy().replace(ORG_PLACEHOLDER, org));
                if path.is_file() {
                    found.push(org.to_string());
                }
            }
        }
        break;
    }
    found.sort();
    found.dedup();
    found
}

/// An organisation's slug, as the pipeline accepts it.
fn is_org(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where a project's data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DataLocation {
    Sqlite(PathBuf),
    /// The URL may hold a password, so `Debug` never prints it.
    Postgres(String),
}

impl std::fmt::Debug for DataLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres(<redacted url>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DataConfig {
    pub location: DataLocation,
    /// Where `data.sqlite` or `data.postgres` is written.
    pub written_at: FieldLocation,
    pub query_timeout: Duration,
    pub max_rows: usize,
    pub max_connections: u32,
    /// With `{org}`: the organisation whose database `tables:` reads the schema from.
    pub schema_org: Option<String>,
}

impl DataConfig {
    /// The location holds `{org}`: each organisation has its own database.
    pub fn per_org(&self) -> bool {
        match &self.location {
            DataLocation::Sqlite(p) => p.to_string_lossy().contains(ORG_PLACEHOLDER),
            DataLocation::Postgres(u) => u.contains(ORG_PLACEHOLDER),
        }
    }

    /// This configuration with `{org}` replaced by an organisation's slug.
    pub fn for_org(&self, org: &str) -> DataConfig {
        let location = match &self.location {
            DataLocation::Sqlite(p) => DataLocation::Sqlite(PathBuf::from(
                p.to_string_lossy().replace(ORG_PLACEHOLDER, org),
            )),
            DataLocation::Postgres(u) => DataLocation::Postgres(u.replace(ORG_PLACEHOLDER, org)),
        };
        DataConfig {
            location,
            ..self.clone()
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.location {
            DataLocation::Sqlite(_) => Dialect::Sqlite,
            DataLocation::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// The SQL dialect a statement is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Whether a tool only reads or may change data. Everything about writes (annotations,
/// transactions, later confirmation) keys off this one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// `{ "rows": [...], "row_count": n, "truncated": bool }`
    Rows,
    /// The first row as an object; no row is a tool error.
    Row,
}

#[derive(Debug)]
pub struct Tool {
    pub name: String,
    pub title: Option<String>,
    pub description: String,
    pub access: Access,
    pub params: Vec<Param>,
    pub statement: Statement,
    /// Where `sql` is written.
    pub sql_at: FieldLocation,
    pub returns: Returns,
    pub output_schema: Option<serde_json::Map<String, serde_json::Value>>,
    /// JSON Schema of the arguments, derived from `params`.
    pub input_schema: serde_json::Map<String, serde_json::Value>,
    pub content: Vec<ContentBlock>,
    pub progress_steps: u32,
    pub log: Vec<String>,
    pub idempotent: bool,
    /// What the client is asked before the SQL runs, in the order asked (by round).
    pub questions: Vec<Question>,
    /// How a client of the MCP tasks extension gets the call; `None`: never as a task.
    pub task: Option<TaskMode>,
    /// For a task: whether the questions are asked before it is created.
    pub ask_before_task: bool,
    /// The project's global rules, then the tool's own.
    pub policies: crate::policy::PolicySet,
    /// For a tool generated from `tables:`: its table, verb, paging and key.
    pub generated: Option<crate::tables::Generated>,
    /// For a tool Warden provides itself: which (its `statement` is empty and never run).
    pub builtin: Option<Builtin>,
}

/// Names of values the pipeline binds from the authenticated caller (never from the
/// client).
pub const CALLER_ORG: &str = "caller_org";
pub const CALLER_USER_ID: &str = "caller_user_id";
pub const CALLER_EMAIL: &str = "caller_email";

/// Names bound by the pipeline itself rather than by the caller.
pub const ELICIT_ACTION: &str = "elicit_action";
pub const ELICIT_CONTENT: &str = "elicit_content";
pub const SAMPLE_TEXT: &str = "sample_text";
pub const ROOTS: &str = "roots";
pub const ANSWERS: &str = "answers";

/// One question a tool asks its caller's client before its SQL runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Its key in an MCP 2026-07-28 `input_required` result, the answers and `:answers`.
    pub key: String,
    /// Asked with the others of its round, once every earlier round is answered (1 first).
    pub round: u32,
    pub kind: QuestionKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuestionKind {
    /// Ask the user (elicitation); `message` is a template over the tool's parameters.
    Elicit {
        message: String,
        schema: serde_json::Map<String, serde_json::Value>,
    },
    /// Ask the client's model (sampling); `prompt` is a template over the parameters.
    Sample { prompt: String, max_tokens: u32 },
    /// Ask for the client's roots.
    Roots,
}

impl QuestionKind {
    /// The client capability it needs.
    pub fn capability(&self) -> &'static str {
        match self {
            Self::Elicit { .. } => "elicitation",
            Self::Sample { .. } => "sampling",
            Self::Roots => "roots",
        }
    }
}

/// `task:` on a tool (the MCP tasks extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMode {
    /// A task for a client that declared the extension; a direct answer for the others.
    Optional,
    /// Only as a task: a client that did not declare the extension is refused (-32021).
    Required,
}

impl Tool {
    /// Its questions of kind elicitation, in order.
    pub fn elicitations(&self) -> impl Iterator<Item = &Question> {
        self.questions
            .iter()
            .filter(|q| matches!(q.kind, QuestionKind::Elicit { .. }))
    }
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<serde_json::Value>,
    pub enumeration: Option<Vec<serde_json::Value>>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<regex::Regex>,
    pub sensitive: bool,
    /// The `Mcp-Param-` header that carries the value too (advertised as `x-mcp-header`).
    pub header: Option<String>,
    /// For an `array` generated from `tables:`: the type every item must have (at most
    /// [`MAX_ITEMS`] of them).
    pub items: Option<ParamType>,
}

/// A name Warden can use as a parameter and placeholder: a letter or '_', then letters,
/// digits and '_'.
pub fn is_plain_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names that would let a client choose an organisation: never a parameter (Warden takes
/// the organisation from the caller's credential).
pub const TENANT_NAMES: [&str; 8] = [
    "org",
    "org_id",
    "organisation",
    "organization",
    "organisation_id",
    "organization_id",
    "tenant",
    "tenant_id",
];

/// Most items an array parameter with an item type takes.
pub const MAX_ITEMS: usize = 100;

#[derive(Debug, Clone)]
pub enum ContentBlock {
    Text {
        column: String,
    },
    Image {
        column: String,
        mime_type: String,
    },
    Audio {
        column: String,
        mime_type: String,
    },
    Resource {
        uri_column: String,
        column: String,
        mime_type: Option<String>,
    },
}

#[derive(Debug)]
pub struct Resource {
    pub uri: ResourceUri,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub mime_type: Option<String>,
    pub statement: Statement,
    /// Where `sql` is written.
    pub sql_at: FieldLocation,
    pub binary: bool,
}

#[derive(Debug)]
pub enum ResourceUri {
    Fixed(String),
    Template(uri_template::UriTemplate),
}

#[derive(Debug)]
pub struct Prompt {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub arguments: Vec<PromptArgument>,
    pub messages: Vec<PromptMessage>,
    /// What the user is asked before the prompt is rendered, in the order asked.
    pub questions: Vec<Question>,
}

#[derive(Debug)]
pub struct PromptArgument {
    pub name: String,
    pub description: Option<String>,
    pub required: bool,
    pub completions: Vec<String>,
}

/// Who speaks a prompt message (not to be confused with an organisation role,
/// [`crate::identity::Role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    User,
    Assistant,
}

#[derive(Debug)]
pub enum PromptMessage {
    /// A minijinja template, checked for syntax at load.
    Text { role: Speaker, template: String },
    /// One of the project's own resources, read when the prompt is requested.
    Resource { role: Speaker, uri: String },
    Image {
        role: Speaker,
        data: String,
        mime_type: String,
    },
}
