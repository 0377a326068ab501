//! HTTP(S) to the PCE: Basic auth, timeouts, TLS roots, and a verdict on
//! every failure (retry or not).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};

use super::{BULK_CSV_VERSION_HEADER, bulk_csv_chunks};
use crate::config::{PceConfig, UploadFormat};
use crate::proto::FlowBatch;

/// The path (under the org) flowlink posts protobuf batches to.
pub const PROTOBUF_PATH: &str = "flowlink/flow_batches";
/// Illumio's public Bulk Traffic Loader.
pub const BULK_CSV_PATH: &str = "agents/bulk_traffic_flows";

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot reach the PCE: {0}")]
    Transport(String),
    #[error("the PCE answered {status}: {body}{hint}")]
    Status {
        status: StatusCode,
        body: String,
        retry_after: Option<Duration>,
        hint: &'static str,
    },
}

impl UploadError {
    /// Connect errors, timeouts, 408, 429 and 5xx are worth another try.
    pub fn is_retryable(&self) -> bool {
        match self {
            UploadError::Transport(_) => true,
            UploadError::Status { status, .. } => {
                *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
        }
    }

    /// 404 or 415 on the protobuf path: the receiver has no such endpoint
    /// (a stock PCE), not a problem with this batch.
    fn is_protobuf_not_served(&self) -> bool {
        matches!(self, UploadError::Status { status, .. }
            if *status == StatusCode::NOT_FOUND || *status == StatusCode::UNSUPPORTED_MEDIA_TYPE)
    }

    fn with_hint(self, hint: &'static str) -> Self {
        match self {
            UploadError::Status {
                status,
                body,
                retry_after,
                ..
            } => UploadError::Status {
                status,
                body,
                retry_after,
                hint,
            },
            other => other,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UploadError::Status { retry_after, .. } => *retry_after,
            UploadError::Transport(_) => None,
        }
    }
}

/// Said with a 404/415 under an explicit `upload_format: protobuf`.
const PROTOBUF_NOT_SERVED: &str = " (this PCE does not serve flowlink's protobuf endpoint; a stock \
     PCE takes only the Bulk Traffic Loader: set upload_format: bulk_csv, or auto)";

#[derive(Clone)]
pub struct PceClient {
    http: reqwest::Client,
    config: PceConfig,
    auth: String,
    /// `upload_format: auto` met a PCE without the protobuf endpoint: CSV
    /// for the rest of the run (shared by clones).
    auto_chose_csv: Arc<AtomicBool>,
}

impl PceClient {
    pub fn new(config: &PceConfig) -> Result<Self> {
        // reqwest is built without a crypto provider of its own (no
        // aws-lc-sys to compile): ring, for the whole process. An Err only
        // says one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("flowlink/", env!("CARGO_PKG_VERSION")));
        if let Some(ca_file) = &config.ca_file {
            let pem = std::fs::read(ca_file)
                .with_context(|| format!("reading pce_ca_file {}", ca_file.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("pce_ca_file {} holds no PEM certificate", ca_file.display())
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        if config.insecure {
            tracing::warn!("pce_insecure is set: the PCE's TLS certificate is not checked");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(PceClient {
            http: builder.build().context("building the HTTP client")?,
            auth: config.api_key.basic_auth_header(),
            config: config.clone(),
            auto_chose_csv: Arc::new(AtomicBool::new(false)),
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.config.base_url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/api/v2/orgs/{}/{path}", self.config.org_id));
        url
    }

    pub async fn upload(&self, batch: &FlowBatch) -> Result<(), UploadError> {
        match self.config.upload_format {
            UploadFormat::Protobuf => self.upload_protobuf(batch).await.map_err(|e| {
                if e.is_protobuf_not_served() {
                    e.with_hint(PROTOBUF_NOT_SERVED)
                } else {
                    e
                }
            }),
            UploadFormat::BulkCsv => self.upload_bulk_csv(batch).await,
            UploadFormat::Auto => {
                if self.auto_chose_csv.load(Ordering::Acquire) {
                    return self.upload_bulk_csv(batch).await;
                }
                match self.upload_protobuf(batch).await {
                    Err(e) if e.is_protobuf_not_served() => {
                        if !self.auto_chose_csv.swap(true, Ordering::AcqRel) {
                            tracing::warn!(
                                "the PCE does not serve flowlink's protobuf endpoint ({e}); \
                                 uploading as CSV to the Bulk Traffic Loader from now on, this \
                                 batch included. Set upload_format: bulk_csv to skip the probe \
                                 at start, or upload_format: protobuf to insist on protobuf"
                            );
                        }
                        self.upload_bulk_csv(batch).await
                    }
                    other => other,
                }
            }
        }
    }

    /// Posts the batch in parts of at most [`PROTOBUF_PART_FLOWS`] flows
    /// (a million-key window would be one 50 MB request, over what HTTP
    /// servers and proxies take). Each part has its own batch id, the same
    /// on every try, so a retry after a partial success resends only what
    /// the receiver has not acknowledged (it ignores ids it has seen).
    async fn upload_protobuf(&self, batch: &FlowBatch) -> Result<(), UploadError> {
        let parts = batch.flows.len().div_ceil(PROTOBUF_PART_FLOWS).max(1);
        for part in 0..parts {
            // Encoding takes a while for a large window: not on a thread
            // the receive tasks need.
            let body = crate::blocking::off_the_runtime(|| protobuf_part(batch, part, parts));
            self.post(PROTOBUF_PATH, "application/x-protobuf", &[], body)
                .await?;
        }
        Ok(())
    }

    async fn upload_bulk_csv(&self, batch: &FlowBatch) -> Result<(), UploadError> {
        for body in crate::blocking::off_the_runtime(|| bulk_csv_chunks(batch)) {
            let reply = self
                .post(
                    BULK_CSV_PATH,
                    "text/csv",
                    &[(BULK_CSV_VERSION_HEADER, "1")],
                    body.into_bytes(),
                )
                .await?;
            check_bulk_reply(&reply);
        }
        Ok(())
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        extra_headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<String, UploadError> {
        let mut request = self
            .http
            .post(self.url(path))
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, content_type);
        for (name, value) in extra_headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| UploadError::Transport(error_chain(&e)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(text);
        }
        let hint = match status {
            StatusCode::UNAUTHORIZED => {
                " (check api_key: the key and secret must be a valid PCE API key pair)"
            }
            StatusCode::FORBIDDEN => " (check the API key's role and that org_id is the key's org)",
            _ => "",
        };
        Err(UploadError::Status {
            status,
            body: text.chars().take(500).collect(),
            retry_after,
            hint,
        })
    }
}

/// Flows per protobuf request: ~1 MB encoded.
pub const PROTOBUF_PART_FLOWS: usize = 20_000;

/// Part `part` of `parts` of `batch`, encoded; a batch of one part is sent
/// as it is, its id unchanged. The part's flows are encoded from the batch
/// in place.
fn protobuf_part(batch: &FlowBatch, part: usize, parts: usize) -> Vec<u8> {
    if parts == 1 {
        return batch.encode_whole();
    }
    let start = part * PROTOBUF_PART_FLOWS;
    let end = (start + PROTOBUF_PART_FLOWS).min(batch.flows.len());
    let mut header = batch.header();
    header.batch_id = format!("{}-part{}of{parts}", batch.batch_id, part + 1);
    FlowBatch::encode_with(&header, &batch.flows[start..end])
}

/// The PCE accepts the request but may refuse single lines; say which.
fn check_bulk_reply(reply: &str) {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(reply) else {
        tracing::warn!(
            "bulk_traffic_flows reply is not JSON: {}",
            reply.chars().take(200).collect::<String>()
        );
        return;
    };
    let failed = json
        .get("num_flows_failed")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if failed > 0 {
        tracing::warn!(
            failed,
            received = json.get("num_flows_received").and_then(|v| v.as_u64()).unwrap_or(0),
            failed_flows = %json.get("failed_flows").map(|v| v.to_string()).unwrap_or_default(),
            "the PCE refused some flows"
        );
    }
}

/// reqwest's Display hides the cause ("error sending request"); show it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn a_large_batch_goes_in_parts_with_ids_of_their_own() {
        use crate::proto::AggregatedFlow;
        let batch = FlowBatch {
            batch_id: "w1".into(),
            consumer: "edge".into(),
            flows: (0..45_000u32)
                .map(|i| AggregatedFlow {
                    dst_port: i,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let parts: Vec<FlowBatch> = (0..3)
            .map(|p| FlowBatch::decode(protobuf_part(&batch, p, 3).as_slice()).unwrap())
            .collect();
        let ids: Vec<&str> = parts.iter().map(|p| p.batch_id.as_str()).collect();
        assert_eq!(ids, ["w1-part1of3", "w1-part2of3", "w1-part3of3"]);
        let ports: Vec<u32> = parts
            .iter()
            .flat_map(|p| p.flows.iter().map(|f| f.dst_port))
            .collect();
        assert_eq!(ports, (0..45_000).collect::<Vec<_>>());
        assert!(parts.iter().all(|p| p.consumer == "edge"));
        assert_eq!(parts[1].flows, batch.flows[20_000..40_000], "whole flows");
        let whole = FlowBatch::decode(protobuf_part(&batch, 0, 1).as_slice()).unwrap();
        assert_eq!(whole, batch, "one part: the batch as it is");
    }

    fn status(code: u16) -> UploadError {
        UploadError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            body: String::new(),
            retry_after: None,
            hint: "",
        }
    }

    #[test]
    fn which_failures_are_tried_again() {
        assert!(UploadError::Transport("refused".into()).is_retryable());
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(status(code).is_retryable(), "{code} is worth another try");
        }
        for code in [400, 401, 403, 404, 413, 415, 422] {
            assert!(!status(code).is_retryable(), "{code} would fail again");
        }
    }

    #[test]
    fn only_404_and_415_mean_no_protobuf_endpoint() {
        assert!(status(404).is_protobuf_not_served());
        assert!(status(415).is_protobuf_not_served());
        assert!(!status(400).is_protobuf_not_served());
        assert!(!status(503).is_protobuf_not_served());
        assert!(!UploadError::Transport("x".into()).is_protobuf_not_served());
    }
}
