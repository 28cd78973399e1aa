//! Which fetcher follows which partition (Kafka's `AbstractFetcherManager`):
//! one fetcher per (leader broker, fetcher id), the id spreading a leader's
//! partitions over `num.replica.fetchers` connections. A partition is in at
//! most one fetcher; moving it to a new leader takes it out of the old one.

use std::collections::BTreeMap;

use protocol::types::{java_abs, java_string_hash};
use protocol::TopicPartition;

use crate::fetcher::{
    Fetcher, FetcherCommand, FetcherConfig, FollowerLogs, InitialFetchState, PartitionFetchState,
};

/// A fetcher's identity (Kafka's `BrokerIdAndFetcherId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FetcherKey {
    pub leader: i32,
    pub fetcher_id: u32,
}

/// Kafka's `getFetcherId`: `abs(31 * topic.hashCode() + partition) %
/// num.replica.fetchers`, in Java's wrapping 32-bit arithmetic.
pub fn fetcher_id(topic_partition: &TopicPartition, num_replica_fetchers: u32) -> u32 {
    let hash = java_string_hash(&topic_partition.topic)
        .wrapping_mul(31)
        .wrapping_add(topic_partition.partition);
    let fetchers = i32::try_from(num_replica_fetchers.max(1)).unwrap_or(i32::MAX);
    u32::try_from(java_abs(hash) % fetchers).expect("a non-negative remainder")
}

/// Every fetcher of this broker.
#[derive(Debug, Clone)]
pub struct FetcherManager {
    config: FetcherConfig,
    broker_epoch: i64,
    fetchers: BTreeMap<FetcherKey, Fetcher>,
    placed: BTreeMap<TopicPartition, FetcherKey>,
}

impl FetcherManager {
    pub fn new(config: FetcherConfig, broker_epoch: i64) -> FetcherManager {
        FetcherManager {
            config,
            broker_epoch,
            fetchers: BTreeMap::new(),
            placed: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> FetcherConfig {
        self.config
    }

    /// A new registration's broker epoch, sent with every later fetch.
    pub fn set_broker_epoch(&mut self, broker_epoch: i64) {
        self.broker_epoch = broker_epoch;
        for fetcher in self.fetchers.values_mut() {
            fetcher.set_broker_epoch(broker_epoch);
        }
    }

    pub fn fetcher_of(&self, topic_partition: &TopicPartition) -> Option<FetcherKey> {
        self.placed.get(topic_partition).copied()
    }

    pub fn fetcher(&self, key: FetcherKey) -> Option<&Fetcher> {
        self.fetchers.get(&key)
    }

    pub fn fetcher_mut(&mut self, key: FetcherKey) -> Option<&mut Fetcher> {
        self.fetchers.get_mut(&key)
    }

    pub fn keys(&self) -> impl Iterator<Item = FetcherKey> + '_ {
        self.fetchers.keys().copied()
    }

    /// Kafka's `addFetcherForPartitions`: each partition goes to the fetcher of
    /// (its leader, its fetcher id), created when missing, after leaving any other
    /// fetcher. Returns the commands of each fetcher (partitions whose log is gone).
    pub fn add_partitions(
        &mut self,
        partitions: Vec<(TopicPartition, InitialFetchState)>,
        logs: &dyn FollowerLogs,
    ) -> Vec<(FetcherKey, FetcherCommand)> {
        let mut grouped: BTreeMap<FetcherKey, Vec<(TopicPartition, InitialFetchState)>> =
            BTreeMap::new();
        for (tp, initial) in partitions {
            let key = FetcherKey {
                leader: initial.leader,
                fetcher_id: fetcher_id(&tp, self.config.num_replica_fetchers),
            };
            if let Some(previous) = self.placed.get(&tp).copied().filter(|p| *p != key) {
                self.remove_from(previous, &tp);
            }
            self.placed.insert(tp.clone(), key);
            grouped.entry(key).or_default().push((tp, initial));
        }
        let mut commands = Vec::new();
        for (key, partitions) in grouped {
            let fetcher = self
                .fetchers
                .entry(key)
                .or_insert_with(|| Fetcher::new(key.leader, self.config, self.broker_epoch));
            for command in fetcher.add_partitions(partitions, logs) {
                if let FetcherCommand::PartitionFailed { topic_partition } = &command {
                    self.placed.remove(topic_partition);
                }
                commands.push((key, command));
            }
        }
        commands
    }

    fn remove_from(&mut self, key: FetcherKey, tp: &TopicPartition) {
        if let Some(fetcher) = self.fetchers.get_mut(&key) {
            fetcher.remove_partitions(std::slice::from_ref(tp));
        }
    }

    /// Kafka's `removeFetcherForPartitions`: the partitions leave their fetchers
    /// (a leader now, deleted, or following a new leader next).
    pub fn remove_partitions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> BTreeMap<TopicPartition, PartitionFetchState> {
        let mut removed = BTreeMap::new();
        for tp in partitions {
            if let Some(key) = self.placed.remove(tp) {
                if let Some(fetcher) = self.fetchers.get_mut(&key) {
                    removed.extend(fetcher.remove_partitions(std::slice::from_ref(tp)));
                }
            }
        }
        removed
    }

    /// A fetcher said a partition failed: forget where it was placed.
    pub fn partition_failed(&mut self, topic_partition: &TopicPartition) {
        self.placed.remove(topic_partition);
    }

    /// Kafka's `shutdownIdleFetcherThreads`: fetchers with no partition left go;
    /// the shell closes their connections.
    pub fn remove_idle_fetchers(&mut self) -> Vec<FetcherKey> {
        let idle: Vec<FetcherKey> = self
            .fetchers
            .iter()
            .filter(|(_, f)| f.is_empty())
            .map(|(key, _)| *key)
            .collect();
        for key in &idle {
            self.fetchers.remove(key);
        }
        idle
    }
}
