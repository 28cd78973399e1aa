//! The network between controllers: openraft's RPCs as private-key requests
//! ([`rpc`]) over a [`QuorumTransport`] that the broker implements with its
//! connections (step L1) and tests with [`mem::MemTransport`].
//!
//! - [`QuorumNetwork`] is openraft's network factory: one [`PeerClient`] per
//!   peer, which encodes a request, calls the transport with the RPC's
//!   deadline, and decodes the answer. A peer that cannot be reached maps to
//!   openraft's `Unreachable` (it backs off), a deadline that passes to
//!   `Timeout`, anything else (a closed connection, a garbled or refused answer)
//!   to `Network`.
//! - [`QuorumServer`] answers the requests another controller sends: it checks
//!   the cluster id (`INCONSISTENT_CLUSTER_ID` otherwise, as Kafka) and hands the
//!   request to the local Raft node.
//!
//! Peers' addresses come from the configuration (`controller.quorum.voters`),
//! as Kafka's static voters do, not from the voter set in the log.

pub mod mem;
pub mod rpc;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, Raft};

use crate::types::{NodeId, TypeConfig, Voter};
use rpc::RpcError;

/// A boxed future, as transports return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a call to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (the peer is down or not listening).
    #[error("controller {0} is unreachable")]
    Unreachable(NodeId),
    /// No answer before the deadline.
    #[error("no answer from controller {0} in time")]
    Timeout(NodeId),
    /// The connection broke, or the peer closed it.
    #[error("the connection to controller {0} closed")]
    Closed(NodeId),
}

/// Carries one request to a peer and brings back its answer.
pub trait QuorumTransport: Send + Sync + 'static {
    /// Sends `body` under `api_key` to controller `to` at `addr`; the answer's
    /// body, or why there is none by `timeout`.
    fn call(
        &self,
        to: NodeId,
        addr: &Voter,
        api_key: i16,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Bytes, TransportError>>;
}

/// openraft's network factory over a transport.
#[derive(Clone)]
pub struct QuorumNetwork {
    node_id: NodeId,
    cluster_id: Arc<str>,
    /// The voters' addresses from the configuration.
    voters: Arc<BTreeMap<NodeId, Voter>>,
    transport: Arc<dyn QuorumTransport>,
}

impl QuorumNetwork {
    pub fn new(
        node_id: NodeId,
        cluster_id: &str,
        voters: BTreeMap<NodeId, Voter>,
        transport: Arc<dyn QuorumTransport>,
    ) -> QuorumNetwork {
        QuorumNetwork {
            node_id,
            cluster_id: cluster_id.into(),
            voters: Arc::new(voters),
            transport,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for QuorumNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Voter) -> PeerClient {
        let addr = self
            .voters
            .get(&target)
            .cloned()
            .unwrap_or_else(|| node.clone());
        PeerClient {
            node_id: self.node_id,
            target,
            addr,
            cluster_id: Arc::clone(&self.cluster_id),
            transport: Arc::clone(&self.transport),
        }
    }
}

/// The client side of the RPCs to one peer.
pub struct PeerClient {
    node_id: NodeId,
    target: NodeId,
    addr: Voter,
    cluster_id: Arc<str>,
    transport: Arc<dyn QuorumTransport>,
}

type ClientError<E = openraft::error::Infallible> = RPCError<NodeId, Voter, RaftError<NodeId, E>>;

fn network_error<E: std::error::Error>(e: impl std::fmt::Display) -> RPCError<NodeId, Voter, E> {
    RPCError::Network(NetworkError::new(&AnyError::error(e.to_string())))
}

impl PeerClient {
    async fn call<E: std::error::Error>(
        &self,
        action: RPCTypes,
        api_key: i16,
        body: Bytes,
        option: &RPCOption,
    ) -> Result<Bytes, RPCError<NodeId, Voter, E>> {
        let timeout = option.hard_ttl();
        self.transport
            .call(self.target, &self.addr, api_key, body, timeout)
            .await
            .map_err(|e| match e {
                TransportError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                TransportError::Timeout(_) => RPCError::Timeout(Timeout {
                    action,
                    id: self.node_id,
                    target: self.target,
                    timeout,
                }),
                TransportError::Closed(_) => network_error(e),
            })
    }

    /// An answer's error code other than NONE, as an error.
    fn refused<E: std::error::Error>(&self, error_code: i16) -> RPCError<NodeId, Voter, E> {
        if error_code == rpc::INCONSISTENT_CLUSTER_ID {
            tracing::error!(
                peer = self.target,
                "the peer belongs to another cluster (INCONSISTENT_CLUSTER_ID)"
            );
        }
        network_error(format!(
            "controller {} answered error code {error_code}",
            self.target
        ))
    }
}

fn garbled<E: std::error::Error>(e: RpcError) -> RPCError<NodeId, Voter, E> {
    network_error(format!("undecodable answer: {e}"))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, ClientError> {
        let body = rpc::encode_append_request(&self.cluster_id, &req);
        let answer = self
            .call(
                RPCTypes::AppendEntries,
                rpc::RAFT_APPEND_ENTRIES,
                body,
                &option,
            )
            .await?;
        let (code, resp) = rpc::decode_append_response(&answer).map_err(garbled)?;
        if code != rpc::NONE {
            return Err(self.refused(code));
        }
        Ok(resp)
    }

    async fn install_snapshot(
        &mut self,
        req: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, ClientError<InstallSnapshotError>> {
        let body = rpc::encode_snapshot_request(&self.cluster_id, &req);
        let answer = self
            .call(
                RPCTypes::InstallSnapshot,
                rpc::RAFT_INSTALL_SNAPSHOT,
                body,
                &option,
            )
            .await?;
        let (code, resp, mismatch) = rpc::decode_snapshot_response(&answer).map_err(garbled)?;
        if let Some(mismatch) = mismatch {
            return Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.addr.clone(),
                RaftError::APIError(mismatch),
            )));
        }
        if code != rpc::NONE {
            return Err(self.refused(code));
        }
        Ok(resp)
    }

    async fn vote(
        &mut self,
        req: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, ClientError> {
        let body = rpc::encode_vote_request(&self.cluster_id, &req);
        let answer = self
            .call(RPCTypes::Vote, rpc::RAFT_VOTE, body, &option)
            .await?;
        let (code, resp) = rpc::decode_vote_response(&answer).map_err(garbled)?;
        if code != rpc::NONE {
            return Err(self.refused(code));
        }
        Ok(resp)
    }
}

/// Answers other controllers' Raft RPCs with the local node.
#[derive(Clone)]
pub struct QuorumServer {
    cluster_id: Arc<str>,
    raft: Raft<TypeConfig>,
}

impl QuorumServer {
    pub(crate) fn new(cluster_id: &str, raft: Raft<TypeConfig>) -> QuorumServer {
        QuorumServer {
            cluster_id: cluster_id.into(),
            raft,
        }
    }

    /// Whether `api_key` is one of the private Raft keys this server answers.
    pub fn handles(api_key: i16) -> bool {
        matches!(
            api_key,
            rpc::RAFT_VOTE | rpc::RAFT_APPEND_ENTRIES | rpc::RAFT_INSTALL_SNAPSHOT
        )
    }

    /// The answer's body to a request's body; `Err` for a request that does
    /// not decode (the caller closes the connection).
    /// The entries of an AppendEntries share `body`'s memory.
    pub async fn handle(&self, api_key: i16, body: &Bytes) -> Result<Bytes, RpcError> {
        match api_key {
            rpc::RAFT_VOTE => {
                let (cluster_id, req) = rpc::decode_vote_request(body)?;
                let fallback = VoteResponse {
                    vote: req.vote,
                    vote_granted: false,
                    last_log_id: None,
                };
                if !self.same_cluster(&cluster_id) {
                    return Ok(rpc::encode_vote_response(
                        rpc::INCONSISTENT_CLUSTER_ID,
                        &fallback,
                    ));
                }
                Ok(match self.raft.vote(req).await {
                    Ok(resp) => rpc::encode_vote_response(rpc::NONE, &resp),
                    Err(e) => {
                        tracing::warn!(error = %e, "the local Raft node cannot vote");
                        rpc::encode_vote_response(rpc::UNKNOWN_SERVER_ERROR, &fallback)
                    }
                })
            }
            rpc::RAFT_APPEND_ENTRIES => {
                let (cluster_id, req) = rpc::decode_append_request(body)?;
                if !self.same_cluster(&cluster_id) {
                    return Ok(rpc::encode_append_response(
                        rpc::INCONSISTENT_CLUSTER_ID,
                        &AppendEntriesResponse::Conflict,
                    ));
                }
                Ok(match self.raft.append_entries(req).await {
                    Ok(resp) => rpc::encode_append_response(rpc::NONE, &resp),
                    Err(e) => {
                        tracing::warn!(error = %e, "the local Raft node cannot append");
                        rpc::encode_append_response(
                            rpc::UNKNOWN_SERVER_ERROR,
                            &AppendEntriesResponse::Conflict,
                        )
                    }
                })
            }
            rpc::RAFT_INSTALL_SNAPSHOT => {
                let (cluster_id, req) = rpc::decode_snapshot_request(body)?;
                let vote = req.vote;
                if !self.same_cluster(&cluster_id) {
                    return Ok(rpc::encode_snapshot_response(
                        rpc::INCONSISTENT_CLUSTER_ID,
                        &vote,
                        None,
                    ));
                }
                Ok(match self.raft.install_snapshot(req).await {
                    Ok(resp) => rpc::encode_snapshot_response(rpc::NONE, &resp.vote, None),
                    Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(m))) => {
                        rpc::encode_snapshot_response(rpc::SNAPSHOT_MISMATCH, &vote, Some(&m))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the local Raft node cannot install a snapshot");
                        rpc::encode_snapshot_response(rpc::UNKNOWN_SERVER_ERROR, &vote, None)
                    }
                })
            }
            other => Err(RpcError::UnknownKey(other)),
        }
    }

    fn same_cluster(&self, cluster_id: &str) -> bool {
        if cluster_id == &*self.cluster_id {
            return true;
        }
        tracing::error!(
            ours = %self.cluster_id,
            theirs = %cluster_id,
            "refused a Raft request from another cluster (INCONSISTENT_CLUSTER_ID)"
        );
        false
    }
}
