//! `warden`: the command line. Loads a project, opens its data, and runs the edge.
//!
//! Entry point for every mode: `serve` (HTTP or stdio), `demo`, `init` and `check`.

#![forbid(unsafe_code)]

mod init;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warden_core::exec::DataSource;
use warden_core::pipeline::Pipeline;
use warden_core::project::{self, AuthMode, Project};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
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
        Command::Serve {
            project,
            stdio,
            bind,
        } => {
            let pipeline = open(&project).await?;
            if stdio {
                warden_server::serve_stdio(pipeline.clone()).await?;
                pipeline.close().await;
                return Ok(ExitCode::SUCCESS);
            }
            let addr = bind.unwrap_or(pipeline.project().server.bind);
            if pipeline.project().auth.mode == AuthMode::None && !addr.ip().is_loopback() {
                anyhow::bail!(
                    "refusing to serve {addr}: the project says `auth: none`, which is for local development and binds only to loopback"
                );
            }
            serve_http(pipeline, addr, |a| {
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
            let pipeline = open(&project_file).await?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let exe = std::env::current_exe()
                .map_or_else(|_| "warden".to_string(), |p| p.display().to_string());
            let project_path = project_file.display().to_string();
            serve_http(pipeline, addr, |a| {
                print_demo_banner(a, &exe, &project_path)
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

async fn open(project_file: &Path) -> anyhow::Result<Arc<Pipeline>> {
    let pipeline = open_project(project_file).await?;
    if pipeline.project().auth.mode == AuthMode::None {
        tracing::warn!(
            "`auth: none`: serving WITHOUT authentication (local development only); every client can use every tool"
        );
    }
    Ok(pipeline)
}

async fn open_project(project_file: &Path) -> anyhow::Result<Arc<Pipeline>> {
    let project: Project = project::load_file(project_file).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n{} problem(s) in the project file; run `warden check` for the full list",
            e.errors.len()
        )
    })?;
    let data = DataSource::open(&project.data)
        .await
        .context("cannot open the project's data")?;
    Ok(Arc::new(Pipeline::new(Arc::new(project), data)))
}

async fn serve_http(
    pipeline: Arc<Pipeline>,
    addr: SocketAddr,
    on_ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let server = warden_server::HttpServer::bind(pipeline.clone(), addr).await.with_context(|| {
        format!("cannot listen on {addr}; is another server using that port? pick another with --bind or --port")
    })?;
    on_ready(server.local_addr()?);
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal.cancel();
    });
    server
        .serve(shutdown)
        .await
        .context("the HTTP server failed")?;
    pipeline.close().await;
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

fn print_demo_banner(addr: SocketAddr, exe: &str, project: &str) {
    let url = format!("http://{addr}/mcp");
    let stdio = serde_json::json!({
        "mcpServers": { "warden-demo": { "command": exe, "args": ["serve", "--stdio", "--project", project] } }
    });
    let stdio = serde_json::to_string_pretty(&stdio).unwrap_or_default();
    println!(
        "\
Warden demo: a vendor-risk register with {vendors} vendors, ready for a client.

  MCP endpoint   {url}
  Project file   {project}

Connect with the MCP Inspector (Streamable HTTP):
  npx @modelcontextprotocol/inspector --transport http --server-url {url}

Connect a desktop assistant over stdio (paste into its MCP server configuration;
works while this demo runs, or use `warden init DIR` for a lasting project):
{stdio}

Try the tools search_vendors, vendor_detail, list_findings, portfolio_report,
upcoming_obligations and update_finding_status. Press Ctrl-C to stop.",
        vendors = init::VENDOR_COUNT
    );
}
