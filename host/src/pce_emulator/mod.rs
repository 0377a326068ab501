//! A local stand-in for the PCE's upload endpoints, for the quick start and
//! the tests: same paths, Basic auth, and a JSON view of what it received.

mod received;

pub use received::Received;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost::Message;

use crate::config::ApiKey;
use crate::proto::FlowBatch;
use crate::uploader::BULK_CSV_MAX_LINES;

#[derive(Clone)]
struct Emulator {
    auth: Arc<str>,
    received: Arc<Mutex<Received>>,
}

/// Serves until the process is stopped. Prints `listening on http://ADDR`
/// on stdout first, so a script or test can use port 0.
pub async fn serve(listen: SocketAddr, api_key: ApiKey) -> Result<()> {
    let state = Emulator {
        auth: api_key.basic_auth_header().into(),
        received: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/api/v2/orgs/{org}/flowlink/flow_batches",
            post(flow_batches),
        )
        .route(
            "/api/v2/orgs/{org}/agents/bulk_traffic_flows",
            post(bulk_traffic_flows),
        )
        .route("/emulator/flows", get(query_flows))
        .route("/", get(index))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the PCE emulator to {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!("PCE emulator listening on http://{addr} (flows at /emulator/flows)");
    axum::serve(listener, app)
        .await
        .context("PCE emulator server")
}

fn authorized(state: &Emulator, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&*state.auth)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"pce\"")],
        "{\"error\":\"authentication required\"}",
    )
        .into_response()
}

async fn flow_batches(
    State(state): State<Emulator>,
    Path(org): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let batch = match FlowBatch::decode(body) {
        Ok(batch) => batch,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid FlowBatch: {e}")).into_response();
        }
    };
    let flows = batch.flows.len();
    let fresh = state
        .received
        .lock()
        .expect("emulator state")
        .add_batch(org, &batch);
    axum::Json(serde_json::json!({"accepted_flows": flows, "duplicate": !fresh})).into_response()
}

async fn bulk_traffic_flows(
    State(state): State<Emulator>,
    Path(org): Path<u32>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > BULK_CSV_MAX_LINES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{{\"error\":\"at most {BULK_CSV_MAX_LINES} flows per request, got {}\"}}",
                lines.len()
            ),
        )
            .into_response();
    }
    let mut received = state.received.lock().expect("emulator state");
    let mut failed = Vec::new();
    for line in &lines {
        if let Err(why) = received.add_csv_line(org, line) {
            failed.push(serde_json::json!({"line": line, "error": why}));
        }
    }
    axum::Json(serde_json::json!({
        "num_flows_received": lines.len(),
        "num_flows_failed": failed.len(),
        "failed_flows": failed,
    }))
    .into_response()
}

async fn query_flows(State(state): State<Emulator>) -> Response {
    let received = state.received.lock().expect("emulator state");
    axum::Json(received.to_json()).into_response()
}

async fn index(State(state): State<Emulator>) -> Response {
    let received = state.received.lock().expect("emulator state");
    axum::response::Html(received.to_html()).into_response()
}
