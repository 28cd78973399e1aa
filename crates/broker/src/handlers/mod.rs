//! Request handlers, one file per API, and the registry that dispatches to them.
//!
//! Each handler declares the versions it serves ([`ApiSpec`]) and is listed once,
//! in `registry!`: ApiVersions answers from that list and dispatch routes by it,
//! so an API is advertised exactly when it has a handler.
//! Versions outside a handler's range: ApiVersions answers KIP-511's v0 error
//! response; every other API closes the connection, as Kafka does.
//! The versions Kafka 4 removed (KIP-896) and Kafka 3.9 served are served too, unless
//! `legacy.api.versions.enable=false`: [`legacy`] bridges them to the handler's
//! lowest version, so the handlers see current requests only.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use protocol::frame::{self, RequestFrame};
use protocol::kafka::messages::ApiKey;
use protocol::kafka::protocol::{Decodable, Encodable};

use crate::broker::Broker;
pub use crate::network::answers::Later;

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
pub mod legacy;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
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
    /// Lowest version Kafka 3.9 served, below `min` where Kafka 4 raised the floor
    /// (KIP-896); served through [`legacy`] when `legacy.api.versions.enable`.
    pub legacy_min: i16,
}

impl ApiSpec {
    pub const fn new(key: ApiKey, min: i16, max: i16) -> ApiSpec {
        ApiSpec {
            key,
            min,
            max,
            advertised_min: min,
            legacy_min: min,
        }
    }

    /// The same spec with Kafka 3.9's floor.
    pub const fn with_legacy_min(mut self, legacy_min: i16) -> ApiSpec {
        self.legacy_min = legacy_min;
        self
    }

    /// The lowest version served: Kafka 3.9's or Kafka 4's floor.
    pub fn served_min(&self, legacy_enabled: bool) -> i16 {
        if legacy_enabled {
            self.legacy_min
        } else {
            self.min
        }
    }

    /// The lowest version advertised in ApiVersions.
    pub fn advertised_min(&self, legacy_enabled: bool) -> i16 {
        self.advertised_min.min(self.served_min(legacy_enabled))
    }
}

/// The one list of the APIs served, in key order: both [`APIS`] (what
/// ApiVersions advertises) and the routing in [`dispatch`] are built from it, so a
/// handler cannot be advertised without being routed, or the reverse. (The
/// `pub mod` lines at the top only declare the files, for the compiler and rustfmt.)
macro_rules! registry {
    ($($module:ident),* $(,)?) => {
        /// Every API served, in key order.
        pub const APIS: &[ApiSpec] = &[$(self::$module::API),*];

        /// Runs the handler registered for `ctx.api_key`.
        async fn route(ctx: &RequestContext, body: Bytes) -> Reply {
            $(
                if ctx.api_key == self::$module::API.key {
                    return self::$module::handle(ctx, body).await;
                }
            )*
            Reply::Close(format!("API {:?} has no handler", ctx.api_key))
        }
    };
}

registry! {
    produce,
    fetch,
    list_offsets,
    metadata,
    offset_commit,
    offset_fetch,
    find_coordinator,
    join_group,
    heartbeat,
    leave_group,
    sync_group,
    describe_groups,
    list_groups,
    api_versions,
    create_topics,
    delete_topics,
    delete_records,
    init_producer_id,
    offset_for_leader_epoch,
    add_partitions_to_txn,
    add_offsets_to_txn,
    end_txn,
    write_txn_markers,
    txn_offset_commit,
    describe_configs,
    alter_configs,
    describe_log_dirs,
    create_partitions,
    delete_groups,
    elect_leaders,
    incremental_alter_configs,
    offset_delete,
    describe_cluster,
    describe_producers,
    describe_transactions,
    list_transactions,
}

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
    /// The reply once this has waited (Produce: for the group commit and the ISR);
    /// the connection may handle later Produce requests meanwhile
    /// (`network::answers`).
    Later(Later),
}

/// Per-request context.
#[derive(Clone)]
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
    let served_min = spec.served_min(broker.config.legacy_api_versions_enable);
    if api_version < served_min || api_version > spec.max {
        if api_key == ApiKey::ApiVersions {
            return api_versions::unsupported_version(&ctx);
        }
        return Reply::Close(format!(
            "{api_key:?} v{api_version} is not supported (v{served_min}-{})",
            spec.max
        ));
    }
    if api_version < spec.min {
        return legacy::handle(&ctx, spec.min, request.body).await;
    }
    route(&ctx, request.body).await
}
