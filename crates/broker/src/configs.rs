//! Configs as the admin APIs see them: describe (values, sources, synonyms, types,
//! documentation) and alter (validated, then stored as metadata records).
//!
//! Precedence, highest first, as in Kafka: a topic's own override
//! (DYNAMIC_TOPIC_CONFIG), this broker's dynamic value (DYNAMIC_BROKER_CONFIG), the
//! cluster-wide dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG), `server.properties`
//! or `--override` (STATIC_BROKER_CONFIG), Kafka's default (DEFAULT_CONFIG). Only the
//! broker keys that are topic-config defaults can change at run time.

use std::collections::BTreeMap;
use std::sync::Arc;

use metadata::{ClusterImage, ConfigResource, ControllerError, TopicImage};
use storage::config::{topic_config_def, validate_value, ConfigDef, ConfigType, TOPIC_CONFIGS};
use storage::LogConfig;

use crate::config::{
    broker_config_def, is_dynamic_broker_key, topic_defaults_from, BrokerConfig, BROKER_CONFIGS,
};

/// Kafka's `ConfigSource` values.
pub mod source {
    pub const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
    pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    pub const STATIC_BROKER_CONFIG: i8 = 4;
    pub const DEFAULT_CONFIG: i8 = 5;
}

/// Kafka's `ConfigResource.Type` values.
pub mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
}

/// Kafka's `ConfigDef.Type` ids in DescribeConfigs v3+.
pub fn type_id(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
        ConfigType::Double => 6,
        ConfigType::List => 7,
    }
}

/// One described config.
#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub read_only: bool,
    pub synonyms: Vec<(String, Option<String>, i8)>,
    pub def: &'static ConfigDef,
}

fn dynamic<'a>(
    image: &'a ClusterImage,
    resource: &ConfigResource,
) -> Option<&'a BTreeMap<String, String>> {
    image.broker_configs.get(resource)
}

/// Broker keys with their values: static, then the dynamic cluster default, then
/// this broker's dynamic values.
pub fn effective_broker_raw(
    config: &BrokerConfig,
    image: &ClusterImage,
) -> BTreeMap<String, String> {
    let mut raw = config.raw.clone();
    for resource in [
        ConfigResource::BrokerDefault,
        ConfigResource::Broker(config.node_id),
    ] {
        if let Some(values) = dynamic(image, &resource) {
            raw.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    raw
}

/// Topic config defaults with dynamic broker configs applied.
pub fn topic_defaults(config: &BrokerConfig, image: &ClusterImage) -> BTreeMap<String, String> {
    if image.broker_configs.is_empty() {
        return config.topic_defaults.clone();
    }
    topic_defaults_from(&effective_broker_raw(config, image)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "dynamic broker configs are invalid; using the static ones");
        config.topic_defaults.clone()
    })
}

/// Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`: the broker keys that set
/// the same value, highest priority first (`log.retention.ms` before
/// `log.retention.minutes` before `log.retention.hours`).
fn broker_key_synonyms(key: &str) -> Vec<&str> {
    match key {
        "log.roll.ms" | "log.roll.hours" => vec!["log.roll.ms", "log.roll.hours"],
        "log.roll.jitter.ms" | "log.roll.jitter.hours" => {
            vec!["log.roll.jitter.ms", "log.roll.jitter.hours"]
        }
        "log.flush.interval.ms" => vec!["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => vec![
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
        other => vec![other],
    }
}

/// Kafka's `ConfigHelper.configSynonyms`: the values `name` and its synonyms have,
/// by source (this broker's dynamic values, the cluster-wide dynamic defaults, the
/// static config, the built-in defaults), each source listing the synonyms in
/// priority order; entries before the first one named `name` are dropped, so a key
/// whose only values are under a lower-priority synonym (`retention.ms` with only
/// `log.retention.hours=168`) has none, as in Kafka.
fn broker_synonyms(
    config: &BrokerConfig,
    image: &ClusterImage,
    node: Option<i32>,
    name: &str,
) -> Vec<(String, Option<String>, i8)> {
    let keys = broker_key_synonyms(name);
    let mut out = Vec::new();
    let mut add = |values: Option<&BTreeMap<String, String>>, source: i8| {
        for key in &keys {
            if let Some(v) = values.and_then(|m| m.get(*key)) {
                out.push((key.to_string(), Some(v.clone()), source));
            }
        }
    };
    add(
        node.and_then(|n| dynamic(image, &ConfigResource::Broker(n))),
        source::DYNAMIC_BROKER_CONFIG,
    );
    add(
        dynamic(image, &ConfigResource::BrokerDefault),
        source::DYNAMIC_DEFAULT_BROKER_CONFIG,
    );
    add(Some(&config.raw), source::STATIC_BROKER_CONFIG);
    for key in &keys {
        if let Some(def) = broker_config_def(key).filter(|d| !d.default.is_empty()) {
            out.push((
                key.to_string(),
                Some(def.default.to_string()),
                source::DEFAULT_CONFIG,
            ));
        }
    }
    let first = out
        .iter()
        .position(|(n, _, _)| n == name)
        .unwrap_or(out.len());
    out.split_off(first)
}

/// Every topic config of `topic` with its effective value, source and synonyms
/// (Kafka's `ConfigHelper.createTopicConfigEntry`): the topic's override if any,
/// then the synonyms of its primary broker key; the source is the first synonym's.
pub fn describe_topic(
    config: &BrokerConfig,
    image: &ClusterImage,
    topic: &TopicImage,
) -> Vec<ConfigEntry> {
    let defaults = topic_defaults(config, image);
    let effective = LogConfig::resolve(&topic.configs, &defaults)
        .map(|c| c.values)
        .unwrap_or_default();
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let value = effective
                .get(def.name)
                .cloned()
                .unwrap_or_else(|| def.default.to_string());
            let mut synonyms = Vec::new();
            if topic.configs.contains_key(def.name) {
                synonyms.push((
                    def.name.to_string(),
                    Some(value.clone()),
                    source::DYNAMIC_TOPIC_CONFIG,
                ));
            }
            if let Some(primary) = def.broker_synonyms.first() {
                synonyms.extend(broker_synonyms(
                    config,
                    image,
                    Some(config.node_id),
                    primary,
                ));
            }
            let source = synonyms
                .first()
                .map(|s| s.2)
                .unwrap_or(source::DEFAULT_CONFIG);
            ConfigEntry {
                name: def.name.to_string(),
                value: Some(value),
                source,
                read_only: false,
                synonyms,
                def,
            }
        })
        .collect()
}

/// Broker configs with their values and sources (Kafka's
/// `ConfigHelper.createBrokerConfigEntry`). For this broker (`node` is its id):
/// every key. For the cluster-wide default resource (name "", `node` is `None`):
/// only the keys set there, with only those synonyms, as Kafka lists them.
pub fn describe_broker(
    config: &BrokerConfig,
    image: &ClusterImage,
    node: Option<i32>,
) -> Vec<ConfigEntry> {
    let cluster_defaults = dynamic(image, &ConfigResource::BrokerDefault);
    BROKER_CONFIGS
        .iter()
        .chain(crate::cluster_config::CLUSTER_CONFIGS)
        .filter(|def| node.is_some() || cluster_defaults.is_some_and(|m| m.contains_key(def.name)))
        .map(|def| {
            let mut synonyms = broker_synonyms(config, image, node, def.name);
            if node.is_none() {
                synonyms.retain(|s| s.2 == source::DYNAMIC_DEFAULT_BROKER_CONFIG);
            }
            let value = match node {
                // The value in force: the first synonym named like the key.
                Some(_) => synonyms
                    .first()
                    .filter(|s| s.0 == def.name)
                    .and_then(|s| s.1.clone()),
                None => cluster_defaults.and_then(|m| m.get(def.name)).cloned(),
            };
            let source = synonyms
                .first()
                .map(|s| s.2)
                .unwrap_or(source::DEFAULT_CONFIG);
            ConfigEntry {
                name: def.name.to_string(),
                value,
                source,
                read_only: !is_dynamic_broker_key(def.name),
                synonyms,
                def,
            }
        })
        .collect()
}

/// Checks a full set of topic overrides.
pub fn validate_topic_overrides(
    config: &BrokerConfig,
    image: &ClusterImage,
    overrides: &BTreeMap<String, String>,
) -> Result<(), ControllerError> {
    for (name, value) in overrides {
        let def = topic_config_def(name).ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Unknown topic config name: {name}"))
        })?;
        validate_value(def, value).map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    }
    LogConfig::resolve(overrides, &topic_defaults(config, image))
        .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    Ok(())
}

/// Checks a full set of dynamic broker values.
pub fn validate_broker_overrides(
    config: &BrokerConfig,
    image: &ClusterImage,
    overrides: &BTreeMap<String, String>,
) -> Result<(), ControllerError> {
    let fixed: Vec<&str> = overrides
        .keys()
        .filter(|k| !is_dynamic_broker_key(k))
        .map(String::as_str)
        .collect();
    if !fixed.is_empty() {
        return Err(ControllerError::NotDynamic(fixed.join(", ")));
    }
    for (name, value) in overrides {
        let def = broker_config_def(name).ok_or_else(|| {
            ControllerError::InvalidConfig(format!("Unknown broker config name: {name}"))
        })?;
        validate_value(def, value).map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    }
    let mut raw = effective_broker_raw(config, image);
    raw.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    topic_defaults_from(&raw).map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
    Ok(())
}

/// The config definition a key has for a resource type (for list operations).
pub fn def_for(resource: &ConfigResource, name: &str) -> Option<&'static ConfigDef> {
    match resource {
        ConfigResource::Topic(_) => topic_config_def(name),
        _ => broker_config_def(name),
    }
}

/// A topic's effective log config: its overrides over the broker defaults.
pub fn resolve_log_config(
    defaults: &BTreeMap<String, String>,
    topic: &TopicImage,
) -> Arc<LogConfig> {
    match LogConfig::resolve(&topic.configs, defaults) {
        Ok(resolved) => Arc::new(resolved),
        Err(e) => {
            // Configs are validated before they are committed; a value that no
            // longer validates (a newer rule) falls back to the broker defaults.
            tracing::error!(topic = %topic.name, error = %e, "topic config is invalid; using broker defaults");
            Arc::new(LogConfig::resolve(&Default::default(), defaults).unwrap_or_default())
        }
    }
}
