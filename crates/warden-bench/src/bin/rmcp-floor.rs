//! The transport's floor: rmcp's Streamable HTTP server, configured as Warden configures
//! it (stateful sessions, SSE responses), with one tool that answers a fixed result of the
//! same shape and size as the example project's `search_vendors`. No authentication, no
//! database, no policy, no audit. What `warden-bench` measures against it is the most any
//! Warden built on this transport could serve on this machine.
//!
//!   rmcp-floor [--bind 127.0.0.1:0]
//!
//! Prints `serving MCP on http://ADDR/mcp` once listening; stops on Ctrl-C.
#![forbid(unsafe_code)]

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

#[derive(Clone)]
struct Floor {
    answer: Arc<String>,
    schema: Arc<Map<String, Value>>,
}

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        let caps = ServerCapabilities::builder().enable_tools().build();
        InitializeResult::new(caps)
            .with_server_info(Implementation::new("rmcp-floor", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _req: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "search_vendors",
            "A fixed answer",
            self.schema.clone(),
        )]))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Any tool name gets the same answer, so the generator's --tool needs no matching.
        let _ = req;
        Ok(CallToolResult::success(vec![ContentBlock::text(self.answer.as_str())]).into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bind = "127.0.0.1:0".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => {
                bind = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--bind needs ADDR"))?
            }
            "-h" | "--help" => {
                println!(
                    "rmcp-floor [--bind 127.0.0.1:0]: rmcp alone, answering a fixed tool result"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown option '{other}' (see --help)"),
        }
    }
    // Twenty rows shaped like search_vendors' (id, name, category, tier, status, country,
    // risk_score), as Warden shapes them.
    let rows: Vec<Value> = (1..=20)
        .map(|i| {
            json!({"id": format!("V-{i:03}"), "name": format!("Cloud Vendor {i}"),
                   "category": "Cloud hosting", "tier": "high", "status": "active",
                   "country": "Ireland", "risk_score": 40 + i})
        })
        .collect();
    let answer = json!({"rows": rows, "row_count": 20, "truncated": false}).to_string();
    let schema = json!({"type": "object", "properties": {"query": {"type": "string"},
                        "limit": {"type": "integer"}}});
    let handler = Floor {
        answer: Arc::new(answer),
        schema: Arc::new(schema.as_object().cloned().unwrap_or_default()),
    };
    let config = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    eprintln!("serving MCP on http://{addr}/mcp");
    let app = axum::Router::new().nest_service("/mcp", service);
    // As Warden does: answers go out at once, not held back for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
