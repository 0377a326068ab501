//! The TCP listener: message framing per connection (IPFIX message
//! lengths, syslog lines or octet counts), one parser session per
//! connection (IPFIX templates over TCP belong to their transport session,
//! RFC 7011 §8), backpressure instead of drops, and a bound on concurrent
//! connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use flowlink_decoders::ipfix;

use super::text_framing::{DEFAULT_MAX_MESSAGE_BYTES, TextFramer};
use super::{ConnectorContext, ConnectorHandle};
use crate::config::{TcpFraming, TcpProperties};
use crate::pipeline::{RawMessage, ShardKey, now_ms};
use crate::plugin::StreamId;

const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// IPFIX message header; its length field counts it.
const IPFIX_HEADER: usize = 16;
/// Read size for text streams; the complete lines of one read go to the
/// parser as one message.
const TEXT_READ: usize = 64 << 10;

/// Connection ids, unique in the process.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// What a connection task needs.
#[derive(Clone)]
struct Listener {
    ctx: ConnectorContext,
    framing: TcpFraming,
    max_message_bytes: usize,
}

/// Binds every port now, so a port in use fails the start with its name.
pub fn start(ctx: ConnectorContext, props: &TcpProperties) -> Result<ConnectorHandle> {
    let address = props
        .listen_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let limit = Arc::new(Semaphore::new(
        props.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
    ));
    let framing = props.framing.unwrap_or(TcpFraming::Syslog);
    let listener = Listener {
        ctx: ctx.clone(),
        framing,
        max_message_bytes: props.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
    };
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for port in props.ports.ports().map_err(anyhow::Error::msg)? {
        let addr = SocketAddr::new(address, port);
        let socket = std::net::TcpListener::bind(addr)
            .with_context(|| format!("consumer {:?}: binding TCP {addr}", &*ctx.consumer_name))?;
        socket.set_nonblocking(true)?;
        let socket = TcpListener::from_std(socket)?;
        tracing::info!(consumer = &*ctx.consumer_name, listen = %addr, ?framing, "TCP connector listening");
        tasks.push(tokio::spawn(accept_loop(
            socket,
            limit.clone(),
            listener.clone(),
            stop.clone(),
        )));
    }
    Ok(ConnectorHandle::new(stop, tasks))
}

async fn accept_loop(
    socket: TcpListener,
    limit: Arc<Semaphore>,
    listener: Listener,
    stop: CancellationToken,
) {
    let name = listener.ctx.consumer_name.clone();
    // Dropped (and with it every connection task) when the loop ends.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(consumer = &*name, "TCP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(consumer = &*name, %peer, "connection refused: max_connections reached");
            continue;
        };
        let listener = listener.clone();
        connections.spawn(async move {
            let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
            let ctx = &listener.ctx;
            tracing::debug!(consumer = &*ctx.consumer_name, %peer, stream = id, "connection opened");
            let served = match listener.framing {
                TcpFraming::Ipfix => serve_ipfix(ctx, stream, peer, id).await,
                _ => serve_text(&listener, stream, peer, id).await,
            };
            if let Err(e) = served {
                tracing::warn!(consumer = &*ctx.consumer_name, %peer, "connection closed: {e:#}");
            }
            ctx.router
                .close_stream(ctx.consumer, ShardKey::exporter(peer.ip()), id)
                .await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

fn message(ctx: &ConnectorContext, peer: SocketAddr, id: StreamId, payload: Vec<u8>) -> RawMessage {
    RawMessage {
        consumer: ctx.consumer,
        exporter: peer,
        shard: ShardKey::exporter(peer.ip()),
        received_ms: now_ms(),
        payload: payload.into(),
        stream: Some(id),
        ack: None,
    }
}

async fn serve_ipfix(
    ctx: &ConnectorContext,
    mut stream: TcpStream,
    peer: SocketAddr,
    id: StreamId,
) -> Result<()> {
    loop {
        let mut header = [0u8; IPFIX_HEADER];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let length = ipfix::message_length(&header).expect("a whole header was read");
        if length < IPFIX_HEADER {
            // Without a sane length the next message cannot be found.
            anyhow::bail!("IPFIX message length {length} is below the header size: framing lost");
        }
        let mut payload = vec![0u8; length];
        payload[..IPFIX_HEADER].copy_from_slice(&header);
        stream
            .read_exact(&mut payload[IPFIX_HEADER..])
            .await
            .context("message cut short")?;
        ctx.router
            .route_waiting(message(ctx, peer, id, payload))
            .await;
    }
}

async fn serve_text(
    listener: &Listener,
    mut stream: TcpStream,
    peer: SocketAddr,
    id: StreamId,
) -> Result<()> {
    let ctx = &listener.ctx;
    let mut framer = TextFramer::new(listener.framing, listener.max_message_bytes);
    let mut chunk = vec![0u8; TEXT_READ];
    loop {
        let n = stream.read(&mut chunk).await?;
        let mut records = Vec::new();
        let framed = if n == 0 {
            framer.finish(&mut records);
            Ok(())
        } else {
            framer.feed(&chunk[..n], &mut records)
        };
        ctx.report_oversized(&mut framer, &peer);
        if !records.is_empty() {
            ctx.router
                .route_waiting(message(ctx, peer, id, records))
                .await;
        }
        if let Err(e) = framed {
            anyhow::bail!("framing lost: {}", e.0);
        }
        if n == 0 {
            return Ok(());
        }
    }
}
