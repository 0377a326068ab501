//! The signals an operator sends, armed first thing in `flowlink run`:
//! before the configuration is read and plugins compile, so a SIGTERM or
//! SIGHUP that arrives during start-up is never the default action (exit
//! at once, losing the open window).

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGTERM and SIGINT stop the daemon (draining in order); SIGHUP reloads
/// the configuration file. A signal that arrives before it is awaited is
/// kept by tokio and seen by the next wait.
pub struct Signals {
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
}

impl Signals {
    pub fn arm() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

/// Waits for SIGTERM or SIGINT; returns its name.
pub async fn stop_requested(term: &mut Signal, int: &mut Signal) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
