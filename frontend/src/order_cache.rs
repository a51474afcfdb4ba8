//! `OrderCache`: the front-end's LRU of committed orders, answering `GET /orders/{n}` without
//! asking any replica.
//!
//! Why this stays linearizable: an order is cached only once it is committed (the front-end
//! placed it and got its number, or a replica's linearizable read returned it), and a
//! committed order never changes. So the cached record is what every later read must return,
//! whenever it is made. "No such order" is never cached: it can become false at any moment.

use std::num::NonZeroUsize;

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

use crate::metrics::OrderCacheMetrics;

pub struct OrderCache {
    /// `None` when the capacity is 0.
    entries: Option<Mutex<LruCache<u64, Bytes>>>,
    metrics: OrderCacheMetrics,
}

impl OrderCache {
    /// A cache of `capacity` orders; 0 turns it off.
    pub fn new(capacity: usize, metrics: OrderCacheMetrics) -> Self {
        Self {
            entries: NonZeroUsize::new(capacity).map(|n| Mutex::new(LruCache::new(n))),
            metrics,
        }
    }

    /// The JSON body of `GET /orders/{number}` for a committed order, counting a hit or a miss.
    pub fn get(&self, number: u64) -> Option<Bytes> {
        let found = self
            .entries
            .as_ref()
            .and_then(|entries| entries.lock().get(&number).cloned());
        match found {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        };
        found
    }

    /// Remembers the body of committed order `number`.
    pub fn insert(&self, number: u64, body: Bytes) {
        if let Some(entries) = &self.entries {
            entries.lock().put(number, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_orders_and_counts() {
        let cache = OrderCache::new(2, OrderCacheMetrics::default());
        assert!(cache.get(1).is_none());
        cache.insert(1, Bytes::from_static(b"one"));
        cache.insert(2, Bytes::from_static(b"two"));
        assert_eq!(cache.get(1).as_deref(), Some(&b"one"[..]));
        cache.insert(3, Bytes::from_static(b"three"));
        assert!(cache.get(2).is_none(), "the least recently used went");
        assert!(cache.get(1).is_some() && cache.get(3).is_some());
        assert_eq!(
            (cache.metrics.hits.get(), cache.metrics.misses.get()),
            (3, 2)
        );
        let off = OrderCache::new(0, OrderCacheMetrics::default());
        off.insert(1, Bytes::from_static(b"one"));
        assert!(off.get(1).is_none());
    }
}
