//! [`ExpiringSet`]: a bounded set of keys, each valid until its own deadline.
//!
//! Remote verification remembers positive answers here, keyed by a hash of the
//! token, so a provider is asked once per token per `cache_seconds` and memory stays
//! bounded however many distinct tokens arrive.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use tokio::time::Instant;

/// At most `capacity` keys; inserting into a full set evicts the oldest insertion.
#[derive(Debug)]
pub(super) struct ExpiringSet<K> {
    capacity: usize,
    /// Key → (deadline, insertion number).
    entries: HashMap<K, (Instant, u64)>,
    /// Insertion order; entries whose number no longer matches are stale and skipped.
    order: VecDeque<(K, u64)>,
    next: u64,
}

impl<K: Hash + Eq + Clone> ExpiringSet<K> {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// True when `key` is present and its deadline has not passed (expired keys are dropped).
    pub(super) fn contains(&mut self, key: &K, now: Instant) -> bool {
        match self.entries.get(key) {
            Some((deadline, _)) if *deadline > now => true,
            Some(_) => {
                self.entries.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers `key` until `deadline`.
    pub(super) fn insert(&mut self, key: K, deadline: Instant) {
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let Some((oldest, number)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|(_, n)| *n == number) {
                self.entries.remove(&oldest);
            }
        }
        let number = self.next;
        self.next += 1;
        self.entries.insert(key.clone(), (deadline, number));
        self.order.push_back((key, number));
        // Stale order entries (replaced or expired keys) must not grow without bound.
        if self.order.len() > self.capacity * 2 {
            let entries = &self.entries;
            self.order.retain(|(k, n)| entries.get(k).is_some_and(|(_, m)| m == n));
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::ExpiringSet;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn entries_expire_and_the_oldest_are_evicted() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut set = ExpiringSet::new(2);
        set.insert("a", later);
        set.insert("b", now);
        assert!(set.contains(&"a", now), "fresh entry");
        assert!(!set.contains(&"b", now), "deadline reached");
        set.insert("b", later);
        set.insert("c", later);
        assert_eq!(set.len(), 2, "bounded");
        assert!(!set.contains(&"a", now), "oldest evicted");
        assert!(set.contains(&"b", now) && set.contains(&"c", now));
        for i in 0..1000 {
            set.insert(if i % 2 == 0 { "b" } else { "c" }, later);
        }
        assert!(set.order.len() <= 4, "stale order entries are compacted");
    }
}
