//! Wiring of the group coordinator into the broker: its `__consumer_offsets`
//! partitions (created on first use, as Kafka does), loading them at start-up,
//! the timer that drives its timeouts, and the lock around it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use coordinator::{GroupConfig, GroupCoordinator, LoadEntry, OffsetsLog};
use metadata::TopicSpec;
use protocol::records::{decode_records, BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::{ErrorCode, TopicPartition};
use replication::ReplicaManager;
use storage::Origin;

use crate::broker::{blocking, Broker};
use crate::config::BrokerConfig;
use crate::errors::replication_error_code;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Coordinator settings from the broker config.
pub fn group_config(config: &BrokerConfig) -> GroupConfig {
    let int = |key: &str, default: i64| {
        config
            .raw
            .get(key)
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let defaults = GroupConfig::default();
    GroupConfig {
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
        offsets_partitions: int("offsets.topic.num.partitions", 50).max(1) as i32,
        new_member_join_timeout_ms: defaults.new_member_join_timeout_ms,
    }
}

/// Appends the coordinator's records to `__consumer_offsets` as an acks=all produce.
struct ReplicaOffsetsLog {
    broker: std::sync::Weak<Broker>,
    clock: Arc<dyn Clock>,
}

impl OffsetsLog for ReplicaOffsetsLog {
    fn append(&self, partition: i32, records: &[(Bytes, Option<Bytes>)]) -> Result<(), ErrorCode> {
        self.append_batch(partition, records, None)
    }

    fn append_transactional(
        &self,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), ErrorCode> {
        self.append_batch(partition, records, Some((producer_id, producer_epoch)))
    }
}

impl ReplicaOffsetsLog {
    fn append_batch(
        &self,
        partition: i32,
        records: &[(Bytes, Option<Bytes>)],
        producer: Option<(i64, i16)>,
    ) -> Result<(), ErrorCode> {
        let broker = self
            .broker
            .upgrade()
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let partition = broker.replicas.get(&tp).ok_or(ErrorCode::NotCoordinator)?;
        let now = self.clock.now_ms();
        let mut builder = BatchBuilder::new(Compression::None);
        if let Some((producer_id, producer_epoch)) = producer {
            builder = builder
                .producer(producer_id, producer_epoch, -1)
                .transactional(true);
        }
        for (key, value) in records {
            builder.append(&NewRecord {
                timestamp: now,
                key: Some(key),
                value: value.as_deref(),
                headers: &[],
            });
        }
        let batch = builder.build().map_err(|_| ErrorCode::UnknownServerError)?;
        match partition.append_as_leader(&batch, -1, Origin::Coordinator) {
            Ok(outcome) => {
                if outcome.flush_now {
                    partition
                        .flush(outcome.info.last_offset.0 + 1)
                        .map_err(|e| replication_error_code(&e))?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "writing to __consumer_offsets failed");
                Err(replication_error_code(&e))
            }
        }
    }
}

/// The group coordinator behind its lock.
pub struct Groups {
    core: Mutex<GroupCoordinator>,
    partitions: i32,
}

impl Groups {
    pub fn new(
        config: &BrokerConfig,
        clock: Arc<dyn Clock>,
        broker: std::sync::Weak<Broker>,
    ) -> Groups {
        let group_config = group_config(config);
        let partitions = group_config.offsets_partitions;
        let log = Arc::new(ReplicaOffsetsLog {
            broker,
            clock: Arc::clone(&clock),
        });
        Groups {
            core: Mutex::new(GroupCoordinator::new(group_config, clock, log)),
            partitions,
        }
    }

    /// The coordinator, locked. Its calls may write to `__consumer_offsets`: hold
    /// it on a blocking thread, never across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }
}

/// Creates `__consumer_offsets` if it does not exist yet. Its replication factor
/// is `offsets.topic.replication.factor` capped by the brokers registered, so a
/// single node works without extra settings.
pub async fn ensure_offsets_topic(broker: &Arc<Broker>) -> Result<(), ErrorCode> {
    if broker.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let config = &broker.config;
    let brokers = broker.metadata.image().brokers.len().max(1) as i64;
    let wanted_rf = config
        .raw
        .get("offsets.topic.replication.factor")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(3);
    let segment_bytes = config
        .raw
        .get("offsets.topic.segment.bytes")
        .cloned()
        .unwrap_or_else(|| "104857600".into());
    let spec = TopicSpec {
        name: OFFSETS_TOPIC.into(),
        num_partitions: broker.groups.partitions(),
        replication_factor: wanted_rf.min(brokers) as i16,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".into(), Some("compact".into())),
            ("compression.type".into(), Some("producer".into())),
            ("segment.bytes".into(), Some(segment_bytes)),
        ],
    };
    let outcomes = broker.create_topics(vec![spec], false).await;
    match outcomes.first().map(|o| &o.result) {
        Some(Ok(_)) => {
            tracing::info!(
                partitions = broker.groups.partitions(),
                "created {OFFSETS_TOPIC}"
            );
            Ok(())
        }
        Some(Err((ErrorCode::TopicAlreadyExists, _))) => Ok(()),
        Some(Err((code, message))) => {
            tracing::error!(error = %code, %message, "cannot create {OFFSETS_TOPIC}");
            Err(ErrorCode::CoordinatorNotAvailable)
        }
        None => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

/// Replays every `__consumer_offsets` partition into the coordinator.
pub fn load_groups(groups: &Groups, replicas: &ReplicaManager) -> Result<usize, String> {
    let mut records = Vec::new();
    for partition in 0..groups.partitions() {
        let Some(p) = replicas.get(&TopicPartition::new(OFFSETS_TOPIC, partition)) else {
            continue;
        };
        let log = p.log().lock().unwrap_or_else(|e| e.into_inner());
        let end = log.log_end_offset().0;
        let mut offset = log.log_start_offset().0;
        while offset < end {
            let bytes = log
                .read_bytes(offset, end, 8 << 20)
                .map_err(|e| e.to_string())?;
            if bytes.is_empty() {
                break;
            }
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let (header, batch) = decode_records(rest, 256 << 20).map_err(|e| e.to_string())?;
                rest = &rest[header.size()..];
                offset = header.next_offset();
                if header.is_control() {
                    if let Some(record) = batch.first() {
                        let marker = protocol::records::ControlRecord::parse(
                            record.key.as_deref(),
                            record.value.as_deref(),
                        );
                        records.push(LoadEntry::Marker {
                            producer_id: header.producer_id,
                            commit: marker.is_some_and(|m| m.is_commit()),
                        });
                    }
                    continue;
                }
                let producer_id = (header.is_transactional() && header.has_producer_id())
                    .then_some(header.producer_id);
                for record in batch {
                    if let Some(key) = record.key {
                        records.push(LoadEntry::Record {
                            key,
                            value: record.value,
                            producer_id,
                        });
                    }
                }
            }
        }
    }
    let count = records.len();
    groups
        .lock()
        .load_entries(records)
        .map_err(|e| e.to_string())?;
    Ok(count)
}

/// Drives the coordinator's timeouts until shutdown.
pub async fn run_timer(broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    let mut interval = tokio::time::interval(Duration::from_millis(50));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = interval.tick() => {
                let b = Arc::clone(&broker);
                blocking(move || b.groups.lock().tick()).await;
            }
        }
    }
}
