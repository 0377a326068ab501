//! Data sets that arrived before their template: held per scope, in a
//! bounded queue, until the template comes or they time out. Never guessed.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

use super::{ExportClock, Scope};

#[derive(Debug)]
pub struct WaitingSet {
    pub scope: Scope,
    pub template_id: u16,
    pub clock: ExportClock,
    pub body: Vec<u8>,
    pub received_ms: u64,
}

#[derive(Debug, Default)]
pub struct PendingSets {
    by_scope: HashMap<Scope, VecDeque<WaitingSet>, RandomState>,
}

impl PendingSets {
    /// Keeps a copy of the set. Returns the set pushed out when the scope
    /// already holds `max_sets` (oldest first).
    pub fn hold(
        &mut self,
        scope: Scope,
        template_id: u16,
        clock: ExportClock,
        body: &[u8],
        received_ms: u64,
        max_sets: usize,
    ) -> Option<WaitingSet> {
        let queue = self.by_scope.entry(scope).or_default();
        queue.push_back(WaitingSet {
            scope,
            template_id,
            clock,
            body: body.to_vec(),
            received_ms,
        });
        if queue.len() > max_sets {
            queue.pop_front()
        } else {
            None
        }
    }

    /// Whether no set waits for any template.
    pub fn is_empty(&self) -> bool {
        self.by_scope.is_empty()
    }

    /// The sets waiting for `template_id` in `scope`, in arrival order.
    pub fn take(&mut self, scope: Scope, template_id: u16) -> Vec<WaitingSet> {
        let Some(queue) = self.by_scope.get_mut(&scope) else {
            return Vec::new();
        };
        let (ready, rest): (Vec<_>, Vec<_>) =
            queue.drain(..).partition(|s| s.template_id == template_id);
        queue.extend(rest);
        if queue.is_empty() {
            self.by_scope.remove(&scope);
        }
        ready
    }

    /// Removes and returns the sets older than `timeout_ms`.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<WaitingSet> {
        let mut expired = Vec::new();
        self.by_scope.retain(|_, queue| {
            while queue
                .front()
                .is_some_and(|s| now_ms.saturating_sub(s.received_ms) > timeout_ms)
            {
                expired.extend(queue.pop_front());
            }
            !queue.is_empty()
        });
        expired
    }
}
