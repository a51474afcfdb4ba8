//! `TestStore`: catalog, three order replicas and (optionally) a front-end, in this process.
//!
//! Every service runs through its crate's real `serve()` on real sockets with real RocksDB
//! directories; only the process boundary is missing. A replica can be stopped (it vanishes
//! from the network, as in a crash) and restarted on its old data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use api::catalog::{CatalogClient, VersionedProduct};
use api::client::{CallError, ServiceClient};
use api::cluster::NodeAddrs;
use api::frontend::FrontendClient;
use api::order::{Hop, OrderPlaced, OrderRecord, PlaceOrder, ReplicaClient};
use api::server::ServerHandle;
use api::status::{FrontendStatus, NodeStatus};
use tempfile::TempDir;

use crate::{HTTP_TIMEOUT, free_port, http, wait_for};

/// Knobs of a test store.
pub struct StoreOptions {
    pub initial_stock: u32,
    pub frontend: bool,
    /// Adjusts each replica's configuration before it starts (snapshot thresholds, …).
    pub tune_node: fn(&mut order_raft::Config),
    /// Adjusts the front-end's configuration before it starts.
    pub tune_frontend: fn(&mut frontend::Config),
    /// Adjusts the catalog's configuration before it starts.
    pub tune_catalog: fn(&mut catalog::Config),
    /// Replicas serve `POST /faults`.
    pub fault_injection: bool,
    /// Per replica, the address book it uses for its peers (e.g. through fault proxies).
    /// Default: every replica reaches every other directly.
    pub address_books: Option<BTreeMap<u64, NodeAddrs>>,
    /// Shared secret every service requires on internal endpoints (the test client sends it).
    pub cluster_token: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            initial_stock: 100_000,
            frontend: false,
            tune_node: |_| {},
            tune_frontend: |_| {},
            tune_catalog: |_| {},
            fault_injection: false,
            address_books: None,
            cluster_token: None,
        }
    }
}

struct Replica {
    config: order_raft::Config,
    handle: Option<ServerHandle>,
}

pub struct TestStore {
    _dir: TempDir,
    pub catalog_url: reqwest::Url,
    /// The catalog, called with the cluster token.
    pub catalog: CatalogClient,
    catalog_server: ServerHandle,
    replicas: BTreeMap<u64, Replica>,
    /// The replicas' real URLs (what a front-end or a test talks to).
    pub node_urls: NodeAddrs,
    frontend: Option<ServerHandle>,
    pub http: ServiceClient,
}

/// Three replicas on ports picked now, so that each can know the others before they start.
pub fn replica_ports() -> BTreeMap<u64, u16> {
    (1..=3).map(|id| (id, free_port())).collect()
}

impl TestStore {
    pub async fn start(options: StoreOptions) -> Self {
        Self::start_on(replica_ports(), options).await
    }

    /// Starts a store whose replicas listen on `ports`.
    pub async fn start_on(ports: BTreeMap<u64, u16>, options: StoreOptions) -> Self {
        crate::init_logs();
        let dir = TempDir::new().expect("a temporary directory");
        let mut catalog_config = catalog::Config::for_test(dir.path().join("catalog"));
        catalog_config.initial_stock = options.initial_stock;
        if let Some(auth) = auth(&options) {
            catalog_config.auth = auth;
        }
        (options.tune_catalog)(&mut catalog_config);
        let catalog = catalog::serve(catalog_config)
            .await
            .expect("catalog starts");
        let catalog_url = url(&catalog.url());

        let node_urls = NodeAddrs::new(
            ports
                .iter()
                .map(|(id, port)| (*id, url(&format!("http://127.0.0.1:{port}")))),
        );
        let mut replicas = BTreeMap::new();
        for (&id, &port) in &ports {
            let book = options
                .address_books
                .as_ref()
                .and_then(|books| books.get(&id).cloned())
                .unwrap_or_else(|| node_urls.clone());
            let mut config = order_raft::Config::for_test(
                id,
                book,
                dir.path().join(format!("node-{id}")),
                catalog_url.clone(),
            );
            config.listen = Some(SocketAddr::from(([127, 0, 0, 1], port)));
            if let Some(auth) = auth(&options) {
                config.auth = auth;
            }
            config.fault_injection = options.fault_injection;
            (options.tune_node)(&mut config);
            let handle = order_raft::serve(config.clone())
                .await
                .expect("replica starts");
            replicas.insert(
                id,
                Replica {
                    config,
                    handle: Some(handle),
                },
            );
        }

        let frontend = if options.frontend {
            let mut config = frontend::Config::for_test(catalog_url.clone(), node_urls.clone());
            if let Some(auth) = auth(&options) {
                config.auth = auth;
            }
            (options.tune_frontend)(&mut config);
            Some(frontend::serve(config).await.expect("front-end starts"))
        } else {
            None
        };
        let http = match options.cluster_token {
            Some(token) => ServiceClient::new(HTTP_TIMEOUT, Some(token.into())),
            None => http(),
        };
        Self {
            _dir: dir,
            catalog: CatalogClient::new(catalog_url.clone(), http.clone()),
            catalog_url,
            catalog_server: catalog,
            replicas,
            node_urls,
            frontend,
            http,
        }
    }

    pub fn frontend_url(&self) -> reqwest::Url {
        url(&self
            .frontend
            .as_ref()
            .expect("this store has a front-end")
            .url())
    }

    /// The front-end's API (public and internal), called with the cluster token.
    pub fn frontend(&self) -> FrontendClient {
        FrontendClient::new(self.frontend_url(), self.http.clone())
    }

    pub fn node_url(&self, id: u64) -> reqwest::Url {
        self.node_urls.get(id).expect("a known replica").clone()
    }

    /// Replica `id`, called with the cluster token.
    pub fn replica(&self, id: u64) -> ReplicaClient {
        ReplicaClient::new(self.node_url(id), self.http.clone())
    }

    pub fn running(&self) -> Vec<u64> {
        self.replicas
            .iter()
            .filter(|(_, r)| r.handle.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub async fn status(&self, id: u64) -> Result<NodeStatus, CallError> {
        self.replica(id).status().await
    }

    /// Waits until the running replicas agree on one leader; returns its id.
    pub async fn leader(&self) -> u64 {
        self.leader_among(&self.running()).await
    }

    /// Waits until `ids` agree on one leader among them; returns its id.
    pub async fn leader_among(&self, ids: &[u64]) -> u64 {
        wait_for("an agreed Raft leader", Duration::from_secs(20), || async {
            let mut leader = None;
            for &id in ids {
                let status = self.status(id).await.ok()?;
                let theirs = status.leader?;
                if !ids.contains(&theirs) || leader.is_some_and(|l| l != theirs) {
                    return None;
                }
                leader = Some(theirs);
            }
            let leader = leader?;
            (self.status(leader).await.ok()?.role == "leader").then_some(leader)
        })
        .await
    }

    /// Places an order through replica `via`.
    pub async fn place(
        &self,
        via: u64,
        request_id: &str,
        name: &str,
        quantity: u32,
    ) -> Result<OrderPlaced, CallError> {
        let order = PlaceOrder {
            request_id: request_id.into(),
            name: name.into(),
            quantity,
        };
        self.replica(via).place(&order, Hop::default()).await
    }

    pub async fn lookup(&self, via: u64, number: u64) -> Result<OrderRecord, CallError> {
        self.replica(via).lookup(number, Hop::default()).await
    }

    /// Requests replica `id` forwarded to a leader since it started (its
    /// `order_forwarded_total`).
    pub async fn forwarded(&self, id: u64) -> u64 {
        let text = crate::metrics_text(&self.node_url(id)).await;
        crate::metric(&text, "order_forwarded_total").expect("order_forwarded_total is exported")
    }

    /// The catalog's view of a toy.
    pub async fn product(&self, name: &str) -> VersionedProduct {
        self.catalog
            .product(name)
            .await
            .expect("the catalog answers")
    }

    /// Waits until the front-end holds a cache lease (before it, every read is a miss).
    pub async fn wait_for_cache_lease(&self) {
        wait_for("the cache lease", Duration::from_secs(10), || async {
            self.frontend_status().await.cache.lease_valid.then_some(())
        })
        .await;
    }

    /// The front-end's `/status`.
    pub async fn frontend_status(&self) -> FrontendStatus {
        self.frontend().status().await.expect("front-end status")
    }

    /// Takes a replica off the network, as a crash would (its data stays on disk).
    pub async fn stop_node(&mut self, id: u64) {
        let replica = self.replicas.get_mut(&id).expect("a known replica");
        if let Some(handle) = replica.handle.take() {
            let _ = handle.shutdown().await;
        }
    }

    /// Starts a stopped replica again on its old data.
    pub async fn restart_node(&mut self, id: u64) {
        let replica = self.replicas.get_mut(&id).expect("a known replica");
        assert!(replica.handle.is_none(), "replica {id} is running");
        let config = replica.config.clone();
        // The old instance's last RocksDB handles close shortly after its shutdown returns.
        let handle = wait_for(
            &format!("replica {id} to reopen its data"),
            Duration::from_secs(20),
            || {
                let config = config.clone();
                async move { order_raft::serve(config).await.ok() }
            },
        )
        .await;
        replica.handle = Some(handle);
    }

    /// Waits until every running replica has applied the same entries and holds the same
    /// orders; returns (applied index, digest, orders).
    pub async fn converged(&self) -> (Option<u64>, String, u64) {
        let ids = self.running();
        wait_for("replicas to converge", Duration::from_secs(30), || async {
            let mut seen = None;
            for &id in &ids {
                let status = self.status(id).await.ok()?;
                let mine = (status.applied_index, status.digest.clone(), status.orders);
                if seen.as_ref().is_some_and(|s| *s != mine) {
                    return None;
                }
                seen = Some(mine);
            }
            seen
        })
        .await
    }

    pub async fn shutdown(mut self) {
        if let Some(frontend) = self.frontend.take() {
            let _ = frontend.shutdown().await;
        }
        for replica in self.replicas.values_mut() {
            if let Some(handle) = replica.handle.take() {
                let _ = handle.shutdown().await;
            }
        }
        let _ = self.catalog_server.shutdown().await;
    }
}

/// The services' `--cluster-token` when the test gives one (`for_test` runs them `--insecure`).
fn auth(options: &StoreOptions) -> Option<api::cli::ClusterAuth> {
    let token = options.cluster_token.as_deref()?;
    let token = api::cli::ClusterToken::parse(token).expect("a valid test token");
    Some(api::cli::ClusterAuth::with_token(token))
}

fn url(base: &str) -> reqwest::Url {
    api::url::parse_base_url(base).expect("a service URL")
}
