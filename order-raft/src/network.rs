//! Raft RPCs over HTTP: the client side ([`HttpNetwork`]) and the server side ([`router`]).
//!
//! Each RPC is a `POST /raft/{append,vote,pre-vote,snapshot}` ([`api::order::routes`]) whose body is the bincode-encoded openraft
//! request and whose answer is the bincode-encoded `Result` of the receiving `Raft`; a
//! snapshot travels as [`SnapshotChunk`]s (openraft 0.10's network v2 leaves its transport to
//! the application), answered with a `Result` whose error is a message. Peers are
//! found in this node's own address book (`--nodes`), not in the replicated membership, so a
//! test can route one node's traffic through a fault-injecting proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
use openraft::async_runtime::WatchReceiver;
use openraft::error::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::node::OrderNode;
use crate::store::SnapshotInbox;
use crate::store::snapshot_file::SnapshotFile;
use crate::types::{NodeId, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote};

/// Largest Raft RPC body accepted: an append of many batches, or a snapshot chunk.
pub const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

/// Snapshot bytes per chunk when openraft's option does not say (its default is 3 MiB).
const SNAPSHOT_CHUNK: usize = 3 * 1024 * 1024;

fn rpc_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RPC_BODY>()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, rpc_config())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, rpc_config()).map(|(value, _)| value)
}

/// One piece of a snapshot on its way from the leader: openraft 0.10 leaves the transport of
/// snapshots to the application (`full_snapshot`), and this is ours, the same chunked
/// transfer openraft 0.9 did. The receiver writes the chunks to a file in order and installs
/// it with the last one.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The sending leader's vote.
    pub vote: Vote,
    /// Which transfer this chunk belongs to, chosen by the sender for each one (openraft 0.10's
    /// snapshot metadata has no snapshot id to tell transfers apart).
    pub transfer: u64,
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot file; 0 starts a new transfer.
    pub offset: u64,
    pub data: Vec<u8>,
    /// The last chunk: install the snapshot.
    pub done: bool,
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
    ) -> Result<Resp, RPCError<TypeConfig>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::fmt::Display + DeserializeOwned,
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
        // The peer answered with an error (its Raft has stopped, or it refused a snapshot
        // chunk): back off as from an unreachable peer. (0.9 carried Raft's error as a
        // `RemoteError`; 0.10's RPCs have no remote error type to carry it in.)
        answer.map_err(|e| {
            let err = std::io::Error::other(format!("peer {}: {e}", self.target));
            RPCError::Unreachable(Unreachable::new(&err))
        })
    }
}

/// An RPC failure as a snapshot transfer's failure.
fn streaming(err: RPCError<TypeConfig>) -> StreamingError<TypeConfig> {
    match err {
        RPCError::Timeout(e) => StreamingError::Timeout(e),
        RPCError::Unreachable(e) => StreamingError::Unreachable(e),
        RPCError::Network(e) => StreamingError::Network(e),
        RPCError::RemoteError(e) => match e.source {},
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc::<_, _, RaftError<TypeConfig>>(routes::RAFT_APPEND, &request, &option)
            .await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc::<_, _, RaftError<TypeConfig>>(routes::RAFT_VOTE, &request, &option)
            .await
    }

    /// Asks whether the peer would vote, changing nothing on either side. An unreachable peer
    /// is an error, never a grant: a replica cut off from the others must not count itself
    /// a quorum of pre-votes and raise its term (openraft's default grants unconditionally).
    async fn pre_vote(
        &mut self,
        request: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.rpc::<_, _, RaftError<TypeConfig>>(routes::RAFT_PRE_VOTE, &request, &option)
            .await
    }

    /// Sends the snapshot file in chunks, one RPC each, until the last one is installed or the
    /// follower answers with a higher vote (openraft then steps down).
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        mut snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let chunk_size = option
            .snapshot_chunk_size()
            .unwrap_or(SNAPSHOT_CHUNK)
            .max(1);
        let mut cancel = std::pin::pin!(cancel);
        let transfer = next_transfer();
        let mut offset = 0u64;
        loop {
            let mut data = Vec::with_capacity(chunk_size);
            (&mut snapshot.snapshot)
                .take(chunk_size as u64)
                .read_to_end(&mut data)
                .await
                // Failing this attempt as a network error makes openraft retry the transfer
                // later, with the snapshot current then.
                .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
            let sent = data.len() as u64;
            let chunk = SnapshotChunk {
                vote,
                transfer,
                meta: snapshot.meta.clone(),
                offset,
                done: data.len() < chunk_size,
                data,
            };
            let response: SnapshotResponse<TypeConfig> = tokio::select! {
                closed = &mut cancel => return Err(StreamingError::Closed(closed)),
                answer = self.rpc::<_, _, String>(routes::RAFT_SNAPSHOT, &chunk, &option) => answer.map_err(streaming)?,
            };
            if chunk.done || response.vote > vote {
                return Ok(response);
            }
            offset += sent;
        }
    }
}

/// A transfer id no other transfer from this process has, nor (by its clock part) one from
/// this replica before a restart.
fn next_transfer() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    nanos.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// What a receiver does with a snapshot chunk, given the transfer it is writing (its id and the
/// bytes written so far), if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkPlace {
    /// Offset 0 starts a transfer, dropping any other one half received: a leader that gave
    /// up on a transfer (a cut connection, a timeout) starts over from the beginning.
    Begin,
    /// The next bytes of the transfer being written.
    Append,
    /// Anything else: a gap, a repeat, or a chunk of a transfer no longer being written.
    Refuse,
}

impl ChunkPlace {
    fn of(receiving: Option<(u64, u64)>, transfer: u64, offset: u64) -> Self {
        match receiving {
            _ if offset == 0 => Self::Begin,
            Some(at) if at == (transfer, offset) => Self::Append,
            _ => Self::Refuse,
        }
    }
}

/// The receiving end of snapshot transfers (one at a time): the file being written, until its
/// last chunk installs it through `Raft::install_full_snapshot`.
pub struct SnapshotReceiver {
    inbox: SnapshotInbox,
    receiving: tokio::sync::Mutex<Option<Receiving>>,
}

struct Receiving {
    transfer: u64,
    file: SnapshotFile,
    /// Bytes written so far: where the next chunk must start.
    written: u64,
}

impl SnapshotReceiver {
    pub fn new(inbox: SnapshotInbox) -> Self {
        Self {
            inbox,
            receiving: tokio::sync::Mutex::new(None),
        }
    }

    /// Writes one chunk; installs the snapshot with the last one. A chunk that does not follow
    /// the one before (another snapshot, a gap) is refused: the leader starts over at offset 0,
    /// which drops the transfer given up (its file is deleted by the next `begin`).
    async fn chunk(
        &self,
        raft: &Raft,
        chunk: SnapshotChunk,
    ) -> Result<SnapshotResponse<TypeConfig>, String> {
        let mut receiving = self.receiving.lock().await;
        let at = receiving.as_ref().map(|r| (r.transfer, r.written));
        match ChunkPlace::of(at, chunk.transfer, chunk.offset) {
            ChunkPlace::Begin => {
                let file = self.inbox.begin().await.map_err(|e| e.to_string())?;
                *receiving = Some(Receiving {
                    transfer: chunk.transfer,
                    file,
                    written: 0,
                });
            }
            ChunkPlace::Append => {}
            ChunkPlace::Refuse => {
                return Err(format!(
                    "snapshot {} chunk at {} does not follow the one received before",
                    chunk.meta, chunk.offset
                ));
            }
        }
        let Some(current) = receiving.as_mut() else {
            return Err("no snapshot is being received".into());
        };
        current
            .file
            .write_all(&chunk.data)
            .await
            .map_err(|e| e.to_string())?;
        current.written += chunk.data.len() as u64;
        if !chunk.done {
            let vote = raft.metrics().borrow_watched().vote;
            return Ok(SnapshotResponse::new(vote));
        }
        let Some(done) = receiving.take() else {
            return Err("no snapshot is being received".into());
        };
        // `install_snapshot` syncs the file before it installs it.
        let snapshot = Snapshot {
            meta: chunk.meta,
            snapshot: done.file,
        };
        raft.install_full_snapshot(chunk.vote, snapshot)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The Raft RPC endpoints. The caller adds the cluster-token check.
pub fn router(node: Arc<OrderNode>) -> Router {
    Router::new()
        .route(routes::RAFT_APPEND, post(append))
        .route(routes::RAFT_VOTE, post(vote))
        .route(routes::RAFT_PRE_VOTE, post(pre_vote))
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
    match decode::<VoteRequest<TypeConfig>>(&body) {
        Ok(request) => reply(&node.raft.vote(request).await),
        Err(err) => bad_rpc(err),
    }
}

async fn pre_vote(State(node): State<Arc<OrderNode>>, body: Bytes) -> Response {
    match decode::<VoteRequest<TypeConfig>>(&body) {
        Ok(request) => reply(&node.raft.pre_vote(request).await),
        Err(err) => bad_rpc(err),
    }
}

async fn snapshot(State(node): State<Arc<OrderNode>>, body: Bytes) -> Response {
    match decode::<SnapshotChunk>(&body) {
        Ok(chunk) => {
            let vote = chunk.vote;
            let answer = node.snapshots.chunk(&node.raft, chunk).await;
            if matches!(&answer, Ok(response) if response.vote <= vote) {
                node.heard_from_leader();
            }
            if let Err(why) = &answer {
                tracing::warn!(%why, "refused a snapshot chunk");
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

#[cfg(test)]
mod tests {
    use super::ChunkPlace;

    #[test]
    fn a_transfer_cut_off_mid_stream_is_dropped_when_the_leader_starts_over() {
        // Transfer 7 got two chunks of 10 bytes, then the connection was cut.
        let cut = Some((7, 20));
        assert_eq!(ChunkPlace::of(cut, 7, 20), ChunkPlace::Append);
        // The leader starts a new transfer from the beginning: the old file goes.
        assert_eq!(ChunkPlace::of(cut, 8, 0), ChunkPlace::Begin);
        // A late chunk of the transfer given up is refused, never written into the new one,
        // even where its offset matches what the new one has written.
        assert_eq!(ChunkPlace::of(Some((8, 20)), 7, 20), ChunkPlace::Refuse);
    }

    #[test]
    fn only_the_next_bytes_of_the_transfer_being_written_are_appended() {
        let at = Some((7, 20));
        assert_eq!(ChunkPlace::of(at, 7, 30), ChunkPlace::Refuse, "a gap");
        assert_eq!(ChunkPlace::of(at, 7, 10), ChunkPlace::Refuse, "a repeat");
        assert_eq!(ChunkPlace::of(None, 7, 20), ChunkPlace::Refuse, "no start");
        assert_eq!(ChunkPlace::of(None, 7, 0), ChunkPlace::Begin);
        // The same transfer restarted from 0 (a retry of the first chunk) starts over.
        assert_eq!(ChunkPlace::of(at, 7, 0), ChunkPlace::Begin);
    }
}
