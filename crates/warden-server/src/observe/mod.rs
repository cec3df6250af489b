//! Operations' view of the edge: `/healthz` (the process answers), `/readyz` (the pipeline
//! can serve: its audit trail can append) and, when `server.metrics` is set, `/metrics` in
//! the Prometheus text format on a listener of its own. None of them needs a credential,
//! so none says more than a fixed phrase: no versions, paths or error details.
//!
//! Only this module knows the Prometheus exporter; the rest of Warden records through the
//! `metrics` facade, which does nothing until [`metrics::install`] installs the recorder.

pub mod metrics;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use warden_core::pipeline::LivePipeline;

/// `/healthz` and `/readyz`, for the main listener and the metrics listener alike.
pub fn probes(pipeline: LivePipeline) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(pipeline)
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".to_string())
}

/// 200 `ready` when the audit trail can append (which means the state store answers: the
/// trail lives in it), else 503 with the reason. The answer is cached briefly by the audit
/// writer, so a storm of probes costs at most one store probe a second.
async fn readyz(State(pipeline): State<LivePipeline>) -> Response {
    match pipeline.current().ready().await {
        Ok(()) => plain(StatusCode::OK, "ready\n".to_string()),
        Err(reason) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
