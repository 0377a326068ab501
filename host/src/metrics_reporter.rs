//! Prints the counters every `metrics_print_seconds` and serves them to
//! Prometheus on `metrics_listen`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;

use crate::metrics::Metrics;

/// Binds `metrics_listen` now (a port in use stops the start, naming the
/// key), then serves and prints in the background.
pub async fn start(
    metrics: Arc<Metrics>,
    every: Duration,
    listen: Option<SocketAddr>,
) -> Result<tokio::task::JoinHandle<()>> {
    if let Some(addr) = listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics_listen {addr}: cannot bind"))?;
        let served = metrics.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let m = served.clone();
                async move { m.prometheus() }
            }),
        );
        tracing::info!("metrics on http://{addr}/metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("metrics endpoint stopped: {e}");
            }
        });
    }
    Ok(tokio::spawn(print_every(metrics, every)))
}

async fn print_every(metrics: Arc<Metrics>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        for line in metrics.log_lines() {
            tracing::info!("counters: {line}");
        }
    }
}
