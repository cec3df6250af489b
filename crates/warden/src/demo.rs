//! `warden demo`: creates the example project in a temporary directory, seeds a demo
//! organisation, user and API keys (read-only and read-write), serves it over HTTP and
//! prints how to connect.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::open::open;
use crate::serve::serve_http;
use crate::{admin, init};

pub(crate) async fn run(port: u16, keep: bool) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("warden-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let project_file = init::init(dir.path()).await?;
    let opened = open(&project_file).await?;
    let identity = admin::seed_demo(&opened.state).await?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let exe =
        std::env::current_exe().map_or_else(|_| "warden".to_string(), |p| p.display().to_string());
    let project_path = project_file.display().to_string();
    serve_http(&opened, addr, None, |a| {
        print_demo_banner(a, &exe, &project_path, &identity)
    })
    .await?;
    if keep {
        let kept = dir.keep();
        println!("Kept the demo project in {}", kept.display());
    }
    Ok(ExitCode::SUCCESS)
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

API keys for the demo admin (shown once; send one as `Authorization: Bearer ...`):
  read-only      {key}
  read-write     {write_key}
  With the read-write key, a write tool such as update_finding_status first answers with a
  preview and a confirmation token; call it again with \"confirm\": true and that token.

Connect with the MCP Inspector (needs Node.js 22.19 or later; `node --version` tells):
  npx @modelcontextprotocol/inspector --transport http --server-url {url}
      the web UI; it signs in through OAuth (tick the write box to try writes)
  npx @modelcontextprotocol/inspector --cli --transport http --server-url {url} \\
      --header \"Authorization: Bearer {write_key}\" --method tools/list
      the command line, with the read-write key

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
        write_key = id.write_key,
    );
}
