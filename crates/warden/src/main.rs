//! `warden`: the command line. Loads a project, opens its data, and runs the edge.
//!
//! Entry point for every mode: `serve` (HTTP or stdio), `demo`, `init` and `check`.

#![forbid(unsafe_code)]

mod admin;
mod audit_cmd;
mod init;
mod policy_test;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warden_core::audit::Sink;
use warden_core::pipeline::Pipeline;
use warden_core::project::{self, AuthMode, Project};
use warden_store::audit::{AuditLog, Signer};

#[derive(Debug, Parser)]
#[command(
    name = "warden",
    version,
    about = "A secure MCP server for your organisation's data",
    after_help = "Examples:\n  warden demo                          run an example project, ready for a client\n  warden init ./vendor-risk            create a project with example data\n  warden check -p ./vendor-risk/warden.yaml\n  warden serve -p ./vendor-risk/warden.yaml\n  warden serve -p ./vendor-risk/warden.yaml --stdio"
)]
struct Cli {
    /// Log filter, e.g. `info` or `warden=debug` (also RUST_LOG).
    #[arg(long, global = true, env = "WARDEN_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

/// `-p/--project`, accepted anywhere after an admin command.
#[derive(Debug, clap::Args)]
struct ProjectArg {
    /// The project file (its `state` section says where users and tokens are kept).
    #[arg(
        short,
        long = "project",
        global = true,
        default_value = "warden.yaml",
        env = "WARDEN_PROJECT"
    )]
    path: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Run policy test cases (default: policies.test.yaml beside the project file).
    #[command(
        after_help = "Example:\n  warden policy test -p warden.yaml\n  warden policy test -p warden.yaml cases/guests.yaml\nExit status is 0 when every case passes, 1 otherwise."
    )]
    Test {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// The cases file.
        cases: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new project with a realistic example database.
    #[command(
        after_help = "Example:\n  warden init ./vendor-risk && warden serve -p ./vendor-risk/warden.yaml"
    )]
    Init {
        /// Directory to create the project in (created if missing; must not hold a project).
        dir: PathBuf,
    },
    /// Check a project file and report every problem with its line and field.
    #[command(
        after_help = "Example:\n  warden check -p warden.yaml\nExit status is 0 when the project is valid, 1 otherwise."
    )]
    Check {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
    },
    /// Serve a project over Streamable HTTP (default) or stdio.
    #[command(
        after_help = "Examples:\n  warden serve -p warden.yaml\n  warden serve -p warden.yaml --bind 127.0.0.1:9000\n  warden serve -p warden.yaml --stdio      for local clients that launch Warden themselves"
    )]
    Serve {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// Serve one client over stdin/stdout instead of HTTP.
        #[arg(long)]
        stdio: bool,
        /// Override server.bind from the project file.
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Manage organisations.
    Org {
        #[command(flatten)]
        project: ProjectArg,
        #[command(subcommand)]
        command: admin::OrgCommand,
    },
    /// Manage users.
    User {
        #[command(flatten)]
        project: ProjectArg,
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Change or remove a member's role in an organisation.
    Member {
        #[command(flatten)]
        project: ProjectArg,
        #[command(subcommand)]
        command: admin::MemberCommand,
    },
    /// Manage API keys.
    Key {
        #[command(flatten)]
        project: ProjectArg,
        #[command(subcommand)]
        command: admin::KeyCommand,
    },
    /// List or revoke connected apps (OAuth clients) in an organisation.
    Apps {
        #[command(flatten)]
        project: ProjectArg,
        #[command(subcommand)]
        command: admin::AppsCommand,
    },
    /// Test the project's policies against YAML cases.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Explain whether a user may use a tool through an assistant, and which rule decides.
    #[command(
        after_help = "Examples:\n  warden why --user ana@acme.example --tool update_finding_status --org acme\n  warden why --user gus@acme.example --tool search_vendors --org acme --scope mcp:read"
    )]
    Why {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
        /// The user's email.
        #[arg(long)]
        user: String,
        /// The tool's name.
        #[arg(long)]
        tool: String,
        /// The organisation (required when the user belongs to several).
        #[arg(long)]
        org: Option<String>,
        /// The connection's scopes; by default both a read-only and a read-write connection
        /// are explained.
        #[arg(long)]
        scope: Option<String>,
    },
    /// Show the audit trail: who did what, newest last.
    #[command(
        after_help = "Examples:\n  warden log -p warden.yaml --since 1h\n  warden log --user ana@acme.example --tool update_finding_status\n  warden log --policy deny --since 2026-11-01\n  warden log --status error --org acme --json"
    )]
    Log(audit_cmd::LogArgs),
    /// Verify, export or purge the audit trail.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Run the example project from a temporary directory and print how to connect.
    #[command(
        after_help = "Examples:\n  warden demo\n  warden demo --port 9000\n  warden demo --keep        keep the temporary project after exit"
    )]
    Demo {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Keep the temporary project directory when the demo stops.
        #[arg(long)]
        keep: bool,
    },
}

/// The log filter for `spec`. rmcp logs every new session's id whole at INFO, and session ids
/// are never logged whole, so rmcp is held at WARN unless the filter names it explicitly
/// (someone debugging rmcp itself).
fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let spec = if spec.contains("rmcp") {
        spec.to_string()
    } else {
        format!("{spec},rmcp=warn")
    };
    tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = log_filter(
        std::env::var("RUST_LOG")
            .ok()
            .as_deref()
            .unwrap_or(&cli.log),
    );
    // Logs go to stderr: stdout belongs to the protocol in stdio mode.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init { dir } => {
            let project = init::init(&dir).await?;
            println!("Created {}", project.display());
            println!("  data: {}", dir.join("data/vendors.db").display());
            println!("Next:\n  warden serve -p {}", project.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { project } => match project::load_file(&project) {
            Ok(p) => {
                println!(
                    "{}: ok ({} tools, {} resources, {} prompts)",
                    project.display(),
                    p.tools.len(),
                    p.resources.len(),
                    p.prompts.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                for err in &e.errors {
                    eprintln!("{err}");
                }
                eprintln!("{} problem(s) found; nothing was served.", e.errors.len());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Org { project, command } => {
            admin_command(&project.path, |s, a| {
                Box::pin(admin::run_org(s, a, command))
            })
            .await
        }
        Command::User { project, command } => {
            admin_command(&project.path, |s, a| {
                Box::pin(admin::run_user(s, a, command))
            })
            .await
        }
        Command::Member { project, command } => {
            admin_command(&project.path, |s, a| {
                Box::pin(admin::run_member(s, a, command))
            })
            .await
        }
        Command::Key { project, command } => {
            admin_command(&project.path, |s, a| {
                Box::pin(admin::run_key(s, a, command))
            })
            .await
        }
        Command::Apps { project, command } => {
            admin_command(&project.path, |s, a| {
                Box::pin(admin::run_apps(s, a, command))
            })
            .await
        }
        Command::Policy {
            command:
                PolicyCommand::Test {
                    project: file,
                    cases,
                },
        } => {
            let project = project::load_file(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let cases = cases.unwrap_or_else(|| {
                file.parent()
                    .unwrap_or(Path::new("."))
                    .join("policies.test.yaml")
            });
            let (_, failed) = policy_test::run(&project, &cases)?;
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Log(args) => audit_cmd::log(args).await,
        Command::Audit { command } => audit_cmd::run(command).await,
        Command::Why {
            project,
            user,
            tool,
            org,
            scope,
        } => why(&project, &user, &tool, org.as_deref(), scope.as_deref()).await,
        Command::Serve {
            project,
            stdio,
            bind,
        } => {
            let opened = open(&project).await?;
            let pipeline = opened.pipeline.clone();
            if stdio {
                let key = match pipeline.project().auth.mode {
                    AuthMode::OAuth => Some(stdio_identity(&opened).await?),
                    AuthMode::None => None,
                };
                warden_server::serve_stdio(pipeline.clone(), key).await?;
                opened.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            let addr = bind.unwrap_or(pipeline.project().server.bind);
            if pipeline.project().auth.mode == AuthMode::None && !addr.ip().is_loopback() {
                anyhow::bail!(
                    "refusing to serve {addr}: the project says `auth: none`, which is for local development and binds only to loopback"
                );
            }
            serve_http(&opened, addr, |a| {
                tracing::info!("serving MCP on http://{a}/mcp")
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { port, keep } => {
            let dir = tempfile::Builder::new()
                .prefix("warden-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let project_file = init::init(dir.path()).await?;
            let opened = open(&project_file).await?;
            let identity = admin::seed_demo(&opened.state).await?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let exe = std::env::current_exe()
                .map_or_else(|_| "warden".to_string(), |p| p.display().to_string());
            let project_path = project_file.display().to_string();
            serve_http(&opened, addr, |a| {
                print_demo_banner(a, &exe, &project_path, &identity)
            })
            .await?;
            if keep {
                let kept = dir.keep();
                println!("Kept the demo project in {}", kept.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `warden why`: the authorize stage's own decision, spelled out.
async fn why(
    project_file: &Path,
    email: &str,
    tool: &str,
    org: Option<&str>,
    scope: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let project = project::load_file(project_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = project.tool(tool).ok_or_else(|| {
        let names: Vec<&str> = project.tools.iter().map(|t| t.name.as_str()).collect();
        anyhow::anyhow!(
            "no tool '{tool}' in {}; its tools are: {}",
            project_file.display(),
            names.join(", ")
        )
    })?;
    let store = admin::open_state_at(&project.auth.state).await?;
    let user = store
        .user_by_email(email)
        .await?
        .with_context(|| format!("no user '{email}'"))?;
    let memberships = store.orgs_of_user(user.id).await?;
    let (o, m) = match (org, memberships.as_slice()) {
        (Some(slug), _) => memberships
            .iter()
            .find(|(o, _)| o.slug == slug)
            .with_context(|| format!("{email} is not a member of '{slug}'"))?,
        (None, [one]) => one,
        (None, []) => {
            anyhow::bail!("{email} belongs to no organisation, so it cannot use any tool")
        }
        (None, _) => anyhow::bail!("{email} belongs to several organisations; name one with --org"),
    };
    let scope_sets: Vec<warden_store::Scopes> = match scope {
        Some(s) => vec![s.parse().map_err(|e| anyhow::anyhow!("--scope: {e}"))?],
        None => vec![warden_store::Scopes::READ, warden_store::Scopes::READ_WRITE],
    };
    println!(
        "{email} is {} in {}; {tool} is a {} tool.",
        m.role.title(),
        o.slug,
        t.access.as_str()
    );
    let mut any_allowed = false;
    for scopes in scope_sets {
        let caller = warden_core::authz::Caller {
            user_id: user.id.to_string(),
            email: user.email.clone(),
            org: o.slug.clone(),
            role: m.role,
            scopes,
            method: "explain",
            credential: String::new(),
        };
        match warden_core::authz::decide(&caller, t.access) {
            Ok(p) => {
                any_allowed = true;
                println!("  with {scopes}: ALLOWED by rule {}", p.rule());
            }
            Err(d) => println!(
                "  with {scopes}: DENIED at the {} stage by rule {}: {}",
                d.stage.as_str(),
                d.rule,
                d.reason
            ),
        }
    }
    store.close().await;
    Ok(if any_allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// A project ready to serve: its pipeline, its state store and its audit trail.
struct Opened {
    pipeline: Arc<Pipeline>,
    state: warden_store::Store,
    /// `None` with `audit: { enabled: false }`.
    audit: Option<Audit>,
}

#[derive(Clone)]
struct Audit {
    log: AuditLog,
    signer: Arc<Signer>,
}

impl Opened {
    fn sink(&self) -> Arc<dyn Sink> {
        sink_of(self.audit.as_ref())
    }

    /// Closes the pipeline (recording what it still holds) and signs a last checkpoint.
    async fn close(&self) {
        self.pipeline.close().await;
        if let Some(a) = &self.audit
            && let Err(e) = a.log.checkpoint("shutdown").await
        {
            tracing::error!(error = %e, "could not sign the shutdown checkpoint");
        }
    }
}

/// Where events go: the writer, or nowhere with `audit: { enabled: false }`.
fn sink_of(audit: Option<&Audit>) -> Arc<dyn Sink> {
    match audit {
        Some(a) => Arc::new(a.log.clone()),
        None => Arc::new(warden_core::audit::Disabled),
    }
}

async fn open(project_file: &Path) -> anyhow::Result<Opened> {
    let opened = open_project(project_file).await?;
    if opened.pipeline.project().auth.mode == AuthMode::None {
        tracing::warn!(
            "`auth: none`: serving WITHOUT authentication (local development only); every client can use every tool"
        );
    }
    Ok(opened)
}

async fn open_project(project_file: &Path) -> anyhow::Result<Opened> {
    let project: Project = project::load_file(project_file).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{} problem(s) in the project file; run `warden check` for the full list",
            e.errors.len()
        )
    })?;
    let state = admin::open_state_at(&project.auth.state).await?;
    let audit = if project.audit.enabled {
        let signer = Arc::new(
            Signer::load_or_create(&project.audit.signing_key)
                .map_err(|e| anyhow::anyhow!("{e}; set audit.signing_key in the project file"))?,
        );
        let log = AuditLog::start(
            state.clone(),
            Some(signer.clone()),
            warden_store::audit::Options::default(),
        );
        Some(Audit { log, signer })
    } else {
        tracing::warn!(
            "`audit: {{ enabled: false }}`: calls are NOT recorded; use this for benchmarks only"
        );
        None
    };
    // Write confirmations live with the rest of the state, so any instance can redeem them;
    // without authentication there is no shared state, and memory suffices.
    let confirmations: Arc<dyn warden_core::confirm::Ledger> = match project.auth.mode {
        AuthMode::OAuth => Arc::new(warden_auth::confirm::StoreLedger::new(state.clone())),
        AuthMode::None => Arc::new(warden_auth::confirm::MemoryLedger::default()),
    };
    let sink = sink_of(audit.as_ref());
    let manifest = audit_cmd::manifest_event(&project);
    let retention_days = project.audit.retention_days;
    let pipeline = Pipeline::open(Arc::new(project), confirmations, sink.clone())
        .await
        .context("cannot open the project's data")?;
    // The tool manifest this process serves is on the record before any call is.
    sink.record(manifest)
        .await
        .context("cannot record the project load; refusing to serve without an audit trail")?;
    if let Some(a) = &audit {
        audit_cmd::start_retention(
            state.clone(),
            a.log.clone(),
            a.signer.clone(),
            retention_days,
        );
    }
    Ok(Opened {
        pipeline: Arc::new(pipeline),
        state,
        audit,
    })
}

type AdminFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

async fn admin_command(
    project: &Path,
    run: impl for<'a> FnOnce(&'a warden_store::Store, &'a AuditLog) -> AdminFuture<'a>,
) -> anyhow::Result<ExitCode> {
    let store = admin::open_state(project).await?;
    // The server signs checkpoints over what this records.
    let audit = AuditLog::start(store.clone(), None, warden_store::audit::Options::default());
    let result = run(&store, &audit).await;
    drop(audit);
    store.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Over stdio the caller is whoever holds the API key in WARDEN_API_KEY.
async fn stdio_identity(
    opened: &Opened,
) -> anyhow::Result<warden_server::transport::mcp::StdioKey> {
    let pipeline = &opened.pipeline;
    let key = std::env::var("WARDEN_API_KEY").map_err(|_| {
        anyhow::anyhow!(
            "set WARDEN_API_KEY to an API key (`warden key create ...`): over stdio the caller is the key's owner"
        )
    })?;
    let cfg = &pipeline.project().auth;
    let auth = warden_auth::AuthServer::new(
        opened.state.clone(),
        opened.sink(),
        "stdio://local",
        cfg.access_ttl,
        cfg.refresh_ttl,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let principal = auth
        .authenticate(&key)
        .await
        .map_err(|e| anyhow::anyhow!("WARDEN_API_KEY was refused: {e}"))?;
    tracing::info!(user = %principal.email, org = %principal.org_slug, role = %principal.role, "stdio caller authenticated");
    Ok(warden_server::transport::mcp::StdioKey {
        auth: Arc::new(auth),
        key,
    })
}

async fn serve_http(
    opened: &Opened,
    addr: SocketAddr,
    on_ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let pipeline = opened.pipeline.clone();
    let server = warden_server::HttpServer::bind(pipeline.clone(), addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another server using that port? pick another with --bind or --port")
    })?;
    let local = server.local_addr()?;
    let auth = match pipeline.project().auth.mode {
        AuthMode::None => None,
        AuthMode::OAuth => {
            let cfg = &pipeline.project().auth;
            let issuer = pipeline
                .project()
                .server
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{local}"));
            let auth = warden_auth::AuthServer::new(
                opened.state.clone(),
                opened.sink(),
                &issuer,
                cfg.access_ttl,
                cfg.refresh_ttl,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_code_ttl(cfg.code_ttl);
            let mailer = warden_server::web::mailer::Mailer::new(cfg.mailer.clone());
            Some(warden_server::web::oauth::AuthState::new(
                Arc::new(auth),
                mailer,
            ))
        }
    };
    on_ready(local);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal.cancel();
    });
    server
        .serve(auth, shutdown)
        .await
        .context("the HTTP server failed")?;
    opened.close().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn print_demo_banner(addr: SocketAddr, exe: &str, project: &str, id: &admin::DemoIdentity) {
    let url = format!("http://{addr}/mcp");
    let stdio = serde_json::json!({
        "mcpServers": { "warden-demo": {
            "command": exe, "args": ["serve", "--stdio", "--project", project],
            "env": { "WARDEN_API_KEY": id.read_key } } }
    });
    let stdio = serde_json::to_string_pretty(&stdio).unwrap_or_default();
    println!(
        "\
Warden demo: a vendor-risk register with {vendors} vendors, ready for a client.

  MCP endpoint   {url}
  Project file   {project}

Sign in (OAuth, in the browser your client opens) as
  email          {email}
  password       {password}
  organisation   {org}

Read-only API key (shown once; send it as `Authorization: Bearer ...`):
  {key}

Connect with the MCP Inspector (Streamable HTTP; it signs in through OAuth):
  npx @modelcontextprotocol/inspector --transport http --server-url {url}

Connect a desktop assistant over stdio (paste into its MCP server configuration;
works while this demo runs, or use `warden init DIR` for a lasting project):
{stdio}

Try the tools search_vendors, vendor_detail, list_findings, portfolio_report,
upcoming_obligations and update_finding_status. Press Ctrl-C to stop.",
        vendors = init::VENDOR_COUNT,
        email = id.admin_email,
        password = id.admin_password,
        org = id.org,
        key = id.read_key,
    );
}
