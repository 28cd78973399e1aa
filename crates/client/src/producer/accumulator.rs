//! The record accumulator: per-partition queues of open batches, as Kafka's
//! `RecordAccumulator`.
//!
//! `send` appends a record to the last batch of its partition's queue, or opens a
//! new batch when that one would pass `batch.size` (a record larger than
//! `batch.size` gets a batch of its own). The sender drains, per partition, the
//! head batch once it is *ready*: full (a later batch exists or it reached
//! `batch.size`), older than `linger.ms`, or a flush or close is under way. A batch
//! that failed with a retriable error goes back to the front of its queue with a
//! `retry.backoff.ms` delay.
//!
//! Invariants: batches of one partition leave in the order they were opened (a
//! retried batch goes back in front of newer ones); every record's completion is
//! called exactly once (delivered, failed, or failed at close); the bytes of
//! queued and in-flight records stay within `buffer.memory` (a semaphore whose
//! permits a batch holds until it completes).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::TopicPartition;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::error::{ClientError, Result};
use crate::producer::RecordMetadata;

/// Called once per record with its outcome.
pub(crate) enum Completion {
    Channel(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Box<dyn FnOnce(Result<RecordMetadata>) + Send>),
}

impl Completion {
    pub fn complete(self, result: Result<RecordMetadata>) {
        match self {
            Completion::Channel(sender) => {
                let _ = sender.send(result);
            }
            Completion::Callback(callback) => callback(result),
        }
    }
}

/// Records bound for one partition, sent as one v2 batch.
pub(crate) struct ProducerBatch {
    pub tp: TopicPartition,
    builder: BatchBuilder,
    /// Per record: its completion and its create timestamp.
    completions: Vec<(Completion, i64)>,
    pub created: Instant,
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    /// The encoded batch, once drained: a retry resends the same bytes (and so the
    /// same producer id and sequence).
    pub encoded: Option<Bytes>,
    pub sequence: Option<i32>,
    _memory: Option<OwnedSemaphorePermit>,
    full: bool,
}

impl ProducerBatch {
    pub fn record_count(&self) -> i32 {
        self.completions.len() as i32
    }

    pub fn estimated_size(&self) -> usize {
        self.encoded
            .as_ref()
            .map_or_else(|| self.builder.estimated_size(), Bytes::len)
    }

    /// Encodes the batch once (compressing it), stamping the producer id, epoch
    /// and the sequence the sender assigned when idempotent.
    pub fn encode(&mut self, producer: Option<(i64, i16)>, transactional: bool) -> Result<Bytes> {
        if let Some(bytes) = &self.encoded {
            return Ok(bytes.clone());
        }
        // Once encoded, only the bytes are used (retries resend them).
        let mut builder =
            std::mem::replace(&mut self.builder, BatchBuilder::new(Compression::None));
        if let (Some((producer_id, epoch)), Some(sequence)) = (producer, self.sequence) {
            builder = builder
                .producer(producer_id, epoch, sequence)
                .transactional(transactional);
        }
        let bytes = Bytes::from(
            builder
                .build()
                .map_err(|e| ClientError::Protocol(format!("cannot compress a batch: {e}")))?,
        );
        self.encoded = Some(bytes.clone());
        Ok(bytes)
    }

    /// Completes every record: offsets from `base_offset`, or the error.
    pub fn complete(self, result: Result<(i64, i64)>) {
        let tp = self.tp;
        for (index, (completion, timestamp)) in self.completions.into_iter().enumerate() {
            let outcome = match &result {
                Ok((base_offset, log_append_time)) => Ok(RecordMetadata {
                    topic: Arc::clone(&tp.topic),
                    partition: tp.partition,
                    offset: if *base_offset >= 0 {
                        base_offset + index as i64
                    } else {
                        -1
                    },
                    timestamp: if *log_append_time >= 0 {
                        *log_append_time
                    } else {
                        timestamp
                    },
                }),
                Err(e) => Err(e.clone()),
            };
            completion.complete(outcome);
        }
    }
}

/// Per-partition queues and the bookkeeping the sender and `flush` need.
pub(crate) struct Accumulator {
    state: Mutex<State>,
    /// Wakes the sender: a batch became ready, a request finished, a flush began.
    pub wakeup: Notify,
    /// Batches not yet completed (queued or in flight); `flush` waits for 0.
    incomplete: watch::Sender<usize>,
    compression: Compression,
    batch_size: usize,
}

struct State {
    queues: HashMap<TopicPartition, VecDeque<ProducerBatch>>,
    flushing: usize,
    closed: bool,
    /// Where the next drain starts among the queues, advanced every drain so
    /// that, when a request cannot take every ready batch, no partition waits
    /// behind the same others every time (Java's `drainIndex`).
    drain_start: usize,
}

/// What `drain` hands the sender: batches by partition leader, and when to look again.
pub(crate) struct Drained {
    pub by_node: HashMap<i32, Vec<ProducerBatch>>,
    pub next_check: Option<Instant>,
    pub unknown_leaders: bool,
    pub expired: Vec<ProducerBatch>,
}

impl Accumulator {
    pub fn new(compression: Compression, batch_size: usize) -> Accumulator {
        Accumulator {
            state: Mutex::new(State {
                queues: HashMap::new(),
                flushing: 0,
                closed: false,
                drain_start: 0,
            }),
            wakeup: Notify::new(),
            incomplete: watch::channel(0).0,
            compression,
            batch_size,
        }
    }

    /// Appends one record to `tp`'s open batch (or a new one).
    pub fn append(
        &self,
        tp: &TopicPartition,
        record: &NewRecord<'_>,
        completion: Completion,
        memory: OwnedSemaphorePermit,
    ) -> Result<()> {
        let mut state = self.state.lock().expect("accumulator lock poisoned");
        if state.closed {
            return Err(ClientError::Closed);
        }
        let queue = state.queues.entry(tp.clone()).or_default();
        let fits = queue.back().is_some_and(|b| {
            !b.full
                && b.encoded.is_none()
                && b.builder.estimated_size() + b.builder.record_size(record) <= self.batch_size
        });
        let mut became_ready = false;
        if !fits {
            if let Some(last) = queue.back_mut() {
                last.full = true;
                became_ready = true;
            }
            queue.push_back(ProducerBatch {
                tp: tp.clone(),
                builder: BatchBuilder::new(self.compression),
                completions: Vec::new(),
                created: Instant::now(),
                attempts: 0,
                retry_at: None,
                encoded: None,
                sequence: None,
                _memory: None,
                full: false,
            });
            self.incomplete.send_modify(|n| *n += 1);
        }
        let queue_len = queue.len();
        let batch = queue.back_mut().expect("a batch was just ensured");
        batch.builder.append(record);
        batch.completions.push((completion, record.timestamp));
        match &mut batch._memory {
            Some(permit) => permit.merge(memory),
            slot @ None => *slot = Some(memory),
        }
        if batch.builder.estimated_size() >= self.batch_size {
            batch.full = true;
            became_ready = true;
        }
        let first_record = batch.completions.len() == 1;
        let first_batch = first_record && queue_len == 1;
        drop(state);
        if became_ready || first_batch {
            self.wakeup.notify_one();
        }
        Ok(())
    }

    /// Puts a batch that failed retriably back at the front of its queue.
    pub fn reenqueue(&self, mut batch: ProducerBatch, backoff: std::time::Duration) {
        batch.attempts += 1;
        batch.retry_at = Some(Instant::now() + backoff);
        batch.full = true;
        let mut state = self.state.lock().expect("accumulator lock poisoned");
        let queue = state.queues.entry(batch.tp.clone()).or_default();
        // Keep sequence order among retried batches of the partition.
        let position = match batch.sequence {
            Some(sequence) => queue
                .iter()
                .position(|b| b.sequence.is_none_or(|s| s > sequence))
                .unwrap_or(queue.len()),
            None => 0,
        };
        queue.insert(position, batch);
        drop(state);
        self.wakeup.notify_one();
    }

    /// Marks a batch done (after completing its records).
    pub fn batch_done(&self) {
        self.incomplete.send_modify(|n| *n = n.saturating_sub(1));
        self.wakeup.notify_one();
    }

    /// Takes the ready head batches whose leader `leader_of` knows and whose node
    /// `can_send` accepts, at most `max_bytes` per node.
    pub fn drain(
        &self,
        now: Instant,
        linger: std::time::Duration,
        delivery_timeout: std::time::Duration,
        max_bytes: usize,
        mut leader_of: impl FnMut(&TopicPartition) -> Option<i32>,
        mut can_send: impl FnMut(i32) -> bool,
    ) -> Drained {
        let mut drained = Drained {
            by_node: HashMap::new(),
            next_check: None,
            unknown_leaders: false,
            expired: Vec::new(),
        };
        let mut node_bytes: HashMap<i32, usize> = HashMap::new();
        let mut blocked: HashMap<i32, bool> = HashMap::new();
        let mut state = self.state.lock().expect("accumulator lock poisoned");
        let force = state.flushing > 0 || state.closed;
        let earliest = |at: Instant, next: &mut Option<Instant>| {
            *next = Some(next.map_or(at, |n: Instant| n.min(at)));
        };
        let mut order: Vec<TopicPartition> = state.queues.keys().cloned().collect();
        order.sort();
        if !order.is_empty() {
            let start = state.drain_start % order.len();
            order.rotate_left(start);
        }
        state.drain_start = state.drain_start.wrapping_add(1);
        for tp in &order {
            let queue = state.queues.get_mut(tp).expect("keys were just listed");
            // Batches past delivery.timeout.ms fail without being sent (again).
            while queue
                .front()
                .is_some_and(|b| now.duration_since(b.created) >= delivery_timeout)
            {
                drained.expired.extend(queue.pop_front());
            }
            let Some(head) = queue.front() else { continue };
            if let Some(retry_at) = head.retry_at {
                if retry_at > now {
                    earliest(retry_at, &mut drained.next_check);
                    continue;
                }
            }
            let ready = force
                || head.full
                || queue.len() > 1
                || now.duration_since(head.created) >= linger
                || head.retry_at.is_some();
            if !ready {
                earliest(head.created + linger, &mut drained.next_check);
                continue;
            }
            let Some(node) = leader_of(&head.tp) else {
                drained.unknown_leaders = true;
                continue;
            };
            let is_blocked = *blocked.entry(node).or_insert_with(|| !can_send(node));
            if is_blocked {
                continue;
            }
            let used = node_bytes.entry(node).or_insert(0);
            let size = head.estimated_size();
            if *used > 0 && *used + size > max_bytes {
                continue;
            }
            *used += size;
            let batch = queue.pop_front().expect("head exists");
            drained.by_node.entry(node).or_default().push(batch);
        }
        state.queues.retain(|_, q| !q.is_empty());
        drained
    }

    /// Starts a flush: every batch is ready until [`Accumulator::end_flush`].
    pub fn begin_flush(&self) {
        self.state
            .lock()
            .expect("accumulator lock poisoned")
            .flushing += 1;
        self.wakeup.notify_one();
    }

    pub fn end_flush(&self) {
        let mut state = self.state.lock().expect("accumulator lock poisoned");
        state.flushing = state.flushing.saturating_sub(1);
    }

    /// Waits until every batch has completed.
    pub async fn wait_idle(&self) {
        let mut rx = self.incomplete.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Refuses new records; queued ones are still sent.
    pub fn close(&self) {
        self.state.lock().expect("accumulator lock poisoned").closed = true;
        self.wakeup.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("accumulator lock poisoned").closed
    }

    /// Fails every queued batch (forced close).
    pub fn abort_all(&self, error: &ClientError) {
        let batches: Vec<ProducerBatch> = {
            let mut state = self.state.lock().expect("accumulator lock poisoned");
            state.closed = true;
            state.queues.drain().flat_map(|(_, q)| q).collect()
        };
        for batch in batches {
            batch.complete(Err(error.clone()));
            self.batch_done();
        }
    }

    /// Whether any batch is queued (not in flight).
    pub fn has_queued(&self) -> bool {
        !self
            .state
            .lock()
            .expect("accumulator lock poisoned")
            .queues
            .is_empty()
    }
}
