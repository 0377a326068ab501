//! The thread that advances the engine's epoch, the clock of every plugin
//! call's deadline: wasmtime checks the epoch at function entries and loop
//! heads, and a store traps once the epoch reaches its deadline.
//!
//! While deadlines are pending it ticks every [`EPOCH_TICK`]. Once none has
//! been for [`IDLE_AFTER`] it ticks every [`IDLE_TICK`] instead, so an idle
//! daemon wakes 10 times a second rather than 200 (at 200 the ticker was
//! most of an idle daemon's CPU). Arming a deadline wakes it back to the
//! fast pace. A deadline is pending until the epoch passes it, whether or
//! not its call has returned, so a call that never returns keeps the ticker
//! fast until it traps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::Engine;

/// How often the epoch advances while calls are made. Deadlines are whole
/// ticks, so this is the resolution of `plugin_timeout_ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How often it advances once idle. A deadline armed while the ticker
/// falls idle can miss the wake-up and wait this long for the fast pace:
/// the most a call can overrun its limit by.
pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// How long after the last pending deadline the ticker slows down.
pub const IDLE_AFTER: Duration = Duration::from_millis(250);

pub(super) struct EpochTicker {
    /// Ticks so far: the engine's epoch, as far as this module knows it.
    epoch: AtomicU64,
    /// The latest epoch any armed deadline falls on.
    due: AtomicU64,
    idle: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Result<Arc<Self>> {
        let ticker = Arc::new(EpochTicker {
            epoch: AtomicU64::new(0),
            due: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
        });
        let shared = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || shared.run(&engine))
            .context("starting the plugin deadline ticker")?;
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// Notes a deadline `ticks` from now, and wakes the ticker if idle.
    pub(super) fn note_deadline(&self, ticks: u64) {
        let due = self.epoch.load(Ordering::Relaxed).saturating_add(ticks);
        self.due.fetch_max(due, Ordering::Relaxed);
        if self.idle.load(Ordering::Relaxed) {
            self.wake();
        }
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
    }

    /// Whether the ticker has slowed down (for tests).
    #[cfg(test)]
    fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Relaxed)
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn run(&self, engine: &Engine) {
        let idle_after = (IDLE_AFTER.as_micros() / EPOCH_TICK.as_micros()) as u64;
        let mut quiet = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            if self.idle.load(Ordering::Relaxed) {
                std::thread::park_timeout(IDLE_TICK);
            } else {
                std::thread::sleep(EPOCH_TICK);
            }
            engine.increment_epoch();
            let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
            if epoch < self.due.load(Ordering::Relaxed) {
                quiet = 0;
            } else {
                quiet += 1;
            }
            self.idle.store(quiet >= idle_after, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
        started.elapsed()
    }

    #[test]
    fn slows_down_when_no_deadline_is_pending_and_speeds_up_for_one() {
        let ticker = EpochTicker::start(Engine::default()).unwrap();
        let ticks = || ticker.epoch.load(Ordering::Relaxed);
        wait_until("idle", Duration::from_secs(10), || ticker.is_idle());

        // Idle: about one tick per IDLE_TICK.
        let before = ticks();
        std::thread::sleep(IDLE_TICK * 3);
        let idle_ticks = ticks() - before;
        // The fast pace would be 60.
        assert!(idle_ticks <= 20, "{idle_ticks} ticks in 3 idle periods");

        // A deadline of 40 ticks is counted at the fast pace, at once.
        let armed_at = ticks();
        ticker.note_deadline(40);
        let took = wait_until("40 ticks", IDLE_TICK * 10, || ticks() >= armed_at + 40);
        // The idle pace would take 4 s.
        assert!(
            took < IDLE_TICK * 20,
            "40 ticks took {took:?} after a deadline was armed"
        );
        // Pending until it passes, then quiet again.
        assert!(!ticker.is_idle());
        wait_until("idle again", Duration::from_secs(10), || ticker.is_idle());
        ticker.stop();
    }
}
