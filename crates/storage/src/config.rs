//! Topic-level log configuration: Kafka's topic config keys, their types, defaults,
//! valid ranges and the broker keys that supply their defaults (synonyms).
//!
//! A topic's effective config is: the topic's own overrides, else the broker's value
//! for the synonym, else Kafka's default. [`LogConfig::resolve`] does that merge and
//! validates every value; the table [`TOPIC_CONFIGS`] is also what DescribeConfigs
//! lists.

use std::collections::BTreeMap;

/// A config value's type, as Kafka's `ConfigDef.Type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::String => "STRING",
            ConfigType::List => "LIST",
        }
    }
}

/// What values a config accepts beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    Any,
    /// Inclusive range for Int/Long.
    AtLeast(i64),
    Between(i64, i64),
    /// Inclusive range for Double.
    DoubleBetween(f64, f64),
    /// One of these strings (case-sensitive, as Kafka).
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these strings, at least one.
    ListOf(&'static [&'static str]),
}

/// One topic config key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    pub default: &'static str,
    pub validator: Validator,
    /// Broker keys that set this config's default, highest priority first.
    pub broker_synonyms: &'static [&'static str],
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// Kafka's topic configs. Keep sorted by name.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef { name: "cleanup.policy", kind: ConfigType::List, default: "delete", validator: Validator::ListOf(&["compact", "delete"]), broker_synonyms: &["log.cleanup.policy"], doc: "What happens to old segments: delete them, compact them (keep the latest value per key), or both." },
    ConfigDef { name: "compression.gzip.level", kind: ConfigType::Int, default: "-1", validator: Validator::Between(-1, 9), broker_synonyms: &["compression.gzip.level"], doc: "The gzip level used when compression.type is gzip." },
    ConfigDef { name: "compression.lz4.level", kind: ConfigType::Int, default: "9", validator: Validator::Between(1, 17), broker_synonyms: &["compression.lz4.level"], doc: "The lz4 level used when compression.type is lz4." },
    ConfigDef { name: "compression.type", kind: ConfigType::String, default: "producer", validator: Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), broker_synonyms: &["compression.type"], doc: "The final compression of the topic's batches; 'producer' keeps what the producer sent." },
    ConfigDef { name: "compression.zstd.level", kind: ConfigType::Int, default: "3", validator: Validator::Between(-131072, 22), broker_synonyms: &["compression.zstd.level"], doc: "The zstd level used when compression.type is zstd." },
    ConfigDef { name: "delete.retention.ms", kind: ConfigType::Long, default: "86400000", validator: Validator::AtLeast(0), broker_synonyms: &["log.cleaner.delete.retention.ms"], doc: "How long tombstones are kept in compacted topics." },
    ConfigDef { name: "file.delete.delay.ms", kind: ConfigType::Long, default: "60000", validator: Validator::AtLeast(0), broker_synonyms: &["log.segment.delete.delay.ms"], doc: "How long a deleted segment's files stay before removal." },
    ConfigDef { name: "flush.messages", kind: ConfigType::Long, default: LONG_MAX, validator: Validator::AtLeast(1), broker_synonyms: &["log.flush.interval.messages"], doc: "fsync the log after this many messages." },
    ConfigDef { name: "flush.ms", kind: ConfigType::Long, default: LONG_MAX, validator: Validator::AtLeast(0), broker_synonyms: &["log.flush.interval.ms"], doc: "fsync the log at least this often." },
    ConfigDef { name: "follower.replication.throttled.replicas", kind: ConfigType::List, default: "", validator: Validator::Any, broker_synonyms: &[], doc: "Replicas whose replication is throttled on the follower side." },
    ConfigDef { name: "index.interval.bytes", kind: ConfigType::Int, default: "4096", validator: Validator::AtLeast(0), broker_synonyms: &["log.index.interval.bytes"], doc: "Bytes of log between offset index entries." },
    ConfigDef { name: "leader.replication.throttled.replicas", kind: ConfigType::List, default: "", validator: Validator::Any, broker_synonyms: &[], doc: "Replicas whose replication is throttled on the leader side." },
    ConfigDef { name: "local.retention.bytes", kind: ConfigType::Long, default: "-2", validator: Validator::AtLeast(-2), broker_synonyms: &["log.local.retention.bytes"], doc: "Local retention for tiered topics (-2: use retention.bytes)." },
    ConfigDef { name: "local.retention.ms", kind: ConfigType::Long, default: "-2", validator: Validator::AtLeast(-2), broker_synonyms: &["log.local.retention.ms"], doc: "Local retention for tiered topics (-2: use retention.ms)." },
    ConfigDef { name: "max.compaction.lag.ms", kind: ConfigType::Long, default: LONG_MAX, validator: Validator::AtLeast(1), broker_synonyms: &["log.cleaner.max.compaction.lag.ms"], doc: "The longest a message stays uncompacted." },
    ConfigDef { name: "max.message.bytes", kind: ConfigType::Int, default: "1048588", validator: Validator::AtLeast(0), broker_synonyms: &["message.max.bytes"], doc: "The largest record batch size allowed." },
    ConfigDef { name: "message.timestamp.after.max.ms", kind: ConfigType::Long, default: "3600000", validator: Validator::AtLeast(0), broker_synonyms: &["log.message.timestamp.after.max.ms"], doc: "How far in the future a CreateTime timestamp may be." },
    ConfigDef { name: "message.timestamp.before.max.ms", kind: ConfigType::Long, default: LONG_MAX, validator: Validator::AtLeast(0), broker_synonyms: &["log.message.timestamp.before.max.ms"], doc: "How far in the past a CreateTime timestamp may be." },
    ConfigDef { name: "message.timestamp.type", kind: ConfigType::String, default: "CreateTime", validator: Validator::OneOf(&["CreateTime", "LogAppendTime"]), broker_synonyms: &["log.message.timestamp.type"], doc: "Whether records keep the producer's timestamp or get the broker's append time." },
    ConfigDef { name: "min.cleanable.dirty.ratio", kind: ConfigType::Double, default: "0.5", validator: Validator::DoubleBetween(0.0, 1.0), broker_synonyms: &["log.cleaner.min.cleanable.ratio"], doc: "The dirty share of a log that makes it eligible for cleaning." },
    ConfigDef { name: "min.compaction.lag.ms", kind: ConfigType::Long, default: "0", validator: Validator::AtLeast(0), broker_synonyms: &["log.cleaner.min.compaction.lag.ms"], doc: "The shortest a message stays uncompacted." },
    ConfigDef { name: "min.insync.replicas", kind: ConfigType::Int, default: "1", validator: Validator::AtLeast(1), broker_synonyms: &["min.insync.replicas"], doc: "Replicas that must acknowledge an acks=all write." },
    ConfigDef { name: "preallocate", kind: ConfigType::Boolean, default: "false", validator: Validator::Any, broker_synonyms: &["log.preallocate"], doc: "Preallocate segment files." },
    ConfigDef { name: "remote.storage.enable", kind: ConfigType::Boolean, default: "false", validator: Validator::Any, broker_synonyms: &[], doc: "Tiered storage (not supported: must stay false)." },
    ConfigDef { name: "retention.bytes", kind: ConfigType::Long, default: "-1", validator: Validator::Any, broker_synonyms: &["log.retention.bytes"], doc: "The most bytes a partition keeps before deleting old segments (-1: no limit)." },
    ConfigDef { name: "retention.ms", kind: ConfigType::Long, default: "604800000", validator: Validator::AtLeast(-1), broker_synonyms: &["log.retention.ms"], doc: "How long segments are kept (-1: forever)." },
    ConfigDef { name: "segment.bytes", kind: ConfigType::Int, default: "1073741824", validator: Validator::AtLeast(14), broker_synonyms: &["log.segment.bytes"], doc: "The size of one segment file." },
    ConfigDef { name: "segment.index.bytes", kind: ConfigType::Int, default: "10485760", validator: Validator::AtLeast(4), broker_synonyms: &["log.index.size.max.bytes"], doc: "The largest offset index a segment has." },
    ConfigDef { name: "segment.jitter.ms", kind: ConfigType::Long, default: "0", validator: Validator::AtLeast(0), broker_synonyms: &["log.roll.jitter.ms"], doc: "Random jitter subtracted from segment.ms." },
    ConfigDef { name: "segment.ms", kind: ConfigType::Long, default: "604800000", validator: Validator::AtLeast(1), broker_synonyms: &["log.roll.ms"], doc: "Roll a new segment after this long even if not full." },
    ConfigDef { name: "unclean.leader.election.enable", kind: ConfigType::Boolean, default: "false", validator: Validator::Any, broker_synonyms: &["unclean.leader.election.enable"], doc: "Let an out-of-sync replica become leader (losing data)." },
];

/// The definition of a topic config key.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// A config value that does not fit its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Unknown topic config name: {0}")]
    Unknown(String),
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

fn invalid(def: &ConfigDef, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: def.name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Checks `value` against `def`'s type and validator.
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let trimmed = value.trim();
    match def.kind {
        ConfigType::Boolean => {
            if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                return Err(invalid(
                    def,
                    value,
                    "Expected value to be either true or false",
                ));
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let parsed: i64 = if def.kind == ConfigType::Int {
                trimmed
                    .parse::<i32>()
                    .map(i64::from)
                    .map_err(|_| invalid(def, value, "Not a number of type INT"))?
            } else {
                trimmed
                    .parse::<i64>()
                    .map_err(|_| invalid(def, value, "Not a number of type LONG"))?
            };
            match def.validator {
                Validator::AtLeast(min) if parsed < min => {
                    return Err(invalid(def, value, format!("Value must be at least {min}")));
                }
                Validator::Between(min, max) if parsed < min || parsed > max => {
                    return Err(invalid(
                        def,
                        value,
                        format!("Value must be in [{min}, {max}]"),
                    ));
                }
                _ => {}
            }
        }
        ConfigType::Double => {
            let parsed: f64 = trimmed
                .parse()
                .map_err(|_| invalid(def, value, "Not a number of type DOUBLE"))?;
            if let Validator::DoubleBetween(min, max) = def.validator {
                if !(min..=max).contains(&parsed) {
                    return Err(invalid(
                        def,
                        value,
                        format!("Value must be in [{min}, {max}]"),
                    ));
                }
            }
        }
        ConfigType::String => {
            if let Validator::OneOf(allowed) = def.validator {
                if !allowed.contains(&trimmed) {
                    return Err(invalid(
                        def,
                        value,
                        format!("String must be one of: {}", allowed.join(", ")),
                    ));
                }
            }
        }
        ConfigType::List => {
            if let Validator::ListOf(allowed) = def.validator {
                let items: Vec<&str> = trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if items.is_empty() {
                    return Err(invalid(def, value, "Empty list"));
                }
                if let Some(bad) = items.iter().find(|item| !allowed.contains(item)) {
                    return Err(invalid(
                        def,
                        value,
                        format!("Invalid value {bad}; allowed: {}", allowed.join(", ")),
                    ));
                }
            }
        }
    }
    if def.name == "remote.storage.enable" && trimmed.eq_ignore_ascii_case("true") {
        return Err(invalid(
            def,
            value,
            "Tiered storage is not supported by this broker",
        ));
    }
    Ok(())
}

/// Checks a set of topic overrides: every key known, every value valid.
pub fn validate_topic_configs<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), ConfigError> {
    for (name, value) in configs {
        let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_string()))?;
        validate_value(def, value)?;
    }
    Ok(())
}

/// How record timestamps are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageTimestampType {
    CreateTime,
    LogAppendTime,
}

/// The effective, typed config of one partition's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u32,
    pub segment_ms: i64,
    pub segment_jitter_ms: i64,
    pub segment_index_bytes: u32,
    pub index_interval_bytes: u32,
    pub max_message_bytes: u32,
    pub message_timestamp_type: MessageTimestampType,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub cleanup_policy_delete: bool,
    pub cleanup_policy_compact: bool,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub min_insync_replicas: i32,
    pub compression_type: String,
    pub file_delete_delay_ms: i64,
    /// Every key with its effective value, for DescribeConfigs.
    pub values: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::resolve(&BTreeMap::new(), &BTreeMap::new()).expect("Kafka's defaults are valid")
    }
}

impl LogConfig {
    /// Merges topic overrides over broker defaults (keyed by broker synonym) over
    /// Kafka's defaults, and validates the result.
    pub fn resolve(
        topic_overrides: &BTreeMap<String, String>,
        broker_values: &BTreeMap<String, String>,
    ) -> Result<LogConfig, ConfigError> {
        let mut values = BTreeMap::new();
        for def in TOPIC_CONFIGS {
            let value = topic_overrides
                .get(def.name)
                .or_else(|| {
                    def.broker_synonyms
                        .iter()
                        .find_map(|key| broker_values.get(*key))
                })
                .map(String::as_str)
                .unwrap_or(def.default);
            validate_value(def, value)?;
            values.insert(def.name.to_string(), value.trim().to_string());
        }
        for name in topic_overrides.keys() {
            if topic_config_def(name).is_none() {
                return Err(ConfigError::Unknown(name.clone()));
            }
        }
        let long = |name: &str| values[name].parse::<i64>().expect("validated");
        let policy = values["cleanup.policy"].clone();
        Ok(LogConfig {
            segment_bytes: long("segment.bytes") as u32,
            segment_ms: long("segment.ms"),
            segment_jitter_ms: long("segment.jitter.ms"),
            segment_index_bytes: long("segment.index.bytes") as u32,
            index_interval_bytes: long("index.interval.bytes") as u32,
            max_message_bytes: long("max.message.bytes") as u32,
            message_timestamp_type: if values["message.timestamp.type"] == "LogAppendTime" {
                MessageTimestampType::LogAppendTime
            } else {
                MessageTimestampType::CreateTime
            },
            message_timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            message_timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            cleanup_policy_delete: policy.split(',').any(|p| p.trim() == "delete"),
            cleanup_policy_compact: policy.split(',').any(|p| p.trim() == "compact"),
            flush_messages: long("flush.messages"),
            flush_ms: long("flush.ms"),
            min_insync_replicas: long("min.insync.replicas") as i32,
            compression_type: values["compression.type"].clone(),
            file_delete_delay_ms: long("file.delete.delay.ms"),
            values,
        })
    }

    /// Offset index entries a segment may hold before it must roll.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8) as usize
    }

    /// Time index entries a segment may hold before it must roll.
    pub fn max_time_index_entries(&self) -> usize {
        (self.segment_index_bytes / 12) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_kafkas() {
        let config = LogConfig::default();
        assert_eq!(config.segment_bytes, 1 << 30);
        assert_eq!(config.index_interval_bytes, 4096);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert_eq!(config.segment_ms, 604_800_000);
        assert_eq!(
            config.message_timestamp_type,
            MessageTimestampType::CreateTime
        );
        assert!(config.cleanup_policy_delete && !config.cleanup_policy_compact);
    }

    #[test]
    fn topic_overrides_beat_broker_synonyms_which_beat_defaults() {
        let broker = map(&[("log.segment.bytes", "2048"), ("message.max.bytes", "5000")]);
        let topic = map(&[("segment.bytes", "4096")]);
        let config = LogConfig::resolve(&topic, &broker).unwrap();
        assert_eq!(config.segment_bytes, 4096);
        assert_eq!(config.max_message_bytes, 5000);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let err =
            LogConfig::resolve(&map(&[("segment.bytes", "10")]), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("segment.bytes"), "{err}");
        let err =
            LogConfig::resolve(&map(&[("cleanup.policy", "shred")]), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("cleanup.policy"), "{err}");
        let err =
            LogConfig::resolve(&map(&[("retention.ms", "soon")]), &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
    }

    #[test]
    fn unknown_topic_keys_are_refused() {
        assert_eq!(
            validate_topic_configs([("no.such.key", "1")]),
            Err(ConfigError::Unknown("no.such.key".into()))
        );
    }

    #[test]
    fn compact_and_delete_together() {
        let config = LogConfig::resolve(
            &map(&[("cleanup.policy", "compact,delete")]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(config.cleanup_policy_compact && config.cleanup_policy_delete);
    }

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} before {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in TOPIC_CONFIGS {
            validate_value(def, def.default).unwrap();
        }
    }
}
