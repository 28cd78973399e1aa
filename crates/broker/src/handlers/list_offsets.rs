//! ListOffsets (key 2): offsets by timestamp.
//!
//! -1 latest (the high watermark), -2 earliest (log start), -3 the record with the
//! largest timestamp, -4 earliest local (= earliest, no tiering), -5 latest tiered
//! (-1, no tiering); any other negative value: UNSUPPORTED_VERSION. A real
//! timestamp finds the first record at or after it through the time index. Lookups
//! that land at or past the high watermark answer -1/-1, as Kafka does.

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use protocol::kafka::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use protocol::{ErrorCode, TopicPartition};
use replication::IsolationLevel;

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::replication_error_code;
use crate::runtime::blocking;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::ListOffsets, 1, 10).with_legacy_min(0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ListOffsetsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let isolation = IsolationLevel::from_i8(request.isolation_level);
    let version = ctx.api_version;
    let broker = Arc::clone(&ctx.broker);
    let topics = request.topics.clone();
    let responses = blocking(move || {
        topics
            .iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let base = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1);
                        let tp = TopicPartition::new(topic.name.as_str(), p.partition_index);
                        let Some(partition) = broker.replicas.get(&tp) else {
                            return base.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                        };
                        let epoch = (version >= 4 && p.current_leader_epoch >= 0)
                            .then_some(p.current_leader_epoch);
                        match partition.list_offset(p.timestamp, isolation, epoch) {
                            Ok(Some((offset, timestamp, leader_epoch))) => base
                                .with_error_code(ErrorCode::None.code())
                                .with_offset(offset)
                                .with_timestamp(timestamp)
                                .with_leader_epoch(leader_epoch),
                            Ok(None) => base.with_error_code(ErrorCode::UnsupportedVersion.code()),
                            Err(e) => base.with_error_code(replication_error_code(&e).code()),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    })
    .await;
    ctx.respond(&ListOffsetsResponse::default().with_topics(responses))
}
