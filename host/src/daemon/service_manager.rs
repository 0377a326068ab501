//! Readiness and state for a service manager (systemd's `Type=notify`):
//! datagrams to `$NOTIFY_SOCKET` as sd_notify(3) describes. Without the
//! variable (not run by systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;

/// Sends one state line (`READY=1`, `RELOADING=1`, `STOPPING=1`, …). A
/// failure is logged, never fatal: the collector runs the same without it.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        // `@name` is a socket in the abstract namespace.
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)
        } else {
            socket.send_to(state.as_bytes(), &path)
        }
    });
    if let Err(e) = result {
        tracing::warn!(socket = ?path, "cannot notify the service manager ({state}): {e}");
    }
}
