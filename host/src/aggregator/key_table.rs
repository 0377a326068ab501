//! A window's keys and their counters: entries in a vector in the order
//! they came, found through a hash table of 8-byte words (a 32-bit hash and
//! the entry's index).
//!
//! A `HashMap<V4Key, Totals>` puts the 56-byte entries in the table
//! itself: at a million keys that is a 117 MiB table, and every new key is
//! a cache and TLB miss on a random bucket of it, plus the page faults and
//! moves of each doubling. Here the table is 18 MiB (words and control
//! bytes); a new key is a miss on that and an append at the end of the
//! vector, whose pages are touched in order. An existing key costs one
//! more read (its entry), which a key seen before is likely to have in
//! cache anyway. The stored hash makes growing the table a move of words,
//! never a read of the entries, and lets a probe skip a stranger's entry
//! without reading it. Closing the window reads the vector front to back.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

/// Entries of one window, at most `u32::MAX`: an index is 32 bits of its
/// word (`aggregation_max_keys` is at most 100 million, and a window
/// closes there).
pub(super) struct KeyTable<K, V> {
    // foldhash: faster than SipHash on these keys, still seeded per
    // process, so traffic cannot be shaped into collisions.
    hasher: RandomState,
    /// `hash << 32 | index`.
    table: HashTable<u64>,
    entries: Vec<(K, V)>,
}

/// The word's hash, widened to what the table places and tags by: its low
/// bits pick the bucket, its top seven are the tag.
#[inline]
fn table_hash(word: u64) -> u64 {
    let hash = word >> 32;
    hash | (hash << 32)
}

impl<K: Hash + Eq, V> KeyTable<K, V> {
    pub(super) fn with_capacity(keys: usize) -> Self {
        KeyTable {
            hasher: RandomState::default(),
            table: HashTable::with_capacity(keys),
            entries: Vec::with_capacity(keys),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The key's word, less its index.
    #[inline]
    fn hash_of(&self, key: &K) -> u64 {
        self.hasher.hash_one(key) & !u64::from(u32::MAX)
    }

    /// The index of the key's entry, if it has one. A probe reads an
    /// entry only when the word's hash is the key's.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let word = self.table.find(table_hash(hash), |&word| {
            word & !u64::from(u32::MAX) == hash && self.entries[word as u32 as usize].0 == *key
        })?;
        Some(*word as u32 as usize)
    }

    /// The key's value, made by `new` if the key is new.
    #[inline]
    pub(super) fn get_or_insert_with(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash_of(&key);
        let index = match self.find(hash, &key) {
            Some(index) => index,
            None => {
                let index = self.entries.len();
                self.entries.push((key, new()));
                self.table
                    .insert_unique(table_hash(hash), hash | index as u64, |&w| table_hash(w));
                index
            }
        };
        &mut self.entries[index].1
    }

    #[cfg(test)]
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let index = self.find(self.hash_of(key), key)?;
        Some(&self.entries[index].1)
    }

    /// Every entry, in the order the keys came.
    pub(super) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds_across_growth_and_keeps_arrival_order() {
        let mut table: KeyTable<u64, u64> = KeyTable::with_capacity(0);
        // Enough keys to grow the table many times over.
        for round in 0..3 {
            for key in 0..100_000u64 {
                *table.get_or_insert_with(key * 7919, || 0) += key + round;
            }
        }
        assert_eq!(table.len(), 100_000);
        for key in (0..100_000u64).step_by(997) {
            assert_eq!(table.get(&(key * 7919)), Some(&(3 * key + 3)));
        }
        assert_eq!(table.get(&1), None);
        let order: Vec<u64> = table.iter().take(3).map(|(k, _)| *k).collect();
        assert_eq!(order, [0, 7919, 2 * 7919]);
    }

    #[test]
    fn keys_whose_words_share_a_hash_stay_apart() {
        // Every key hashed alike: the entries themselves must tell them apart.
        #[derive(PartialEq, Eq)]
        struct Same(u32);
        impl Hash for Same {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                0u8.hash(state);
            }
        }
        let mut table: KeyTable<Same, u32> = KeyTable::with_capacity(4);
        for key in 0..50 {
            *table.get_or_insert_with(Same(key), || 0) += key;
        }
        *table.get_or_insert_with(Same(7), || 0) += 1;
        assert_eq!(table.len(), 50);
        assert_eq!(table.get(&Same(7)), Some(&8));
        assert_eq!(table.get(&Same(49)), Some(&49));
    }
}
