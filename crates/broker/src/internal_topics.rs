//! The coordinators' internal topics, `__consumer_offsets` (groups and their
//! offsets) and `__transaction_state` (transactions): what they look like and
//! when they are created, and how their logs are replayed into the coordinators.
//!
//! - Created once, on first use, as Kafka does: FindCoordinator, JoinGroup,
//!   OffsetCommit, AddOffsetsToTxn and InitProducerId call [`ensure`]. A topic
//!   the image already has is not asked for again; two first uses at once are
//!   serialised by the controller, and the loser's TOPIC_ALREADY_EXISTS counts as
//!   created. Replication factor `offsets.topic.replication.factor` (resp.
//!   `transaction.state.log.replication.factor`) capped by the brokers
//!   registered, so one node works without extra settings.
//! - Replayed once, at start-up, before any client is served ([`load`]): every
//!   hosted partition from its log start to its log end, batch by batch. A batch
//!   whose records do not decode is skipped with a warning and counted
//!   ([`Replayed::skipped_batches`]); the batches after it still load, so one bad
//!   batch never loses the other groups or transactions. Only a batch whose
//!   header cannot be read ends its partition's replay (its length is unknown,
//!   so nothing after it can be found), also counted.

use std::sync::Arc;

use coordinator::LoadEntry;
use metadata::{ControllerError, TopicSpec};
use protocol::records::{decode_records, BatchHeader, ControlRecord, Record};
use protocol::TopicPartition;

use crate::broker::Broker;
use crate::controller_client::ControllerClient;
use crate::partition::SharedPartition;
use crate::runtime::blocking;
use crate::settings::InternalTopicSettings;

/// The consumer groups' internal topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's internal topic.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

/// The most a replay reads from a log at once (it reads whole batches, at least one).
const REPLAY_READ_BYTES: usize = 8 << 20;
/// The most one internal-topic batch may decompress to.
const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// One of the two internal topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalTopic {
    /// `__consumer_offsets`.
    Offsets,
    /// `__transaction_state`.
    Transactions,
}

impl InternalTopic {
    pub fn name(self) -> &'static str {
        match self {
            InternalTopic::Offsets => OFFSETS_TOPIC,
            InternalTopic::Transactions => TRANSACTION_TOPIC,
        }
    }

    /// The topic as Kafka creates it: compacted; `__consumer_offsets` keeps the
    /// producer's compression.
    pub fn spec(self, settings: &InternalTopicSettings, brokers: usize) -> TopicSpec {
        let mut configs = vec![("cleanup.policy".to_string(), Some("compact".to_string()))];
        if self == InternalTopic::Offsets {
            configs.push(("compression.type".into(), Some("producer".into())));
        }
        configs.push(("segment.bytes".into(), Some(settings.segment_bytes.clone())));
        let brokers = brokers.max(1) as i64;
        TopicSpec {
            name: self.name().into(),
            num_partitions: settings.partitions,
            replication_factor: settings.replication_factor.min(brokers) as i16,
            assignments: Vec::new(),
            configs,
        }
    }
}

/// Creates `topic` unless it exists (see the module docs).
pub async fn ensure(
    controller: &ControllerClient,
    topic: InternalTopic,
) -> Result<(), ControllerError> {
    let image = controller.image();
    if image.topic(topic.name()).is_some() {
        return Ok(());
    }
    let settings = match topic {
        InternalTopic::Offsets => &controller.settings().offsets_topic,
        InternalTopic::Transactions => &controller.settings().transaction_topic,
    };
    let spec = topic.spec(settings, image.brokers.len());
    let partitions = spec.num_partitions;
    let outcome = controller.create_topics(vec![spec], false).await.pop();
    match outcome.expect("one outcome per topic").result {
        Ok(_) => {
            tracing::info!(partitions, "created {}", topic.name());
            Ok(())
        }
        Err(ControllerError::TopicAlreadyExists(_)) => Ok(()),
        Err(error) => {
            tracing::error!(%error, "cannot create {}", topic.name());
            Err(error)
        }
    }
}

/// What a replay read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Batches decoded and passed on.
    pub batches: usize,
    /// Records passed on to the coordinator.
    pub records: usize,
    /// Batches that did not decode: skipped with a warning.
    pub skipped_batches: usize,
}

/// Replays both internal topics into the coordinators. Called once, at start-up.
pub async fn load(broker: &Arc<Broker>) {
    let b = Arc::clone(broker);
    let groups = blocking(move || load_groups(&b)).await;
    report(InternalTopic::Offsets, groups);
    let b = Arc::clone(broker);
    let transactions = blocking(move || load_transactions(&b)).await;
    report(InternalTopic::Transactions, transactions);
}

fn report(topic: InternalTopic, outcome: Result<Replayed, String>) {
    match outcome {
        Ok(r) if r.skipped_batches > 0 => tracing::warn!(
            records = r.records,
            skipped_batches = r.skipped_batches,
            "loaded {} with batches that could not be read",
            topic.name()
        ),
        Ok(r) if r.records > 0 => tracing::info!(records = r.records, "loaded {}", topic.name()),
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "loading {} failed", topic.name()),
    }
}

/// Replays every hosted `__consumer_offsets` partition into the group coordinator.
fn load_groups(broker: &Broker) -> Result<Replayed, String> {
    let mut entries = Vec::new();
    let mut replayed = Replayed::default();
    for partition in 0..broker.groups.partitions() {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let Some(p) = broker.replicas.get(&tp) else {
            continue;
        };
        replay_partition(&p, &mut replayed, |header, records| {
            offsets_entries(header, records, &mut entries)
        });
    }
    replayed.records = entries.len();
    broker
        .groups
        .lock()
        .load_entries(entries)
        .map_err(|e| e.to_string())?;
    Ok(replayed)
}

/// Replays every hosted `__transaction_state` partition into the transaction
/// coordinator (which then finishes transactions a crash left prepared).
fn load_transactions(broker: &Broker) -> Result<Replayed, String> {
    let mut records = Vec::new();
    let mut replayed = Replayed::default();
    for partition in 0..broker.transactions.partitions() {
        let tp = TopicPartition::new(TRANSACTION_TOPIC, partition);
        let Some(p) = broker.replicas.get(&tp) else {
            continue;
        };
        replay_partition(&p, &mut replayed, |_, batch| {
            records.extend(batch.into_iter().filter_map(|r| Some((r.key?, r.value))));
        });
    }
    replayed.records = records.len();
    broker
        .transactions
        .lock()
        .load(records)
        .map_err(|e| e.to_string())?;
    Ok(replayed)
}

/// What a `__consumer_offsets` batch adds to the load: its keyed records (with
/// the producer of a transactional batch, so they count once committed), or the
/// marker of a control batch.
pub fn offsets_entries(header: &BatchHeader, records: Vec<Record>, out: &mut Vec<LoadEntry>) {
    if header.is_control() {
        if let Some(record) = records.first() {
            let marker = ControlRecord::parse(record.key.as_deref(), record.value.as_deref());
            out.push(LoadEntry::Marker {
                producer_id: header.producer_id,
                commit: marker.is_some_and(|m| m.is_commit()),
            });
        }
        return;
    }
    let producer_id =
        (header.is_transactional() && header.has_producer_id()).then_some(header.producer_id);
    for record in records {
        if let Some(key) = record.key {
            out.push(LoadEntry::Record {
                key,
                value: record.value,
                producer_id,
            });
        }
    }
}

/// Reads one partition from its log start to its log end and passes each batch
/// that decodes to `visit`, in order.
fn replay_partition(
    partition: &SharedPartition,
    replayed: &mut Replayed,
    mut visit: impl FnMut(&BatchHeader, Vec<Record>),
) {
    let tp = partition.topic_partition();
    let end = partition.log_end_offset();
    let mut offset = partition.log_start_offset();
    while offset < end {
        let bytes = match partition.read_batches_from(offset, REPLAY_READ_BYTES) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(partition = %tp, offset, %error, "replay stopped: the log could not be read");
                replayed.skipped_batches += 1;
                return;
            }
        };
        match walk_batches(&bytes, offset, replayed, &mut visit) {
            Walk::Next(next) if !bytes.is_empty() => offset = next,
            Walk::Next(_) => return,
            Walk::Stopped(error) => {
                tracing::error!(partition = %tp, offset, %error, "replay stopped: a batch header could not be read");
                return;
            }
        }
    }
}

/// Where a walk over a buffer of batches ended.
#[derive(Debug, PartialEq, Eq)]
enum Walk {
    /// Every batch in the buffer was walked; the next one starts at this offset.
    Next(i64),
    /// A batch's header could not be read, or it did not move forward.
    Stopped(String),
}

/// Walks the whole batches in `bytes` (starting at `offset`): each that decodes
/// goes to `visit`; one whose records do not decode is skipped, warned about and
/// counted.
fn walk_batches(
    bytes: &[u8],
    mut offset: i64,
    replayed: &mut Replayed,
    visit: &mut impl FnMut(&BatchHeader, Vec<Record>),
) -> Walk {
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = match BatchHeader::parse(rest) {
            Ok(header) if header.size() <= rest.len() && header.next_offset() > offset => header,
            Ok(header) => {
                replayed.skipped_batches += 1;
                return Walk::Stopped(format!(
                    "batch at offset {} of {} bytes does not fit or does not move forward",
                    header.base_offset,
                    header.size()
                ));
            }
            Err(error) => {
                replayed.skipped_batches += 1;
                return Walk::Stopped(error.to_string());
            }
        };
        match decode_records(&rest[..header.size()], MAX_DECOMPRESSED_BYTES) {
            Ok((header, records)) => {
                replayed.batches += 1;
                visit(&header, records);
            }
            Err(error) => {
                replayed.skipped_batches += 1;
                tracing::warn!(
                    base_offset = header.base_offset,
                    last_offset = header.last_offset(),
                    %error,
                    "skipping an internal-topic batch that does not decode"
                );
            }
        }
        offset = header.next_offset();
        rest = &rest[header.size()..];
    }
    Walk::Next(offset)
}

#[cfg(test)]
#[path = "internal_topics_tests.rs"]
mod tests;
