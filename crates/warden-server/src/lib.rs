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

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_core::pipeline::LivePipeline;

pub use transport::http::router;
pub use transport::http::tls::{Tls, TlsError};
pub use transport::stdio::{StdioError, serve_stdio};

/// A bound HTTP server that has not started serving yet; lets the caller learn the port
/// (useful with port 0) before serving.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    pipeline: LivePipeline,
    tls: Option<Tls>,
}

impl HttpServer {
    pub async fn bind(pipeline: LivePipeline, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            pipeline,
            tls: None,
        })
    }

    /// Serve HTTPS with `tls`; every response then carries the project's HSTS header.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, ends MCP sessions and
    /// waits for in-flight requests. Connections are held to the project's
    /// `server.limits` (see `transport::http::accept`).
    pub async fn serve(
        self,
        auth: Option<web::oauth::AuthState>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let server = self.pipeline.current().project().server.clone();
        let mut app = router(self.pipeline, auth, shutdown.clone());
        if self.tls.is_some() {
            app = transport::http::with_hsts(app, &server.hsts);
        }
        transport::http::accept::serve(self.listener, app, self.tls, server.limits, shutdown).await
    }
}

/// A plain-HTTP listener that answers every request with a redirect to `target` (an
/// `https://` base URL), the same path and query: `server.redirect_http`.
#[derive(Debug)]
pub struct RedirectServer {
    listener: TcpListener,
}

impl RedirectServer {
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(
        self,
        target: String,
        limits: warden_core::project::ConnectionLimits,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let app = transport::http::redirect_to_https(target);
        transport::http::accept::serve(self.listener, app, None, limits, shutdown).await
    }
}
