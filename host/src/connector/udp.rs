//! The UDP listener: one socket per configured port, a large receive
//! buffer, a receive thread per socket taking datagrams up to 32 per system
//! call (`recvmmsg`) and handing each pass's datagrams to the router
//! together, and the kernel's own drop count (receive buffer overflows)
//! read and reported.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio_util::sync::CancellationToken;

use super::{ConnectorContext, ConnectorHandle};
use crate::config::UdpProperties;
use crate::metrics;
use crate::pipeline::now_ms;

const DEFAULT_RECEIVE_BUFFER: usize = 8 << 20;
/// Largest UDP payload; a datagram is never truncated.
const MAX_DATAGRAM: usize = 65_535;
/// How often the kernel's drop counter is read.
const KERNEL_DROPS_EVERY: Duration = Duration::from_secs(2);

/// Binds every port now (so a port in use fails the start, naming the
/// port) and starts one receive thread per socket.
pub fn start(ctx: ConnectorContext, props: &UdpProperties) -> Result<ConnectorHandle> {
    let stop = CancellationToken::new();
    // A later port failing stops the threads of the earlier ones, which
    // would otherwise hold the router (and so the shutdown) forever.
    start_sockets(ctx, props, stop.clone()).inspect_err(|_| stop.cancel())
}

fn start_sockets(
    ctx: ConnectorContext,
    props: &UdpProperties,
    stop: CancellationToken,
) -> Result<ConnectorHandle> {
    let address = props
        .listen_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let receive_buffer = props.receive_buffer_bytes.unwrap_or(DEFAULT_RECEIVE_BUFFER);
    let ports = props.ports.ports().map_err(anyhow::Error::msg)?;
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
        tasks.push(spawn_receive_thread(ctx.clone(), socket, stop.clone())?);
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
    socket.set_read_timeout(Some(STOP_CHECK_EVERY))?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// After the socket is drained, the receive thread sleeps before it looks
/// again, so datagrams arriving in the meantime are taken (and handed on to
/// the parser workers, and from them to the aggregator) together: one
/// wake-up of each stage per pause instead of one per datagram. A wake-up
/// is a context switch on each of three threads, and on this class of
/// machine (a VM) the switches were the daemon's largest cost after the
/// parser itself. Flows wait for their window anyway; milliseconds cost
/// nothing.
const MAX_LINGER: Duration = Duration::from_millis(4);
/// ...but a pause must fit in half the receive buffer at a rate well past
/// what the parsers can take: 1 MiB of kernel memory a millisecond (the
/// kernel charges a datagram's buffer, ~2.3 KB for 1.4 KB of payload, so
/// ~450k datagrams/s). The default 8 MiB buffer (granted as 16 MiB, or as
/// 8 MiB where `net.core.rmem_max` is 4 MiB) pauses 4 ms; below 2 MiB
/// the thread does not pause.
const LINGER_BUFFER_PER_MS: usize = 1 << 20;

/// The pause for a receive buffer of `granted` bytes (what the kernel
/// reports, twice what was set).
fn linger_for(granted: usize) -> Option<Duration> {
    let ms = (granted / 2 / LINGER_BUFFER_PER_MS) as u64;
    (ms > 0).then(|| Duration::from_millis(ms).min(MAX_LINGER))
}

/// The pause after a receive error, without a linger.
const ERROR_PAUSE: Duration = Duration::from_millis(1);
/// How long a blocking receive waits before the thread checks whether it
/// should stop: bounds how long shutdown waits for an idle socket.
const STOP_CHECK_EVERY: Duration = Duration::from_millis(100);

/// One OS thread per socket, in blocking `recvmmsg`, not a task on the
/// runtime: a socket registered with epoll wakes its waiter on every
/// datagram that arrives, even while the task sleeps through its linger
/// (12k wake-ups a second at 50k datagrams/s, each a context switch). A
/// thread sleeping in `nanosleep` is not on the socket's wait queue, so
/// arrivals during the pause cost nothing; it wakes once per pause.
fn spawn_receive_thread(
    ctx: ConnectorContext,
    socket: UdpSocket,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let (finished, done) = tokio::sync::oneshot::channel::<()>();
    let port = socket.local_addr().map_or(0, |a| a.port());
    std::thread::Builder::new()
        .name(format!("udp-{port}"))
        .spawn(move || {
            // Owns the router's sender: gone before `finished` says so,
            // so the workers' queues close once every connector is done.
            receive_loop(ctx, socket, stop);
            drop(finished);
        })
        .context("starting the UDP receive thread")?;
    Ok(tokio::spawn(async move {
        let _ = done.await;
    }))
}

fn receive_loop(ctx: ConnectorContext, socket: UdpSocket, stop: CancellationToken) {
    let mut batch = ReceiveBatch::new();
    let mut gathered = ctx.router.datagram_batch(ctx.consumer);
    let linger = socket2::SockRef::from(&socket)
        .recv_buffer_size()
        .ok()
        .and_then(linger_for);
    while !stop.is_cancelled() {
        // With nothing gathered, blocks until one datagram is there (or
        // STOP_CHECK_EVERY); else only takes what is queued, so what was
        // gathered never waits on the next datagram.
        let wait = gathered.is_empty();
        let count = match batch.receive(socket.as_raw_fd(), wait) {
            Ok(count) => count,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                ctx.router.send_gathered(&mut gathered);
                continue;
            }
            Err(e) => {
                ctx.router.send_gathered(&mut gathered);
                // ICMP port-unreachable and similar surface here on some
                // kernels; they say nothing about this socket. A pause, so
                // an error that does not clear cannot spin a core.
                tracing::debug!("UDP receive error: {e}");
                std::thread::sleep(linger.unwrap_or(ERROR_PAUSE));
                continue;
            }
        };
        let received_ms = now_ms();
        for (payload, from) in batch.datagrams(count) {
            ctx.router
                .gather(&mut gathered, normalise(from), received_ms, payload);
        }
        let drained = count < RECEIVE_BATCH;
        if drained || gathered.len() >= DATAGRAMS_PER_PASS {
            ctx.router.send_gathered(&mut gathered);
        }
        if drained && let Some(linger) = linger {
            std::thread::sleep(linger);
        }
    }
    ctx.router.send_gathered(&mut gathered);
}

/// Datagrams handed on together, at most: what a parser worker takes into
/// one plugin call.
const DATAGRAMS_PER_PASS: usize = 64;

/// Datagrams taken per `recvmmsg` call.
const RECEIVE_BATCH: usize = 32;

/// Buffers for one `recvmmsg` call: a full-size buffer per datagram (a
/// datagram is never truncated) and its sender's address. Reused for every
/// call; each payload is copied into its worker's arena
/// ([`crate::pipeline::ShardRouter::gather`]).
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

    /// One `recvmmsg` on a blocking socket: with `wait`, waits for the
    /// first datagram (up to the socket's receive timeout); then takes what
    /// is queued. Without, `WouldBlock` when nothing is.
    fn receive(&mut self, fd: std::os::fd::RawFd, wait: bool) -> std::io::Result<usize> {
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
                if wait {
                    libc::MSG_WAITFORONE
                } else {
                    libc::MSG_DONTWAIT
                },
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
    fn the_pause_fits_in_half_the_receive_buffer() {
        assert_eq!(linger_for(16 << 20), Some(MAX_LINGER));
        assert_eq!(linger_for(8 << 20), Some(Duration::from_millis(4)));
        assert_eq!(linger_for(4 << 20), Some(Duration::from_millis(2)));
        assert_eq!(linger_for(2 << 20), Some(Duration::from_millis(1)));
        // The stock net.core.rmem_max (208 KiB): no pause, no overflow.
        assert_eq!(linger_for(425_984), None);
    }

    #[test]
    fn mapped_ipv4_exporters_are_plain_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:2055".parse().unwrap();
        assert_eq!(normalise(mapped), "192.0.2.1:2055".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:2055".parse().unwrap();
        assert_eq!(normalise(v6), v6);
    }
}
