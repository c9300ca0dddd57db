//! A bounded set of hashes that forgets the least recently seen first: what relay
//! remembers a peer knows. schnellru's LRU map underneath.

use devmux_eth::alloy_primitives::B256;
use schnellru::{ByLength, LruMap};

/// A set of at most `capacity` hashes (at least one); inserting into a full set forgets
/// the hash seen least recently. Inserting a present hash refreshes it.
pub(crate) struct LruSet(LruMap<B256, (), ByLength>);

impl std::fmt::Debug for LruSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LruSet")
            .field("len", &self.0.len())
            .finish()
    }
}

impl LruSet {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = u32::try_from(capacity).unwrap_or(u32::MAX).max(1);
        Self(LruMap::new(ByLength::new(capacity)))
    }

    pub(crate) fn contains(&self, hash: &B256) -> bool {
        self.0.peek(hash).is_some()
    }

    /// Inserts or refreshes `hash`; true if it was not there.
    pub(crate) fn insert(&mut self, hash: B256) -> bool {
        let new = self.0.peek(&hash).is_none();
        self.0.insert(hash, ());
        new
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> B256 {
        B256::left_padding_from(&i.to_be_bytes())
    }

    #[test]
    fn forgets_the_least_recently_seen() {
        let mut set = LruSet::new(3);
        assert!(set.insert(h(1)));
        assert!(set.insert(h(2)));
        assert!(set.insert(h(3)));
        assert!(!set.insert(h(1)), "present: refreshed, not new");
        assert!(set.insert(h(4)));
        // 2 was the least recently seen (1 was refreshed).
        assert!(!set.contains(&h(2)));
        assert!(set.contains(&h(1)) && set.contains(&h(3)) && set.contains(&h(4)));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn stays_bounded_under_refreshes_and_floods() {
        let mut set = LruSet::new(100);
        for round in 0..50u64 {
            for i in 0..100 {
                set.insert(h(i));
            }
            set.insert(h(1000 + round));
            assert!(set.len() <= 100);
        }
        for i in 0..100_000 {
            set.insert(h(i));
        }
        assert_eq!(set.len(), 100);
        assert!(set.contains(&h(99_999)));
        assert!(!set.contains(&h(99_899)));
    }

    #[test]
    fn zero_capacity_keeps_the_latest() {
        let mut set = LruSet::new(0);
        set.insert(h(1));
        set.insert(h(2));
        assert!(set.contains(&h(2)) && !set.contains(&h(1)));
    }
}
