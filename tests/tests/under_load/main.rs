//! End-to-end tests that offer load (at a fixed rate, or as fast as a
//! socket goes) and count every datagram or bound the memory: they need the
//! machine to themselves. cargo runs test binaries one after another, so
//! none of `e2e`'s tests runs beside them, and `alone` keeps them from
//! running beside each other whatever `--test-threads` says.

use std::sync::{Mutex, MutexGuard, PoisonError};

mod bad_input;
mod hot_swap;
mod memory_bounds;

/// Held for a whole test: one load test at a time.
fn alone() -> MutexGuard<'static, ()> {
    static ALONE: Mutex<()> = Mutex::new(());
    // A failed test poisons the lock; the next one still runs.
    ALONE.lock().unwrap_or_else(PoisonError::into_inner)
}
