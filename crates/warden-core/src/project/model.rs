//! The project file's shape, as written by the operator. Parsing only: semantic checks live in
//! `project::load`, which turns this into a validated [`crate::project::Project`].

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The root of `warden.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// Schema version; only `1` exists.
    pub version: Spanned<u32>,
    /// A short name shown to clients as the server name.
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Text sent to clients in `initialize` as instructions for the model.
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub server: Option<Spanned<ServerSection>>,
    pub data: Spanned<DataSection>,
    /// `oauth` (default): every MCP request needs a bearer token. `none`: no authentication,
    /// for local development only; Warden then refuses to bind anything but loopback.
    #[serde(default)]
    pub auth: Option<Spanned<String>>,
    /// Where Warden keeps users, organisations, grants and tokens.
    #[serde(default)]
    pub state: Option<Spanned<StateSection>>,
    /// Token lifetimes.
    #[serde(default)]
    pub tokens: Option<Spanned<TokensSection>>,
    /// How sign-in links are delivered.
    #[serde(default)]
    pub login: Option<Spanned<LoginSection>>,
    /// What callers may see and do beyond the role and scope rules.
    #[serde(default)]
    pub authorization: Option<AuthorizationSection>,
    /// CEL rules applied to every tool, before the tool's own.
    #[serde(default)]
    pub policies: Option<Spanned<PoliciesSpec>>,
    /// The audit trail: retention and the checkpoint signing key.
    #[serde(default)]
    pub audit: Option<Spanned<AuditSection>>,
    /// Rate limits and daily quotas on tool calls.
    #[serde(default)]
    pub limits: Option<Spanned<CallLimitsSection>>,
    #[serde(default)]
    pub tools: Vec<Spanned<ToolSpec>>,
    /// Tables served as generated tools (list, get, search, ... insert, update, delete).
    #[serde(default)]
    pub tables: Vec<Spanned<TableSpec>>,
    /// Each organisation's files, moved through short-lived signed URLs.
    #[serde(default)]
    pub files: Option<Spanned<FilesSection>>,
    #[serde(default)]
    pub resources: Vec<Spanned<ResourceSpec>>,
    #[serde(default)]
    pub prompts: Vec<Spanned<PromptSpec>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port`; defaults to `127.0.0.1:8080`.
    #[serde(default)]
    pub bind: Option<Spanned<String>>,
    /// The URL clients use to reach this server, e.g. `https://warden.example.com`.
    #[serde(default)]
    pub public_url: Option<Spanned<String>>,
    /// Extra values accepted in the `Host` header (loopback names are always accepted).
    #[serde(default)]
    pub allowed_hosts: Vec<Spanned<String>>,
    /// Extra values accepted in the `Origin` header.
    #[serde(default)]
    pub allowed_origins: Vec<Spanned<String>>,
    /// Largest accepted request body, in bytes. Default 1 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<Spanned<u64>>,
    /// Serve HTTPS: a PEM certificate (chain allowed) and its private key.
    #[serde(default)]
    pub tls: Option<Spanned<TlsSection>>,
    /// `Strict-Transport-Security` on HTTPS responses.
    #[serde(default)]
    pub hsts: Option<Spanned<HstsSection>>,
    /// With `tls`, a plain-HTTP listener (`host:port`) that only redirects to HTTPS.
    #[serde(default)]
    pub redirect_http: Option<Spanned<String>>,
    /// Connection limits and timeouts.
    #[serde(default)]
    pub limits: Option<Spanned<LimitsSection>>,
    /// `stateful` (MCP sessions kept in this process) or `stateless` (none: any instance
    /// behind a balancer can serve any request).
    #[serde(default)]
    pub sessions: Option<Spanned<String>>,
    /// Addresses of proxies whose `X-Forwarded-For` names the client (a load balancer).
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    /// Serve `/metrics` (Prometheus) on a listener of its own. Off when absent.
    #[serde(default)]
    pub metrics: Option<MetricsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HstsSection {
    #[serde(default)]
    pub max_age: Option<Spanned<u64>>,
    #[serde(default)]
    pub include_subdomains: Option<Spanned<bool>>,
    #[serde(default)]
    pub preload: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    #[serde(default)]
    pub max_connections: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_connections_per_address: Option<Spanned<u64>>,
    /// Longest wait for a request body, in milliseconds. Default 30000.
    #[serde(default)]
    pub body_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub header_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub idle_timeout_ms: Option<Spanned<u64>>,
    /// Requests per client address to the OAuth endpoints and sign-in pages.
    #[serde(default)]
    pub unauthenticated: Option<Spanned<UnauthenticatedSection>>,
    /// Clients registered through `/register` that never completed an authorization.
    #[serde(default)]
    pub unused_clients: Option<Spanned<UnusedClientsSection>>,
}

/// One bucket per endpoint family, per client address.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnauthenticatedSection {
    #[serde(default)]
    pub register: Option<Spanned<BucketSection>>,
    #[serde(default)]
    pub authorize: Option<Spanned<BucketSection>>,
    #[serde(default)]
    pub token: Option<Spanned<BucketSection>>,
    #[serde(default)]
    pub revoke: Option<Spanned<BucketSection>>,
    #[serde(default)]
    pub sign_in: Option<Spanned<BucketSection>>,
}

/// The top-level `limits` section: token buckets on tool calls, shared by every instance.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CallLimitsSection {
    /// Per user (in their organisation), every tool.
    #[serde(default)]
    pub per_user: Option<Spanned<BucketSection>>,
    /// Per user, write tools only (on top of `per_user`).
    #[serde(default)]
    pub writes_per_user: Option<Spanned<BucketSection>>,
    /// Per OAuth client or API key.
    #[serde(default)]
    pub per_client: Option<Spanned<BucketSection>>,
    /// Per organisation, all its users together.
    #[serde(default)]
    pub per_org: Option<Spanned<BucketSection>>,
    /// `per_user` for a role instead of the default, by role name.
    #[serde(default)]
    pub roles: std::collections::BTreeMap<String, Spanned<BucketSection>>,
    /// Per user and tool, by tool name.
    #[serde(default)]
    pub tools: std::collections::BTreeMap<String, Spanned<BucketSection>>,
    /// Calls a day, reset at 00:00 UTC.
    #[serde(default)]
    pub daily: Option<Spanned<DailyQuotaSection>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DailyQuotaSection {
    #[serde(default)]
    pub calls_per_user: Option<Spanned<u64>>,
    #[serde(default)]
    pub calls_per_org: Option<Spanned<u64>>,
    /// Rows read tools return, a day.
    #[serde(default)]
    pub rows_returned_per_user: Option<Spanned<u64>>,
    #[serde(default)]
    pub rows_returned_per_org: Option<Spanned<u64>>,
    /// Rows write tools change, a day.
    #[serde(default)]
    pub rows_written_per_user: Option<Spanned<u64>>,
    #[serde(default)]
    pub rows_written_per_org: Option<Spanned<u64>>,
}

/// A token bucket: `burst` requests at once, then `per_minute`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct BucketSection {
    #[serde(default)]
    pub burst: Option<Spanned<u64>>,
    #[serde(default)]
    pub per_minute: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnusedClientsSection {
    #[serde(default)]
    pub per_address: Option<Spanned<u64>>,
    #[serde(default)]
    pub total: Option<Spanned<u64>>,
    #[serde(default)]
    pub expire_after_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    pub purge_every_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `host:port` of the metrics listener, e.g. `127.0.0.1:9090`.
    pub bind: Spanned<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSection {
    /// List write tools to read-only connections too (calling them is still refused).
    #[serde(default)]
    pub show_write_tools: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// `false` turns the audit trail off entirely; for benchmarks only. Default `true`.
    #[serde(default)]
    pub enabled: Option<Spanned<bool>>,
    /// Days records are kept. Default 365.
    #[serde(default)]
    pub retention_days: Option<Spanned<u32>>,
    /// How often the retention purge runs, in seconds (on one instance at a time). Default
    /// 86400 (daily).
    #[serde(default)]
    pub purge_every_seconds: Option<Spanned<u64>>,
    /// The Ed25519 key that signs checkpoints, relative to the project file; created on first
    /// use. Keep it outside the database (and ideally on another machine's backup). Default
    /// `.warden/audit.key`.
    #[serde(default)]
    pub signing_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// SQLite file, relative to the project file. Default `.warden/state.db`.
    #[serde(default)]
    pub sqlite: Option<Spanned<String>>,
    /// A `postgres://` URL, for several Warden instances sharing one state.
    #[serde(default)]
    pub postgres: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    /// Access-token lifetime in minutes. Default 15.
    #[serde(default)]
    pub access_minutes: Option<Spanned<u64>>,
    /// Refresh-token lifetime in days. Default 30.
    #[serde(default)]
    pub refresh_days: Option<Spanned<u64>>,
    /// Authorization-code lifetime in seconds, at most (and by default) 300.
    #[serde(default)]
    pub code_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    /// Directory where sign-in emails are written as files (development). Default
    /// `.warden/outbox`.
    #[serde(default)]
    pub outbox: Option<Spanned<String>>,
    #[serde(default)]
    pub smtp: Option<Spanned<SmtpSection>>,
    /// Password and sign-in-link sign-in on the sign-in page. Default true; false leaves
    /// only the identity providers.
    #[serde(default)]
    pub password: Option<Spanned<bool>>,
    /// The key that seals providers' refresh tokens in the state store: a file outside it.
    /// Default `.warden/sso.key`, created on first start.
    #[serde(default)]
    pub secrets_key: Option<Spanned<String>>,
    /// Identity providers people may sign in with.
    #[serde(default)]
    pub providers: Vec<Spanned<ProviderSection>>,
    /// Organisations (by slug) whose members must sign in through a provider: a password or
    /// sign-in-link session cannot open their console, approve an app for them, or call.
    #[serde(default)]
    pub provider_only: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Lowercase letters, digits and `-`; part of the redirect URI.
    pub name: Spanned<String>,
    /// `oidc` (default), `google`, `microsoft`, `okta`, `keycloak`, `auth0` or `github`.
    #[serde(default)]
    pub preset: Option<Spanned<String>>,
    /// The button's text after "Continue with".
    #[serde(default)]
    pub label: Option<Spanned<String>>,
    /// The OpenID issuer URL (not for google or github).
    #[serde(default)]
    pub issuer: Option<Spanned<String>>,
    pub client_id: Spanned<String>,
    /// Use `${VAR}` to keep it out of the file.
    pub client_secret: Spanned<String>,
    #[serde(default)]
    pub scopes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub link_verified_email: Option<Spanned<bool>>,
    #[serde(default)]
    pub provision: Option<Spanned<bool>>,
    #[serde(default)]
    pub resync: Option<Spanned<bool>>,
    /// GitHub Enterprise Server: its API and web addresses.
    #[serde(default)]
    pub api_url: Option<Spanned<String>>,
    #[serde(default)]
    pub web_url: Option<Spanned<String>>,
    #[serde(default)]
    pub map: Vec<Spanned<MapRuleSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapRuleSection {
    /// CEL over `claims`.
    pub when: Spanned<String>,
    pub org: Spanned<String>,
    pub role: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: Spanned<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// Use `${VAR}` to keep it out of the file.
    #[serde(default)]
    pub password: Option<Spanned<String>>,
    pub from: Spanned<String>,
    /// `starttls` (default; port 587), `implicit` (port 465), or `none` (loopback hosts only).
    #[serde(default)]
    pub tls: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Path of a SQLite database file, relative to the project file.
    #[serde(default)]
    pub sqlite: Option<Spanned<String>>,
    /// A `postgres://` URL. `${VAR}` is expanded, so passwords can stay in the environment.
    #[serde(default)]
    pub postgres: Option<Spanned<String>>,
    /// Longest a tool's query may run, in milliseconds. Default 5000.
    #[serde(default)]
    pub query_timeout_ms: Option<Spanned<u64>>,
    /// Most rows a read tool returns; more are cut and the result says so. Default 1000.
    #[serde(default)]
    pub max_rows: Option<Spanned<u64>>,
    /// Most connections held open to the data source. Default 8.
    #[serde(default)]
    pub max_connections: Option<Spanned<u32>>,
    /// With `{org}` in the location and `tables:`, the organisation whose database the
    /// tables' schema is read from at start.
    #[serde(default)]
    pub schema_org: Option<Spanned<String>>,
}

/// One table served as generated tools.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The table's name in the database.
    pub table: Spanned<String>,
    /// What the table holds, for the tools' descriptions.
    #[serde(default)]
    pub description: Option<String>,
    /// Read verbs: `list`, `get`, `search`, `filter`, `count`, `related`.
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    /// Write verbs: `insert`, `update`, `delete`.
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    /// Columns never served, filtered on or written.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Columns whose values output rules may withhold (`filter_sensitive_fields`); never
    /// searched, filtered on or counted, and redacted from the trail when written.
    #[serde(default)]
    pub sensitive: Vec<Spanned<String>>,
    /// Columns `search_<table>` looks in.
    #[serde(default)]
    pub search: Vec<Spanned<String>>,
    /// Low-cardinality columns `count_<table>_by` may group by.
    #[serde(default)]
    pub count_by: Vec<Spanned<String>>,
    /// Text columns that hold ISO dates (`YYYY-MM-DD...`): their filters take ranges.
    #[serde(default)]
    pub dates: Vec<Spanned<String>>,
    /// On a database several organisations share: the column that holds each row's
    /// organisation. Warden fills it from the caller (never from the client) and keeps every
    /// generated statement to the caller's rows.
    #[serde(default)]
    pub tenant_column: Option<Spanned<String>>,
    /// Most rows one `ingest_<table>` call takes. Default 100000.
    #[serde(default)]
    pub max_ingest_rows: Option<Spanned<u32>>,
    /// CEL rules for every tool of this table, after the project's global ones.
    #[serde(default)]
    pub policies: Option<Spanned<PoliciesSpec>>,
}

/// `files`: where objects are kept and how URLs to them are signed.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    /// Directory of the organisations' objects (one subdirectory each), relative to the
    /// project file. Default `data/files`.
    #[serde(default)]
    pub dir: Option<Spanned<String>>,
    /// The key that signs file URLs, relative to the project file; created on first use.
    /// Keep it outside the database. Default `.warden/files.key`.
    #[serde(default)]
    pub signing_key: Option<Spanned<String>>,
    /// Largest upload, in bytes. Default 104857600 (100 MiB).
    #[serde(default)]
    pub max_upload_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    pub description: Spanned<String>,
    pub access: Spanned<String>,
    #[serde(default)]
    pub params: Vec<Spanned<ParamSpec>>,
    pub sql: Spanned<String>,
    /// `rows` (default): `{ "rows": [...] }`; `row`: the single row, or an error if none.
    #[serde(default)]
    pub returns: Option<Spanned<String>>,
    /// JSON Schema of the structured result; when present, results carry `structuredContent`.
    #[serde(default)]
    pub output_schema: Option<Spanned<serde_json::Value>>,
    /// The input schema to advertise instead of the one derived from `params` (any JSON
    /// Schema 2020-12 keywords); its properties must be exactly the parameters.
    #[serde(default)]
    pub input_schema: Option<Spanned<serde_json::Value>>,
    /// How a row becomes MCP content instead of JSON text (images, audio, resources).
    #[serde(default)]
    pub content: Vec<Spanned<ContentSpec>>,
    /// Steps the server reports as progress notifications while the query runs.
    #[serde(default)]
    pub progress_steps: Option<Spanned<u32>>,
    /// Log messages the server emits (as MCP logging notifications) during the call.
    #[serde(default)]
    pub log: Vec<String>,
    /// Marks an idempotent write (MCP `idempotentHint`).
    #[serde(default)]
    pub idempotent: bool,
    /// CEL rules for this tool, after the project's global ones.
    #[serde(default)]
    pub policies: Option<Spanned<PoliciesSpec>>,
    /// Output fields (dotted paths, matched at any depth) that hold sensitive values.
    #[serde(default)]
    pub sensitive: Vec<Spanned<String>>,
    /// Ask the user for input (MCP elicitation) before the SQL runs: one question or a list.
    /// The first answer is bound as `:elicit_action` and `:elicit_content` (JSON text), and
    /// every answer under its key in `:answers`.
    #[serde(default)]
    pub elicit: Option<Spanned<OneOrMany<ElicitSpec>>>,
    /// Ask the client's model (MCP sampling) before the SQL runs; the reply is bound as
    /// `:sample_text`.
    #[serde(default)]
    pub sample: Option<Spanned<SampleSpec>>,
    /// Ask the client for its roots (MCP `roots/list`) before the SQL runs; they are bound as
    /// `:roots` (a JSON array of `{uri, name}`).
    #[serde(default)]
    pub roots: Option<Spanned<RootsSpec>>,
    /// `optional` or `required`: how an MCP 2026-07-28 client of the tasks extension gets the
    /// call (as a task it polls). Without it the call is always answered directly.
    #[serde(default)]
    pub task: Option<Spanned<String>>,
    /// For a task: ask the questions `before` the task is created (default), or `during` it.
    #[serde(default)]
    pub ask: Option<Spanned<String>>,
}

/// One item, or a list of them.
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(t) => vec![t],
            Self::Many(v) => v,
        }
    }
}

// By hand rather than `untagged`: a mapping goes to `T` and a sequence to `Vec<T>` directly,
// so their own errors (an unknown field, with its line) come through unbuffered.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping or a list of mappings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                s: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(serde::de::value::SeqAccessDeserializer::new(s))
                    .map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootsSpec {
    /// The key the request and its answer go under for MCP 2026-07-28 clients. Default
    /// `roots`.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The round it is asked in (1 first); default 1.
    #[serde(default)]
    pub round: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElicitSpec {
    /// A minijinja template over the tool's parameters.
    pub message: String,
    /// JSON Schema (flat object of primitive properties) for the requested answer.
    pub schema: Spanned<serde_json::Value>,
    /// The key the question and its answer go under for MCP 2026-07-28 clients. Default
    /// `elicit` (`elicit_2`, ... for the later ones of a list).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The round it is asked in (1 first); the questions of a round are asked together, and
    /// a round only once the one before is answered. Default 1.
    #[serde(default)]
    pub round: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    /// A minijinja template over the tool's parameters.
    pub prompt: Spanned<String>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The key the request and its answer go under for MCP 2026-07-28 clients. Default
    /// `sample`.
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// The round it is asked in (1 first); default 1.
    #[serde(default)]
    pub round: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub ty: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<Spanned<serde_json::Value>>,
    #[serde(default, rename = "enum")]
    pub enumeration: Option<Spanned<Vec<serde_json::Value>>>,
    #[serde(default)]
    pub minimum: Option<Spanned<f64>>,
    #[serde(default)]
    pub maximum: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_length: Option<Spanned<u64>>,
    #[serde(default)]
    pub max_length: Option<Spanned<u64>>,
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// A sensitive value is never echoed in errors (and, later, never audited).
    #[serde(default)]
    pub sensitive: bool,
    /// MCP 2026-07-28: the client also sends the value in the `Mcp-Param-<header>` HTTP
    /// header (so a gateway can route on it), and a request whose header and body disagree
    /// is refused.
    #[serde(default)]
    pub header: Option<Spanned<String>>,
}

/// One MCP content block built from a result row's columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentSpec {
    /// `text`, `image`, `audio` or `resource`.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    /// Column holding the text, or the base64 data for image and audio.
    #[serde(default)]
    pub column: Option<Spanned<String>>,
    /// Fixed MIME type for image, audio and resource blocks.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Column holding the resource URI, for `resource` blocks.
    #[serde(default)]
    pub uri_column: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// A fixed URI (`uri`) or an RFC 6570 level-1 template (`uri_template`) such as `vendor://{id}`.
    #[serde(default)]
    pub uri: Option<Spanned<String>>,
    #[serde(default)]
    pub uri_template: Option<Spanned<String>>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Query whose first row's first column is the resource's content. Template variables
    /// are bound as named parameters.
    pub sql: Spanned<String>,
    /// The content is base64 in the database and is served as a blob.
    #[serde(default)]
    pub binary: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub arguments: Vec<Spanned<PromptArgSpec>>,
    /// A minijinja template rendered into a single user message.
    #[serde(default)]
    pub template: Option<Spanned<String>>,
    /// Several messages, each with a role and a template or an embedded resource/image.
    #[serde(default)]
    pub messages: Vec<Spanned<PromptMessageSpec>>,
    /// Ask the user before rendering (as for tools); the answers are in the templates as
    /// `elicit_action`, `elicit_content` (the first) and `answers`.
    #[serde(default)]
    pub elicit: Option<Spanned<OneOrMany<ElicitSpec>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptArgSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Values offered by `completion/complete` for this argument.
    #[serde(default)]
    pub completions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptMessageSpec {
    /// `user` or `assistant`.
    #[serde(default)]
    pub role: Option<Spanned<String>>,
    #[serde(default)]
    pub text: Option<Spanned<String>>,
    /// URI of one of this project's resources, embedded in the message. May be a template
    /// over the prompt's arguments, e.g. `vendor://{{ vendor_id }}`.
    #[serde(default)]
    pub resource: Option<Spanned<String>>,
    /// Base64 image data with `mime_type`.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSpec {
    #[serde(default)]
    pub input: Vec<Spanned<InputRuleSpec>>,
    #[serde(default)]
    pub output: Vec<Spanned<OutputRuleSpec>>,
}

/// When `condition` is true, the call is denied with `reason`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRuleSpec {
    pub name: Spanned<String>,
    pub condition: Spanned<String>,
    pub reason: Spanned<String>,
}

/// When `condition` is true (or always, without one), `action` applies to the result.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputRuleSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub condition: Option<Spanned<String>>,
    /// `deny`, `filter_fields`, `mask_fields` or `filter_sensitive_fields`.
    pub action: Spanned<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}
