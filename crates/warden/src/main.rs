//! `warden`: the command line. Loads a project, opens its data, and runs the edge.
//!
//! Entry point for every mode: `serve` (HTTP or stdio), `demo`, `init` and `check`. This file
//! holds the clap definitions and the dispatch; each command's implementation is in its own
//! module: `check.rs`, `serve.rs` (HTTP or stdio), `demo.rs`, `why.rs`, `init.rs`,
//! `policy_test.rs`, `audit_cmd.rs` (`log`, `audit`), `reload_cmd.rs` (`reload`) and
//! `admin.rs` (`org`, `user`, `member`, `key`, `apps`); `open.rs` opens a project for `serve`
//! and `demo`, `reload.rs` reloads it on SIGHUP, and `metrics.rs` starts the metrics
//! listener beside `serve`.

#![forbid(unsafe_code)]

mod admin;
mod audit_cmd;
mod check;
mod demo;
mod init;
mod metrics;
mod open;
mod policy_test;
mod reload;
mod reload_cmd;
mod serve;
mod test_hooks;
mod why;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warden_core::project;
use warden_store::audit::AuditLog;

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
    /// How log lines are written on stderr: `text` for people, `json` (one object per
    /// line) for log collectors.
    #[arg(
        long,
        global = true,
        env = "WARDEN_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// Create a new project with a realistic example database, and its first admin.
    #[command(
        after_help = "Examples:\n  warden init ./vendor-risk                                   at a terminal, asks for the first admin;\n                                                              otherwise prints the commands that add one\n  warden init ./vendor-risk --org acme --admin ana@acme.example\n                                                              creates the organisation, the admin (with a\n                                                              password) and an API key, and prints them once\n  warden init ./vendor-risk --postgres postgres://me@127.0.0.1/vendors\n                                                              the example data in an empty PostgreSQL database"
    )]
    Init {
        /// Directory to create the project in (created if missing; must not hold a project).
        dir: PathBuf,
        /// The first organisation's slug (with --admin).
        #[arg(long, requires = "admin")]
        org: Option<String>,
        /// The first admin's email (with --org).
        #[arg(long, requires = "org")]
        admin: Option<String>,
        /// Put the example data in this (empty) PostgreSQL database instead of a SQLite
        /// file, e.g. postgres://user@127.0.0.1/vendors
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
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
        after_help = "Examples:\n  warden serve -p warden.yaml\n  warden serve -p warden.yaml --bind 127.0.0.1:9000\n  warden serve -p warden.yaml --bind 0.0.0.0:443 --tls-cert cert.pem --tls-key key.pem\n  warden serve -p warden.yaml --stdio      for local clients that launch Warden themselves\n\nSignals: SIGTERM or Ctrl-C finish in-flight requests and stop; SIGHUP reloads the project\nfile (see `warden reload --help`) and re-reads the TLS certificate and key (they are also\nre-read when the files change)."
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
        /// Serve HTTPS with this PEM certificate (chain allowed); overrides server.tls.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM private key (readable by its owner only: chmod 600).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
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
        after_help = "Examples:\n  warden why --user ana@acme.example --tool update_finding_status --org acme\n  warden why --user gus@acme.example --tool search_vendors --org acme --scope mcp:read\n  warden why --user gus@acme.example --tool search_vendors --args '{\"query\":\"Cloud\",\"limit\":60}'\nExit status is 0 when some connection would be allowed, 2 when none would."
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
        /// The call's arguments as a JSON object: the arguments and input policy stages are
        /// explained for exactly this call (default: no arguments, so defaults apply).
        #[arg(long, value_name = "JSON")]
        args: Option<String>,
    },
    /// Ask the running `warden serve` of a project to re-read its project file.
    #[command(
        after_help = "Examples:\n  warden reload -p warden.yaml\n  kill -HUP $(cat .warden/serve/*)       the same, by hand\n\nThe file is checked first; if it has problems they are printed and no server is\nsignalled. Otherwise every `warden serve` of this project (each lists its pid in\n.warden/serve/ beside the project file) gets SIGHUP, re-reads the file, and either serves\nthe new tools, resources, prompts and policies from its next request on, or, if the file\nfails a check or changes `server`, `auth`, `state`, `tokens`, `login`, `audit` or `data`\n(which need a restart), changes nothing. Each server records which (project_reloaded or\nproject_reload_failed), and this command prints it.\nExit status is 0 when every server reloaded, 1 otherwise."
    )]
    Reload {
        #[arg(short, long, default_value = "warden.yaml", env = "WARDEN_PROJECT")]
        project: PathBuf,
    },
    /// Show the audit trail: who did what, newest last.
    #[command(
        after_help = "Examples:\n  warden log -p warden.yaml --since 1h\n  warden log --user ana@acme.example --tool update_finding_status\n  warden log --policy deny --since 2026-11-01\n  warden log --status error --org acme --json\n  warden log --source console --org acme          changes made in the web console"
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
/// are never logged whole; sqlx logs PostgreSQL's notices (such as "already exists,
/// skipping" on every migration check) at INFO. Both are held at WARN unless the filter
/// names them explicitly (someone debugging them).
fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let mut spec = spec.to_string();
    for quiet in ["rmcp", "sqlx"] {
        if !spec.contains(quiet) {
            spec.push_str(&format!(",{quiet}=warn"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn,sqlx=warn"))
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
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object per line, with the span (and its trace id) of each event.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }

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
        Command::Init {
            dir,
            org,
            admin,
            postgres,
        } => {
            init::run(
                &dir,
                init::FirstRun {
                    org,
                    admin,
                    postgres,
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { project } => check::run(project).await,
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
            let project = project::load_file_offline(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        Command::Reload { project } => reload_cmd::run(project).await,
        Command::Audit { command } => audit_cmd::run(command).await,
        Command::Why {
            project,
            user,
            tool,
            org,
            scope,
            args,
        } => {
            why::run(
                &project,
                &user,
                &tool,
                org.as_deref(),
                scope.as_deref(),
                args.as_deref(),
            )
            .await
        }
        Command::Serve {
            project,
            stdio,
            bind,
            tls_cert,
            tls_key,
        } => {
            let tls = serve::TlsFlags {
                cert: tls_cert,
                key: tls_key,
            };
            serve::run(project, stdio, bind, tls).await
        }
        Command::Demo { port, keep } => demo::run(port, keep).await,
    }
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
