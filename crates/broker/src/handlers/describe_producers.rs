//! DescribeProducers (key 61): the producers a partition knows, with their last
//! sequence and the start of any open transaction (what holds back the LSO).

use bytes::Bytes;
use protocol::kafka::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use protocol::kafka::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use protocol::{ErrorCode, TopicPartition};

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeProducers, 0, 0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeProducersRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let Some(partition) = ctx
                        .broker
                        .replicas
                        .get(&TopicPartition::new(t.name.as_str(), index))
                    else {
                        return PartitionResponse::default()
                            .with_partition_index(index)
                            .with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                    };
                    let producers = partition
                        .producers()
                        .iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.producer_epoch))
                                .with_last_sequence(p.last_seq().unwrap_or(-1))
                                .with_last_timestamp(p.last_timestamp)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    p.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                    PartitionResponse::default()
                        .with_partition_index(index)
                        .with_error_code(0)
                        .with_active_producers(producers)
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ctx.respond(&DescribeProducersResponse::default().with_topics(topics))
}
