//! The active controller's decisions that are not about requests, without I/O
//! (`docs/research/cluster-design.md` §1.5, §1.8, §1.9): what a controller
//! writes when it becomes active, how a decision becomes log entries, whether
//! it should resign, and when to take a metadata snapshot.

use std::collections::BTreeMap;

use metadata::{ClusterImage, MetadataRecord};

/// The feature `metadata.version`.
pub const METADATA_VERSION: &str = "metadata.version";

/// The decisions a new active controller writes before any request, each
/// committed on its own (Kafka's `ActivationRecordsGenerator`):
/// - a metadata transaction its predecessor left open is aborted first, or the
///   next records would join it;
/// - an image without `metadata.version` (a new cluster, or a log written
///   before the quorum) gets the bootstrap feature levels
///   (`bootstrap.checkpoint`, written by `rivulet storage format`).
pub fn activation_records(
    image: &ClusterImage,
    open_transaction: Option<i64>,
    bootstrap: &BTreeMap<String, i16>,
) -> Vec<Vec<MetadataRecord>> {
    let mut decisions = Vec::new();
    if let Some(since) = open_transaction {
        decisions.push(vec![MetadataRecord::AbortTransaction {
            reason: Some(format!(
                "the metadata transaction begun at offset {since} was left open by the previous active controller"
            )),
        }]);
    }
    if !image.features.contains_key(METADATA_VERSION) {
        let features: Vec<MetadataRecord> = bootstrap
            .iter()
            .map(|(name, level)| MetadataRecord::FeatureLevel {
                name: name.clone(),
                feature_level: *level,
            })
            .collect();
        if !features.is_empty() {
            decisions.push(features);
        }
    }
    decisions
}

/// A decision's records as log entries: more than one record is wrapped in a
/// KIP-868 metadata transaction (one Raft entry per record, and a leader can
/// die between them; the next one aborts what was left open).
pub fn entries_of(records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
    if records.len() <= 1 {
        return records;
    }
    let mut entries = Vec::with_capacity(records.len() + 2);
    entries.push(MetadataRecord::BeginTransaction { name: None });
    entries.extend(records);
    entries.push(MetadataRecord::EndTransaction);
    entries
}

/// Whether the leader must stop acting as the active controller: openraft 0.9
/// has no check-quorum, so a leader cut off from its voters would go on
/// believing it leads. Past `controller.quorum.fetch.timeout.ms` without a
/// quorum's acknowledgement it answers NOT_CONTROLLER (a single voter is its
/// own quorum).
pub fn should_resign(
    voters: usize,
    millis_since_quorum_ack: Option<u64>,
    fetch_timeout_ms: u64,
) -> bool {
    voters > 1 && millis_since_quorum_ack.is_some_and(|ms| ms > fetch_timeout_ms)
}

/// When to snapshot the metadata image (Kafka's `SnapshotGenerator`): after
/// `metadata.log.max.record.bytes.between.snapshots` bytes were applied since
/// the last snapshot, or once `metadata.log.max.snapshot.interval.ms` passed
/// since it and anything was applied (0 disables the time trigger).
#[derive(Debug, Clone)]
pub struct SnapshotTrigger {
    max_bytes: u64,
    max_interval_ms: u64,
    /// Applied bytes (a running count) when the last snapshot was taken.
    bytes_at_last: u64,
    last_ms: i64,
}

impl SnapshotTrigger {
    pub fn new(max_bytes: u64, max_interval_ms: u64, applied_bytes: u64, now_ms: i64) -> Self {
        SnapshotTrigger {
            max_bytes: max_bytes.max(1),
            max_interval_ms,
            bytes_at_last: applied_bytes,
            last_ms: now_ms,
        }
    }

    /// Whether to snapshot now, given the running count of applied bytes; a
    /// yes counts as the snapshot taken.
    pub fn decide(&mut self, applied_bytes: u64, now_ms: i64) -> bool {
        let since = applied_bytes.saturating_sub(self.bytes_at_last);
        if since == 0 {
            return false;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms).max(0) as u64;
        let due = since >= self.max_bytes
            || (self.max_interval_ms > 0 && elapsed >= self.max_interval_ms);
        if due {
            self.bytes_at_last = applied_bytes;
            self.last_ms = now_ms;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bootstrap() -> BTreeMap<String, i16> {
        [(METADATA_VERSION.to_string(), 27)].into()
    }

    #[test]
    fn activation_aborts_an_open_transaction_then_bootstraps_features() {
        let empty = ClusterImage::default();
        assert_eq!(
            activation_records(&empty, Some(7), &bootstrap()),
            vec![
                vec![MetadataRecord::AbortTransaction {
                    reason: Some("the metadata transaction begun at offset 7 was left open by the previous active controller".into())
                }],
                vec![MetadataRecord::FeatureLevel {
                    name: METADATA_VERSION.into(),
                    feature_level: 27
                }],
            ]
        );
        let versioned = ClusterImage {
            features: bootstrap(),
            ..ClusterImage::default()
        };
        assert!(activation_records(&versioned, None, &bootstrap()).is_empty());
        assert!(activation_records(&empty, None, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn only_a_decision_of_several_records_is_a_transaction() {
        assert_eq!(entries_of(vec![]), vec![]);
        assert_eq!(
            entries_of(vec![MetadataRecord::NoOp]),
            vec![MetadataRecord::NoOp]
        );
        assert_eq!(
            entries_of(vec![MetadataRecord::NoOp, MetadataRecord::NoOp]),
            vec![
                MetadataRecord::BeginTransaction { name: None },
                MetadataRecord::NoOp,
                MetadataRecord::NoOp,
                MetadataRecord::EndTransaction,
            ]
        );
    }

    #[test]
    fn a_leader_resigns_only_without_a_quorum_ack_past_the_fetch_timeout() {
        assert!(
            !should_resign(1, Some(10_000), 2_000),
            "a single voter is its own quorum"
        );
        assert!(!should_resign(3, Some(2_000), 2_000));
        assert!(should_resign(3, Some(2_001), 2_000));
        assert!(!should_resign(3, None, 2_000));
    }

    #[test]
    fn snapshots_follow_kafkas_byte_and_time_triggers() {
        let mut t = SnapshotTrigger::new(100, 1_000, 50, 0);
        assert!(!t.decide(50, 5_000), "nothing applied since: no snapshot");
        assert!(!t.decide(149, 10));
        assert!(t.decide(150, 20), "100 bytes since the last");
        assert!(!t.decide(150, 5_000));
        assert!(!t.decide(151, 1_019));
        assert!(
            t.decide(151, 1_020),
            "an interval passed with something applied"
        );
        let mut no_timer = SnapshotTrigger::new(100, 0, 0, 0);
        assert!(!no_timer.decide(1, i64::MAX));
        assert!(no_timer.decide(100, 0));
    }
}
