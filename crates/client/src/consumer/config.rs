//! The consumer's settings, read from Kafka's keys with Kafka 4's defaults.

use std::time::Duration;

use crate::config::{ClientConfig, CommonConfig};
use crate::consumer::assignor::{self, PartitionAssignor};
use crate::error::{ClientError, Result};

/// `auto.offset.reset`: where to start without a committed offset, or after
/// OFFSET_OUT_OF_RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail instead (Kafka's `none`).
    None,
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// Typed consumer configuration.
#[derive(Debug)]
pub struct ConsumerConfig {
    pub common: CommonConfig,
    /// `group.id`; without it only `assign` works and nothing is committed.
    pub group_id: Option<String>,
    /// `group.instance.id` (static membership).
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (45000).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3000).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (300000), also the rebalance timeout.
    pub max_poll_interval: Duration,
    /// `enable.auto.commit` (true, with a group).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5000).
    pub auto_commit_interval: Duration,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `max.poll.records` (500).
    pub max_poll_records: usize,
    /// `fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (50 MiB).
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms` (500).
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes` (1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `isolation.level` (read_uncommitted).
    pub isolation_level: IsolationLevel,
    /// `partition.assignment.strategy` (range, cooperative-sticky).
    pub assignors: Vec<Box<dyn PartitionAssignor>>,
    /// `allow.auto.create.topics` (true).
    pub allow_auto_create_topics: bool,
    /// `exclude.internal.topics` (true): patterns never match internal topics.
    pub exclude_internal_topics: bool,
    /// `client.rack`.
    pub client_rack: Option<String>,
}

impl ConsumerConfig {
    pub fn from_config(config: &ClientConfig) -> Result<ConsumerConfig> {
        let common = CommonConfig::from_config(config, "rivulet-consumer")?;
        let group_id = config
            .get("group.id")
            .filter(|g| !g.is_empty())
            .map(String::from);
        let auto_offset_reset = match config
            .get("auto.offset.reset")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => OffsetReset::Latest,
            Some(v) if v == "latest" || v == "end" || v == "largest" => OffsetReset::Latest,
            Some(v) if v == "earliest" || v == "beginning" || v == "smallest" => {
                OffsetReset::Earliest
            }
            Some(v) if v == "none" || v == "error" => OffsetReset::None,
            Some(v) => {
                return Err(ClientError::Config {
                    key: "auto.offset.reset".into(),
                    reason: format!("{v:?} is not earliest, latest or none"),
                })
            }
        };
        let isolation_level = match config
            .get("isolation.level")
            .map(|v| v.trim().to_ascii_lowercase())
        {
            None => IsolationLevel::ReadUncommitted,
            Some(v) if v == "read_uncommitted" => IsolationLevel::ReadUncommitted,
            Some(v) if v == "read_committed" => IsolationLevel::ReadCommitted,
            Some(v) => {
                return Err(ClientError::Config {
                    key: "isolation.level".into(),
                    reason: format!("{v:?} is not read_uncommitted or read_committed"),
                })
            }
        };
        let names = config
            .list("partition.assignment.strategy")
            .unwrap_or_else(|| vec!["range".into(), "cooperative-sticky".into()]);
        if names.is_empty() {
            return Err(ClientError::Config {
                key: "partition.assignment.strategy".into(),
                reason: "empty".into(),
            });
        }
        let assignors = names
            .iter()
            .map(|n| assignor::by_name(n))
            .collect::<Result<Vec<_>>>()?;
        let max_poll_records: usize = config.parse_or("max.poll.records", 500)?;
        if max_poll_records == 0 {
            return Err(ClientError::Config {
                key: "max.poll.records".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(ConsumerConfig {
            common,
            enable_auto_commit: config.bool_or("enable.auto.commit", true)? && group_id.is_some(),
            group_id,
            group_instance_id: config
                .get("group.instance.id")
                .filter(|g| !g.is_empty())
                .map(String::from),
            session_timeout: config.ms_or("session.timeout.ms", 45_000)?,
            heartbeat_interval: config.ms_or("heartbeat.interval.ms", 3_000)?,
            max_poll_interval: config.ms_or("max.poll.interval.ms", 300_000)?,
            auto_commit_interval: config.ms_or("auto.commit.interval.ms", 5_000)?,
            auto_offset_reset,
            max_poll_records,
            fetch_min_bytes: config.parse_or("fetch.min.bytes", 1)?,
            fetch_max_bytes: config.parse_or("fetch.max.bytes", 52_428_800)?,
            fetch_max_wait: config.ms_or("fetch.max.wait.ms", 500)?,
            max_partition_fetch_bytes: config.parse_or("max.partition.fetch.bytes", 1_048_576)?,
            isolation_level,
            assignors,
            allow_auto_create_topics: config.bool_or("allow.auto.create.topics", true)?,
            exclude_internal_topics: config.bool_or("exclude.internal.topics", true)?,
            client_rack: config
                .get("client.rack")
                .filter(|r| !r.is_empty())
                .map(String::from),
        })
    }
}
