//! What the services say of themselves, typed: every replica's `GET /status`
//! ([`NodeStatus`]), the front-end's ([`FrontendStatus`]) and the catalog's `GET /health`,
//! read with the api crate's clients, and the decisions the cluster scripts take on them —
//! who leads, whether the replicas settled on one leader, whether they agree, whether the
//! front-end's selection leads — as pure functions over one [`Snapshot`]. `toystore-lab
//! status` and `toystore-lab leader` print them for `cluster/*.sh`, which therefore parse no
//! JSON themselves.

use std::fmt::Write as _;
use std::time::Duration;

use api::catalog::CatalogClient;
use api::client::ServiceClient;
use api::cluster::NodeAddrs;
use api::frontend::{FrontendClient, ReplicaView, claimed_leader};
use api::order::ReplicaClient;
use api::status::{FrontendStatus, NodeStatus};
use reqwest::Url;
use serde::Serialize;

/// How long one status request may take (a stopped process never answers).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The services' answers at one moment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub replicas: Vec<ReplicaView>,
    /// The front-end's `/status`, when it was asked (`Err`: no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frontend: Option<Result<FrontendStatus, String>>,
    /// Whether the catalog answered `/health`, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_healthy: Option<bool>,
}

/// Asks every service named at once.
pub async fn observe(nodes: &NodeAddrs, frontend: Option<&Url>, catalog: Option<&Url>) -> Snapshot {
    let http = ServiceClient::new(REQUEST_TIMEOUT, None);
    let replicas = ReplicaClient::all(nodes, &http);
    let asks = replicas
        .iter()
        .map(|(&id, client)| ReplicaView::ask(id, client, |error| error.to_string()));
    let frontend_ask = async {
        match frontend {
            Some(url) => Some(
                FrontendClient::new(url.clone(), http.clone())
                    .status()
                    .await
                    .map_err(|e| e.to_string()),
            ),
            None => None,
        }
    };
    let catalog_ask = async {
        match catalog {
            Some(url) => Some(
                CatalogClient::new(url.clone(), http.clone())
                    .health()
                    .await
                    .is_ok(),
            ),
            None => None,
        }
    };
    let (replicas, frontend, catalog_healthy) =
        tokio::join!(futures::future::join_all(asks), frontend_ask, catalog_ask);
    Snapshot {
        replicas,
        frontend,
        catalog_healthy,
    }
}

impl Snapshot {
    fn answering(&self) -> impl Iterator<Item = (u64, &NodeStatus)> {
        self.replicas
            .iter()
            .filter_map(|r| r.status.as_ref().map(|s| (r.id, s)))
    }

    /// The replica that says it leads, the highest term if more than one does (an isolated
    /// old leader still says so): `(id, term)`, by the dashboard's rule.
    pub fn leader(&self) -> Option<(u64, u64)> {
        claimed_leader(&self.replicas)
    }

    /// Like [`Snapshot::leader`], but only when every replica asked answered and names the
    /// same leader at the same term, and that one replica says it leads (right after a
    /// bootstrap a late candidate can still depose the first leader: this waits that out).
    pub fn settled_leader(&self) -> Option<(u64, u64)> {
        let mut named = None;
        let mut leaders = Vec::new();
        for view in &self.replicas {
            let status = view.status.as_ref()?;
            let claim = (status.leader?, status.term);
            if *named.get_or_insert(claim) != claim {
                return None;
            }
            if status.role == "leader" {
                leaders.push(view.id);
            }
        }
        let (lead, term) = named?;
        (leaders == [lead]).then_some((lead, term))
    }

    /// The front-end's selected replica, when it answered and has one.
    pub fn selected(&self) -> Option<u64> {
        self.frontend.as_ref()?.as_ref().ok()?.selected_replica
    }

    /// Whether the answering replicas hold the same applied index and digest (`None` with
    /// fewer than two answering).
    pub fn replicas_agree(&self) -> Option<bool> {
        let states: Vec<(Option<u64>, &str)> = self
            .answering()
            .map(|(_, s)| (s.applied_index, s.digest.as_str()))
            .collect();
        (states.len() > 1).then(|| states.windows(2).all(|w| w[0] == w[1]))
    }

    /// What the front-end's selection means for orders.
    pub fn selection_verdict(&self) -> Option<String> {
        let selected = self.selected()?;
        let top_term = self.answering().map(|(_, s)| s.term).max();
        let Some(status) = self
            .answering()
            .find(|(id, _)| *id == selected)
            .map(|(_, s)| s)
        else {
            return Some(format!(
                "selection: the front-end's replica {selected} (*) does not answer"
            ));
        };
        Some(
            if status.role == "leader" && Some(status.term) == top_term {
                format!(
                    "selection: the front-end's replica {selected} (*) is the Raft leader: orders take no forwarding hop"
                )
            } else if status.role == "leader" {
                format!(
                    "selection: the front-end's replica {selected} (*) claims leadership at an old term ({} < {})",
                    status.term,
                    top_term.unwrap_or(status.term)
                )
            } else {
                format!(
                    "selection: the front-end's replica {selected} (*) is not the Raft leader: it forwards orders until it takes over"
                )
            },
        )
    }

    /// The human table: one row per replica, the agreement and selection lines, the catalog
    /// and the front-end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let selected = self.selected();
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<5} {:<7} {:<13} {:<8} {:<8} digest",
            "replica", "role", "term", "leader", "health", "applied", "orders"
        );
        for view in &self.replicas {
            let label = if Some(view.id) == selected {
                format!("{} *", view.id)
            } else {
                view.id.to_string()
            };
            match &view.status {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{:<8} {:<10} {:<5} {:<7} {:<13} {:<8} {:<8} {}",
                        label,
                        s.role,
                        s.term,
                        dash(s.leader),
                        cut(&s.health, 13),
                        dash(s.applied_index),
                        s.orders,
                        cut(&s.digest, 12)
                    );
                }
                None => {
                    let _ = writeln!(out, "{label:<8} no-answer");
                }
            }
        }
        match self.replicas_agree() {
            Some(true) => {
                let n = self.answering().count();
                let _ = writeln!(
                    out,
                    "replicas: the {n} answering replicas agree (same applied index and digest)"
                );
            }
            Some(false) => {
                let _ = writeln!(
                    out,
                    "replicas: the answering replicas differ (one may still be catching up)"
                );
            }
            None => {}
        }
        if let Some(verdict) = self.selection_verdict() {
            let _ = writeln!(out, "{verdict}");
        }
        if let Some(healthy) = self.catalog_healthy {
            let _ = writeln!(
                out,
                "catalog: {}",
                if healthy {
                    "healthy"
                } else {
                    "not answering /health"
                }
            );
        }
        match &self.frontend {
            Some(Ok(f)) => {
                let lookups = f.cache.hits + f.cache.misses;
                let ratio = if lookups > 0 {
                    format!(
                        "{:.1}% ({} hits / {lookups})",
                        100.0 * f.cache.hits as f64 / lookups as f64,
                        f.cache.hits
                    )
                } else {
                    "- (no lookups yet)".to_owned()
                };
                let _ = writeln!(
                    out,
                    "frontend: selected replica {}, reselections {}, cache hit ratio {ratio}, cache {}/{} entries, lease {}",
                    dash(f.selected_replica),
                    f.reselections,
                    f.cache.entries,
                    f.cache.capacity,
                    f.cache.lease_valid
                );
            }
            Some(Err(_)) => {
                let _ = writeln!(out, "frontend: /status does not answer");
            }
            None => {}
        }
        out
    }
}

fn dash(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, role: &str, term: u64, leader: Option<u64>) -> ReplicaView {
        ReplicaView {
            id,
            status: Some(NodeStatus {
                id,
                role: role.to_owned(),
                term,
                leader,
                health: "ok".to_owned(),
                last_log_index: Some(10),
                applied_index: Some(10),
                purged_index: None,
                selected_replica: None,
                orders: 4,
                digest: "abc".to_owned(),
                entries_received: 0,
                snapshots_installed: 0,
            }),
            error: None,
        }
    }

    fn silent(id: u64) -> ReplicaView {
        ReplicaView {
            id,
            status: None,
            error: Some("connection refused".to_owned()),
        }
    }

    fn snapshot(replicas: Vec<ReplicaView>) -> Snapshot {
        Snapshot {
            replicas,
            ..Snapshot::default()
        }
    }

    #[test]
    fn the_leader_is_the_claim_with_the_highest_term() {
        let cut_off_old_leader = snapshot(vec![
            node(1, "leader", 4, Some(1)),
            node(2, "leader", 5, Some(2)),
            node(3, "follower", 5, Some(2)),
        ]);
        assert_eq!(cut_off_old_leader.leader(), Some((2, 5)));
        assert_eq!(
            snapshot(vec![node(1, "follower", 5, None), silent(2)]).leader(),
            None
        );
    }

    #[test]
    fn a_settled_leader_needs_every_replica_to_answer_and_agree() {
        let settled = snapshot(vec![
            node(1, "follower", 5, Some(2)),
            node(2, "leader", 5, Some(2)),
            node(3, "follower", 5, Some(2)),
        ]);
        assert_eq!(settled.settled_leader(), Some((2, 5)));
        let one_silent = snapshot(vec![node(2, "leader", 5, Some(2)), silent(3)]);
        assert_eq!(one_silent.settled_leader(), None);
        let older_term = snapshot(vec![
            node(1, "follower", 4, Some(2)),
            node(2, "leader", 5, Some(2)),
        ]);
        assert_eq!(older_term.settled_leader(), None);
        let two_claims = snapshot(vec![
            node(1, "leader", 5, Some(2)),
            node(2, "leader", 5, Some(2)),
        ]);
        assert_eq!(two_claims.settled_leader(), None);
        let no_leader_known = snapshot(vec![node(1, "candidate", 6, None)]);
        assert_eq!(no_leader_known.settled_leader(), None);
    }

    #[test]
    fn replicas_agree_on_applied_index_and_digest() {
        let mut s = snapshot(vec![
            node(1, "leader", 5, Some(1)),
            node(2, "follower", 5, Some(1)),
        ]);
        assert_eq!(s.replicas_agree(), Some(true));
        if let Some(status) = s.replicas[1].status.as_mut() {
            status.applied_index = Some(9);
        }
        assert_eq!(s.replicas_agree(), Some(false));
        assert_eq!(
            snapshot(vec![node(1, "leader", 5, Some(1))]).replicas_agree(),
            None
        );
    }

    #[test]
    fn the_selection_verdict_names_a_forwarding_or_stale_selection() {
        let mut s = snapshot(vec![
            node(1, "leader", 4, Some(1)),
            node(2, "leader", 5, Some(2)),
            node(3, "follower", 5, Some(2)),
        ]);
        let select = |s: &mut Snapshot, id| {
            s.frontend = Some(Ok(FrontendStatus {
                selected_replica: Some(id),
                reselections: 0,
                cache: api::status::CacheStatus {
                    capacity: 10,
                    entries: 0,
                    hits: 0,
                    misses: 0,
                    evictions: 0,
                    invalidations: 0,
                    lease_valid: true,
                },
            }));
        };
        select(&mut s, 2);
        assert!(
            s.selection_verdict()
                .is_some_and(|v| v.contains("is the Raft leader"))
        );
        select(&mut s, 1);
        assert!(
            s.selection_verdict()
                .is_some_and(|v| v.contains("old term (4 < 5)"))
        );
        select(&mut s, 3);
        assert!(
            s.selection_verdict()
                .is_some_and(|v| v.contains("forwards orders"))
        );
        s.replicas[2] = silent(3);
        assert!(
            s.selection_verdict()
                .is_some_and(|v| v.contains("does not answer"))
        );
        assert!(s.render().contains("3 *"));
    }
}
