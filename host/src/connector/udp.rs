//! The UDP listener: one socket per configured port, a large receive
//! buffer, every datagram handed to the router as it arrives.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::config::UdpProperties;
use crate::pipeline::{RawMessage, ShardRouter, now_ms};

const DEFAULT_RECEIVE_BUFFER: usize = 8 << 20;
/// Largest UDP payload; a datagram is never truncated.
const MAX_DATAGRAM: usize = 65_535;

pub struct UdpConnector {
    tasks: Vec<JoinHandle<()>>,
}

impl UdpConnector {
    /// Binds every port now (so a port in use fails the start, naming the
    /// port) and starts one receive task per socket.
    pub fn start(
        consumer: usize,
        consumer_name: &str,
        props: &UdpProperties,
        router: ShardRouter,
    ) -> Result<Self> {
        let address = props
            .listen_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let receive_buffer = props.receive_buffer_bytes.unwrap_or(DEFAULT_RECEIVE_BUFFER);
        let ports = props.ports.ports().map_err(anyhow::Error::msg)?;
        let mut tasks = Vec::new();
        for port in ports {
            let addr = SocketAddr::new(address, port);
            let socket = bind(addr, receive_buffer)
                .with_context(|| format!("consumer {consumer_name:?}: binding UDP {addr}"))?;
            tracing::info!(consumer = consumer_name, listen = %addr, "UDP connector listening");
            let router = router.clone();
            tasks.push(tokio::spawn(receive_loop(consumer, socket, router)));
        }
        Ok(UdpConnector { tasks })
    }

    /// Stops receiving; the router clones held by the tasks are dropped.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn bind(addr: SocketAddr, receive_buffer: usize) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // [::] also receives IPv4 exporters (as ::ffff:a.b.c.d).
        socket.set_only_v6(false)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%addr, "could not set a {receive_buffer}-byte receive buffer: {e}");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

async fn receive_loop(consumer: usize, socket: UdpSocket, router: ShardRouter) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, exporter)) => router.route(RawMessage {
                consumer,
                exporter,
                received_ms: now_ms(),
                payload: buffer[..len].to_vec(),
                stream: None,
            }),
            Err(e) => {
                // ICMP port-unreachable and similar surface here on some
                // kernels; they say nothing about this socket's health.
                tracing::debug!("UDP receive error: {e}");
            }
        }
    }
}
