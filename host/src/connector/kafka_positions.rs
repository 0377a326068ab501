//! Where this member was in each partition when a rebalance revoked it, so
//! a partition the same rebalance hands straight back does not make it read
//! again what its open window already holds.
//!
//! Offsets are committed only once a window is checkpointed or uploaded, so
//! the committed offset trails what the consumer has read by up to a window.
//! librdkafka starts an assigned partition at the committed offset: after an
//! eager rebalance (every partition revoked, then assigned again, often to
//! the same member) the messages already folded into the open window would
//! be read and counted a second time. A partition that comes back in the
//! assignment right after its revocation cannot have been read by anyone
//! else meanwhile, so it resumes at librdkafka's position at the revocation
//! (the offset after the last message handed to flowlink). One that goes to
//! another member is read again there from the committed offset
//! (docs/scale-out.md, where duplicates can appear).

use std::collections::HashMap;

type Partition = (String, i32);

#[derive(Debug, Default)]
pub(super) struct PartitionPositions {
    /// Positions of the partitions revoked by the rebalance under way.
    revoked: HashMap<Partition, i64>,
}

impl PartitionPositions {
    /// The partitions are revoked at these positions (the next offset to
    /// read): kept until the assignment that follows.
    pub(super) fn revoke<'a>(&mut self, positions: impl IntoIterator<Item = (&'a str, i32, i64)>) {
        for (topic, partition, next) in positions {
            self.revoked.insert((topic.to_owned(), partition), next);
        }
    }

    /// A revocation whose partitions others may have read since (a lost
    /// assignment): nothing of it resumes.
    pub(super) fn forget(&mut self) {
        self.revoked.clear();
    }

    /// The next assignment: positions to resume at for the partitions of
    /// it that were revoked just before. Revocations not followed by their
    /// partition are forgotten.
    pub(super) fn assign<'a>(
        &mut self,
        partitions: impl IntoIterator<Item = (&'a str, i32)>,
    ) -> Vec<(String, i32, i64)> {
        let mut resume = Vec::new();
        for (topic, partition) in partitions {
            if let Some(next) = self.revoked.remove(&(topic.to_owned(), partition)) {
                resume.push((topic.to_owned(), partition, next));
            }
        }
        self.revoked.clear();
        resume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_handed_straight_back_resumes_where_it_was() {
        let mut positions = PartitionPositions::default();
        positions.revoke([("flows", 0, 43), ("flows", 1, 8)]);
        let resume = positions.assign([("flows", 0), ("flows", 2)]);
        assert_eq!(resume, vec![("flows".to_owned(), 0, 43)]);
    }

    #[test]
    fn a_partition_that_went_elsewhere_starts_from_the_committed_offset_when_it_returns() {
        let mut positions = PartitionPositions::default();
        positions.revoke([("flows", 1, 8)]);
        assert!(positions.assign([("flows", 0)]).is_empty());
        // A later rebalance brings it back: another member has read it since.
        positions.revoke([("flows", 0, 3)]);
        assert!(positions.assign([("flows", 1)]).is_empty());
    }

    #[test]
    fn a_lost_assignment_resumes_nothing() {
        let mut positions = PartitionPositions::default();
        positions.revoke([("flows", 3, 12)]);
        positions.forget();
        assert!(positions.assign([("flows", 3)]).is_empty());
    }
}
