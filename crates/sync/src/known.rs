//! A bounded set of hashes that forgets the least recently seen first: what relay
//! remembers a peer knows.

use std::collections::{HashMap, VecDeque};

use devmux_eth::alloy_primitives::B256;

/// A set of at most `capacity` hashes; inserting into a full set forgets the hash seen
/// least recently. Inserting a present hash refreshes it.
#[derive(Debug)]
pub(crate) struct LruSet {
    capacity: usize,
    /// Hash → the stamp of its latest insert.
    stamps: HashMap<B256, u64>,
    /// Inserts in order; an entry whose stamp is no longer the hash's is stale.
    order: VecDeque<(B256, u64)>,
    next: u64,
}

impl LruSet {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            stamps: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    pub(crate) fn contains(&self, hash: &B256) -> bool {
        self.stamps.contains_key(hash)
    }

    /// Inserts or refreshes `hash`; true if it was not there.
    pub(crate) fn insert(&mut self, hash: B256) -> bool {
        let stamp = self.next;
        self.next += 1;
        let new = self.stamps.insert(hash, stamp).is_none();
        self.order.push_back((hash, stamp));
        while self.stamps.len() > self.capacity {
            let Some((old, old_stamp)) = self.order.pop_front() else {
                break;
            };
            if self.stamps.get(&old) == Some(&old_stamp) {
                self.stamps.remove(&old);
            }
        }
        // Refreshes leave stale entries behind: drop them before they outnumber the
        // live ones, so that memory stays within twice the capacity.
        if self.order.len() > 2 * self.capacity {
            let stamps = &self.stamps;
            self.order.retain(|(h, s)| stamps.get(h) == Some(s));
        }
        new
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.stamps.len()
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
            assert!(set.order.len() <= 200);
        }
        for i in 0..100_000 {
            set.insert(h(i));
        }
        assert_eq!(set.len(), 100);
        assert!(set.order.len() <= 200);
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
