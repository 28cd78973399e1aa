//! OffsetForLeaderEpoch (key 23): where a leader epoch ends in the leader's log.
//!
//! Followers ask it to truncate by epoch (KIP-101/279) when the leader cannot
//! answer a diverging epoch in Fetch; consumers ask it to validate their
//! position after a leader epoch change (KIP-320). Per partition, as Kafka's
//! `ReplicaManager.lastOffsetForLeaderEpoch` and `Partition.lastOffsetForLeaderEpoch`:
//! - not hosted here: NOT_LEADER_OR_FOLLOWER when the metadata knows the
//!   partition, else UNKNOWN_TOPIC_OR_PARTITION;
//! - `current_leader_epoch` -1 is not checked; older than ours
//!   FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH; then only the leader
//!   answers (NOT_LEADER_OR_FOLLOWER);
//! - the answer is the leader epoch cache's `(epoch, end offset)`: the latest
//!   epoch ends at the log end offset, an older one where the next one starts,
//!   one below every entry where the first starts, and one above the latest is
//!   UNDEFINED (-1, -1).
//!
//! `replica_id` (v3+: -1 a consumer, -2 a debugging tool, ≥ 0 a follower) only
//! chooses Kafka's ACL check (CLUSTER_ACTION or DESCRIBE); there are no ACLs
//! here, so every caller gets the same answer. Kafka 4 serves v2-4 (KIP-896
//! removed v0-1).

use bytes::Bytes;
use protocol::kafka::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use protocol::kafka::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use protocol::{ErrorCode, TopicPartition};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::replication_error_code;

pub const API: ApiSpec = ApiSpec::new(ApiKey::OffsetForLeaderEpoch, 2, 4);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: OffsetForLeaderEpochRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let tp = TopicPartition::new(topic.topic.as_str(), p.partition);
                    let Some(partition) = broker.replicas.get(&tp) else {
                        let code = if image.partition(&topic.topic, p.partition).is_some() {
                            ErrorCode::NotLeaderOrFollower
                        } else {
                            ErrorCode::UnknownTopicOrPartition
                        };
                        return base.with_error_code(code.code());
                    };
                    // Kafka's NO_PARTITION_LEADER_EPOCH: the only "no epoch" value.
                    let current = (p.current_leader_epoch != -1).then_some(p.current_leader_epoch);
                    match partition.last_offset_for_leader_epoch(current, p.leader_epoch) {
                        Ok(end) => base
                            .with_error_code(ErrorCode::None.code())
                            .with_leader_epoch(end.leader_epoch)
                            .with_end_offset(end.end_offset),
                        Err(e) => base.with_error_code(replication_error_code(&e).code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    ctx.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
