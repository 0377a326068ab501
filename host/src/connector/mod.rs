//! Connectors: sockets and other sources that turn bytes into raw messages.
//! They never parse; they hand every message to the shard router.

mod tcp;
mod udp;

pub use tcp::TcpConnector;
pub use udp::UdpConnector;
