//! The producers a partition knows (DescribeProducers) and an operator's abort of
//! a hanging transaction (WriteTxnMarkers), as Kafka's Admin client has them
//! (`describeProducers`, `abortTransaction`) and `kafka-transactions.sh` uses them.

use std::collections::{BTreeMap, HashMap};

use protocol::kafka::messages::describe_producers_request::TopicRequest;
use protocol::kafka::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use protocol::kafka::messages::{DescribeProducersRequest, ProducerId, WriteTxnMarkersRequest};
use protocol::TopicPartition;

use crate::admin::Admin;
use crate::error::{ClientError, Result};
use crate::rpc::topic_name;

/// One producer's state on a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction on the partition, if any.
    pub current_transaction_start_offset: Option<i64>,
}

/// What `abort_transaction` needs, as Kafka's `AbortTransactionSpec`: the producer
/// and epochs as `describe_producers` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    pub partition: TopicPartition,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
}

impl Admin {
    async fn leader_of(&self, tp: &TopicPartition) -> Result<i32> {
        self.cluster.topic(&tp.topic).await?;
        self.cluster.metadata().leader_or_error(tp)
    }

    /// The active producers of each partition, asked of its leader.
    pub async fn describe_producers(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, Vec<ProducerState>>> {
        let mut by_leader: HashMap<i32, BTreeMap<String, Vec<i32>>> = HashMap::new();
        for tp in partitions {
            let leader = self.leader_of(tp).await?;
            by_leader
                .entry(leader)
                .or_default()
                .entry(tp.topic.to_string())
                .or_default()
                .push(tp.partition);
        }
        let mut out = BTreeMap::new();
        for (leader, topics) in by_leader {
            let request = DescribeProducersRequest::default().with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        TopicRequest::default()
                            .with_name(topic_name(&name))
                            .with_partition_indexes(partitions)
                    })
                    .collect(),
            );
            let response = self
                .cluster
                .connection(leader)
                .await?
                .send(&request)
                .await?;
            for topic in response.topics {
                for p in topic.partitions {
                    let tp = TopicPartition::new(topic.name.0.to_string(), p.partition_index);
                    let message = p.error_message.as_ref().map(|m| m.to_string());
                    ClientError::check(p.error_code, || tp.to_string(), message.as_deref())?;
                    let states = p
                        .active_producers
                        .into_iter()
                        .map(|s| ProducerState {
                            producer_id: s.producer_id.0,
                            producer_epoch: s.producer_epoch,
                            last_sequence: s.last_sequence,
                            last_timestamp: s.last_timestamp,
                            coordinator_epoch: s.coordinator_epoch,
                            current_transaction_start_offset: (s.current_txn_start_offset >= 0)
                                .then_some(s.current_txn_start_offset),
                        })
                        .collect();
                    out.insert(tp, states);
                }
            }
        }
        Ok(out)
    }

    /// Writes an ABORT marker for the producer's open transaction on the partition
    /// (WriteTxnMarkers to its leader), for a transaction no coordinator will end.
    pub async fn abort_transaction(&self, spec: &AbortTransactionSpec) -> Result<()> {
        let leader = self.leader_of(&spec.partition).await?;
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(spec.producer_id))
            .with_producer_epoch(spec.producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(spec.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name(&spec.partition.topic))
                .with_partition_indexes(vec![spec.partition.partition])]);
        let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let response = self
            .cluster
            .connection(leader)
            .await?
            .send(&request)
            .await?;
        for result in response.markers {
            for topic in result.topics {
                for p in topic.partitions {
                    ClientError::check(
                        p.error_code,
                        || {
                            format!(
                                "{}-{} (producer {})",
                                topic.name.0, p.partition_index, spec.producer_id
                            )
                        },
                        None,
                    )?;
                }
            }
        }
        Ok(())
    }
}
