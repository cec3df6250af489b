//! `/metrics`: the Prometheus exporter, installed only when the project sets
//! `server.metrics`, and served on its own listener (with `/healthz` and `/readyz`) so that
//! it can stay on a private address while `/mcp` is public.
//!
//! What is recorded, and where (names as the facade sees them; Prometheus turns dots into
//! underscores, adds `_seconds` to durations and `_total` to counters):
//! - `mcp.server.operation.duration` (pipeline record stage): every `tools/call`,
//!   `resources/read` and `prompts/get`;
//! - `warden.policy.denials` (pipeline record stage), by `rule`;
//! - `warden.auth.failures` (warden-auth, and the bearer gate for `missing`), by `reason`;
//! - `warden.auth.rate_limited` (warden-auth's abuse limits), by `endpoint` and `limit`;
//! - `warden.audit.commit.duration`, `.records` and `.failures` (the audit writer);
//! - `warden.pool.size` and `warden.pool.idle` by `pool` (`state`, `data`), sampled at each
//!   scrape by the `sample` function the caller gives [`MetricsServer::bind`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warden_core::pipeline::{LivePipeline, OPERATION_DURATION, POLICY_DENIALS};

/// Pool gauges, set at each scrape.
pub const POOL_SIZE: &str = "warden.pool.size";
pub const POOL_IDLE: &str = "warden.pool.idle";

/// The recorder could not be installed (another is already installed in this process).
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// Bucket bounds for operation durations: the OpenTelemetry MCP conventions' advice.
const OPERATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// An audit commit is one fsync: far below the operation's range.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];
const RECORDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Installs the process-wide Prometheus recorder and describes Warden's metrics. Call once,
/// before serving; until then every metric is a no-op.
pub fn install() -> Result<PrometheusHandle, InstallError> {
    use warden_store::audit::{COMMIT_DURATION, COMMIT_FAILURES, COMMIT_RECORDS};
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in [
        (OPERATION_DURATION, OPERATION_BUCKETS),
        (COMMIT_DURATION, COMMIT_BUCKETS),
        (COMMIT_RECORDS, RECORDS_BUCKETS),
    ] {
        // Matched by the name as recorded and as exposed, whichever the exporter compares.
        for n in [name.to_string(), name.replace('.', "_")] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(n), buckets)
                .map_err(|e| InstallError(e.to_string()))?;
        }
    }
    let handle = builder
        .install_recorder()
        .map_err(|e| InstallError(e.to_string()))?;
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "MCP request duration as observed on the server, by method, tool or prompt, outcome and protocol revision."
    );
    describe_counter!(
        POLICY_DENIALS,
        "Calls denied by a policy rule of the project file, by rule."
    );
    describe_counter!(
        warden_auth::server::AUTH_FAILURES,
        "Bearer authentication refusals at /mcp, by reason."
    );
    describe_counter!(
        warden_auth::server::RATE_LIMITED,
        "Requests to the OAuth endpoints and sign-in pages refused by a per-address limit, by endpoint and limit."
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Audit group commits: time to append and commit one batch."
    );
    describe_histogram!(COMMIT_RECORDS, "Audit group commits: records per batch.");
    describe_counter!(
        COMMIT_FAILURES,
        "Audit batches whose transaction failed (their calls were refused)."
    );
    describe_gauge!(POOL_SIZE, "Open connections in a database pool.");
    describe_gauge!(POOL_IDLE, "Idle connections in a database pool.");
    Ok(handle)
}

/// What a scrape renders: the recorder's handle, and a function that sets the gauges
/// sampled at scrape time (pool sizes).
#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    sample: Arc<dyn Fn() + Send + Sync>,
}

/// The metrics listener, bound but not yet serving (so the caller can log its address).
pub struct MetricsServer {
    listener: TcpListener,
    app: Router,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    pub async fn bind(
        addr: SocketAddr,
        pipeline: LivePipeline,
        handle: PrometheusHandle,
        sample: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let app = Router::new()
            .route("/metrics", get(render))
            .with_state(Scrape { handle, sample })
            .merge(super::probes(pipeline));
        Ok(Self { listener, app })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }
}

async fn render(State(s): State<Scrape>) -> Response {
    (s.sample)();
    s.handle.run_upkeep();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
        .into_response()
}
