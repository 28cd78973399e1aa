//! Request handlers, one file per API, and the registry that dispatches to them.
//!
//! Each handler declares the versions it serves ([`ApiSpec`]); ApiVersions answers
//! from this registry, so an API is advertised exactly when it has a handler.
//! Versions outside a handler's range: ApiVersions answers KIP-511's v0 error
//! response; every other API closes the connection, as Kafka does.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use protocol::frame::{self, RequestFrame};
use protocol::kafka::messages::ApiKey;
use protocol::kafka::protocol::{Decodable, Encodable};

use crate::broker::Broker;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod guards;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

/// The versions of one API this broker serves.
#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    /// Lowest version served.
    pub min: i16,
    pub max: i16,
    /// Lowest version advertised; below `min` only where Kafka does the same
    /// (Produce from 0, KAFKA-18659), and such requests are refused.
    pub advertised_min: i16,
}

impl ApiSpec {
    pub const fn new(key: ApiKey, min: i16, max: i16) -> ApiSpec {
        ApiSpec {
            key,
            min,
            max,
            advertised_min: min,
        }
    }
}

/// Every API served, in key order.
pub const APIS: &[ApiSpec] = &[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    offset_commit::API,
    offset_fetch::API,
    find_coordinator::API,
    join_group::API,
    heartbeat::API,
    leave_group::API,
    sync_group::API,
    describe_groups::API,
    list_groups::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    delete_records::API,
    init_producer_id::API,
    add_partitions_to_txn::API,
    add_offsets_to_txn::API,
    end_txn::API,
    write_txn_markers::API,
    txn_offset_commit::API,
    describe_configs::API,
    alter_configs::API,
    describe_log_dirs::API,
    create_partitions::API,
    delete_groups::API,
    elect_leaders::API,
    incremental_alter_configs::API,
    offset_delete::API,
    describe_cluster::API,
    describe_producers::API,
    describe_transactions::API,
    list_transactions::API,
];

pub fn spec_for(key: ApiKey) -> Option<&'static ApiSpec> {
    APIS.iter().find(|spec| spec.key == key)
}

/// What a handler wants done with the connection.
#[derive(Debug)]
pub enum Reply {
    /// A whole response frame, size prefix included.
    Frame(BytesMut),
    /// A whole response frame in chunks to write in order (Fetch: the records are
    /// shared with the log read, not copied).
    Chunks(Vec<Bytes>),
    /// No response (Produce with acks=0).
    Nothing,
    /// Close the connection (after the responses already queued).
    Close(String),
}

/// Per-request context.
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub peer: SocketAddr,
}

impl RequestContext {
    /// Encodes `body` as this request's response.
    pub fn respond<M: Encodable>(&self, body: &M) -> Reply {
        match frame::encode_response(self.api_key, self.api_version, self.correlation_id, body) {
            Ok(bytes) => Reply::Frame(bytes),
            Err(e) => {
                tracing::error!(error = %e, "failed to encode a response; closing the connection");
                Reply::Close(e.to_string())
            }
        }
    }

    /// Decodes the request body; a body that does not decode closes the connection.
    pub fn decode<M: Decodable>(&self, mut body: Bytes) -> Result<M, Reply> {
        M::decode(&mut body, self.api_version).map_err(|e| {
            tracing::debug!(api = ?self.api_key, version = self.api_version, peer = %self.peer, error = %e, "malformed request body");
            Reply::Close(format!("malformed {:?} v{} request: {e}", self.api_key, self.api_version))
        })
    }
}

/// Routes one request frame to its handler.
pub async fn dispatch(broker: &Arc<Broker>, request: RequestFrame, peer: SocketAddr) -> Reply {
    let api_key = request.api_key;
    let api_version = request.api_version();
    let ctx = RequestContext {
        broker: Arc::clone(broker),
        api_key,
        api_version,
        correlation_id: request.correlation_id(),
        client_id: request.header.client_id.as_ref().map(|s| s.to_string()),
        peer,
    };
    let Some(spec) = spec_for(api_key) else {
        return Reply::Close(format!("API {api_key:?} is not supported"));
    };
    if api_version < spec.min || api_version > spec.max {
        if api_key == ApiKey::ApiVersions {
            return api_versions::unsupported_version(&ctx);
        }
        return Reply::Close(format!(
            "{api_key:?} v{api_version} is not supported (v{}-{})",
            spec.min, spec.max
        ));
    }
    let body = request.body;
    match api_key {
        ApiKey::ApiVersions => api_versions::handle(&ctx, body),
        ApiKey::Metadata => metadata::handle(&ctx, body).await,
        ApiKey::CreateTopics => create_topics::handle(&ctx, body).await,
        ApiKey::DeleteTopics => delete_topics::handle(&ctx, body).await,
        ApiKey::Produce => produce::handle(&ctx, body).await,
        ApiKey::Fetch => fetch::handle(&ctx, body).await,
        ApiKey::ListOffsets => list_offsets::handle(&ctx, body).await,
        ApiKey::FindCoordinator => find_coordinator::handle(&ctx, body).await,
        ApiKey::JoinGroup => join_group::handle(&ctx, body).await,
        ApiKey::SyncGroup => sync_group::handle(&ctx, body).await,
        ApiKey::Heartbeat => heartbeat::handle(&ctx, body).await,
        ApiKey::LeaveGroup => leave_group::handle(&ctx, body).await,
        ApiKey::OffsetCommit => offset_commit::handle(&ctx, body).await,
        ApiKey::OffsetFetch => offset_fetch::handle(&ctx, body).await,
        ApiKey::ListGroups => list_groups::handle(&ctx, body).await,
        ApiKey::DescribeGroups => describe_groups::handle(&ctx, body).await,
        ApiKey::DeleteGroups => delete_groups::handle(&ctx, body).await,
        ApiKey::OffsetDelete => offset_delete::handle(&ctx, body).await,
        ApiKey::DeleteRecords => delete_records::handle(&ctx, body).await,
        ApiKey::DescribeConfigs => describe_configs::handle(&ctx, body).await,
        ApiKey::AlterConfigs => alter_configs::handle(&ctx, body).await,
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs::handle(&ctx, body).await,
        ApiKey::CreatePartitions => create_partitions::handle(&ctx, body).await,
        ApiKey::DescribeLogDirs => describe_log_dirs::handle(&ctx, body).await,
        ApiKey::DescribeCluster => describe_cluster::handle(&ctx, body).await,
        ApiKey::ElectLeaders => elect_leaders::handle(&ctx, body).await,
        ApiKey::InitProducerId => init_producer_id::handle(&ctx, body).await,
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn::handle(&ctx, body).await,
        ApiKey::AddOffsetsToTxn => add_offsets_to_txn::handle(&ctx, body).await,
        ApiKey::EndTxn => end_txn::handle(&ctx, body).await,
        ApiKey::TxnOffsetCommit => txn_offset_commit::handle(&ctx, body).await,
        ApiKey::WriteTxnMarkers => write_txn_markers::handle(&ctx, body).await,
        ApiKey::DescribeProducers => describe_producers::handle(&ctx, body).await,
        ApiKey::DescribeTransactions => describe_transactions::handle(&ctx, body).await,
        ApiKey::ListTransactions => list_transactions::handle(&ctx, body).await,
        other => Reply::Close(format!("API {other:?} has no handler")),
    }
}
