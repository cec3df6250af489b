//! `server.metrics`: installs the Prometheus recorder and serves `/metrics` (with
//! `/healthz` and `/readyz`) on its own listener beside `warden serve`'s HTTP one. Without
//! `server.metrics` nothing is installed and every metric Warden records is a no-op.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use warden_server::observe::metrics::{MetricsServer, POOL_IDLE, POOL_SIZE, install};

use crate::open::Opened;

/// The metrics listener, serving until dropped.
pub(crate) struct Metrics {
    stop: CancellationToken,
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the metrics listener if the project asks for one, and logs where it serves
/// ("serving metrics on http://ADDR/metrics").
pub(crate) async fn start(opened: &Opened) -> anyhow::Result<Option<Metrics>> {
    let pipeline = opened.pipeline.clone();
    let Some(addr) = pipeline.current().project().server.metrics_bind else {
        return Ok(None);
    };
    let handle = install()?;
    let state = opened.state.clone();
    let data = pipeline.clone();
    let sample = Arc::new(move || {
        let (size, idle) = state.pool_stats();
        metrics::gauge!(POOL_SIZE, "pool" => "state").set(f64::from(size));
        metrics::gauge!(POOL_IDLE, "pool" => "state").set(idle as f64);
        let d = data.current().data_pools();
        metrics::gauge!(POOL_SIZE, "pool" => "data").set(d.size as f64);
        metrics::gauge!(POOL_IDLE, "pool" => "data").set(d.idle as f64);
    });
    let server = MetricsServer::bind(addr, pipeline, handle, sample)
        .await
        .with_context(|| {
            format!("cannot listen on {addr} for metrics; is another server using that port? change server.metrics.bind")
        })?;
    tracing::info!("serving metrics on http://{}/metrics", server.local_addr()?);
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = server.serve(until).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(Some(Metrics { stop }))
}
