//! Raft RPCs over HTTP: the client side ([`HttpNetwork`]) and the server side ([`router`]).
//!
//! Each RPC is a `POST /raft/{append,vote,snapshot}` ([`api::order::routes`]) whose body is the bincode-encoded openraft
//! request and whose answer is the bincode-encoded `Result` of the receiving `Raft`. Peers are
//! found in this node's own address book (`--nodes`), not in the replicated membership, so a
//! test can route one node's traffic through a fault-injecting proxy.

use std::sync::Arc;
use std::time::Duration;

use api::ApiError;
use api::cluster::NodeAddrs;
use api::defaults::CLUSTER_TOKEN_HEADER;
use api::order::routes;
use api::url::route_url;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::OrderNode;
use crate::types::{NodeId, TypeConfig};

/// Largest Raft RPC body accepted: an append of many batches, or a snapshot chunk.
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

fn rpc_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RPC_BODY>()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, rpc_config())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, rpc_config()).map(|(value, _)| value)
}

/// Makes a [`PeerConnection`] per target node.
#[derive(Clone)]
pub struct HttpNetwork {
    http: reqwest::Client,
    peers: Arc<NodeAddrs>,
    token: Option<Arc<str>>,
}

impl HttpNetwork {
    pub fn new(peers: Arc<NodeAddrs>, token: Option<Arc<str>>) -> Self {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|err| {
                tracing::error!(%err, "cannot build the Raft HTTP client with options, using defaults");
                reqwest::Client::new()
            });
        Self { http, peers, token }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerConnection {
        let base = match self.peers.get(target) {
            Some(url) => Ok(url.clone()),
            None => api::url::parse_base_url(&format!("http://{}", node.addr)),
        };
        PeerConnection {
            http: self.http.clone(),
            base,
            target,
            token: self.token.clone(),
        }
    }
}

/// The RPC client for one peer.
pub struct PeerConnection {
    http: reqwest::Client,
    /// The peer's base URL, or why its address cannot be one.
    base: Result<reqwest::Url, String>,
    target: NodeId,
    token: Option<Arc<str>>,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        route: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let base = self.base.as_ref().map_err(|why| {
            RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.clone())))
        })?;
        let body = encode(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut call = self
            .http
            .post(route_url(base, route, &[]))
            .timeout(option.hard_ttl())
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(token) = &self.token {
            call = call.header(CLUSTER_TOKEN_HEADER, token.as_ref());
        }
        let response = call.send().await.map_err(|err| {
            if err.is_connect() {
                // openraft backs off from an unreachable peer instead of retrying at once.
                RPCError::Unreachable(Unreachable::new(&err))
            } else {
                RPCError::Network(NetworkError::new(&err))
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
            let err =
                std::io::Error::other(format!("peer {} answered {status}: {text}", self.target));
            return Err(RPCError::Network(NetworkError::new(&err)));
        }
        let answer: Result<Resp, E> =
            decode(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(routes::RAFT_APPEND, &request, &option).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(routes::RAFT_SNAPSHOT, &request, &option).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(routes::RAFT_VOTE, &request, &option).await
    }
}

/// The Raft RPC endpoints. The caller adds the cluster-token check.
pub fn router(node: Arc<OrderNode>) -> Router {
    Router::new()
        .route(routes::RAFT_APPEND, post(append))
        .route(routes::RAFT_VOTE, post(vote))
        .route(routes::RAFT_SNAPSHOT, post(snapshot))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .with_state(node)
}

async fn append(State(node): State<Arc<OrderNode>>, body: Bytes) -> Response {
    let request: AppendEntriesRequest<TypeConfig> = match decode(&body) {
        Ok(request) => request,
        Err(err) => return bad_rpc(err),
    };
    node.entries_received(request.entries.len());
    let answer = node.raft.append_entries(request).await;
    if matches!(&answer, Ok(response) if !matches!(response, AppendEntriesResponse::HigherVote(_)))
    {
        // A leader this replica follows spoke: see `health::LeaderContact`.
        node.heard_from_leader();
    }
    reply(&answer)
}

async fn vote(State(node): State<Arc<OrderNode>>, body: Bytes) -> Response {
    match decode::<VoteRequest<NodeId>>(&body) {
        Ok(request) => reply(&node.raft.vote(request).await),
        Err(err) => bad_rpc(err),
    }
}

async fn snapshot(State(node): State<Arc<OrderNode>>, body: Bytes) -> Response {
    match decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(request) => {
            let vote = request.vote;
            let answer = node.raft.install_snapshot(request).await;
            if matches!(&answer, Ok(response) if response.vote <= vote) {
                node.heard_from_leader();
            }
            reply(&answer)
        }
        Err(err) => bad_rpc(err),
    }
}

fn reply<T: Serialize>(answer: &T) -> Response {
    match encode(answer) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(err) => {
            ApiError::internal(format!("cannot encode the Raft answer: {err}")).into_response()
        }
    }
}

fn bad_rpc(err: bincode::error::DecodeError) -> Response {
    ApiError::bad_request(format!("not a valid Raft RPC body: {err}")).into_response()
}
