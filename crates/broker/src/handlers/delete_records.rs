//! DeleteRecords (key 21): move partitions' log start offsets forward; the answer
//! is each partition's new low watermark.

use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use protocol::kafka::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use protocol::{ErrorCode, TopicPartition};

use super::{ApiSpec, Reply, RequestContext};
use crate::errors::replication_error_code;
use crate::runtime::blocking;

pub const API: ApiSpec = ApiSpec::new(ApiKey::DeleteRecords, 0, 2);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DeleteRecordsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = Arc::clone(&ctx.broker);
    let topics = request.topics.clone();
    let results = blocking(move || {
        topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let base = DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(-1);
                        // Kafka: "Cannot delete records of internal topic".
                        if metadata::topic_name::is_internal(&t.name)
                            && !broker.config.internal_topics_modification_enable
                        {
                            return base.with_error_code(ErrorCode::InvalidTopicException.code());
                        }
                        let Some(partition) = broker
                            .replicas
                            .get(&TopicPartition::new(t.name.as_str(), p.partition_index))
                        else {
                            return base.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                        };
                        match partition.delete_records(p.offset) {
                            Ok(low_watermark) => {
                                base.with_low_watermark(low_watermark).with_error_code(0)
                            }
                            Err(e) => base.with_error_code(replication_error_code(&e).code()),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect::<Vec<_>>()
    })
    .await;
    ctx.respond(&DeleteRecordsResponse::default().with_topics(results))
}
