//! CloudWatch Logs (the `aws` connector): the streams of one log group
//! (all, a name prefix, or a list), polled. Each stream's resume point is
//! checkpointed in `data_directory/checkpoints` once the events' records
//! are durable (their window checkpointed), so a restart neither resends
//! nor skips.
//!
//! Without a filter pattern, streams are read with GetLogEvents and its
//! forward token (exact). With one, FilterLogEvents is used and the resume
//! point is the last event time plus the ids already seen at that time.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::Region;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::{ConnectorBuilder, tls};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{CheckpointStore, ConnectorContext, ConnectorHandle};
use crate::config::{AwsProperties, StartPosition};
use crate::pipeline::{RawMessage, ShardKey, now_ms};

const DEFAULT_POLL: Duration = Duration::from_secs(10);
/// Longest wait after repeated throttling.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where each stream was left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StreamPosition {
    /// GetLogEvents' forward token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    /// Read events from this time on (start_position `end`, or the
    /// FilterLogEvents watermark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_ms: Option<i64>,
    /// FilterLogEvents: ids already taken at `after_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ids: Vec<String>,
}

impl StreamPosition {
    /// FilterLogEvents: whether the event (`ts`, `id`) is new to this
    /// position (`self`, where reading started); if so `next` moves past
    /// it. Events are not unique by time, so the ids taken at the newest
    /// time are kept with it.
    fn take_filtered(&self, next: &mut StreamPosition, ts: i64, id: &str) -> bool {
        let seen = self
            .after_ms
            .is_some_and(|after| ts < after || (ts == after && self.ids.iter().any(|i| i == id)));
        if seen {
            return false;
        }
        match next.after_ms {
            Some(after) if ts < after => {}
            Some(after) if ts == after => next.ids.push(id.to_owned()),
            _ => {
                next.after_ms = Some(ts);
                next.ids = vec![id.to_owned()];
            }
        }
        true
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Checkpoint {
    log_group: String,
    streams: BTreeMap<String, StreamPosition>,
}

pub async fn start(ctx: ConnectorContext, props: &AwsProperties) -> Result<ConnectorHandle> {
    let name = ctx.consumer_name.clone();
    let client = client(props).await;
    let store = CheckpointStore::new(&ctx.checkpoint_dir, &format!("aws-{}", ctx.label()))?;
    let checkpoint = match store.load::<Checkpoint>()? {
        Some(c) if c.log_group == props.log_group => Some(c),
        Some(c) => {
            tracing::warn!(consumer = &*name, old = %c.log_group, new = %props.log_group, "log group changed: its checkpoint no longer applies");
            None
        }
        None => None,
    };
    let (saves, saves_rx) = mpsc::channel(IN_FLIGHT);
    let saver = tokio::spawn(save_positions(store, saves_rx, name.clone()));
    let source = LogGroupSource {
        ctx,
        client,
        props: props.clone(),
        first_start: checkpoint.is_none(),
        checkpoint: checkpoint.unwrap_or_else(|| Checkpoint {
            log_group: props.log_group.clone(),
            streams: BTreeMap::new(),
        }),
        saves,
    };
    // A wrong group, region or key is a configuration error: say so at
    // start. An unreachable endpoint is not: the connector keeps trying.
    match source.streams().await {
        Ok(streams) => {
            tracing::info!(consumer = &*name, log_group = %props.log_group, streams = streams.len(), "CloudWatch Logs connector started")
        }
        Err(PollError::Config(e)) => {
            return Err(e.context(format!(
                "consumer {:?}: CloudWatch Logs group {:?} in {}",
                &*name, props.log_group, props.region
            )));
        }
        Err(PollError::Other(e)) => {
            tracing::warn!(consumer = &*name, log_group = %props.log_group, "CloudWatch Logs connector started, but cannot list streams yet: {e:#}")
        }
        Err(PollError::Throttled | PollError::Stopped) => {
            tracing::info!(consumer = &*name, log_group = %props.log_group, "CloudWatch Logs connector started (throttled)")
        }
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { source.run(stop).await }
    });
    Ok(ConnectorHandle::new(stop, vec![task, saver]))
}

/// The SDK client: the default credential chain (environment, profile,
/// web identity, IMDS…), optionally a named profile and an assumed role.
async fn client(props: &AwsProperties) -> Client {
    // The SDK's own default client, on ring instead of aws-lc (no second
    // crypto library to build): rustls, and HTTPS_PROXY / NO_PROXY honoured.
    let https = aws_smithy_http_client::Builder::new().build_with_connector_fn(
        |settings, runtime_components| {
            let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = runtime_components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        },
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(props.region.clone()))
        .http_client(https);
    if let Some(profile) = &props.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &props.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let mut config = loader.load().await;
    if let Some(role) = &props.role_arn {
        let provider = aws_config::sts::AssumeRoleProvider::builder(role)
            .session_name("flowlink")
            .configure(&config)
            .build()
            .await;
        config = config
            .into_builder()
            .credentials_provider(
                aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider::new(provider),
            )
            .build();
    }
    Client::new(&config)
}

fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

/// A failed call on one stream: throttling backs off, anything else is
/// logged and retried at the next poll.
fn stream_error<E, R>(operation: &str, stream: &str, e: &SdkError<E, R>) -> PollError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error_code(e) {
        Some("ThrottlingException") => PollError::Throttled,
        _ => PollError::Other(anyhow::anyhow!(
            "{operation} {stream}: {}",
            DisplayErrorContext(e)
        )),
    }
}

struct LogGroupSource {
    ctx: ConnectorContext,
    client: Client,
    props: AwsProperties,
    /// No checkpoint existed: streams seen now start at `start_position`.
    first_start: bool,
    /// Where reading goes on from (ahead of what is saved).
    checkpoint: Checkpoint,
    /// Positions to save once the events before them are durable, in order.
    saves: mpsc::Sender<PendingSave>,
}

/// A position, and the receipt of the events it moves past.
type PendingSave = (Checkpoint, Option<oneshot::Receiver<()>>);

/// Saves each position once the receipt of the events before it fired, in
/// order (receipts fire when the events' aggregate is on disk, seconds
/// later: reading does not wait for them). Stops saving at the first
/// receipt that fails: those events are read again after a restart.
async fn save_positions(
    store: CheckpointStore,
    mut saves: mpsc::Receiver<PendingSave>,
    consumer: std::sync::Arc<str>,
) {
    while let Some((checkpoint, receipt)) = saves.recv().await {
        if let Some(receipt) = receipt
            && receipt.await.is_err()
        {
            saves.close();
            while saves.recv().await.is_some() {}
            return;
        }
        // An fsync: off the runtime's scheduling.
        if let Err(e) = tokio::task::block_in_place(|| store.save(&checkpoint)) {
            tracing::warn!(consumer = &*consumer, "{e:#}");
        }
    }
}

/// Pages handed on whose positions are not saved yet.
const IN_FLIGHT: usize = 1024;

/// A FilterLogEvents query being paged through: its start time stays
/// fixed while its token moves on.
struct FilterQuery {
    start_ms: Option<i64>,
    token: Option<String>,
}

/// Why a poll ended early.
enum PollError {
    Throttled,
    Stopped,
    /// The group does not exist or may not be read: fatal at start,
    /// retried (and logged) later, as the group may be recreated.
    Config(anyhow::Error),
    Other(anyhow::Error),
}

impl LogGroupSource {
    async fn run(mut self, stop: CancellationToken) {
        let poll = self
            .props
            .poll_seconds
            .map_or(DEFAULT_POLL, Duration::from_secs);
        let mut backoff = Duration::ZERO;
        let mut last_error = None;
        loop {
            let wait = match self.poll(&stop).await {
                Ok(()) => {
                    backoff = Duration::ZERO;
                    last_error = None;
                    poll
                }
                Err(PollError::Stopped) => return,
                Err(PollError::Throttled) => {
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                    tracing::warn!(
                        consumer = &*self.ctx.consumer_name,
                        wait_s = backoff.as_secs(),
                        "CloudWatch Logs throttled the connector; backing off"
                    );
                    backoff
                }
                Err(PollError::Other(e) | PollError::Config(e)) => {
                    let text = format!("{e:#}");
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(
                            consumer = &*self.ctx.consumer_name,
                            "CloudWatch Logs: {text}"
                        );
                        last_error = Some(text);
                    }
                    poll
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn poll(&mut self, stop: &CancellationToken) -> Result<(), PollError> {
        let streams = self.streams().await?;
        let now = now_ms() as i64;
        for stream in &streams {
            if !self.checkpoint.streams.contains_key(stream) {
                let position = match (
                    self.first_start,
                    self.props.start_position.unwrap_or_default(),
                ) {
                    (true, StartPosition::End) => self.end_of(stream, now).await?,
                    _ => StreamPosition::default(),
                };
                self.checkpoint.streams.insert(stream.clone(), position);
            }
        }
        if self.first_start {
            self.first_start = false;
            self.save(None).await;
        }
        for stream in streams {
            if stop.is_cancelled() {
                return Err(PollError::Stopped);
            }
            self.read_stream(&stream).await?;
        }
        Ok(())
    }

    /// A position after the stream's last event: its newest event's
    /// forward token (exact, also for events stamped in the past), or for
    /// filtered reads the current time.
    async fn end_of(&self, stream: &str, now: i64) -> Result<StreamPosition, PollError> {
        let by_time = StreamPosition {
            after_ms: Some(now),
            ..Default::default()
        };
        if self.props.filter_pattern.is_some() {
            return Ok(by_time);
        }
        let page = self
            .client
            .get_log_events()
            .log_group_name(&self.props.log_group)
            .log_stream_name(stream)
            .start_from_head(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| stream_error("GetLogEvents", stream, &e))?;
        Ok(match page.next_forward_token() {
            Some(token) if !page.events().is_empty() => StreamPosition {
                token: Some(token.to_owned()),
                ..Default::default()
            },
            // An empty stream: everything in it will be new.
            _ if page.events().is_empty() => StreamPosition::default(),
            _ => by_time,
        })
    }

    /// The group's streams, filtered by prefix or names.
    async fn streams(&self) -> Result<Vec<String>, PollError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .describe_log_streams()
                .log_group_name(&self.props.log_group);
            if let Some(prefix) = &self.props.log_stream_prefix {
                request = request.log_stream_name_prefix(prefix);
            }
            if let Some(t) = &token {
                request = request.next_token(t);
            }
            let page = match request.send().await {
                Ok(page) => page,
                Err(e) => {
                    return Err(match error_code(&e) {
                        Some("ResourceNotFoundException") => PollError::Config(anyhow::anyhow!(
                            "log group {:?} does not exist in region {}",
                            self.props.log_group,
                            self.props.region
                        )),
                        Some(code @ ("AccessDeniedException" | "UnrecognizedClientException")) => {
                            PollError::Config(anyhow::anyhow!(
                                "{code}: the credentials may not read log group {:?}",
                                self.props.log_group
                            ))
                        }
                        Some("ThrottlingException") => PollError::Throttled,
                        _ => PollError::Other(anyhow::anyhow!(
                            "DescribeLogStreams: {}",
                            DisplayErrorContext(&e)
                        )),
                    });
                }
            };
            names.extend(
                page.log_streams()
                    .iter()
                    .filter_map(|s| s.log_stream_name().map(str::to_owned)),
            );
            match page.next_token() {
                Some(next) if Some(next) != token.as_deref() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        if let Some(wanted) = &self.props.log_streams {
            names.retain(|n| wanted.contains(n));
        }
        Ok(names)
    }

    async fn read_stream(&mut self, stream: &str) -> Result<(), PollError> {
        // GetLogEvents may return empty pages with a new token before the
        // end; the same token back means the end. Bounded, to be safe.
        let mut empty_pages = 0;
        // FilterLogEvents: one query per read, its pages followed by token;
        // each page is handed on (and its position saved) by itself, so a
        // large backlog never sits in memory whole.
        let mut query = FilterQuery {
            start_ms: self.checkpoint.streams.get(stream).and_then(|p| p.after_ms),
            token: None,
        };
        loop {
            let position = self
                .checkpoint
                .streams
                .get(stream)
                .cloned()
                .unwrap_or_default();
            let (lines, next, done) = match &self.props.filter_pattern {
                None => {
                    let (lines, next) = self.get_events(stream, &position).await?;
                    if lines.is_empty() {
                        empty_pages += 1;
                    }
                    let done = next == position || empty_pages >= 10;
                    (lines, next, done)
                }
                Some(pattern) => {
                    let pattern = pattern.clone();
                    let (lines, next) = self
                        .filter_page(stream, &pattern, &position, &mut query)
                        .await?;
                    (lines, next, query.token.is_none())
                }
            };
            let receipt = if lines.is_empty() {
                None
            } else {
                Some(self.deliver(stream, lines).await)
            };
            if next != position || receipt.is_some() {
                self.checkpoint.streams.insert(stream.to_owned(), next);
                self.save(receipt).await;
            }
            if done {
                return Ok(());
            }
        }
    }

    async fn get_events(
        &self,
        stream: &str,
        position: &StreamPosition,
    ) -> Result<(Vec<u8>, StreamPosition), PollError> {
        let mut request = self
            .client
            .get_log_events()
            .log_group_name(&self.props.log_group)
            .log_stream_name(stream)
            .start_from_head(true);
        match (&position.token, position.after_ms) {
            (Some(token), _) => request = request.next_token(token),
            (None, Some(after)) => request = request.start_time(after),
            (None, None) => {}
        }
        let page = request
            .send()
            .await
            .map_err(|e| stream_error("GetLogEvents", stream, &e))?;
        let mut lines = Vec::new();
        for event in page.events() {
            if let Some(message) = event.message() {
                lines.extend_from_slice(message.trim_end_matches('\n').as_bytes());
                lines.push(b'\n');
            }
        }
        let next = StreamPosition {
            token: page
                .next_forward_token()
                .map(str::to_owned)
                .or(position.token.clone()),
            after_ms: position.after_ms,
            ids: Vec::new(),
        };
        Ok((lines, next))
    }

    /// One page of a FilterLogEvents query: the events not taken yet and
    /// the position after them; `query.token` is left `None` at the end.
    async fn filter_page(
        &self,
        stream: &str,
        pattern: &str,
        position: &StreamPosition,
        query: &mut FilterQuery,
    ) -> Result<(Vec<u8>, StreamPosition), PollError> {
        let mut request = self
            .client
            .filter_log_events()
            .log_group_name(&self.props.log_group)
            .log_stream_names(stream)
            .filter_pattern(pattern);
        if let Some(start) = query.start_ms {
            request = request.start_time(start);
        }
        if let Some(t) = &query.token {
            request = request.next_token(t);
        }
        let page = request
            .send()
            .await
            .map_err(|e| stream_error("FilterLogEvents", stream, &e))?;
        let mut lines = Vec::new();
        let mut next = position.clone();
        for event in page.events() {
            let (Some(ts), Some(id), Some(message)) =
                (event.timestamp(), event.event_id(), event.message())
            else {
                continue;
            };
            if !position.take_filtered(&mut next, ts, id) {
                continue;
            }
            lines.extend_from_slice(message.trim_end_matches('\n').as_bytes());
            lines.push(b'\n');
        }
        query.token = match page.next_token() {
            Some(t) if Some(t) != query.token.as_deref() => Some(t.to_owned()),
            _ => None,
        };
        Ok((lines, next))
    }

    /// Hands the events to the parsers; the receipt fires once their
    /// aggregate is durable.
    async fn deliver(&self, stream: &str, lines: Vec<u8>) -> oneshot::Receiver<()> {
        let shard = ShardKey::source((&self.props.log_group, stream));
        let (message, receipt) = RawMessage::replayable(self.ctx.consumer, shard, lines);
        self.ctx.router.route_waiting(message).await;
        receipt
    }

    /// Queues the current position for saving after `receipt` (waits when
    /// [`IN_FLIGHT`] pages are unsaved: backpressure on reading).
    async fn save(&self, receipt: Option<oneshot::Receiver<()>>) {
        let _ = self.saves.send((self.checkpoint.clone(), receipt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events (time, id) taken in order from `start`: which were new, and
    /// the position after them.
    fn take(start: &StreamPosition, events: &[(i64, &str)]) -> (Vec<String>, StreamPosition) {
        let mut next = start.clone();
        let taken = events
            .iter()
            .filter(|(ts, id)| start.take_filtered(&mut next, *ts, id))
            .map(|(_, id)| (*id).to_owned())
            .collect();
        (taken, next)
    }

    #[test]
    fn a_filtered_read_resumes_after_the_ids_it_took_at_the_last_time() {
        let (taken, after_first) = take(
            &StreamPosition::default(),
            &[(10, "a"), (20, "b"), (20, "c")],
        );
        assert_eq!(taken, ["a", "b", "c"]);
        assert_eq!(after_first.after_ms, Some(20));
        assert_eq!(after_first.ids, ["b", "c"]);
        // The next page (or a restart) sees b and c again, and a new event
        // stamped with the same millisecond.
        let (taken, after_second) =
            take(&after_first, &[(20, "b"), (20, "c"), (20, "d"), (30, "e")]);
        assert_eq!(taken, ["d", "e"]);
        assert_eq!(after_second.after_ms, Some(30));
        assert_eq!(after_second.ids, ["e"]);
    }

    #[test]
    fn an_event_older_than_the_watermark_is_not_taken_again() {
        let start = StreamPosition {
            after_ms: Some(50),
            ids: vec!["x".into()],
            ..Default::default()
        };
        let (taken, next) = take(&start, &[(40, "late"), (50, "x"), (50, "y")]);
        assert_eq!(taken, ["y"]);
        assert_eq!(next.ids, ["x", "y"]);
    }
}
