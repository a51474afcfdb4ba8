//! The catalog's side of the cache-lease protocol ([`api::cache_lease`]): which front-ends
//! cache toys, the invalidation push to them, and what a restarted catalog owes them. The
//! front-end's side is `frontend/src/cache_lease.rs`.
//!
//! A front-end may serve its cache only while it holds a lease from the catalog; it renews the
//! lease every fraction of its length. In return the catalog promises never to acknowledge a
//! stock change until every front-end holding a live lease has either received the
//! invalidation or lost its lease. A front-end that cannot be reached is revoked: the catalog
//! forgets it, waits until the lease it last granted has run out (from then on the front-end
//! bypasses its cache), and only then acknowledges. When the front-end comes back, its next
//! renewal is answered with `fresh: true`, and it empties its cache before caching again.
//!
//! Three corners, each closed here:
//!
//! - **A registration while a change is in flight.** The writer fixes a change's push targets
//!   before its commit is written and makes the change visible only after; a front-end that
//!   registers in between gets no push, yet reads the old stock. Rather than making the grant
//!   wait for the writer (a renewal would then wait out a whole revoked lease, and under load a
//!   batch is always in flight), the grant tells the front-end the versions in flight
//!   ([`LeaseGrant::in_flight`]): it treats them as invalidations, so its cache refuses the
//!   older fill it is about to make (the version floor it already keeps per toy). Targets and
//!   the versions in flight are set under one lock with the registrations, so a front-end is
//!   either a target or told.
//! - **A lost `fresh` answer.** Each fresh grant names a new epoch; the front-end echoes the
//!   epoch it acted on (emptied its cache for) in its renewals, and every grant stays fresh
//!   until it does. A lost answer is therefore repeated, never silently turned into `false`.
//! - **A restart.** Front-ends are recorded durably before their first grant
//!   ([`StockStore::remember_frontend`]). A restarted catalog ([`CacheLeases::reconcile`])
//!   sends each known front-end a reset (empty the cache, stop using the lease until a new
//!   grant) and waits out a lease only if one of them cannot be reached; before, every restart
//!   held every acknowledgement for a whole lease.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use api::cache_lease::{Invalidation, LeaseGrant, StaleToy};
use api::client::ServiceClient;
use api::frontend::FrontendClient;
use futures::future::join_all;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::error::CatalogError;
use crate::store::StockStore;

/// A front-end holding (or having held) a lease.
struct Holder {
    until: Instant,
    frontend: FrontendClient,
    /// The epoch of its last fresh grant.
    epoch: u64,
}

/// Everything a grant and a push must see at once.
struct Registry {
    /// Keyed by the URL invalidations are pushed to.
    holders: HashMap<String, Holder>,
    /// Front-ends recorded in the store: granted a lease by this run or an earlier one.
    known: HashSet<String>,
    /// The epoch of the last fresh grant; starts at this run's incarnation in the high bits.
    last_epoch: u64,
    /// The batch being committed: pushed to the targets fixed with it, not yet visible.
    in_flight: Vec<StaleToy>,
}

/// Leases granted to front-ends.
pub struct CacheLeases {
    lease: Duration,
    registry: Mutex<Registry>,
    client: ServiceClient,
    book: Arc<StockStore>,
    pushed: Counter,
    revoked: Counter,
}

/// Whether a grant must be fresh: the front-end holds no live lease here, or has not yet
/// echoed the epoch of its registration (the fresh answer may have been lost).
pub fn grant_is_fresh(holder: Option<(Instant, u64)>, echoed: Option<u64>, now: Instant) -> bool {
    match holder {
        Some((until, epoch)) => until <= now || echoed != Some(epoch),
        None => true,
    }
}

/// What a restarted catalog did about the front-ends of its earlier runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartReport {
    /// Known front-ends told to start fresh.
    pub reset: usize,
    /// Known front-ends it could not reach, whose lease it waited out.
    pub unreachable: usize,
    /// Whether the first change waited a lease (some front-end unreachable, or the store
    /// predates the record of front-ends).
    pub held: bool,
}

/// Until when a restarted catalog must hold its first change: a lease after it started if a
/// front-end that may cache under an earlier run's lease was not reset (leases are counted by
/// the front-end from before its request, so none granted before `started` outlives this).
pub fn restart_hold(
    started: Instant,
    lease: Duration,
    unreachable: usize,
    tracked: bool,
) -> Option<Instant> {
    (unreachable > 0 || !tracked).then(|| started + lease)
}

impl CacheLeases {
    /// `book` records the front-ends durably; those it already knows are the ones a restarted
    /// catalog must reset ([`Self::reconcile`]).
    pub fn new(
        lease: Duration,
        client: ServiceClient,
        book: Arc<StockStore>,
        pushed: Counter,
        revoked: Counter,
    ) -> Result<Self, CatalogError> {
        let known = book.known_frontends()?.into_iter().collect();
        Ok(Self {
            lease,
            registry: Mutex::new(Registry {
                holders: HashMap::new(),
                known,
                last_epoch: book.incarnation() << 32,
                in_flight: Vec::new(),
            }),
            client,
            book,
            pushed,
            revoked,
        })
    }

    /// Grants or renews the lease of the front-end at `url`, which echoes `echoed` (the epoch
    /// of the last fresh grant it acted on). A front-end seen for the first time is recorded
    /// durably before it is granted anything.
    pub async fn grant(
        &self,
        url: reqwest::Url,
        echoed: Option<u64>,
    ) -> Result<LeaseGrant, CatalogError> {
        let key = url.as_str().to_string();
        if !self.registry.lock().known.contains(&key) {
            let book = self.book.clone();
            let url = key.clone();
            tokio::task::spawn_blocking(move || book.remember_frontend(&url))
                .await
                .map_err(|err| CatalogError::Storage(err.to_string()))??;
            self.registry.lock().known.insert(key.clone());
        }
        let now = Instant::now();
        let mut registry = self.registry.lock();
        let current = registry
            .holders
            .get(&key)
            .map(|holder| (holder.until, holder.epoch));
        let fresh = grant_is_fresh(current, echoed, now);
        let epoch = match current {
            Some((_, epoch)) if !fresh => epoch,
            _ => {
                registry.last_epoch += 1;
                registry.last_epoch
            }
        };
        registry.holders.insert(
            key.clone(),
            Holder {
                until: now + self.lease,
                frontend: FrontendClient::new(url, self.client.clone()),
                epoch,
            },
        );
        if fresh {
            tracing::info!(url = %key, epoch, "front-end registered for invalidations");
        }
        Ok(LeaseGrant {
            lease_ms: self.lease.as_millis() as u64,
            fresh,
            epoch,
            in_flight: registry.in_flight.clone(),
        })
    }

    /// Number of front-ends holding a live lease.
    pub fn live(&self) -> usize {
        let now = Instant::now();
        self.registry
            .lock()
            .holders
            .values()
            .filter(|holder| holder.until > now)
            .count()
    }

    /// Delivers `toys` to every front-end with a live lease. Returns once each one has either
    /// acknowledged the invalidation or been revoked and its lease has run out.
    ///
    /// From now until [`Self::landed`], every grant carries `toys` as in flight.
    pub async fn push(&self, toys: &[StaleToy]) {
        if toys.is_empty() {
            return;
        }
        let now = Instant::now();
        let targets: Vec<(String, FrontendClient)> = {
            let mut registry = self.registry.lock();
            registry.in_flight = toys.to_vec();
            registry.holders.retain(|_, holder| holder.until > now);
            registry
                .holders
                .iter()
                .map(|(key, holder)| (key.clone(), holder.frontend.clone()))
                .collect()
        };
        let body = Invalidation {
            toys: toys.to_vec(),
            reset: false,
        };
        join_all(
            targets
                .iter()
                .map(|(key, frontend)| self.push_one(key, frontend, &body)),
        )
        .await;
    }

    /// The batch pushed last is visible to readers now (or failed): grants stop carrying it.
    pub fn landed(&self) {
        self.registry.lock().in_flight.clear();
    }

    /// Delivers `body`, trying twice; whether it was acknowledged.
    async fn deliver(&self, frontend: &FrontendClient, body: &Invalidation) -> Result<(), String> {
        let mut last_error = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match frontend.invalidate(body).await {
                Ok(_) => return Ok(()),
                Err(err) => last_error = err.to_string(),
            }
        }
        Err(last_error)
    }

    async fn push_one(&self, key: &str, frontend: &FrontendClient, body: &Invalidation) {
        let error = match self.deliver(frontend, body).await {
            Ok(()) => {
                self.pushed.inc();
                return;
            }
            Err(error) => error,
        };
        // Could not deliver: revoke the lease and wait until the front-end stops trusting its
        // cache. Removing the entry first means a renewal that races with us is answered
        // `fresh`, which makes the front-end empty its cache.
        let until = self
            .registry
            .lock()
            .holders
            .remove(key)
            .map(|holder| holder.until);
        self.revoked.inc();
        tracing::warn!(
            url = %key,
            %error,
            "cannot deliver an invalidation; revoking the front-end's lease"
        );
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }

    /// Run once at start, before the first change is committed (the ledger's gate opens when
    /// this returns): tells every known front-end to start fresh, and waits out a lease from
    /// `started` if one of them cannot be reached (or the store does not know them all).
    ///
    /// A front-end may still cache under a lease of the previous run, which may have committed
    /// a change without pushing its invalidation (or lost an unsynced one after pushing it). A
    /// reset front-end has emptied its cache and stopped using that lease: it caches again
    /// only under a grant of this run, which makes it a target of every push. Front-ends that
    /// register meanwhile are reset by their fresh grant anyway.
    pub async fn reconcile(&self, started: Instant) -> RestartReport {
        let known: Vec<String> = self.registry.lock().known.iter().cloned().collect();
        let tracked = self.book.frontends_tracked();
        let body = Invalidation {
            toys: Vec::new(),
            reset: true,
        };
        let results = join_all(known.iter().map(|url| self.reset_one(url, &body))).await;
        let unreachable: Vec<&String> = known
            .iter()
            .zip(results)
            .filter(|(_, reached)| !reached)
            .map(|(url, _)| url)
            .collect();
        let hold = restart_hold(started, self.lease, unreachable.len(), tracked);
        if let Some(until) = hold {
            tracing::warn!(
                unreachable = unreachable.len(),
                tracked,
                "waiting out the cache leases of an earlier run before the first change"
            );
            tokio::time::sleep_until(until).await;
        }
        // Their leases have run out: unless they registered with this run, no front-end of
        // these holds a lease anywhere, and a later restart need not wait for them.
        for url in &unreachable {
            let forget = {
                let mut registry = self.registry.lock();
                let forget = !registry.holders.contains_key(*url);
                if forget {
                    registry.known.remove(*url);
                }
                forget
            };
            if forget {
                let book = self.book.clone();
                let url = (*url).clone();
                let forgotten = tokio::task::spawn_blocking(move || book.forget_frontend(&url));
                if let Ok(Err(err)) | Err(err) = forgotten
                    .await
                    .map_err(|err| CatalogError::Storage(err.to_string()))
                {
                    tracing::warn!(%err, "cannot forget a front-end");
                }
            }
        }
        if !tracked {
            let book = self.book.clone();
            match tokio::task::spawn_blocking(move || book.mark_frontends_tracked()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(%err, "cannot record that front-ends are tracked"),
                Err(err) => tracing::warn!(%err, "the front-end record task failed"),
            }
        }
        let report = RestartReport {
            reset: known.len() - unreachable.len(),
            unreachable: unreachable.len(),
            held: hold.is_some(),
        };
        if !known.is_empty() || hold.is_some() {
            tracing::info!(?report, "front-ends of earlier runs settled");
        }
        report
    }

    /// Tells the front-end at `url` to start fresh; whether it acknowledged.
    async fn reset_one(&self, url: &str, body: &Invalidation) -> bool {
        let frontend = match api::url::parse_base_url(url) {
            Ok(base) => FrontendClient::new(base, self.client.clone()),
            Err(err) => {
                tracing::warn!(%url, %err, "a known front-end's URL does not parse");
                return false;
            }
        };
        match self.deliver(&frontend, body).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%url, %error, "cannot reset a front-end of an earlier run");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_fresh_until_the_front_end_echoes_its_epoch() {
        let now = Instant::now();
        let live = now + Duration::from_secs(1);
        assert!(grant_is_fresh(None, None, now), "new");
        assert!(grant_is_fresh(None, Some(7), now), "revoked or restarted");
        assert!(grant_is_fresh(Some((live, 7)), None, now), "answer lost");
        assert!(grant_is_fresh(Some((live, 7)), Some(6), now), "answer lost");
        assert!(grant_is_fresh(Some((now, 7)), Some(7), now), "lapsed");
        assert!(!grant_is_fresh(Some((live, 7)), Some(7), now));
    }

    #[test]
    fn a_restart_holds_only_for_an_unreachable_or_untracked_front_end() {
        let started = Instant::now();
        let lease = Duration::from_secs(3);
        assert_eq!(restart_hold(started, lease, 0, true), None);
        assert_eq!(restart_hold(started, lease, 1, true), Some(started + lease));
        assert_eq!(
            restart_hold(started, lease, 0, false),
            Some(started + lease)
        );
    }
}
