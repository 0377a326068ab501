//! The TCP listener: message framing per connection, one parser session
//! per connection (IPFIX templates over TCP belong to their transport
//! session, RFC 7011 §8), backpressure instead of drops, and a bound on
//! concurrent connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{TcpFraming, TcpProperties};
use crate::pipeline::{RawMessage, ShardRouter, now_ms};
use crate::plugin::StreamId;

const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// IPFIX message header; its length field counts it.
const IPFIX_HEADER: usize = 16;

/// Connection ids, unique in the process.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

pub struct TcpConnector {
    tasks: Vec<JoinHandle<()>>,
}

/// What a connection task needs.
#[derive(Clone)]
struct Listener {
    consumer: usize,
    name: Arc<str>,
    framing: TcpFraming,
    router: ShardRouter,
}

impl TcpConnector {
    /// Binds every port now, so a port in use fails the start with its name.
    pub fn start(
        consumer: usize,
        consumer_name: &str,
        props: &TcpProperties,
        router: ShardRouter,
    ) -> Result<Self> {
        let address = props
            .listen_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let limit = Arc::new(Semaphore::new(
            props.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
        ));
        let listener = Listener {
            consumer,
            name: consumer_name.into(),
            framing: props.framing,
            router,
        };
        let mut tasks = Vec::new();
        for port in props.ports.ports().map_err(anyhow::Error::msg)? {
            let addr = SocketAddr::new(address, port);
            let socket = std::net::TcpListener::bind(addr)
                .with_context(|| format!("consumer {consumer_name:?}: binding TCP {addr}"))?;
            socket.set_nonblocking(true)?;
            let socket = TcpListener::from_std(socket)?;
            tracing::info!(consumer = consumer_name, listen = %addr, framing = ?props.framing, "TCP connector listening");
            tasks.push(tokio::spawn(accept_loop(
                socket,
                limit.clone(),
                listener.clone(),
            )));
        }
        Ok(TcpConnector { tasks })
    }

    /// Stops accepting and closes every connection (their tasks are children
    /// of the accept loop).
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(socket: TcpListener, limit: Arc<Semaphore>, listener: Listener) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(consumer = %listener.name, "TCP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(consumer = %listener.name, %peer, "connection refused: max_connections reached");
            continue;
        };
        let listener = listener.clone();
        connections.spawn(async move {
            let id = NEXT_STREAM.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(consumer = %listener.name, %peer, stream = id, "connection opened");
            if let Err(e) = serve(&listener, stream, peer, id).await {
                tracing::warn!(consumer = %listener.name, %peer, "connection closed: {e:#}");
            }
            listener
                .router
                .close_stream(listener.consumer, peer.ip(), id)
                .await;
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

async fn serve(
    listener: &Listener,
    mut stream: TcpStream,
    peer: SocketAddr,
    id: StreamId,
) -> Result<()> {
    match listener.framing {
        TcpFraming::Ipfix => loop {
            let mut header = [0u8; IPFIX_HEADER];
            match stream.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
            if length < IPFIX_HEADER {
                // Without a sane length the next message cannot be found.
                anyhow::bail!(
                    "IPFIX message length {length} is below the header size: framing lost"
                );
            }
            let mut payload = vec![0u8; length];
            payload[..IPFIX_HEADER].copy_from_slice(&header);
            stream
                .read_exact(&mut payload[IPFIX_HEADER..])
                .await
                .context("message cut short")?;
            let message = RawMessage {
                consumer: listener.consumer,
                exporter: peer,
                received_ms: now_ms(),
                payload,
                stream: Some(id),
            };
            listener.router.route_waiting(message).await;
        },
    }
}
