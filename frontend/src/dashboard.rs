//! `Dashboard`: what `GET /dashboard/data` answers — the front-end's own figures, every
//! replica's `/status`, the catalog's health and stock, the order series of
//! [`crate::order_stats`], and the leader changes and reselections seen lately.
//!
//! The front-end gathers it when a page asks, at most once per [`REFRESH`] whatever the number
//! of open pages (one gathering at a time; the others reuse its answer), so watching the
//! dashboard costs the replicas and the catalog a few small requests a second and nothing
//! when nobody watches. Events are noticed by comparing one gathering with the previous one,
//! so they are recorded while somebody watches, at most half a second late.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::{CallError, ServiceClient};
use api::cluster::NodeAddrs;
use api::frontend::{
    CatalogView, DASHBOARD_WINDOW_SECS, DashboardData, DashboardEvent, EventKind, ReplicaView,
    claimed_leader,
};
use api::order::ReplicaClient;
use api::status::FrontendStatus;
use api::url::route_url;
use futures::future::join_all;
use tokio::time::Instant;

use crate::order_stats::{OrderStats, unix_ms};

/// A gathering younger than this is reused.
const REFRESH: Duration = Duration::from_millis(250);
/// How long one gathering waits for a replica or the catalog: a peer slower than this is
/// shown as not answering rather than stalling the page.
const PEER_TIMEOUT: Duration = Duration::from_millis(400);
/// Most events kept (a flapping cluster must not grow the answer without bound).
const MAX_EVENTS: usize = 200;

pub struct Dashboard {
    replicas: BTreeMap<u64, ReplicaClient>,
    catalog: CatalogClient,
    http: ServiceClient,
    stats: Arc<OrderStats>,
    state: tokio::sync::Mutex<Seen>,
}

/// What the previous gathering found.
#[derive(Default)]
struct Seen {
    last: Option<(Instant, DashboardData)>,
    /// The leader last seen (outer `None`: nothing seen yet, so no change to report).
    leader: Option<Option<u64>>,
    reselections: Option<u64>,
    events: VecDeque<DashboardEvent>,
}

impl Dashboard {
    pub fn new(
        nodes: &NodeAddrs,
        catalog: reqwest::Url,
        token: Option<Arc<str>>,
        stats: Arc<OrderStats>,
    ) -> Self {
        let http = ServiceClient::new(PEER_TIMEOUT, token);
        Self {
            replicas: ReplicaClient::all(nodes, &http),
            catalog: CatalogClient::new(catalog, http.clone()),
            http,
            stats,
            state: tokio::sync::Mutex::default(),
        }
    }

    /// The dashboard's data, gathered now or at most [`REFRESH`] ago.
    pub async fn data(&self, frontend: FrontendStatus) -> DashboardData {
        let mut seen = self.state.lock().await;
        if let Some((at, data)) = &seen.last
            && at.elapsed() < REFRESH
        {
            return data.clone();
        }
        let (replicas, catalog) = tokio::join!(self.replicas(), self.catalog());
        let now_ms = unix_ms();
        let leader = claimed_leader(&replicas);
        seen.notice(now_ms, leader, &replicas, &frontend);
        let data = DashboardData {
            now_ms,
            leader: leader.map(|(id, _)| id),
            orders: self.stats.window(now_ms),
            events: seen.events.iter().cloned().collect(),
            frontend,
            replicas,
            catalog,
        };
        seen.last = Some((Instant::now(), data.clone()));
        data
    }

    async fn replicas(&self) -> Vec<ReplicaView> {
        join_all(
            self.replicas
                .iter()
                .map(|(&id, replica)| ReplicaView::ask(id, replica, why)),
        )
        .await
    }

    async fn catalog(&self) -> CatalogView {
        let health_url = route_url(self.catalog.base(), api::server::routes::HEALTH, &[]);
        let (health, products) = tokio::join!(
            self.http.get_json::<serde_json::Value>(&health_url),
            self.catalog.products()
        );
        let (toys, units) = match products {
            Ok(toys) => (
                Some(toys.len() as u64),
                Some(toys.iter().map(|toy| u64::from(toy.quantity)).sum()),
            ),
            Err(_) => (None, None),
        };
        CatalogView {
            health: health.map_or_else(|err| why(&err), |_| "ok".to_string()),
            toys,
            units,
        }
    }
}

impl Seen {
    /// Records the leader changes and reselections between the previous gathering and this one.
    fn notice(
        &mut self,
        now_ms: u64,
        leader: Option<(u64, u64)>,
        replicas: &[ReplicaView],
        frontend: &FrontendStatus,
    ) {
        let leader_id = leader.map(|(id, _)| id);
        if self.leader.is_some_and(|before| before != leader_id) {
            self.events.push_back(DashboardEvent {
                at_ms: now_ms,
                kind: EventKind::Leader,
                replica: leader_id,
                term: leader
                    .map(|(_, term)| term)
                    .or_else(|| highest_term(replicas)),
            });
        }
        self.leader = Some(leader_id);
        if self
            .reselections
            .is_some_and(|before| frontend.reselections > before)
        {
            self.events.push_back(DashboardEvent {
                at_ms: now_ms,
                kind: EventKind::Reselection,
                replica: frontend.selected_replica,
                term: None,
            });
        }
        self.reselections = Some(frontend.reselections);
        let horizon = now_ms.saturating_sub(DASHBOARD_WINDOW_SECS * 1000);
        while self
            .events
            .front()
            .is_some_and(|event| event.at_ms < horizon)
            || self.events.len() > MAX_EVENTS
        {
            self.events.pop_front();
        }
    }
}

fn highest_term(replicas: &[ReplicaView]) -> Option<u64> {
    replicas
        .iter()
        .filter_map(|replica| replica.status.as_ref().map(|status| status.term))
        .max()
}

/// Why a peer gave no figures, in a few words: no addresses or library text, which belong in
/// logs, not on a page anyone can open.
fn why(err: &CallError) -> String {
    match err {
        CallError::Unreachable(_) => "no answer".to_string(),
        CallError::Timeout(_) => "no answer in time".to_string(),
        CallError::Api(err) => format!("answered {}", err.status.as_u16()),
        CallError::Protocol(_) => "unreadable answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::status::{CacheStatus, NodeStatus};

    fn replica(id: u64, role: &str, term: u64) -> ReplicaView {
        ReplicaView {
            id,
            status: Some(NodeStatus {
                id,
                role: role.into(),
                term,
                leader: None,
                health: "ok".into(),
                last_log_index: None,
                applied_index: None,
                purged_index: None,
                selected_replica: None,
                orders: 0,
                digest: String::new(),
                entries_received: 0,
                snapshots_installed: 0,
            }),
            error: None,
        }
    }

    fn frontend(selected: u64, reselections: u64) -> FrontendStatus {
        FrontendStatus {
            selected_replica: Some(selected),
            reselections,
            cache: CacheStatus {
                capacity: 10,
                entries: 0,
                hits: 0,
                misses: 0,
                evictions: 0,
                invalidations: 0,
                lease_valid: true,
            },
        }
    }

    #[test]
    fn the_leader_is_the_one_in_the_highest_term() {
        let deposed = replica(3, "leader", 3);
        let new = replica(2, "leader", 4);
        let down = ReplicaView {
            id: 1,
            status: None,
            error: Some("no answer".into()),
        };
        assert_eq!(claimed_leader(&[down, deposed, new]), Some((2, 4)));
        assert_eq!(claimed_leader(&[replica(1, "follower", 4)]), None);
    }

    #[test]
    fn changes_between_gatherings_become_events() {
        let mut seen = Seen::default();
        let cluster = [replica(3, "leader", 3), replica(2, "follower", 3)];
        seen.notice(1_000, claimed_leader(&cluster), &cluster, &frontend(3, 0));
        assert!(seen.events.is_empty(), "the first look is no change");
        // The leader is killed: nobody leads for a moment, then 2 does, and is selected.
        let gap = [replica(2, "follower", 3)];
        seen.notice(2_000, claimed_leader(&gap), &gap, &frontend(3, 0));
        let after = [replica(2, "leader", 4)];
        seen.notice(3_000, claimed_leader(&after), &after, &frontend(2, 1));
        seen.notice(3_500, claimed_leader(&after), &after, &frontend(2, 1));
        let events: Vec<_> = seen
            .events
            .iter()
            .map(|e| (e.at_ms, e.kind, e.replica, e.term))
            .collect();
        assert_eq!(
            events,
            [
                (2_000, EventKind::Leader, None, Some(3)),
                (3_000, EventKind::Leader, Some(2), Some(4)),
                (3_000, EventKind::Reselection, Some(2), None),
            ]
        );
        // Two minutes later they have left the window.
        seen.notice(200_000, claimed_leader(&after), &after, &frontend(2, 1));
        assert!(seen.events.is_empty());
    }
}
