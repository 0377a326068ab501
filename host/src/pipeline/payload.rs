//! A message's bytes, and what they hold in memory.
//!
//! A stream or a file reads into a buffer of its own; the datagrams of one
//! worker's item share one arena ([`super::ShardRouter::gather`]), so a
//! datagram costs no allocation, and no free on the worker's thread (a
//! malloc lock taken across cores): the arena goes back to the allocator
//! with the item.

use bytes::Bytes;

/// Immutable bytes of one message, cheap to move between threads.
#[derive(Debug)]
pub struct Payload {
    bytes: Bytes,
    /// Bytes of memory this payload accounts for in the byte budgets.
    footprint: usize,
}

impl Payload {
    /// Memory the payload keeps: its buffer's capacity when it has its own,
    /// its length when it is a slice of an arena.
    pub fn footprint(&self) -> usize {
        self.footprint
    }

    /// A payload that is part of a larger buffer, whose memory its owner
    /// accounts for as a whole.
    pub fn slice_of(bytes: Bytes) -> Self {
        let footprint = bytes.len();
        Payload { bytes, footprint }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        let footprint = bytes.capacity();
        Payload {
            bytes: Bytes::from(bytes),
            footprint,
        }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_of_one_arena_account_for_their_length() {
        let arena = Bytes::from(b"onetwo".to_vec());
        let two = Payload::slice_of(arena.slice(3..));
        drop(arena);
        assert_eq!(&*two, b"two");
        assert_eq!(two.footprint(), 3);
    }

    #[test]
    fn an_owned_buffer_accounts_for_its_capacity() {
        let mut bytes = Vec::with_capacity(100);
        bytes.extend_from_slice(b"hello");
        let payload = Payload::from(bytes);
        assert_eq!(&*payload, b"hello");
        assert_eq!(payload.footprint(), 100);
    }
}
