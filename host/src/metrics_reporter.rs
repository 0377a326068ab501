//! Prints the counters every `metrics_print_seconds` and serves them to
//! Prometheus on `metrics_listen`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use crate::metrics::Metrics;

pub async fn run(metrics: Arc<Metrics>, every: Duration, listen: Option<SocketAddr>) {
    if let Some(addr) = listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
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
            Err(e) => tracing::error!("metrics_listen {addr}: cannot bind: {e}"),
        }
    }
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        for line in metrics.log_lines() {
            tracing::info!("counters: {line}");
        }
    }
}
