//! Where this member was in each partition, so a rebalance that hands a
//! partition straight back does not make it read again what its open
//! window already holds.
//!
//! Offsets are committed only once a window is checkpointed or uploaded, so
//! at any moment the committed offset trails what the consumer has read by
//! up to a window. librdkafka starts a newly assigned partition at the
//! committed offset: after an eager rebalance (every partition revoked, then
//! assigned again, often to the same member) the messages already folded
//! into the open window would be read and counted a second time. A partition
//! that comes back in the assignment right after its revocation cannot have
//! been read by anyone else meanwhile, so it resumes where this member was.
//! One that goes to another member is read again there from the committed
//! offset (docs/scale-out.md, where duplicates can appear).

use std::collections::HashMap;

type Partition = (String, i32);

#[derive(Debug, Default)]
pub(super) struct PartitionPositions {
    /// The next offset to read, per partition read since its assignment.
    reading: HashMap<Partition, i64>,
    /// Positions of the partitions revoked by the rebalance under way.
    revoked: HashMap<Partition, i64>,
}

impl PartitionPositions {
    /// A message was handed on.
    pub(super) fn read(&mut self, topic: &str, partition: i32, offset: i64) {
        match self.reading.get_mut(&(topic.to_owned(), partition)) {
            Some(next) => *next = (*next).max(offset + 1),
            None => {
                self.reading
                    .insert((topic.to_owned(), partition), offset + 1);
            }
        }
    }

    /// The partitions are revoked: keep where they were until the
    /// assignment that follows.
    pub(super) fn revoke<'a>(&mut self, partitions: impl IntoIterator<Item = (&'a str, i32)>) {
        for (topic, partition) in partitions {
            let key = (topic.to_owned(), partition);
            if let Some(next) = self.reading.remove(&key) {
                self.revoked.insert(key, next);
            }
        }
    }

    /// The next assignment: positions to resume at for the partitions of
    /// it that were revoked just before. Revocations not followed by their
    /// partition are forgotten: another member has read it since.
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
    fn a_partition_handed_straight_back_resumes_after_the_last_message_read() {
        let mut positions = PartitionPositions::default();
        positions.read("flows", 0, 41);
        positions.read("flows", 0, 42);
        positions.read("flows", 1, 7);
        positions.revoke([("flows", 0), ("flows", 1)]);
        let resume = positions.assign([("flows", 0), ("flows", 2)]);
        assert_eq!(resume, vec![("flows".to_owned(), 0, 43)]);
    }

    #[test]
    fn a_partition_that_went_elsewhere_starts_from_the_committed_offset_when_it_returns() {
        let mut positions = PartitionPositions::default();
        positions.read("flows", 1, 7);
        positions.revoke([("flows", 1)]);
        assert!(positions.assign([("flows", 0)]).is_empty());
        // A later rebalance brings it back: another member has read it since.
        positions.revoke([("flows", 0)]);
        assert!(positions.assign([("flows", 1)]).is_empty());
    }

    #[test]
    fn a_partition_never_read_has_no_position() {
        let mut positions = PartitionPositions::default();
        positions.revoke([("flows", 3)]);
        assert!(positions.assign([("flows", 3)]).is_empty());
    }
}
