//! Warden's edge: MCP over Streamable HTTP and stdio.
//!
//! This is the only crate that knows rmcp, axum and JSON-RPC. It maps wire requests onto
//! `warden_core::pipeline` and maps the pipeline's results and errors back, in one place
//! ([`transport::mcp`]).

#![forbid(unsafe_code)]

pub mod observe;
pub mod transport;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_core::pipeline::Pipeline;

pub use transport::http::router;
pub use transport::stdio::{StdioError, serve_stdio};

/// A bound HTTP server that has not started serving yet; lets the caller learn the port
/// (useful with port 0) before serving.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
}

impl HttpServer {
    pub async fn bind(pipeline: Arc<Pipeline>, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self { listener, pipeline })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, ends MCP sessions and
    /// waits for in-flight requests.
    pub async fn serve(
        self,
        auth: Option<web::oauth::AuthState>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let app = router(self.pipeline, auth, shutdown.clone());
        // Responses are written in several small pieces (SSE events); without TCP_NODELAY,
        // Nagle's algorithm and the client's delayed ACK hold each response ~40 ms.
        let listener = axum::serve::ListenerExt::tap_io(self.listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    }
}
