//! `FaultProxy`: a TCP relay between two replicas that a test can cut and heal.
//!
//! While cut, the link behaves like a partition: established connections are dropped, and new
//! ones are accepted but black-holed (nothing is relayed and nothing answered), so the caller
//! waits for its own deadline exactly as it would on a dead network. Healing lets new
//! connections through again.

use std::net::SocketAddr;

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
        api::client::parse_base_url(&format!("http://{}", self.addr)).expect("a loopback URL")
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
