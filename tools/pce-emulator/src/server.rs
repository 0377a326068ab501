//! The emulator's HTTP service: the PCE's upload paths, Basic auth, the
//! PCE's limits, and the JSON views of what it accepted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prost::Message;

use crate::fault::{Fault, FaultMode, FaultyListener, SharedFault};
use crate::received::Received;
use crate::tls;
use flowlink::config::ApiKey;
use flowlink::pipeline::now_ms;
use flowlink::proto::FlowBatch;
use flowlink::uploader::{BULK_CSV_MAX_LINES, BULK_CSV_VERSION_HEADER};

#[derive(Clone)]
struct Emulator {
    auth: Arc<str>,
    received: Arc<Mutex<Received>>,
    fault: SharedFault,
}

pub struct EmulatorOptions {
    pub listen: SocketAddr,
    pub api_key: ApiKey,
    pub state_file: Option<PathBuf>,
    pub fault: Fault,
    /// Serve HTTPS with a fresh self-signed certificate, written here (PEM).
    pub tls_cert_out: Option<PathBuf>,
    /// Behave like a stock PCE: the Bulk Traffic Loader only, no protobuf
    /// endpoint (its path answers 404 as any unknown API path does).
    pub stock: bool,
}

/// Serves until the process is stopped. Prints `listening on http://ADDR`
/// on stdout first, so a script or test can use port 0.
pub async fn serve(options: EmulatorOptions) -> Result<()> {
    let received = Received::open(options.state_file.as_deref())?;
    let state = Emulator {
        auth: options.api_key.basic_auth_header().into(),
        received: Arc::new(Mutex::new(received)),
        fault: Arc::new(Mutex::new(options.fault)),
    };
    let protobuf_endpoint = if options.stock {
        post(not_served)
    } else {
        post(flow_batches)
    };
    let app = Router::new()
        .route(
            "/api/v2/orgs/{org}/flowlink/flow_batches",
            protobuf_endpoint,
        )
        .route(
            "/api/v2/orgs/{org}/agents/bulk_traffic_flows",
            post(bulk_traffic_flows),
        )
        .route("/emulator/flows", get(query_flows))
        .route("/emulator/requests", get(query_requests))
        .route("/emulator/fault", post(set_fault))
        .route("/", get(index))
        .layer(axum::middleware::map_response(close_connection))
        .with_state(state.clone());
    let inner = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding the PCE emulator to {}", options.listen))?;
    let addr = inner.local_addr()?;
    let tls = match &options.tls_cert_out {
        Some(path) => {
            let material = tls::self_signed()?;
            std::fs::write(path, &material.cert_pem)
                .with_context(|| format!("writing {}", path.display()))?;
            Some(material.acceptor)
        }
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{addr}");
    tracing::info!("PCE emulator listening on {scheme}://{addr} (flows at /emulator/flows)");
    let listener = FaultyListener {
        inner,
        fault: state.fault.clone(),
        tls,
    };
    axum::serve(listener, app)
        .await
        .context("PCE emulator server")
}

async fn close_connection(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// The fault's answer to an upload, if it has one (after its delay).
async fn fault_answer(state: &Emulator) -> Option<Response> {
    let fault = *state.fault.lock().expect("fault");
    match fault.mode {
        FaultMode::Ok | FaultMode::Refuse => None,
        FaultMode::Slow => {
            tokio::time::sleep(fault.delay()).await;
            None
        }
        FaultMode::Unavailable => Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "{\"error\":\"emulated outage\"}",
            )
                .into_response(),
        ),
        FaultMode::TooManyRequests => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, fault.retry_after_seconds.to_string())],
                "{\"error\":\"emulated rate limit\"}",
            )
                .into_response(),
        ),
        FaultMode::Unauthorized => Some(unauthorized()),
    }
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

/// Auth, then the fault; the request is logged with its answer either way.
async fn gate(
    state: &Emulator,
    headers: &HeaderMap,
    path: &str,
    batch_id: Option<&str>,
) -> Option<Response> {
    let answer = if !authorized(state, headers) {
        Some(unauthorized())
    } else {
        fault_answer(state).await
    };
    if let Some(response) = &answer {
        state.received.lock().expect("emulator state").log_request(
            now_ms(),
            path,
            response.status().as_u16(),
            batch_id,
        );
    }
    answer
}

async fn flow_batches(
    State(state): State<Emulator>,
    Path(org): Path<u32>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let batch = FlowBatch::decode(body.clone()).ok();
    let id = batch.as_ref().map(|b| b.batch_id.as_str());
    if let Some(answer) = gate(&state, &headers, "flow_batches", id).await {
        return answer;
    }
    let Some(batch) = batch else {
        return (
            StatusCode::BAD_REQUEST,
            "{\"error\":\"body is not a flowlink.v1.FlowBatch\"}",
        )
            .into_response();
    };
    let mut received = state.received.lock().expect("emulator state");
    let fresh = match received.add_batch(org, &batch, &body) {
        Ok(fresh) => fresh,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("state file: {e:#}"),
            )
                .into_response();
        }
    };
    received.log_request(now_ms(), "flow_batches", 200, Some(&batch.batch_id));
    axum::Json(serde_json::json!({"accepted_flows": batch.flows.len(), "duplicate": !fresh}))
        .into_response()
}

/// What a stock PCE answers on a path it does not serve (logged, so tests
/// can see the probe).
async fn not_served(State(state): State<Emulator>, headers: HeaderMap) -> Response {
    if let Some(answer) = gate(&state, &headers, "flow_batches", None).await {
        return answer;
    }
    state
        .received
        .lock()
        .expect("emulator state")
        .log_request(now_ms(), "flow_batches", 404, None);
    (StatusCode::NOT_FOUND, "{\"error\":\"not_found\"}").into_response()
}

async fn bulk_traffic_flows(
    State(state): State<Emulator>,
    Path(org): Path<u32>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(answer) = gate(&state, &headers, "bulk_traffic_flows", None).await {
        return answer;
    }
    if let Some(why) = bulk_headers_problem(&headers) {
        state.received.lock().expect("emulator state").log_request(
            now_ms(),
            "bulk_traffic_flows",
            400,
            None,
        );
        return (StatusCode::BAD_REQUEST, format!("{{\"error\":\"{why}\"}}")).into_response();
    }
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut received = state.received.lock().expect("emulator state");
    if lines.len() > BULK_CSV_MAX_LINES {
        received.log_request(now_ms(), "bulk_traffic_flows", 413, None);
        let error = format!(
            "{{\"error\":\"at most {BULK_CSV_MAX_LINES} flows per request, got {}\"}}",
            lines.len()
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, error).into_response();
    }
    let mut failed = Vec::new();
    for line in &lines {
        if let Err(why) = received.add_csv_line(org, line) {
            failed.push(serde_json::json!({"line": line, "error": why}));
        }
    }
    received.log_request(now_ms(), "bulk_traffic_flows", 200, None);
    axum::Json(serde_json::json!({
        "num_flows_received": lines.len(),
        "num_flows_failed": failed.len(),
        "failed_flows": failed,
    }))
    .into_response()
}

/// The Bulk Traffic Loader takes `Content-Type: text/csv` with
/// `X-Bulk-Traffic-Load-CSV-Version: 1`, as the PCE's own clients send.
fn bulk_headers_problem(headers: &HeaderMap) -> Option<String> {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let content_type = value(header::CONTENT_TYPE.as_str()).unwrap_or("");
    if !content_type.trim().starts_with("text/csv") {
        return Some(format!(
            "Content-Type must be text/csv, got {content_type:?}"
        ));
    }
    match value(BULK_CSV_VERSION_HEADER) {
        Some(v) if v.trim() == "1" => None,
        Some(v) => Some(format!("{BULK_CSV_VERSION_HEADER} must be 1, got {v:?}")),
        None => Some(format!("{BULK_CSV_VERSION_HEADER}: 1 is missing")),
    }
}

async fn set_fault(
    State(state): State<Emulator>,
    axum::Json(fault): axum::Json<Fault>,
) -> Response {
    *state.fault.lock().expect("fault") = fault;
    tracing::info!(?fault, "emulator fault mode changed");
    axum::Json(fault).into_response()
}

async fn query_flows(State(state): State<Emulator>) -> Response {
    axum::Json(state.received.lock().expect("emulator state").to_json()).into_response()
}

async fn query_requests(State(state): State<Emulator>) -> Response {
    axum::Json(
        state
            .received
            .lock()
            .expect("emulator state")
            .requests_json(),
    )
    .into_response()
}

async fn index(State(state): State<Emulator>) -> Response {
    axum::response::Html(crate::page::render(
        &state.received.lock().expect("emulator state"),
    ))
    .into_response()
}
