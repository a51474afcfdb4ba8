//! The front-end's LRU cache of product queries.
//!
//! Entries are the ready-to-send JSON bodies of `GET /products/{name}`, keyed by toy name.
//! Three rules keep them from ever going stale:
//!
//! 1. **Invalidation**: the catalog pushes `(toy, version)` after every stock change, before it
//!    acknowledges the change; the entry is dropped and `version` is remembered as the lowest
//!    version the cache may hold for that toy from then on.
//! 2. **No stale fill**: a miss reads the catalog and then fills the cache. If an invalidation
//!    overtook that read, the read's version is lower than the remembered one and the fill is
//!    refused. A fill also carries the cache's generation from before the read, so a fill that
//!    straddles a [`ProductCache::clear`] is refused too.
//! 3. **Lease**: entries are served (and filled) only while the catalog's lease is live (see
//!    [`crate::cache_lease`]); a front-end the catalog could not reach stops trusting its cache.
//!    A grant is applied in one step ([`ProductCache::apply_grant`]): a fresh one empties the
//!    cache, and the changes the catalog had in flight when it granted (whose pushes will not
//!    come here) raise the versions rule 2 enforces, before the lease is extended. A restarted
//!    catalog's reset ([`ProductCache::reset`]) empties the cache and ends the lease.
//!
//! One mutex guards the LRU list, the versions and the lease together, because an LRU read is
//! also a write (it moves the entry to the front).

use std::collections::HashMap;
use std::num::NonZeroUsize;

use api::cache_lease::StaleToy;
use axum::http::HeaderValue;
use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metrics::CacheMetrics;

/// Proof of when a fill started; see rule 2 above.
#[derive(Debug, Clone, Copy)]
pub struct FillTicket {
    generation: u64,
}

struct Inner {
    /// `None` when caching is disabled (capacity 0).
    entries: Option<LruCache<String, Cached>>,
    /// Per toy, the lowest version the cache may still hold (the last invalidation's).
    min_version: HashMap<String, u64>,
    /// Bumped by every `clear`.
    generation: u64,
    /// Entries may be served until then.
    lease_until: Option<Instant>,
}

struct Cached {
    version: u64,
    body: Bytes,
    /// The answer's `ETag` (the version), made once.
    etag: HeaderValue,
}

pub struct ProductCache {
    inner: Mutex<Inner>,
    capacity: usize,
    metrics: CacheMetrics,
}

impl ProductCache {
    /// A cache of `capacity` toys; 0 disables caching.
    pub fn new(capacity: usize, metrics: CacheMetrics) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: NonZeroUsize::new(capacity).map(LruCache::new),
                min_version: HashMap::new(),
                generation: 0,
                lease_until: None,
            }),
            capacity,
            metrics,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// The cached body for `name` and its `ETag`, counting a hit or a miss.
    pub fn get(&self, name: &str) -> Option<(Bytes, HeaderValue)> {
        let mut inner = self.inner.lock();
        let live = lease_live(&inner);
        let found = match inner.entries.as_mut() {
            Some(entries) if live => entries.get(name).map(|c| (c.body.clone(), c.etag.clone())),
            _ => None,
        };
        drop(inner);
        match &found {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        };
        found
    }

    /// Call before reading the catalog for a fill.
    pub fn ticket(&self) -> FillTicket {
        FillTicket {
            generation: self.inner.lock().generation,
        }
    }

    /// Caches `body` (version `version` of `name`) unless an invalidation or a clear happened
    /// since `ticket` was taken, or the lease is not live. Returns whether it was cached.
    pub fn fill(&self, ticket: FillTicket, name: &str, version: u64, body: Bytes) -> bool {
        let mut inner = self.inner.lock();
        if inner.generation != ticket.generation || !lease_live(&inner) {
            return false;
        }
        if inner
            .min_version
            .get(name)
            .is_some_and(|min| version < *min)
        {
            return false;
        }
        let Some(entries) = inner.entries.as_mut() else {
            return false;
        };
        let etag = version_etag(version);
        if let Some((evicted, _)) = entries.push(
            name.to_string(),
            Cached {
                version,
                body,
                etag,
            },
        ) && evicted != name
        {
            self.metrics.evictions.inc();
        }
        true
    }

    /// Drops `name` and refuses any later fill older than `version`.
    pub fn invalidate(&self, name: &str, version: u64) {
        self.invalidate_locked(&mut self.inner.lock(), name, version);
    }

    fn invalidate_locked(&self, inner: &mut Inner, name: &str, version: u64) {
        let min = inner.min_version.entry(name.to_string()).or_insert(0);
        *min = (*min).max(version);
        if let Some(entries) = inner.entries.as_mut()
            && entries.pop(name).is_some()
        {
            self.metrics.invalidations.inc();
        }
    }

    /// Empties the cache and refuses every fill that started before.
    pub fn clear(&self) {
        clear_locked(&mut self.inner.lock());
    }

    /// Applies a lease grant: with `fresh`, empties the cache; treats every change the catalog
    /// had `in_flight` as an invalidation; then lets entries be served until `until`. Under one
    /// lock, so that no fill lands between the steps.
    pub fn apply_grant(&self, fresh: bool, in_flight: &[StaleToy], until: Instant) {
        let mut inner = self.inner.lock();
        if fresh {
            clear_locked(&mut inner);
        }
        for toy in in_flight {
            self.invalidate_locked(&mut inner, &toy.name, toy.version);
        }
        if inner.lease_until.is_none_or(|current| current < until) {
            inner.lease_until = Some(until);
        }
    }

    /// The catalog restarted: empties the cache, refuses every fill that started before, and
    /// serves nothing until the next grant (the lease came from a catalog run that is gone).
    ///
    /// The version floors go too: a crash may have lost the change behind one (an unsynced
    /// release), which would keep its toy out of the cache until its next change. Dropping
    /// them is safe: no fill lands before the next grant, and from then on the new run pushes
    /// every change here (it commits nothing before every front-end it knows is reset).
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        clear_locked(&mut inner);
        inner.min_version.clear();
        inner.lease_until = None;
    }

    /// Lets entries be served until `until` (never shortens a longer lease).
    pub fn extend_lease(&self, until: Instant) {
        let mut inner = self.inner.lock();
        if inner.lease_until.is_none_or(|current| current < until) {
            inner.lease_until = Some(until);
        }
    }

    pub fn lease_live(&self) -> bool {
        lease_live(&self.inner.lock())
    }

    /// Number of cached toys.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cached names from most to least recently used (for tests and debugging).
    pub fn names_by_recency(&self) -> Vec<String> {
        self.inner
            .lock()
            .entries
            .as_ref()
            .map(|e| e.iter().map(|(name, _)| name.clone()).collect())
            .unwrap_or_default()
    }

    /// The cached version of `name`, without touching its recency.
    pub fn cached_version(&self, name: &str) -> Option<u64> {
        self.inner
            .lock()
            .entries
            .as_ref()?
            .peek(name)
            .map(|c| c.version)
    }
}

/// The `ETag` of an answer showing stock `version` ([`api::frontend::version_tag`]).
pub fn version_etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&api::frontend::version_tag(version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn clear_locked(inner: &mut Inner) {
    inner.generation += 1;
    if let Some(entries) = inner.entries.as_mut() {
        entries.clear();
    }
}

fn lease_live(inner: &Inner) -> bool {
    inner
        .lease_until
        .is_some_and(|until| Instant::now() < until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn leased(capacity: usize) -> ProductCache {
        let cache = ProductCache::new(capacity, CacheMetrics::default());
        cache.extend_lease(Instant::now() + Duration::from_secs(3600));
        cache
    }

    fn fill(cache: &ProductCache, name: &str, version: u64) -> bool {
        let ticket = cache.ticket();
        cache.fill(
            ticket,
            name,
            version,
            Bytes::from(format!("{name}@{version}")),
        )
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = leased(3);
        for name in ["a", "b", "c"] {
            assert!(fill(&cache, name, 1));
        }
        // Touch "a": "b" becomes the least recently used.
        assert!(cache.get("a").is_some());
        assert!(fill(&cache, "d", 1));
        assert_eq!(cache.names_by_recency(), vec!["d", "a", "c"]);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.metrics().evictions.get(), 1);
        // Refilling an existing key is not an eviction.
        assert!(fill(&cache, "d", 2));
        assert_eq!(cache.metrics().evictions.get(), 1);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn counts_hits_and_misses() {
        let cache = leased(2);
        assert!(cache.get("a").is_none());
        fill(&cache, "a", 1);
        assert_eq!(
            cache.get("a"),
            Some((Bytes::from_static(b"a@1"), version_etag(1)))
        );
        assert_eq!(
            (cache.metrics().hits.get(), cache.metrics().misses.get()),
            (1, 1)
        );
    }

    #[test]
    fn invalidation_removes_the_entry() {
        let cache = leased(2);
        fill(&cache, "a", 1);
        cache.invalidate("a", 2);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.metrics().invalidations.get(), 1);
        // The new version may be cached again.
        assert!(fill(&cache, "a", 2));
        assert_eq!(cache.cached_version("a"), Some(2));
    }

    #[test]
    fn a_fill_overtaken_by_an_invalidation_is_refused() {
        let cache = leased(2);
        // A miss reads version 4 from the catalog ...
        let ticket = cache.ticket();
        // ... meanwhile a buy makes it version 5 and its invalidation arrives first ...
        cache.invalidate("a", 5);
        // ... so the late fill with version 4 must not be cached.
        assert!(!cache.fill(ticket, "a", 4, Bytes::from_static(b"old")));
        assert!(cache.get("a").is_none());
        // A read that saw the new version is fine.
        assert!(cache.fill(cache.ticket(), "a", 5, Bytes::from_static(b"new")));
    }

    #[test]
    fn a_fill_that_straddles_a_clear_is_refused() {
        let cache = leased(2);
        let ticket = cache.ticket();
        cache.clear();
        assert!(!cache.fill(ticket, "a", 1, Bytes::from_static(b"x")));
        assert!(cache.is_empty());
    }

    #[test]
    fn nothing_is_served_or_filled_without_a_live_lease() {
        let cache = ProductCache::new(2, CacheMetrics::default());
        assert!(!fill(&cache, "a", 1), "no lease yet");
        cache.extend_lease(Instant::now() + Duration::from_millis(50));
        assert!(fill(&cache, "a", 1));
        assert!(cache.get("a").is_some());
        // Wait (with a deadline) for the lease to run out.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cache.lease_live() {
            assert!(
                std::time::Instant::now() < deadline,
                "a 50 ms lease never ran out"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            cache.get("a").is_none(),
            "an entry is not served after the lease ran out"
        );
        assert!(!fill(&cache, "b", 1));
    }

    #[test]
    fn a_grant_with_a_change_in_flight_refuses_the_older_fill() {
        // Issue 20, finding 1: the front-end registers while the catalog commits version 8 of
        // "a"; its first miss reads version 7, which is still what the catalog shows.
        let cache = ProductCache::new(2, CacheMetrics::default());
        let in_flight = [StaleToy {
            name: "a".into(),
            version: 8,
        }];
        cache.apply_grant(true, &in_flight, Instant::now() + Duration::from_secs(3600));
        assert!(
            !fill(&cache, "a", 7),
            "the fill predates the change in flight"
        );
        assert!(fill(&cache, "a", 8));
        assert!(fill(&cache, "b", 1), "other toys are not affected");
    }

    #[test]
    fn a_fresh_grant_empties_the_cache_and_a_reset_ends_the_lease() {
        let cache = leased(2);
        assert!(fill(&cache, "a", 1));
        let ticket = cache.ticket();
        cache.apply_grant(true, &[], Instant::now() + Duration::from_secs(3600));
        assert!(cache.is_empty());
        assert!(
            !cache.fill(ticket, "a", 1, Bytes::new()),
            "started before the grant"
        );
        assert!(fill(&cache, "a", 1));
        cache.invalidate("b", 9);
        cache.reset();
        assert!(cache.is_empty());
        assert!(
            !cache.lease_live(),
            "no lease until the restarted catalog grants one"
        );
        assert!(!fill(&cache, "a", 1));
        // The restarted catalog may show an older version than a push before its crash.
        cache.apply_grant(true, &[], Instant::now() + Duration::from_secs(3600));
        assert!(fill(&cache, "b", 8));
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let cache = leased(0);
        assert!(!fill(&cache, "a", 1));
        assert!(cache.get("a").is_none());
        assert_eq!(cache.metrics().misses.get(), 1);
    }

    #[test]
    fn concurrent_readers_and_invalidators_never_leave_a_stale_entry() {
        // Writers bump a toy's version and invalidate; fillers race them with reads taken
        // before the bump. At the end, the cached version (if any) must be the latest.
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let cache = Arc::new(leased(4));
        let version = Arc::new(AtomicU64::new(1));
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (cache, version) = (cache.clone(), version.clone());
                s.spawn(move || {
                    for _ in 0..5_000 {
                        let ticket = cache.ticket();
                        let seen = version.load(Ordering::SeqCst);
                        std::thread::yield_now();
                        cache.fill(ticket, "a", seen, Bytes::new());
                        // Invariant, checked under the cache's own lock: it never holds a
                        // version older than the last invalidation it processed.
                        let inner = cache.inner.lock();
                        if let Some(cached) = inner.entries.as_ref().and_then(|e| e.peek("a")) {
                            assert!(
                                cached.version >= inner.min_version.get("a").copied().unwrap_or(0)
                            );
                        }
                    }
                });
            }
            let (cache, version) = (cache.clone(), version.clone());
            s.spawn(move || {
                for _ in 0..5_000 {
                    let next = version.fetch_add(1, Ordering::SeqCst) + 1;
                    cache.invalidate("a", next);
                }
            });
        });
        let latest = version.load(Ordering::SeqCst);
        if let Some(v) = cache.cached_version("a") {
            assert_eq!(v, latest);
        }
    }
}
