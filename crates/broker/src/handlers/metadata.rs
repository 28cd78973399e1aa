//! Metadata (key 3): brokers, the cluster id, the controller, and topics with their
//! partitions, leaders, leader epochs, replicas and ISR.
//!
//! Topic lists: `null` (v1+) or empty (v0) means every topic; an empty list from v1
//! means none. Topics may be named or, from v10, given by id (unknown id:
//! UNKNOWN_TOPIC_ID). A missing topic is created when the request allows it (v4+,
//! always before) and `auto.create.topics.enable` is on; unlike Kafka's first answer
//! (UNKNOWN_TOPIC_OR_PARTITION while creation is in flight) the topic is created
//! before answering and returned at once, which clients treat as the later answer.

use std::collections::BTreeSet;

use bytes::Bytes;
use metadata::topic_name;
use metadata::{ClusterImage, TopicImage};
use protocol::kafka::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use protocol::kafka::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use uuid::Uuid;

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::Metadata, 0, 13);

/// Kafka's "authorized operations not requested" marker.
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

enum Wanted {
    Name(String),
    Id(Uuid),
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: MetadataRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let version = ctx.api_version;
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let wanted: Vec<Wanted> = request
        .topics
        .iter()
        .flatten()
        .map(|t| match &t.name {
            Some(name) => Wanted::Name(name.to_string()),
            None => Wanted::Id(t.topic_id),
        })
        .collect();
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && ctx.broker.config.auto_create_topics_enable;
    let mut image = ctx.broker.metadata.image();
    if !all_topics && allow_auto_create {
        let missing: BTreeSet<String> = wanted
            .iter()
            .filter_map(|w| match w {
                Wanted::Name(name)
                    if image.topic(name).is_none()
                        && topic_name::validate(name).is_ok()
                        && !topic_name::is_internal(name) =>
                {
                    Some(name.clone())
                }
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            ctx.broker
                .controller
                .auto_create_topics(missing.into_iter().collect())
                .await;
            image = ctx.broker.metadata.image();
        }
    }
    let include_ops = version >= 8 && request.include_topic_authorized_operations;
    let topics: Vec<MetadataResponseTopic> = if all_topics {
        image
            .topics
            .values()
            .map(|t| topic_entry(&image, t, include_ops))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| match w {
                Wanted::Name(name) => match image.topic(name) {
                    Some(topic) => topic_entry(&image, topic, include_ops),
                    None => missing_topic(Some(name), Uuid::nil(), name_error(name)),
                },
                Wanted::Id(id) => match image.topic_by_id(id) {
                    Some(topic) => topic_entry(&image, topic, include_ops),
                    None => missing_topic(None, *id, ErrorCode::UnknownTopicId),
                },
            })
            .collect()
    };
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let endpoint = b.endpoints.first()?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    // Metadata v8-10 can ask for the cluster's operations (librdkafka's
    // DescribeCluster does); no authorizer, so all of them.
    let cluster_ops =
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            super::describe_cluster::CLUSTER_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_string(ctx.broker.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.broker.node_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops);
    ctx.respond(&response)
}

fn name_error(name: &str) -> ErrorCode {
    if topic_name::validate(name).is_err() {
        ErrorCode::InvalidTopicException
    } else {
        ErrorCode::UnknownTopicOrPartition
    }
}

fn missing_topic(name: Option<&str>, id: Uuid, error: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n.to_string()))))
        .with_topic_id(id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

fn topic_entry(
    image: &ClusterImage,
    topic: &TopicImage,
    include_ops: bool,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .values()
        .map(|p| {
            let leader_alive = image.brokers.contains_key(&p.leader);
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| !image.brokers.contains_key(r))
                .map(|&r| BrokerId(r))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(
                    if leader_alive {
                        ErrorCode::None
                    } else {
                        ErrorCode::LeaderNotAvailable
                    }
                    .code(),
                )
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(if leader_alive { p.leader } else { -1 }))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    // No authorizer: every topic operation is allowed (READ, WRITE, CREATE, DELETE,
    // ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS as AclOperation bits).
    let operations = if include_ops {
        TOPIC_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(
            topic.name.to_string(),
        ))))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic_name::is_internal(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(operations)
}
