//! ElectLeaders (key 43): every partition already has its preferred (and only)
//! replica as leader, so each answer is ELECTION_NOT_NEEDED, as Kafka answers
//! when there is nothing to do; a request for all partitions lists none.

use bytes::Bytes;
use protocol::kafka::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use protocol::kafka::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::ElectLeaders, 0, 2);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ElectLeadersRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let image = ctx.broker.metadata.image();
    let results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let topic = image.topic(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let known = topic.is_some_and(|topic| topic.partitions.contains_key(&p));
                    let (code, message) = if known {
                        (
                            ErrorCode::ElectionNotNeeded,
                            "Leader election not needed for topic partition.",
                        )
                    } else {
                        (
                            ErrorCode::UnknownTopicOrPartition,
                            "The partition does not exist.",
                        )
                    };
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_static_str(message)))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(partitions)
        })
        .collect();
    ctx.respond(
        &ElectLeadersResponse::default()
            .with_error_code(0)
            .with_replica_election_results(results),
    )
}
