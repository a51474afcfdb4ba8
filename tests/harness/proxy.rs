//! `FaultProxy`: a TCP relay between two replicas that a test can cut and heal.
//!
//! While cut, the link behaves like a partition: established connections are dropped, and new
//! ones are accepted but black-holed (nothing is relayed and nothing answered), so the caller
//! waits for its own deadline exactly as it would on a dead network. Healing lets new
//! connections through again.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use api::cluster::NodeAddrs;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct FaultProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Relays connections made to the returned proxy's address on to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy has an address");
        let (cut, watch_cut) = watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                tokio::spawn(relay(inbound, target, watch_cut.clone()));
            }
        });
        Self { addr, cut, accept }
    }

    pub fn url(&self) -> reqwest::Url {
        api::url::parse_base_url(&format!("http://{}", self.addr)).expect("a loopback URL")
    }

    /// Partitions the link.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Restores the link for new connections.
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    if *cut.borrow_and_update() {
        // Black hole: hold the connection without a byte either way until the link heals,
        // then drop it.
        let _ = cut.wait_for(|cut| !*cut).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

/// A [`FaultProxy`] on every link between replicas, in each direction: `(from, to)` carries
/// `from`'s Raft and forwarding traffic to `to`. Clients and the front-end reach the replicas
/// directly.
pub struct ProxyMesh {
    proxies: BTreeMap<(u64, u64), FaultProxy>,
    ports: BTreeMap<u64, u16>,
}

impl ProxyMesh {
    /// Proxies for replicas listening on `ports`.
    pub async fn start(ports: &BTreeMap<u64, u16>) -> Self {
        let mut proxies = BTreeMap::new();
        for &from in ports.keys() {
            for (&to, &port) in ports {
                if from != to {
                    let proxy = FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
                    proxies.insert((from, to), proxy);
                }
            }
        }
        Self {
            proxies,
            ports: ports.clone(),
        }
    }

    /// Every replica's address book: itself directly, its peers through the proxies.
    pub fn address_books(&self) -> BTreeMap<u64, NodeAddrs> {
        self.ports
            .iter()
            .map(|(&me, &port)| {
                let book = self.ports.keys().map(|&peer| {
                    let url = if peer == me {
                        api::url::parse_base_url(&format!("http://127.0.0.1:{port}"))
                            .expect("a loopback URL")
                    } else {
                        self.proxies[&(me, peer)].url()
                    };
                    (peer, url)
                });
                (me, NodeAddrs::new(book))
            })
            .collect()
    }

    /// Cuts every link to and from replica `id`.
    pub fn isolate(&self, id: u64) {
        for ((from, to), proxy) in &self.proxies {
            if *from == id || *to == id {
                proxy.cut();
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }
}
