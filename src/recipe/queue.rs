//! The semaphore's rank arithmetic (docs/usage.md), pure: from one read of the
//! queue, am I a holder, and which deletions matter to me.

use std::collections::BTreeSet;

use crate::etcd::KeyValue;

/// A contender's view of the keys ahead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    max: usize,
    ahead: BTreeSet<Vec<u8>>,
}

impl Queue {
    /// From the queue as read (any order) and the contender's own create
    /// revision: everything created before it is ahead. Keys created after
    /// it never matter.
    pub fn from_read(kvs: &[KeyValue], own_rev: i64, max: usize) -> Queue {
        Queue {
            max,
            ahead: kvs
                .iter()
                .filter(|kv| kv.create_revision < own_rev)
                .map(|kv| kv.key.clone())
                .collect(),
        }
    }

    /// Live keys ahead of mine.
    pub fn rank(&self) -> usize {
        self.ahead.len()
    }

    /// A holder is one of the `max` oldest live keys.
    pub fn holds(&self) -> bool {
        self.ahead.len() < self.max
    }

    /// A key was deleted; true when it was one ahead of mine.
    pub fn deleted(&mut self, key: &[u8]) -> bool {
        self.ahead.remove(key)
    }
}

/// The lowest slot index in `[0, max)` not in `taken`.
pub fn lowest_free(taken: &BTreeSet<u32>, max: u32) -> Option<u32> {
    (0..max).find(|i| !taken.contains(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn kv(key: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: rev,
            ..KeyValue::default()
        }
    }

    #[test]
    fn rank_counts_only_older_keys() {
        let kvs = [kv("a", 3), kv("b", 5), kv("me", 7), kv("c", 9)];
        let q = Queue::from_read(&kvs, 7, 2);
        assert_eq!(q.rank(), 2);
        assert!(!q.holds());
        let q = Queue::from_read(&kvs, 7, 3);
        assert!(q.holds());
    }

    #[test]
    fn any_holder_leaving_promotes_not_only_the_one_at_rank_minus_n() {
        // max 2, I am 4th: both a and b hold, c waits ahead of me. Watching
        // only the key at rank r−N (b) would stall when a leaves first.
        let kvs = [kv("a", 1), kv("b", 2), kv("c", 3), kv("me", 4)];
        let mut q = Queue::from_read(&kvs, 4, 2);
        assert!(!q.holds());
        assert!(q.deleted(b"a"));
        assert!(!q.holds(), "c is promoted first");
        assert!(q.deleted(b"c"));
        assert!(q.holds());
    }

    #[test]
    fn deletions_behind_me_do_not_matter() {
        let kvs = [kv("a", 1), kv("me", 2), kv("z", 3)];
        let mut q = Queue::from_read(&kvs, 2, 1);
        assert!(!q.deleted(b"z"));
        assert!(!q.holds());
    }

    #[test]
    fn lowest_free_slot() {
        let taken: BTreeSet<u32> = [0, 1, 3].into_iter().collect();
        assert_eq!(lowest_free(&taken, 4), Some(2));
        assert_eq!(lowest_free(&taken, 2), None);
        assert_eq!(lowest_free(&BTreeSet::new(), 1), Some(0));
    }

    /// A history: each op either joins a new key or removes the live key at
    /// some position (a release, an expiry or a crash look the same to the
    /// queue: a deletion).
    #[derive(Debug, Clone)]
    enum Op {
        Join,
        Leave(usize),
    }

    impl quickcheck::Arbitrary for Op {
        fn arbitrary(g: &mut quickcheck::Gen) -> Op {
            if <bool as quickcheck::Arbitrary>::arbitrary(g) {
                Op::Join
            } else {
                Op::Leave(<usize as quickcheck::Arbitrary>::arbitrary(g))
            }
        }
    }

    quickcheck! {
        /// Every contender, following only its own read and the deletions it
        /// is told of, agrees with the global truth: holders are exactly the
        /// N oldest live keys, so a release promotes the oldest waiter, and
        /// nobody waits while a slot is free.
        fn holders_are_exactly_the_n_oldest(ops: Vec<Op>, max: u8) -> TestResult {
            let max = usize::from(max % 5) + 1;
            let mut rev = 0i64;
            // (key, create revision, the contender's own view)
            let mut live: Vec<(Vec<u8>, i64, Queue)> = Vec::new();
            for op in ops {
                match op {
                    Op::Join => {
                        rev += 1;
                        let key = format!("k{rev}").into_bytes();
                        let mut kvs: Vec<KeyValue> = live
                            .iter()
                            .map(|(k, r, _)| KeyValue { key: k.clone(), create_revision: *r, ..KeyValue::default() })
                            .collect();
                        kvs.push(KeyValue { key: key.clone(), create_revision: rev, ..KeyValue::default() });
                        let q = Queue::from_read(&kvs, rev, max);
                        live.push((key, rev, q));
                    }
                    Op::Leave(i) if !live.is_empty() => {
                        let (gone, _, _) = live.remove(i % live.len());
                        for (_, _, q) in &mut live {
                            q.deleted(&gone);
                        }
                    }
                    Op::Leave(_) => {}
                }
                for (pos, (_, _, q)) in live.iter().enumerate() {
                    if q.holds() != (pos < max) || q.rank() != pos {
                        return TestResult::failed();
                    }
                }
            }
            TestResult::passed()
        }
    }
}
