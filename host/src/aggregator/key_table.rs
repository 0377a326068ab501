//! A window's keys and their counters: entries in a vector in the order
//! they came, found through an open-addressing table of 8-byte words (a
//! 32-bit hash and the entry's index), which the caller can prefetch.
//!
//! A `HashMap<V4Key, Totals>` puts the 56-byte entries in the table
//! itself: at a million keys that is a 117 MiB table, and every new key is
//! a cache and TLB miss on a random bucket of it, plus the page faults and
//! moves of each doubling. Here the table is 16 MiB of words; a new key is
//! a miss on that and an append at the end of the vector, whose pages are
//! touched in order. An existing key costs one more read (its entry). The
//! stored hash makes growing the table a move of words, never a read of
//! the entries, and lets a probe skip a stranger's entry without reading
//! it. Closing the window reads the vector front to back.
//!
//! Why not hashbrown's `HashTable` (used here before): its control bytes
//! and its words are two arrays, so a probe is two cache misses, and it
//! has no way to ask for a bucket's address ahead of time. In the daemon,
//! with the parser thread sharing the caches, those misses were most of
//! the aggregator's time at a million new keys a window. One array of
//! words with linear probing is one miss, and [`KeyTable::prefetch`] lets
//! [`super::Window`] start the misses of a run of records together, before
//! it folds the first of them in.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::RandomState;

use super::prefault;

/// Entries of one window, fewer than `u32::MAX`: an index is 32 bits of
/// its word (`aggregation_max_keys` is at most 100 million, and a window
/// closes there).
pub(super) struct KeyTable<K, V> {
    // foldhash: faster than SipHash on these keys, still seeded per
    // process, so traffic cannot be shaped into collisions.
    hasher: RandomState,
    /// `hash << 32 | (index + 1)`, 0 for an empty slot; linear probing from
    /// the slot the hash's top bits name ([`home`]). A power of two long,
    /// at most half full, so a miss ends within a few words, mostly in the
    /// same cache line.
    slots: Vec<u64>,
    entries: Vec<(K, V)>,
    /// Entries `len..populated` of `entries`' capacity are resident already
    /// ([`prefault`]): appends take no page fault.
    populated: usize,
}

/// A key's hash as the table uses it: the top 32 bits of its word.
#[derive(Clone, Copy)]
pub(super) struct KeyHash(u64);

const FIRST_SLOTS: usize = 16;
/// Entries made resident at a time: 512 pages a system call.
const POPULATE_BYTES: usize = 2 << 20;

impl<K: Hash + Eq, V> KeyTable<K, V> {
    pub(super) fn with_capacity(keys: usize) -> Self {
        KeyTable {
            hasher: RandomState::default(),
            slots: zeroed(slots_for(keys)),
            entries: Vec::with_capacity(keys),
            populated: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    #[inline]
    pub(super) fn hash(&self, key: &K) -> KeyHash {
        KeyHash(self.hasher.hash_one(key) & !u64::from(u32::MAX))
    }

    /// Asks the CPU for the key's first slot, so that its miss overlaps
    /// the others of a run instead of stalling the fold that needs it.
    #[inline]
    pub(super) fn prefetch(&self, hash: KeyHash) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let slot = self
                .slots
                .as_ptr()
                .wrapping_add(home(hash, self.slots.len()));
            // SAFETY: a prefetch is a hint; it never faults, whatever the
            // address (this one is in bounds anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding the key's word, or the empty slot where its probe
    /// ends. A probe reads an entry only when a word's hash is the key's.
    #[inline]
    fn probe(&self, hash: KeyHash, key: &K) -> Result<usize, usize> {
        let mask = self.mask();
        let mut slot = home(hash, self.slots.len());
        loop {
            let word = self.slots[slot];
            if word == 0 {
                return Err(slot);
            }
            if word & !u64::from(u32::MAX) == hash.0 && self.entries[entry_of(word)].0 == *key {
                return Ok(entry_of(word));
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The key's value, made by `new` if the key is new; `hash` is
    /// [`KeyTable::hash`] of `key`.
    #[inline]
    pub(super) fn get_or_insert_with(
        &mut self,
        hash: KeyHash,
        key: K,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        let index = match self.probe(hash, &key) {
            Ok(index) => index,
            Err(mut slot) => {
                let index = self.entries.len();
                if (index + 1) * 2 > self.slots.len() {
                    self.grow();
                    slot = self.probe(hash, &key).unwrap_err();
                }
                assert!(index < u32::MAX as usize, "a window's key table is full");
                if index == self.populated {
                    self.populate_entries();
                }
                self.slots[slot] = hash.0 | (index as u64 + 1);
                self.entries.push((key, new()));
                index
            }
        };
        &mut self.entries[index].1
    }

    /// Makes the next [`POPULATE_BYTES`] of entries resident, growing the
    /// vector first if it is full. The vector moves only here, where no
    /// entry past `len` is resident, so `populated` stays true.
    #[cold]
    fn populate_entries(&mut self) {
        if self.entries.len() == self.entries.capacity() {
            self.entries.reserve(self.entries.len().max(FIRST_SLOTS));
        }
        let per_chunk = (POPULATE_BYTES / std::mem::size_of::<(K, V)>().max(1)).max(1);
        let spare = self.entries.spare_capacity_mut();
        let ahead = per_chunk.min(spare.len());
        prefault::populate(&mut spare[..ahead]);
        self.populated = self.entries.len() + ahead;
    }

    /// Twice the slots; words move by their stored hash, entries stay.
    fn grow(&mut self) {
        let doubled = zeroed(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.mask();
        // In slot order a word's new home is twice its old one or the next:
        // the words are written front to back, not scattered.
        for word in old.into_iter().filter(|&w| w != 0) {
            let mut slot = home(KeyHash(word & !u64::from(u32::MAX)), self.slots.len());
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = word;
        }
    }

    #[cfg(test)]
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let index = self.probe(self.hash(key), key).ok()?;
        Some(&self.entries[index].1)
    }

    /// Every entry, in the order the keys came.
    pub(super) fn iter(&self) -> impl Iterator<Item = &(K, V)> {
        self.entries.iter()
    }
}

/// Slots for `keys` keys at most half full.
fn slots_for(keys: usize) -> usize {
    keys.saturating_mul(2).next_power_of_two().max(FIRST_SLOTS)
}

/// The slot a probe starts at: the hash's top bits, so slot order is hash
/// order and doubling the table sends slot `i`'s words to `2i` or `2i + 1`.
#[inline]
fn home(hash: KeyHash, slots: usize) -> usize {
    (hash.0 >> (u64::BITS - slots.trailing_zeros())) as usize
}

/// Zeroed slots, resident and writable before the first probe. A probe
/// reads a slot before it writes it, and a fresh page read first is mapped
/// to the shared zero page, so its first write takes a second fault and a
/// TLB shootdown across the daemon's CPUs (a fifth of the daemon's time at
/// a million new keys). Where pages cannot be populated they are written.
fn zeroed(slots: usize) -> Vec<u64> {
    let mut words = vec![0; slots];
    if !prefault::populate(&mut words) {
        // calloc's zeros may be the zero page: written, each faults once.
        std::hint::black_box(&mut words).fill(0);
    }
    words
}

#[inline]
fn entry_of(word: u64) -> usize {
    (word as u32 - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(table: &mut KeyTable<u64, u64>, key: u64) -> &mut u64 {
        table.get_or_insert_with(table.hash(&key), key, || 0)
    }

    #[test]
    fn finds_what_it_holds_across_growth_and_keeps_arrival_order() {
        let mut table: KeyTable<u64, u64> = KeyTable::with_capacity(0);
        // Enough keys to grow the table many times over.
        for round in 0..3 {
            for key in 0..100_000u64 {
                *add(&mut table, key * 7919) += key + round;
            }
        }
        assert_eq!(table.len(), 100_000);
        assert!(table.slots.len() >= 200_000, "at most half full");
        for key in (0..100_000u64).step_by(997) {
            assert_eq!(table.get(&(key * 7919)), Some(&(3 * key + 3)));
        }
        assert_eq!(table.get(&1), None);
        let order: Vec<u64> = table.iter().take(3).map(|(k, _)| *k).collect();
        assert_eq!(order, [0, 7919, 2 * 7919]);
    }

    #[test]
    fn keys_whose_words_share_a_hash_stay_apart() {
        // Every key hashed alike: one long probe run, through growth, and
        // the entries themselves must tell the keys apart.
        #[derive(PartialEq, Eq)]
        struct Same(u32);
        impl Hash for Same {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                0u8.hash(state);
            }
        }
        let mut table: KeyTable<Same, u32> = KeyTable::with_capacity(4);
        for key in 0..50 {
            let hash = table.hash(&Same(key));
            *table.get_or_insert_with(hash, Same(key), || 0) += key;
        }
        let hash = table.hash(&Same(7));
        *table.get_or_insert_with(hash, Same(7), || 0) += 1;
        assert_eq!(table.len(), 50);
        assert_eq!(table.get(&Same(7)), Some(&8));
        assert_eq!(table.get(&Same(49)), Some(&49));
        assert_eq!(table.get(&Same(50)), None);
    }

    #[test]
    fn a_probe_wraps_around_the_end_of_the_slots() {
        let mut table: KeyTable<u64, u64> = KeyTable::with_capacity(0);
        let last = table.mask();
        // Keys whose home is the last slot, found by trying: the second
        // and third must wrap to the front.
        let keys: Vec<u64> = (0..)
            .filter(|k| home(table.hash(k), table.slots.len()) == last)
            .take(3)
            .collect();
        for (n, &key) in keys.iter().enumerate() {
            *add(&mut table, key) = n as u64;
        }
        assert_eq!(table.slots.len(), FIRST_SLOTS, "no growth in between");
        assert_ne!(table.slots[0], 0, "the probe went on at slot 0");
        for (n, key) in keys.iter().enumerate() {
            assert_eq!(table.get(key), Some(&(n as u64)));
        }
    }
}
