//! The UDP listener: one socket per configured port, a large receive
//! buffer, datagrams taken up to 32 per system call (`recvmmsg`) and handed
//! to the router, and the kernel's own drop count (receive buffer
//! overflows) read and reported.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{ConnectorContext, ConnectorHandle};
use crate::config::UdpProperties;
use crate::metrics;
use crate::pipeline::{RawMessage, ShardKey, now_ms};

const DEFAULT_RECEIVE_BUFFER: usize = 8 << 20;
/// Largest UDP payload; a datagram is never truncated.
const MAX_DATAGRAM: usize = 65_535;
/// How often the kernel's drop counter is read.
const KERNEL_DROPS_EVERY: Duration = Duration::from_secs(2);

/// Binds every port now (so a port in use fails the start, naming the
/// port) and starts one receive task per socket.
pub fn start(ctx: ConnectorContext, props: &UdpProperties) -> Result<ConnectorHandle> {
    let address = props
        .listen_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let receive_buffer = props.receive_buffer_bytes.unwrap_or(DEFAULT_RECEIVE_BUFFER);
    let ports = props.ports.ports().map_err(anyhow::Error::msg)?;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for port in ports {
        let addr = SocketAddr::new(address, port);
        let socket = bind(addr, receive_buffer)
            .with_context(|| format!("consumer {:?}: binding UDP {addr}", &*ctx.consumer_name))?;
        tracing::info!(consumer = &*ctx.consumer_name, listen = %addr, "UDP connector listening");
        tasks.push(tokio::spawn(watch_kernel_drops(
            ctx.clone(),
            socket_inode(&socket),
            stop.clone(),
        )));
        tasks.push(tokio::spawn(receive_loop(
            ctx.clone(),
            socket,
            stop.clone(),
        )));
    }
    Ok(ConnectorHandle::new(stop, tasks))
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
    if let Ok(got) = socket.recv_buffer_size()
        && got < receive_buffer
    {
        // Linux caps SO_RCVBUF at net.core.rmem_max.
        tracing::warn!(%addr, asked = receive_buffer, got, "receive buffer capped by the kernel (raise net.core.rmem_max)");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// After the socket is drained, the receive task waits this long before it
/// looks again, so datagrams arriving in the meantime are taken (and handed
/// on to the parser workers, and from them to the aggregator) together: one
/// wake-up of each stage per pause instead of one per datagram, which at a
/// steady 50k datagrams/s is most of the daemon's CPU. Flows wait for
/// their window anyway; a millisecond costs nothing.
const LINGER: Duration = Duration::from_millis(1);
/// ...but only with a receive buffer that holds a pause at line rate (a
/// 1 ms pause at 1 M datagrams/s of 1.5 KB is ~3 MB of kernel buffer).
const LINGER_MIN_BUFFER: usize = 4 << 20;

async fn receive_loop(ctx: ConnectorContext, socket: UdpSocket, stop: CancellationToken) {
    let mut batch = ReceiveBatch::new();
    let linger = socket2::SockRef::from(&socket)
        .recv_buffer_size()
        .is_ok_and(|granted| granted >= LINGER_MIN_BUFFER);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ready = socket.readable() => if ready.is_err() { return },
        }
        // Drain what the kernel holds, up to RECEIVE_BATCH datagrams per
        // system call, then wait for readiness again.
        loop {
            // Under load this loop may not return to the select above.
            if stop.is_cancelled() {
                return;
            }
            let received = socket.try_io(Interest::READABLE, || batch.receive(socket.as_raw_fd()));
            let count = match received {
                Ok(count) => count,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port-unreachable and similar surface here on
                    // some kernels; they say nothing about this socket.
                    tracing::debug!("UDP receive error: {e}");
                    break;
                }
            };
            let received_ms = now_ms();
            for (payload, from) in batch.datagrams(count) {
                let exporter = normalise(from);
                ctx.router.route(RawMessage {
                    consumer: ctx.consumer,
                    exporter,
                    shard: ShardKey::exporter(exporter.ip()),
                    received_ms,
                    payload: payload.to_vec(),
                    stream: None,
                    ack: None,
                });
            }
            if count < RECEIVE_BATCH {
                if linger {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        () = tokio::time::sleep(LINGER) => {}
                    }
                }
                break;
            }
            // A busy socket must not keep the runtime thread to itself.
            tokio::task::consume_budget().await;
        }
    }
}

/// Datagrams taken per `recvmmsg` call.
const RECEIVE_BATCH: usize = 32;

/// Buffers for one `recvmmsg` call: a full-size buffer per datagram (a
/// datagram is never truncated) and its sender's address. Reused for every
/// call; each payload is copied out at its own length.
struct ReceiveBatch {
    buffers: Vec<Vec<u8>>,
    lengths: [usize; RECEIVE_BATCH],
    senders: [Option<SocketAddr>; RECEIVE_BATCH],
}

impl ReceiveBatch {
    fn new() -> Self {
        ReceiveBatch {
            buffers: (0..RECEIVE_BATCH)
                .map(|_| vec![0u8; MAX_DATAGRAM])
                .collect(),
            lengths: [0; RECEIVE_BATCH],
            senders: [None; RECEIVE_BATCH],
        }
    }

    /// One non-blocking `recvmmsg`: how many datagrams it took.
    fn receive(&mut self, fd: std::os::fd::RawFd) -> std::io::Result<usize> {
        // SAFETY: zeroed iovec, sockaddr_storage and mmsghdr are valid
        // values; every pointer set below points into `self.buffers` or
        // these locals, all of which outlive the call.
        let mut addresses: [libc::sockaddr_storage; RECEIVE_BATCH] = unsafe { std::mem::zeroed() };
        let mut iovecs: [libc::iovec; RECEIVE_BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; RECEIVE_BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..RECEIVE_BATCH {
            iovecs[i].iov_base = self.buffers[i].as_mut_ptr().cast();
            iovecs[i].iov_len = self.buffers[i].len();
            headers[i].msg_hdr.msg_name = (&mut addresses[i] as *mut libc::sockaddr_storage).cast();
            headers[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            headers[i].msg_hdr.msg_iov = &mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `headers` is RECEIVE_BATCH initialised entries.
        let count = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                RECEIVE_BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let count = count as usize;
        for i in 0..count {
            self.lengths[i] = headers[i].msg_len as usize;
            let mut storage = socket2::SockAddrStorage::zeroed();
            // SAFETY: the kernel wrote a socket address of `msg_namelen`
            // bytes into `addresses[i]`; the storage is a sockaddr_storage.
            let address = unsafe {
                *storage.view_as::<libc::sockaddr_storage>() = addresses[i];
                socket2::SockAddr::new(storage, headers[i].msg_hdr.msg_namelen)
            };
            self.senders[i] = address.as_socket();
        }
        Ok(count)
    }

    /// The first `count` datagrams of the last call, with their senders.
    fn datagrams(&self, count: usize) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..count).filter_map(|i| {
            let from = self.senders[i]?;
            Some((&self.buffers[i][..self.lengths[i]], from))
        })
    }
}

/// An IPv4 exporter received on a dual-stack socket is `::ffff:a.b.c.d`;
/// keyed as plain IPv4 so it meets the same templates as on a v4 socket.
fn normalise(exporter: SocketAddr) -> SocketAddr {
    match exporter.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), exporter.port()),
            None => exporter,
        },
        IpAddr::V4(_) => exporter,
    }
}

fn socket_inode(socket: &UdpSocket) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
        .ok()
        .map(|m| m.ino())
}

/// Adds the kernel's drop count of the socket (last column of
/// `/proc/net/udp{,6}`) to the consumer's `kernel_drops`.
async fn watch_kernel_drops(ctx: ConnectorContext, inode: Option<u64>, stop: CancellationToken) {
    let Some(inode) = inode else { return };
    let mut reported = 0u64;
    let mut tick = tokio::time::interval(KERNEL_DROPS_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(drops) = kernel_drops(inode) else {
            continue;
        };
        if drops > reported {
            let new = drops - reported;
            metrics::add(&ctx.metrics.consumer(ctx.consumer).kernel_drops, new);
            tracing::warn!(
                consumer = &*ctx.consumer_name,
                dropped = new,
                "the kernel dropped datagrams: receive buffer full"
            );
            reported = drops;
        }
    }
}

fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let columns: Vec<&str> = line.split_whitespace().collect();
                // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
                (columns.get(9)?.parse::<u64>().ok()? == inode)
                    .then(|| columns.last()?.parse().ok())
                    .flatten()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_drop_counter_of_its_own_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .unwrap()
            .ino();
        assert_eq!(kernel_drops(inode), Some(0));
        assert_eq!(kernel_drops(u64::MAX), None);
    }

    #[test]
    fn mapped_ipv4_exporters_are_plain_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:2055".parse().unwrap();
        assert_eq!(normalise(mapped), "192.0.2.1:2055".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:2055".parse().unwrap();
        assert_eq!(normalise(v6), v6);
    }
}
