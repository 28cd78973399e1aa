//! Typed settings of the broker's services (coordinators, internal topics, the
//! cleaner, replication), read once from the broker config with Kafka's keys and
//! defaults, so no service parses `config.raw` at the time of use.

use coordinator::{GroupConfig, TxnConfig};

use crate::config::BrokerConfig;

/// An internal topic's creation settings (`offsets.topic.*`,
/// `transaction.state.log.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopicSettings {
    pub partitions: i32,
    /// The wanted replication factor; capped by the brokers registered.
    pub replication_factor: i64,
    pub segment_bytes: String,
}

/// The log cleaner's settings (`log.cleaner.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`
    pub enable: bool,
    /// `log.cleaner.backoff.ms`
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second` (infinite: no limit)
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.dedupe.buffer.size`
    pub dedupe_buffer_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub groups: GroupConfig,
    pub transactions: TxnConfig,
    pub offsets_topic: InternalTopicSettings,
    pub transaction_topic: InternalTopicSettings,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`
    pub transaction_cleanup_interval_ms: u64,
    /// `producer.id.expiration.ms`
    pub producer_id_expiration_ms: i64,
    /// `replica.lag.time.max.ms`
    pub replica_lag_time_max_ms: i64,
    pub cleaner: CleanerSettings,
}

impl Settings {
    pub fn from_config(config: &BrokerConfig) -> Settings {
        let text = |key: &str| config.raw.get(key).map(|v| v.trim().to_string());
        let int = |key: &str, default: i64| {
            text(key)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(default)
        };
        let float = |key: &str, default: f64| {
            text(key)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(default)
        };
        let defaults = GroupConfig::default();
        let offsets_partitions = int("offsets.topic.num.partitions", 50).max(1) as i32;
        let groups = GroupConfig {
            min_session_timeout_ms: int(
                "group.min.session.timeout.ms",
                i64::from(defaults.min_session_timeout_ms),
            ) as i32,
            max_session_timeout_ms: int(
                "group.max.session.timeout.ms",
                i64::from(defaults.max_session_timeout_ms),
            ) as i32,
            initial_rebalance_delay_ms: int(
                "group.initial.rebalance.delay.ms",
                defaults.initial_rebalance_delay_ms,
            ),
            max_size: int("group.max.size", i64::from(i32::MAX)).max(1) as usize,
            offsets_retention_ms: int("offsets.retention.minutes", 10_080) * 60_000,
            offsets_retention_check_interval_ms: int(
                "offsets.retention.check.interval.ms",
                defaults.offsets_retention_check_interval_ms,
            ),
            offset_metadata_max_bytes: int("offset.metadata.max.bytes", 4096).max(0) as usize,
            offsets_partitions,
            new_member_join_timeout_ms: defaults.new_member_join_timeout_ms,
        };
        let transactions = TxnConfig {
            max_timeout_ms: int("transaction.max.timeout.ms", 900_000) as i32,
            partitions: int("transaction.state.log.num.partitions", 50).max(1) as i32,
            id_expiration_ms: int("transactional.id.expiration.ms", 604_800_000),
            offsets_partitions,
        };
        let segment_bytes = |key: &str| text(key).unwrap_or_else(|| "104857600".into());
        Settings {
            offsets_topic: InternalTopicSettings {
                partitions: offsets_partitions,
                replication_factor: int("offsets.topic.replication.factor", 3),
                segment_bytes: segment_bytes("offsets.topic.segment.bytes"),
            },
            transaction_topic: InternalTopicSettings {
                partitions: transactions.partitions,
                replication_factor: int("transaction.state.log.replication.factor", 3),
                segment_bytes: segment_bytes("transaction.state.log.segment.bytes"),
            },
            groups,
            transactions,
            transaction_cleanup_interval_ms: int(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                10_000,
            )
            .max(10) as u64,
            producer_id_expiration_ms: int("producer.id.expiration.ms", 86_400_000),
            replica_lag_time_max_ms: Some(int("replica.lag.time.max.ms", 30_000))
                .filter(|ms| *ms > 0)
                .unwrap_or(30_000),
            cleaner: CleanerSettings {
                enable: text("log.cleaner.enable").is_none_or(|v| v != "false"),
                backoff_ms: float("log.cleaner.backoff.ms", 15_000.0).max(10.0) as u64,
                io_max_bytes_per_second: float(
                    "log.cleaner.io.max.bytes.per.second",
                    f64::INFINITY,
                ),
                dedupe_buffer_bytes: float("log.cleaner.dedupe.buffer.size", (128u64 << 20) as f64)
                    as usize,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BrokerConfig {
        let mut all = vec![
            ("node.id".to_string(), "1".to_string()),
            (
                "log.dirs".to_string(),
                "/tmp/rivulet-settings-test".to_string(),
            ),
        ];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        BrokerConfig::from_pairs(all).unwrap()
    }

    #[test]
    fn kafkas_defaults_when_nothing_is_set() {
        let s = Settings::from_config(&config(&[]));
        assert_eq!(s.groups.offsets_partitions, 50);
        assert_eq!(s.groups.offsets_retention_ms, 7 * 24 * 3_600_000);
        assert_eq!(s.transactions.partitions, 50);
        assert_eq!(s.offsets_topic.replication_factor, 3);
        assert_eq!(s.offsets_topic.segment_bytes, "104857600");
        assert_eq!(s.replica_lag_time_max_ms, 30_000);
        assert_eq!(s.producer_id_expiration_ms, 86_400_000);
        assert!(s.cleaner.enable);
        assert_eq!(s.cleaner.backoff_ms, 15_000);
        assert!(s.cleaner.io_max_bytes_per_second.is_infinite());
    }

    #[test]
    fn the_broker_keys_are_read_once() {
        let s = Settings::from_config(&config(&[
            ("offsets.topic.num.partitions", "3"),
            ("transaction.state.log.num.partitions", "2"),
            ("offsets.retention.minutes", "1"),
            ("replica.lag.time.max.ms", "500"),
            ("log.cleaner.enable", "false"),
        ]));
        assert_eq!(s.groups.offsets_partitions, 3);
        assert_eq!(s.transactions.offsets_partitions, 3);
        assert_eq!(s.offsets_topic.partitions, 3);
        assert_eq!(s.transaction_topic.partitions, 2);
        assert_eq!(s.groups.offsets_retention_ms, 60_000);
        assert_eq!(s.replica_lag_time_max_ms, 500);
        assert!(!s.cleaner.enable);
    }
}
