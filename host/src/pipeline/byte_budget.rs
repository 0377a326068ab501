//! Bytes in a queue between two stages, bounded: a count bound alone lets
//! a queue of large messages (Kafka batches, 64 KiB datagrams, long log
//! lines) hold gigabytes.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by a queue's senders; each item holds a [`BytePermit`] for its
/// size until the receiving stage is done with it.
#[derive(Clone, Debug)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    limit: u32,
}

/// Room for one item's bytes, given back when dropped.
#[derive(Debug)]
pub struct BytePermit {
    _permit: OwnedSemaphorePermit,
}

impl BytePermit {
    /// One permit for both items' room, given back together.
    pub fn merge(&mut self, other: BytePermit) {
        self._permit.merge(other._permit);
    }
}

impl ByteBudget {
    /// At most `limit` bytes (capped at 4 GiB) held at once.
    pub fn new(limit: usize) -> Self {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX).max(1);
        ByteBudget {
            permits: Arc::new(Semaphore::new(limit as usize)),
            limit,
        }
    }

    /// An item larger than the whole budget waits for all of it, so it
    /// still passes alone.
    fn units(&self, bytes: usize) -> u32 {
        u32::try_from(bytes)
            .unwrap_or(u32::MAX)
            .clamp(1, self.limit)
    }

    /// Room now, or `None` when the budget is spent (datagrams: drop).
    pub fn try_take(&self, bytes: usize) -> Option<BytePermit> {
        self.permits
            .clone()
            .try_acquire_many_owned(self.units(bytes))
            .ok()
            .map(|p| BytePermit { _permit: p })
    }

    /// Bytes not held by any permit.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Like [`ByteBudget::try_take`], but never for more than the whole
    /// budget: for several items' room at once, which must not pass as
    /// one oversized item.
    pub fn try_take_within(&self, bytes: usize) -> Option<BytePermit> {
        if bytes > self.limit as usize {
            return None;
        }
        self.try_take(bytes)
    }

    /// Waits for room (streams and replayable sources: backpressure).
    pub async fn take(&self, bytes: usize) -> BytePermit {
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(self.units(bytes))
            .await
            .expect("the semaphore is never closed");
        BytePermit { _permit: permit }
    }

    /// [`ByteBudget::take`] from a plain thread (a parser worker).
    pub fn take_blocking(&self, runtime: &tokio::runtime::Handle, bytes: usize) -> BytePermit {
        runtime.block_on(self.take(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_comes_back_when_an_item_is_done() {
        let budget = ByteBudget::new(100);
        let a = budget.try_take(60).expect("room for 60");
        assert!(budget.try_take(60).is_none(), "60 + 60 > 100");
        assert!(budget.try_take(40).is_some(), "60 + 40 fits");
        drop(a);
        assert!(budget.try_take(60).is_some());
    }

    #[test]
    fn an_item_larger_than_the_budget_passes_alone() {
        let budget = ByteBudget::new(100);
        let big = budget.try_take(1 << 20).expect("alone, it passes");
        assert!(budget.try_take(1).is_none());
        drop(big);
        assert!(budget.try_take(100).is_some(), "all of it back");
    }

    #[test]
    fn merged_room_comes_back_together() {
        let budget = ByteBudget::new(100);
        let mut a = budget.try_take(30).unwrap();
        a.merge(budget.try_take(50).unwrap());
        assert!(budget.try_take(21).is_none(), "80 held");
        drop(a);
        assert!(budget.try_take(100).is_some(), "all of it back");
    }

    #[tokio::test]
    async fn a_waiting_sender_gets_room_once_it_is_freed() {
        let budget = ByteBudget::new(10);
        let held = budget.take(10).await;
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(5).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        waiting.await.unwrap();
    }
}
