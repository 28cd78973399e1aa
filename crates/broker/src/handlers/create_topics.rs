//! CreateTopics (key 19): validate and create topics, with per-topic errors.
//!
//! `validate_only` runs every check and answers as if created, creating nothing.
//! From v5 a created topic's answer lists its partition count, replication factor
//! and every effective config with its source, as Kafka does.

use std::collections::BTreeMap;

use bytes::Bytes;
use metadata::{ControllerError, CreateTopicOutcome, TopicSpec};
use protocol::kafka::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use protocol::kafka::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use storage::config::TOPIC_CONFIGS;

use super::{guards, ApiSpec, Reply, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::CreateTopics, 2, 7).with_legacy_min(0);

/// Kafka's `ConfigSource` values.
pub mod config_source {
    pub const TOPIC_CONFIG: i8 = 1;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: CreateTopicsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    // Internal topics are created only by the broker (guards.rs); one that exists
    // already is left to the controller's TOPIC_ALREADY_EXISTS.
    let image = ctx.broker.metadata.image();
    let refused: Vec<Option<ControllerError>> = request
        .topics
        .iter()
        .map(|t| match image.topic(&t.name) {
            Some(_) => None,
            None => guards::refuse_internal(&ctx.broker, &t.name, "Creating").err(),
        })
        .collect();
    let specs: Vec<TopicSpec> = request
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, refused)| refused.is_none())
        .map(|(t, _)| TopicSpec {
            name: t.name.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .filter(|c| !guards::is_removed_topic_config(&t.name, c.name.as_str()))
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let mut decided = ctx
        .broker
        .controller
        .create_topics(specs, request.validate_only)
        .await
        .into_iter();
    let outcomes: Vec<CreateTopicOutcome<ControllerError>> = request
        .topics
        .iter()
        .zip(refused)
        .map(|(t, refused)| match refused {
            Some(error) => CreateTopicOutcome {
                name: t.name.to_string(),
                result: Err(error),
            },
            None => decided.next().expect("one outcome per topic passed on"),
        })
        .collect();
    let topics = outcomes
        .into_iter()
        .map(|outcome| {
            let name = TopicName(StrBytes::from_string(outcome.name.clone()));
            match outcome.result.map_err(|e| controller_error(&e)) {
                Ok(created) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(created.topic_id)
                    .with_error_code(ErrorCode::None.code())
                    .with_num_partitions(created.num_partitions)
                    .with_replication_factor(created.replication_factor)
                    .with_configs(Some(effective_configs(&ctx.broker, &created.configs))),
                Err((code, message)) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_configs(None),
            }
        })
        .collect();
    ctx.respond(&CreateTopicsResponse::default().with_topics(topics))
}

/// Every topic config with its effective value and where it came from.
pub fn effective_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    let defaults = storage::LogConfig::resolve(&BTreeMap::new(), &broker.config.topic_defaults)
        .unwrap_or_default();
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let from_broker = def
                .broker_synonyms
                .iter()
                .any(|k| broker.config.raw.contains_key(*k));
            let (value, source) = match overrides.get(def.name) {
                Some(value) => (value.clone(), config_source::TOPIC_CONFIG),
                None => {
                    let value = defaults
                        .values
                        .get(def.name)
                        .cloned()
                        .unwrap_or_else(|| def.default.to_string());
                    (
                        value,
                        if from_broker {
                            config_source::STATIC_BROKER_CONFIG
                        } else {
                            config_source::DEFAULT_CONFIG
                        },
                    )
                }
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(false)
                .with_config_source(source)
                .with_is_sensitive(false)
        })
        .collect()
}
