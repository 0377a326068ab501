//! How the emulator misbehaves, chosen at start (`--fault`) or at run time
//! (`POST /emulator/fault`): the PCE outages the spool must survive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::either::Either;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Behave like a healthy PCE.
    #[default]
    Ok,
    /// Accept and drop every connection: the client sees a reset.
    Refuse,
    /// 503 Service Unavailable.
    Unavailable,
    /// 429 Too Many Requests with `Retry-After: retry_after_seconds`.
    TooManyRequests,
    /// Answer after `delay_ms`.
    Slow,
    /// 401 Unauthorized, whatever the credentials.
    Unauthorized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub mode: FaultMode,
    #[serde(default = "default_retry_after")]
    pub retry_after_seconds: u64,
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
}

fn default_retry_after() -> u64 {
    5
}

fn default_delay() -> u64 {
    5000
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            mode: FaultMode::Ok,
            retry_after_seconds: default_retry_after(),
            delay_ms: default_delay(),
        }
    }
}

impl Fault {
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

pub type SharedFault = Arc<Mutex<Fault>>;

/// A plain or TLS connection.
pub type EmulatorStream = Either<TcpStream, TlsStream<TcpStream>>;

/// A TCP listener that drops connections while the fault is `refuse`,
/// except those for the emulator's own `/emulator/…` endpoints (so the
/// fault can be lifted again). Every response closes its connection, so a
/// client's pooled connection does not outlive a change of fault.
pub struct FaultyListener {
    pub inner: TcpListener,
    pub fault: SharedFault,
    /// Serve HTTPS with this acceptor.
    pub tls: Option<TlsAcceptor>,
}

/// Whether the request on `stream` is for `/emulator/…` (peeked, not read).
async fn is_control(stream: &TcpStream) -> bool {
    let mut head = [0u8; 16];
    let peeked = tokio::time::timeout(Duration::from_millis(500), stream.peek(&mut head)).await;
    let Ok(Ok(n)) = peeked else { return false };
    let head = &head[..n];
    head.starts_with(b"GET /emulator/") || head.starts_with(b"POST /emulator/")
}

impl axum::serve::Listener for FaultyListener {
    type Io = EmulatorStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    if self.fault.lock().expect("fault").mode == FaultMode::Refuse
                        && !is_control(&stream).await
                    {
                        drop(stream);
                        continue;
                    }
                    let Some(tls) = &self.tls else {
                        return (Either::Left(stream), addr);
                    };
                    match tokio::time::timeout(Duration::from_secs(5), tls.accept(stream)).await {
                        Ok(Ok(secured)) => return (Either::Right(secured), addr),
                        Ok(Err(e)) => tracing::debug!(%addr, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                }
                Err(e) => {
                    tracing::warn!("emulator accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
