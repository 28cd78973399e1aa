//! Fetching: one Fetch request in flight per leader, for the assigned, unpaused
//! partitions that have a position and no buffered records; responses are decoded
//! into per-partition buffers that `poll` drains up to `max.poll.records`.
//!
//! Invariants: a buffer's records start at the partition's position (records
//! before it, from the front of a compressed batch, are dropped; so is a response
//! for a partition whose position moved while it was in flight: seek, reset,
//! revocation); control batches never reach the application; with
//! `read_committed`, records of aborted transactions are dropped using the
//! response's aborted-transaction list. No fetch sessions (KIP-227): every request
//! is a full one (session epoch -1).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic};
use protocol::kafka::messages::fetch_response::PartitionData;
use protocol::kafka::messages::{BrokerId, FetchRequest, FetchResponse};
use protocol::records::{decode_records_shared, Batches, Header};
use protocol::{ErrorCode, TopicPartition};
use tokio::task::JoinSet;

use crate::cluster::Cluster;
use crate::consumer::config::{ConsumerConfig, IsolationLevel};
use crate::error::{ClientError, Result};
use crate::rpc::topic_name;

/// A record as the consumer returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    /// True when the broker set the timestamp (LogAppendTime).
    pub log_append_time: bool,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub leader_epoch: i32,
}

/// What the fetcher reports about a partition besides records.
#[derive(Debug)]
pub(crate) enum FetchEvent {
    /// The position fell outside the log: reset it.
    OffsetOutOfRange(TopicPartition),
    /// Leadership moved or the topic is gone: refresh metadata.
    StaleMetadata,
    /// The high watermark, for lag.
    Watermarks {
        tp: TopicPartition,
        high_watermark: i64,
    },
    Error(TopicPartition, ClientError),
}

struct Buffered {
    records: VecDeque<ConsumerRecord>,
    /// The position after the last buffered record.
    next_offset: i64,
    /// Key and value bytes buffered, to bound fetching ahead.
    bytes: usize,
}

type InFlight = (i32, Vec<(TopicPartition, i64)>, Result<FetchResponse>);

/// The fetcher's state; owned by the consumer.
pub(crate) struct Fetcher {
    in_flight: JoinSet<InFlight>,
    nodes_in_flight: HashSet<i32>,
    partitions_in_flight: HashSet<TopicPartition>,
    buffered: BTreeMap<TopicPartition, Buffered>,
}

impl Fetcher {
    pub fn new() -> Fetcher {
        Fetcher {
            in_flight: JoinSet::new(),
            nodes_in_flight: HashSet::new(),
            partitions_in_flight: HashSet::new(),
            buffered: BTreeMap::new(),
        }
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Drops buffered records of `tp` (seek, revoke, pause).
    pub fn forget(&mut self, tp: &TopicPartition) {
        self.buffered.remove(tp);
    }

    pub fn forget_all(&mut self) {
        self.buffered.clear();
    }

    /// Takes up to `max` buffered records of the partitions `fetchable` accepts,
    /// whose buffers start at the position it returns; returns the records and
    /// each partition's new position.
    pub fn drain(
        &mut self,
        max: usize,
        mut position_of: impl FnMut(&TopicPartition) -> Option<i64>,
    ) -> (Vec<ConsumerRecord>, Vec<(TopicPartition, i64)>) {
        let mut records = Vec::new();
        let mut positions = Vec::new();
        let mut empty = Vec::new();
        for (tp, buffer) in self.buffered.iter_mut() {
            if records.len() >= max {
                break;
            }
            let Some(position) = position_of(tp) else {
                continue;
            };
            match buffer.records.front() {
                Some(first) if first.offset >= position => {}
                Some(_) => {
                    // The position moved behind the buffer's start (a seek we did not see).
                    empty.push(tp.clone());
                    continue;
                }
                None => {
                    // Only control or aborted batches: move past them.
                    if buffer.next_offset > position {
                        positions.push((tp.clone(), buffer.next_offset));
                    }
                    empty.push(tp.clone());
                    continue;
                }
            }
            let take = (max - records.len()).min(buffer.records.len());
            for record in buffer.records.drain(..take) {
                buffer.bytes = buffer.bytes.saturating_sub(
                    record.value.as_ref().map_or(0, Bytes::len)
                        + record.key.as_ref().map_or(0, Bytes::len),
                );
                records.push(record);
            }
            let next = buffer
                .records
                .front()
                .map_or(buffer.next_offset, |r| r.offset);
            positions.push((tp.clone(), next));
            if buffer.records.is_empty() {
                empty.push(tp.clone());
            }
        }
        for tp in empty {
            self.buffered.remove(&tp);
        }
        (records, positions)
    }

    /// Where the next fetch of `tp` starts: after its buffered records (fetching
    /// ahead while the application drains them, up to `max_ahead_bytes`), or at
    /// `position` when nothing is buffered. `None`: enough is buffered.
    fn fetch_offset(
        &self,
        tp: &TopicPartition,
        position: i64,
        max_ahead_bytes: usize,
    ) -> Option<i64> {
        match self.buffered.get(tp) {
            Some(b) if b.bytes >= max_ahead_bytes => None,
            Some(b) => Some(b.next_offset),
            None => Some(position),
        }
    }

    /// Sends a Fetch to each leader without one in flight, for every partition
    /// of `partitions` (partition, position) not in flight and not buffered to
    /// the limit. Asking for every partition at once matters: a request holding
    /// only caught-up partitions would wait `fetch.max.wait.ms` while the others
    /// have data. Returns whether some leader is unknown.
    pub fn send_fetches(
        &mut self,
        cluster: &Arc<Cluster>,
        config: &ConsumerConfig,
        partitions: &[(TopicPartition, i64)],
    ) -> bool {
        let metadata = cluster.metadata();
        let mut by_node: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let mut unknown_leader = false;
        let max_ahead = config.max_partition_fetch_bytes.max(1) as usize;
        for (tp, position) in partitions {
            if self.partitions_in_flight.contains(tp) {
                continue;
            }
            let Some(offset) = self.fetch_offset(tp, *position, max_ahead) else {
                continue;
            };
            match metadata.leader_for(tp) {
                Some(node) if !self.nodes_in_flight.contains(&node) => {
                    by_node.entry(node).or_default().push((tp.clone(), offset))
                }
                Some(_) => {}
                None => unknown_leader = true,
            }
        }
        for (node, wanted) in by_node {
            let request = fetch_request(config, &wanted);
            let cluster = Arc::clone(cluster);
            let extra = config.fetch_max_wait;
            self.nodes_in_flight.insert(node);
            self.partitions_in_flight
                .extend(wanted.iter().map(|(tp, _)| tp.clone()));
            self.in_flight.spawn(async move {
                let result = match cluster.connection(node).await {
                    Ok(connection) => connection.send_with_extra_time(&request, extra).await,
                    Err(e) => Err(e),
                };
                (node, wanted, result)
            });
        }
        unknown_leader
    }

    /// Waits for one fetch to complete (or `deadline`), buffers its records and
    /// returns the events it carried. `position_of` says where each partition
    /// stands now: data for a partition that moved is dropped.
    pub async fn complete_one(
        &mut self,
        deadline: tokio::time::Instant,
        isolation_level: IsolationLevel,
        mut position_of: impl FnMut(&TopicPartition) -> Option<i64>,
    ) -> Vec<FetchEvent> {
        let joined = tokio::select! {
            joined = self.in_flight.join_next() => joined,
            _ = tokio::time::sleep_until(deadline) => return Vec::new(),
        };
        let Some(joined) = joined else {
            return Vec::new();
        };
        self.process(joined, isolation_level, &mut position_of)
    }

    /// Buffers every fetch that has already completed, without waiting, so the
    /// next requests go out while the application works through the buffer.
    pub fn complete_ready(
        &mut self,
        isolation_level: IsolationLevel,
        mut position_of: impl FnMut(&TopicPartition) -> Option<i64>,
    ) -> Vec<FetchEvent> {
        let mut events = Vec::new();
        while let Some(joined) = self.in_flight.try_join_next() {
            events.extend(self.process(joined, isolation_level, &mut position_of));
        }
        events
    }

    fn process(
        &mut self,
        joined: std::result::Result<InFlight, tokio::task::JoinError>,
        isolation_level: IsolationLevel,
        position_of: &mut impl FnMut(&TopicPartition) -> Option<i64>,
    ) -> Vec<FetchEvent> {
        let (node, wanted, result) = match joined {
            Ok(done) => done,
            Err(e) => {
                return vec![FetchEvent::Error(
                    TopicPartition::new("", -1),
                    ClientError::Protocol(format!("fetch task failed: {e}")),
                )]
            }
        };
        self.nodes_in_flight.remove(&node);
        for (tp, _) in &wanted {
            self.partitions_in_flight.remove(tp);
        }
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                tracing::debug!(node, error = %e, "fetch failed");
                return vec![FetchEvent::StaleMetadata];
            }
        };
        let requested: HashMap<TopicPartition, i64> = wanted.into_iter().collect();
        let mut events = Vec::new();
        if let Err(e) = ClientError::check(
            response.error_code,
            || format!("Fetch from node {node}"),
            None,
        ) {
            events.push(FetchEvent::Error(TopicPartition::new("", -1), e));
            return events;
        }
        for topic in response.responses {
            let name: Arc<str> = Arc::from(topic.topic.0.as_str());
            for partition in topic.partitions {
                let tp = TopicPartition::new(Arc::clone(&name), partition.partition_index);
                let Some(&fetch_offset) = requested.get(&tp) else {
                    continue;
                };
                // Data is used only if it continues exactly where the partition
                // stands: after its buffer, or at its position.
                let expected = match self.buffered.get(&tp) {
                    Some(b) => position_of(&tp).map(|_| b.next_offset),
                    None => position_of(&tp),
                };
                if expected != Some(fetch_offset) {
                    continue;
                }
                self.handle_partition(tp, fetch_offset, partition, isolation_level, &mut events);
            }
        }
        events
    }

    fn handle_partition(
        &mut self,
        tp: TopicPartition,
        fetch_offset: i64,
        data: PartitionData,
        isolation: IsolationLevel,
        events: &mut Vec<FetchEvent>,
    ) {
        let code = ErrorCode::from_i16(data.error_code).unwrap_or(ErrorCode::UnknownServerError);
        match code {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => return events.push(FetchEvent::OffsetOutOfRange(tp)),
            code if crate::error::invalidates_metadata(code) => {
                return events.push(FetchEvent::StaleMetadata)
            }
            code => {
                return events.push(FetchEvent::Error(
                    tp.clone(),
                    ClientError::kafka(code, tp.to_string()),
                ))
            }
        }
        events.push(FetchEvent::Watermarks {
            tp: tp.clone(),
            high_watermark: data.high_watermark,
        });
        let Some(bytes) = data.records.filter(|b| !b.is_empty()) else {
            return;
        };
        let mut aborted: Vec<(i64, i64)> = match isolation {
            IsolationLevel::ReadCommitted => data
                .aborted_transactions
                .unwrap_or_default()
                .iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect(),
            IsolationLevel::ReadUncommitted => Vec::new(),
        };
        aborted.sort_by_key(|a| a.1);
        let mut aborting: HashSet<i64> = HashSet::new();
        let mut records = VecDeque::new();
        let mut next_offset = fetch_offset;
        for batch in Batches::new(&bytes) {
            let (header, batch_bytes) = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    // A partial batch at the end is normal (KIP-74); anything else is not.
                    if records.is_empty()
                        && next_offset == fetch_offset
                        && !matches!(e, protocol::records::BatchError::Truncated { .. })
                    {
                        events.push(FetchEvent::Error(
                            tp.clone(),
                            ClientError::Protocol(format!("{tp}: {e}")),
                        ));
                    }
                    break;
                }
            };
            if header.next_offset() <= fetch_offset {
                continue;
            }
            if isolation == IsolationLevel::ReadCommitted {
                while aborted.first().is_some_and(|a| a.1 <= header.last_offset()) {
                    aborting.insert(aborted.remove(0).0);
                }
            }
            if header.is_control() {
                // An abort or commit marker ends that producer's transaction.
                aborting.remove(&header.producer_id);
                next_offset = header.next_offset();
                continue;
            }
            if header.is_transactional() && aborting.contains(&header.producer_id) {
                next_offset = header.next_offset();
                continue;
            }
            // Keys and values share the response's memory (no copy per batch).
            let (_, decoded) =
                match decode_records_shared(&bytes.slice_ref(batch_bytes), 64 * 1024 * 1024) {
                    Ok(decoded) => decoded,
                    Err(e) => {
                        events.push(FetchEvent::Error(
                            tp.clone(),
                            ClientError::Protocol(format!(
                                "{tp} at offset {}: {e}",
                                header.base_offset
                            )),
                        ));
                        break;
                    }
                };
            let log_append_time =
                header.timestamp_type() == protocol::records::TimestampType::LogAppendTime;
            for record in decoded.into_iter().filter(|r| r.offset >= fetch_offset) {
                records.push_back(ConsumerRecord {
                    topic: Arc::clone(&tp.topic),
                    partition: tp.partition,
                    offset: record.offset,
                    timestamp: record.timestamp,
                    log_append_time,
                    key: record.key,
                    value: record.value,
                    headers: record.headers,
                    leader_epoch: header.partition_leader_epoch,
                });
            }
            next_offset = header.next_offset();
        }
        if records.is_empty() && next_offset == fetch_offset {
            return;
        }
        let bytes: usize = records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Bytes::len) + r.key.as_ref().map_or(0, Bytes::len))
            .sum();
        let buffer = self.buffered.entry(tp).or_insert_with(|| Buffered {
            records: VecDeque::new(),
            next_offset: fetch_offset,
            bytes: 0,
        });
        debug_assert_eq!(
            buffer.next_offset, fetch_offset,
            "fetched data continues the buffer"
        );
        buffer.records.extend(records);
        buffer.next_offset = next_offset;
        buffer.bytes += bytes;
    }
}

fn fetch_request(config: &ConsumerConfig, wanted: &[(TopicPartition, i64)]) -> FetchRequest {
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, position) in wanted {
        topics.entry(tp.topic.to_string()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(*position)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(config.max_partition_fetch_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(config.fetch_max_wait.as_millis().min(i32::MAX as u128) as i32)
        .with_min_bytes(config.fetch_min_bytes)
        .with_max_bytes(config.fetch_max_bytes)
        .with_isolation_level(config.isolation_level.wire())
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(n, p)| {
                    FetchTopic::default()
                        .with_topic(topic_name(&n))
                        .with_partitions(p)
                })
                .collect(),
        )
}
