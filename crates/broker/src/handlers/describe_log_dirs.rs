//! DescribeLogDirs (key 35): the log dirs and the size of each partition in them.

use std::collections::BTreeMap;

use bytes::Bytes;
use protocol::kafka::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use protocol::kafka::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use protocol::kafka::protocol::StrBytes;

use super::{ApiSpec, Reply, RequestContext};

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeLogDirs, 1, 4).with_legacy_min(0);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeLogDirsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let wanted: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.to_string(), *p)))
            .collect()
    });
    // dir -> topic -> [(partition, size)]
    let mut by_dir: BTreeMap<String, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
    for dir in ctx.broker.replicas.log_dirs() {
        by_dir.entry(dir.display().to_string()).or_default();
    }
    for partition in ctx.broker.replicas.partitions() {
        let tp = partition.topic_partition();
        if let Some(wanted) = &wanted {
            if !wanted
                .iter()
                .any(|(t, p)| t.as_str() == &*tp.topic && *p == tp.partition)
            {
                continue;
            }
        }
        let (dir, size) = partition.log_dir_and_size();
        let (dir, size) = (
            dir.map(|p| p.display().to_string()).unwrap_or_default(),
            size as i64,
        );
        by_dir
            .entry(dir)
            .or_default()
            .entry(tp.topic.to_string())
            .or_default()
            .push((tp.partition, size));
    }
    // An offline log dir answers KAFKA_STORAGE_ERROR, as Kafka's does.
    let offline: Vec<String> = ctx
        .broker
        .log_manager
        .dir_states()
        .into_iter()
        .filter(|(_, reason)| reason.is_some())
        .map(|(path, _)| path.display().to_string())
        .collect();
    let results = by_dir
        .into_iter()
        .map(|(dir, topics)| {
            if offline.contains(&dir) {
                return DescribeLogDirsResult::default()
                    .with_error_code(protocol::ErrorCode::KafkaStorageError.code())
                    .with_log_dir(StrBytes::from_string(dir));
            }
            let topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, size)| {
                                    DescribeLogDirsPartition::default()
                                        .with_partition_index(index)
                                        .with_partition_size(size)
                                        .with_offset_lag(0)
                                        .with_is_future_key(false)
                                })
                                .collect(),
                        )
                })
                .collect();
            // As Kafka's FileStore total and usable space; -1 (unknown, the
            // field's default) when the file system cannot be asked.
            let (total, usable) = match rustix::fs::statvfs(dir.as_str()) {
                Ok(fs) => (
                    fs.f_blocks.saturating_mul(fs.f_frsize) as i64,
                    fs.f_bavail.saturating_mul(fs.f_frsize) as i64,
                ),
                Err(_) => (-1, -1),
            };
            DescribeLogDirsResult::default()
                .with_error_code(0)
                .with_log_dir(StrBytes::from_string(dir))
                .with_topics(topics)
                .with_total_bytes(total)
                .with_usable_bytes(usable)
        })
        .collect();
    ctx.respond(
        &DescribeLogDirsResponse::default()
            .with_error_code(0)
            .with_results(results),
    )
}
