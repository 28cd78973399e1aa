//! Transactions (KIP-98), client side:
//!
//! ```text
//! init_transactions   InitProducerId(transactional.id) at the transaction coordinator
//! begin_transaction   local only
//! send(record)        AddPartitionsToTxn before the first record of each partition
//! send_offsets_to_transaction   AddOffsetsToTxn, then TxnOffsetCommit at the group coordinator
//! commit/abort        flush, then EndTxn(committed)
//! ```
//!
//! States: Uninitialized -> Ready -> InTransaction -> Ready (after commit or abort).
//! A fatal error (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH...) leaves the producer
//! unusable, as in Java. Sending outside a transaction with a `transactional.id`
//! is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use protocol::kafka::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use protocol::kafka::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use protocol::kafka::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use protocol::kafka::protocol::StrBytes;
use protocol::{ErrorCode, TopicPartition};

use crate::error::{ClientError, Result};
use crate::producer::Producer;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Uninitialized,
    Ready,
    InTransaction,
    Fatal(String),
}

#[derive(Debug)]
struct State {
    phase: Phase,
    partitions: BTreeSet<TopicPartition>,
}

/// The transactional state of a producer.
#[derive(Debug)]
pub(crate) struct TransactionManager {
    transactional_id: Option<String>,
    state: Mutex<State>,
}

/// A consumer group's identity for `send_offsets_to_transaction` (Java's
/// `ConsumerGroupMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl TransactionManager {
    pub fn new(transactional_id: Option<String>) -> Self {
        TransactionManager {
            transactional_id,
            state: Mutex::new(State {
                phase: Phase::Uninitialized,
                partitions: BTreeSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("transaction state lock poisoned")
    }

    /// Whether `tp` must be added to the transaction before records go to it.
    /// Errors when a transactional producer sends outside a transaction.
    pub fn needs_partition(&self, tp: &TopicPartition) -> Result<bool> {
        if self.transactional_id.is_none() {
            return Ok(false);
        }
        let state = self.lock();
        match &state.phase {
            Phase::InTransaction => Ok(!state.partitions.contains(tp)),
            Phase::Fatal(reason) => Err(ClientError::InvalidArgument(format!(
                "the producer hit a fatal error: {reason}"
            ))),
            _ => Err(ClientError::kafka(
                ErrorCode::InvalidTxnState,
                "send outside a transaction: call begin_transaction first",
            )),
        }
    }

    fn id(&self) -> Result<&str> {
        self.transactional_id.as_deref().ok_or_else(|| {
            ClientError::InvalidArgument(
                "transactions need transactional.id in the producer config".into(),
            )
        })
    }

    fn expect_phase(&self, expected: Phase, action: &str) -> Result<()> {
        let state = self.lock();
        match &state.phase {
            phase if *phase == expected => Ok(()),
            Phase::Fatal(reason) => Err(ClientError::InvalidArgument(format!(
                "cannot {action}: fatal error earlier: {reason}"
            ))),
            phase => Err(ClientError::kafka(
                ErrorCode::InvalidTxnState,
                format!("cannot {action} in state {phase:?}"),
            )),
        }
    }

    fn set_phase(&self, phase: Phase) {
        let mut state = self.lock();
        state.phase = phase;
        state.partitions.clear();
    }
}

fn is_fatal(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(
            ErrorCode::ProducerFenced
                | ErrorCode::InvalidProducerEpoch
                | ErrorCode::TransactionalIdAuthorizationFailed
                | ErrorCode::InvalidTxnState
        )
    )
}

impl Producer {
    fn producer_id_and_epoch(&self) -> Result<(i64, i16)> {
        self.shared()
            .producer_id
            .lock()
            .expect("producer id lock poisoned")
            .as_ref()
            .map(|s| (s.producer_id, s.producer_epoch))
            .ok_or_else(|| {
                ClientError::kafka(ErrorCode::InvalidTxnState, "call init_transactions first")
            })
    }

    /// `initTransactions()`: registers `transactional.id` with its coordinator,
    /// fencing older producers with the same id and finishing their transaction.
    pub async fn init_transactions(&self) -> Result<()> {
        let id = self.transaction().id()?.to_string();
        self.init_producer_id(Some(&id)).await?;
        self.shared().transactional.store(true, Ordering::Release);
        self.transaction().set_phase(Phase::Ready);
        Ok(())
    }

    /// `beginTransaction()`.
    pub fn begin_transaction(&self) -> Result<()> {
        self.transaction()
            .expect_phase(Phase::Ready, "begin a transaction")?;
        self.transaction().set_phase(Phase::InTransaction);
        Ok(())
    }

    /// Adds `tp` to the ongoing transaction (before its first record).
    pub(crate) async fn add_partition_to_transaction(&self, tp: &TopicPartition) -> Result<()> {
        if !self.transaction().needs_partition(tp)? {
            return Ok(());
        }
        let id = self.transaction().id()?.to_string();
        let (producer_id, epoch) = self.producer_id_and_epoch()?;
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
            .with_v3_and_below_producer_id(ProducerId(producer_id))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.to_string())))
                .with_partitions(vec![tp.partition])]);
        self.with_coordinator_retries(&id, "AddPartitionsToTxn", |connection| {
            let request = request.clone();
            async move {
                let response = connection.send(&request).await?;
                ClientError::check(response.error_code, || tp.to_string(), None)?;
                for topic in response.results_by_topic_v3_and_below {
                    for p in topic.results_by_partition {
                        ClientError::check(p.partition_error_code, || tp.to_string(), None)?;
                    }
                }
                Ok(())
            }
        })
        .await?;
        self.transaction().lock().partitions.insert(tp.clone());
        Ok(())
    }

    /// `sendOffsetsToTransaction(offsets, groupMetadata)`: the group's offsets
    /// commit with the transaction.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        self.transaction()
            .expect_phase(Phase::InTransaction, "send offsets")?;
        let id = self.transaction().id()?.to_string();
        let (producer_id, epoch) = self.producer_id_and_epoch()?;
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())));
        self.with_coordinator_retries(&id, "AddOffsetsToTxn", |connection| {
            let add = add.clone();
            async move {
                ClientError::check(
                    connection.send(&add).await?.error_code,
                    || "AddOffsetsToTxn".into(),
                    None,
                )
            }
        })
        .await?;
        let mut topics: BTreeMap<String, Vec<TxnOffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            topics.entry(tp.topic.to_string()).or_default().push(
                TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset),
            );
        }
        let commit = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
            .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_generation_id(group.generation_id)
            .with_member_id(StrBytes::from_string(group.member_id.clone()))
            .with_group_instance_id(group.group_instance_id.clone().map(StrBytes::from_string))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let cluster = &self.shared().cluster;
        let connection = cluster.coordinator(0, &group.group_id).await?;
        let response = connection.send(&commit).await?;
        for topic in response.topics {
            for p in topic.partitions {
                ClientError::check(
                    p.error_code,
                    || format!("{}-{}", topic.name.0, p.partition_index),
                    None,
                )?;
            }
        }
        Ok(())
    }

    /// `commitTransaction()`: flushes, then commits.
    pub async fn commit_transaction(&self) -> Result<()> {
        self.end_transaction(true).await
    }

    /// `abortTransaction()`: flushes what was sent, then aborts it.
    pub async fn abort_transaction(&self) -> Result<()> {
        self.end_transaction(false).await
    }

    async fn end_transaction(&self, committed: bool) -> Result<()> {
        let action = if committed { "commit" } else { "abort" };
        self.transaction()
            .expect_phase(Phase::InTransaction, action)?;
        self.flush().await?;
        let id = self.transaction().id()?.to_string();
        let (producer_id, epoch) = self.producer_id_and_epoch()?;
        let nothing_added = self.transaction().lock().partitions.is_empty();
        if !nothing_added {
            let request = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id.clone())))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch)
                .with_committed(committed);
            let result = self
                .with_coordinator_retries(&id, "EndTxn", |connection| {
                    let request = request.clone();
                    async move {
                        ClientError::check(
                            connection.send(&request).await?.error_code,
                            || format!("EndTxn ({action})"),
                            None,
                        )
                    }
                })
                .await;
            if let Err(e) = result {
                if is_fatal(&e) {
                    self.transaction().set_phase(Phase::Fatal(e.to_string()));
                }
                return Err(e);
            }
        }
        self.transaction().set_phase(Phase::Ready);
        Ok(())
    }

    /// Runs `call` against the transaction coordinator, retrying retriable errors
    /// (and CONCURRENT_TRANSACTIONS) until `max.block.ms`.
    async fn with_coordinator_retries<F, Fut>(
        &self,
        id: &str,
        what: &str,
        mut call: F,
    ) -> Result<()>
    where
        F: FnMut(crate::connection::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let shared = self.shared();
        let deadline = tokio::time::Instant::now() + shared.config.max_block;
        loop {
            let result = match shared.cluster.coordinator(1, id).await {
                Ok(connection) => call(connection).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e)
                    if (e.is_retriable()
                        || e.code() == Some(ErrorCode::ConcurrentTransactions))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::debug!(what, error = %e, "retrying");
                    if e.needs_metadata_refresh() {
                        shared.cluster.coordinator_dead(1, id);
                    }
                    tokio::time::sleep(shared.config.common.retry_backoff).await;
                }
                Err(e) => {
                    if is_fatal(&e) {
                        self.transaction().set_phase(Phase::Fatal(e.to_string()));
                    }
                    return Err(e);
                }
            }
        }
    }
}
