//! The thread that advances the engine's epoch, the clock of every plugin
//! call's deadline: wasmtime checks the epoch at function entries and loop
//! heads, and a store traps once the epoch reaches its deadline.
//!
//! The epoch counts [`EPOCH_TICK`]s of real time. While deadlines are being
//! armed (calls are made) the thread wakes every tick. Once none has been
//! armed for [`IDLE_AFTER`] it wakes every [`IDLE_TICK`] and advances the
//! epoch by the ticks that passed, so an idle daemon wakes 10 times a second
//! rather than 200 (at 200 the ticker was most of an idle daemon's CPU),
//! and a deadline still falls when it should, give or take an idle tick: a
//! call that hangs while the thread is idle is stopped at most
//! [`IDLE_TICK`] late. Arming a deadline wakes the thread back to the
//! fast pace, without charging the call the idle time before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::Engine;

/// How often the epoch advances while calls are made. Deadlines are whole
/// ticks, so this is the resolution of `plugin_timeout_ms`.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// How often the thread wakes once idle.
pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// How long after the last deadline was armed the thread slows down.
pub const IDLE_AFTER: Duration = Duration::from_millis(250);

pub(super) struct EpochTicker {
    /// A deadline was armed since the thread last looked.
    armed: AtomicBool,
    idle: AtomicBool,
    stop: AtomicBool,
    thread: OnceLock<Thread>,
    /// Times the thread woke (for tests).
    wakes: AtomicU64,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> Result<Arc<Self>> {
        let ticker = Arc::new(EpochTicker {
            armed: AtomicBool::new(false),
            idle: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            wakes: AtomicU64::new(0),
        });
        let shared = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || shared.run(&engine))
            .context("starting the plugin deadline ticker")?;
        let _ = ticker.thread.set(handle.thread().clone());
        Ok(ticker)
    }

    /// A deadline is being armed: back to the fast pace.
    pub(super) fn note_deadline(&self) {
        self.armed.store(true, Ordering::SeqCst);
        if self.idle.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn run(&self, engine: &Engine) {
        let idle_after = (IDLE_AFTER.as_micros() / EPOCH_TICK.as_micros()) as u32;
        let mut quiet = 0u32;
        while !self.stop.load(Ordering::SeqCst) {
            let ticks = if self.idle.load(Ordering::SeqCst) {
                let parked = Instant::now();
                std::thread::park_timeout(IDLE_TICK);
                let slept = parked.elapsed();
                if slept < IDLE_TICK && self.armed.load(Ordering::SeqCst) {
                    // Woken early by a deadline armed while parked: the
                    // time parked came before it and is not its to spend.
                    // (A spurious wake-up is charged what passed.)
                    0
                } else {
                    (slept.as_micros() / EPOCH_TICK.as_micros()) as u64
                }
            } else {
                std::thread::sleep(EPOCH_TICK);
                1
            };
            for _ in 0..ticks {
                engine.increment_epoch();
            }
            self.wakes.fetch_add(1, Ordering::Relaxed);
            if self.armed.swap(false, Ordering::SeqCst) {
                quiet = 0;
            } else {
                quiet = quiet.saturating_add(1);
            }
            self.idle.store(quiet >= idle_after, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let started = Instant::now();
        while !cond() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Wake-ups in `period`.
    fn wakes_in(ticker: &EpochTicker, period: Duration) -> u64 {
        let before = ticker.wakes.load(Ordering::Relaxed);
        std::thread::sleep(period);
        ticker.wakes.load(Ordering::Relaxed) - before
    }

    #[test]
    fn slows_down_without_deadlines_and_speeds_up_for_one() {
        let ticker = EpochTicker::start(Engine::default()).unwrap();
        let idle = || ticker.idle.load(Ordering::SeqCst);
        wait_until("idle without deadlines", idle);
        // The fast pace would be 60.
        let slow = wakes_in(&ticker, IDLE_TICK * 3);
        assert!(slow <= 10, "{slow} wake-ups in 3 idle ticks");

        ticker.note_deadline();
        wait_until("fast once a deadline is armed", || !idle());
        // Armed again and again, as calls are: the fast pace (the idle
        // pace would be 2).
        let stop = AtomicBool::new(false);
        let fast = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    ticker.note_deadline();
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            let fast = wakes_in(&ticker, IDLE_TICK * 2);
            stop.store(true, Ordering::Relaxed);
            fast
        });
        assert!(fast >= 10, "{fast} wake-ups in 2 idle ticks with calls");
        wait_until("idle again", idle);
        ticker.stop();
    }
}
