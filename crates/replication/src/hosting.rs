//! Which partitions this broker hosts, decided from the cluster image: a pure
//! function of what is hosted now, what was found on disk and the image, returning
//! the log operations for the shell to run in order (Kafka's
//! `ReplicaManager.applyDelta`, without its I/O).
//!
//! - A partition whose replicas include this broker is hosted: its log is loaded
//!   when found on disk with the same topic id (or none recorded), created
//!   otherwise; if hosted already, its new leader, epochs and ISR are applied
//!   (whether it leads or follows is the partition machine's decision).
//! - A hosted partition the image no longer places here, or whose topic was
//!   deleted and re-created under the same name (a new topic id), is removed.
//! - A log found on disk that no topic claims, or that belongs to an older topic of
//!   the same name, is deleted as a stray.
//!
//! Order: removals and strays first (a re-created topic reuses the directory
//! name), then loads and creations, then updates, each in image order.

use std::collections::BTreeMap;
use std::sync::Arc;

use metadata::{ClusterImage, PartitionImage};
use protocol::TopicPartition;
use uuid::Uuid;

use crate::events::PartitionMetadata;

/// One log operation, in the order returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostingCommand {
    /// Stop hosting and delete the log.
    Remove { topic_partition: TopicPartition },
    /// Delete a log found on disk that no hosted partition will use.
    DeleteStray { topic_partition: TopicPartition },
    /// Open the log found on disk and host it.
    Load {
        topic_partition: TopicPartition,
        topic_id: Uuid,
        metadata: PartitionMetadata,
    },
    /// Create an empty log and host it.
    Create {
        topic_partition: TopicPartition,
        topic_id: Uuid,
        metadata: PartitionMetadata,
    },
    /// Apply the controller's new view to a hosted partition.
    Update {
        topic_partition: TopicPartition,
        metadata: PartitionMetadata,
    },
}

impl From<&PartitionImage> for PartitionMetadata {
    fn from(p: &PartitionImage) -> PartitionMetadata {
        PartitionMetadata {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        }
    }
}

/// The log operations that bring `hosted` (partition -> topic id) in line with
/// `image` for broker `node_id`. `discovered` are the logs found on disk and not
/// opened yet (partition -> the topic id recorded beside them, if any); every one
/// of them is either loaded or deleted.
pub fn plan(
    node_id: i32,
    image: &ClusterImage,
    hosted: &BTreeMap<TopicPartition, Uuid>,
    discovered: &BTreeMap<TopicPartition, Option<Uuid>>,
) -> Vec<HostingCommand> {
    let mut wanted: BTreeMap<TopicPartition, (Uuid, PartitionMetadata)> = BTreeMap::new();
    let mut order: Vec<TopicPartition> = Vec::new();
    for topic in image.topics.values() {
        for p in topic.partitions.values() {
            if p.replicas.contains(&node_id) {
                let tp = TopicPartition::new(Arc::clone(&topic.name), p.partition);
                order.push(tp.clone());
                wanted.insert(tp, (topic.topic_id, PartitionMetadata::from(p)));
            }
        }
    }
    let mut removals = Vec::new();
    for (tp, topic_id) in hosted {
        if wanted.get(tp).is_none_or(|(id, _)| id != topic_id) {
            removals.push(HostingCommand::Remove {
                topic_partition: tp.clone(),
            });
        }
    }
    let mut loadable = BTreeMap::new();
    for (tp, found_id) in discovered {
        let claimed = wanted
            .get(tp)
            .is_some_and(|(id, _)| found_id.is_none_or(|found| found == *id));
        if claimed && !hosted.contains_key(tp) {
            loadable.insert(tp.clone(), ());
        } else {
            removals.push(HostingCommand::DeleteStray {
                topic_partition: tp.clone(),
            });
        }
    }
    let mut additions = Vec::new();
    let mut updates = Vec::new();
    for tp in order {
        let (topic_id, metadata) = wanted
            .remove(&tp)
            .expect("every ordered partition is wanted");
        if hosted.get(&tp) == Some(&topic_id) {
            updates.push(HostingCommand::Update {
                topic_partition: tp,
                metadata,
            });
        } else if loadable.contains_key(&tp) {
            additions.push(HostingCommand::Load {
                topic_partition: tp,
                topic_id,
                metadata,
            });
        } else {
            additions.push(HostingCommand::Create {
                topic_partition: tp,
                topic_id,
                metadata,
            });
        }
    }
    removals
        .into_iter()
        .chain(additions)
        .chain(updates)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use metadata::TopicImage;

    const ME: i32 = 1;

    /// A topic: name, id, and each partition's index with its replicas.
    type TopicSketch<'a> = (&'a str, Uuid, &'a [(i32, &'a [i32])]);

    fn image(topics: &[TopicSketch]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for (name, id, partitions) in topics {
            let name: Arc<str> = Arc::from(*name);
            let partitions = partitions
                .iter()
                .map(|(index, replicas)| {
                    (
                        *index,
                        PartitionImage {
                            partition: *index,
                            replicas: replicas.to_vec(),
                            isr: replicas.to_vec(),
                            leader: replicas[0],
                            leader_epoch: 0,
                            partition_epoch: 0,
                        },
                    )
                })
                .collect();
            image.topic_names.insert(*id, Arc::clone(&name));
            image.topics.insert(
                Arc::clone(&name),
                TopicImage {
                    name,
                    topic_id: *id,
                    partitions,
                    configs: BTreeMap::new(),
                },
            );
        }
        image
    }

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }

    fn metadata(replicas: &[i32]) -> PartitionMetadata {
        PartitionMetadata {
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
        }
    }

    #[test]
    fn a_new_topic_creates_the_partitions_placed_here_only() {
        let a = Uuid::from_u128(1);
        let img = image(&[("a", a, &[(0, &[ME]), (1, &[2]), (2, &[2, ME])])]);
        let commands = plan(ME, &img, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(
            commands,
            vec![
                HostingCommand::Create {
                    topic_partition: tp("a", 0),
                    topic_id: a,
                    metadata: metadata(&[ME]),
                },
                HostingCommand::Create {
                    topic_partition: tp("a", 2),
                    topic_id: a,
                    metadata: metadata(&[2, ME]),
                },
            ]
        );
    }

    #[test]
    fn a_hosted_partition_gets_the_new_metadata() {
        let a = Uuid::from_u128(1);
        let img = image(&[("a", a, &[(0, &[ME])])]);
        let hosted = BTreeMap::from([(tp("a", 0), a)]);
        let commands = plan(ME, &img, &hosted, &BTreeMap::new());
        assert_eq!(
            commands,
            vec![HostingCommand::Update {
                topic_partition: tp("a", 0),
                metadata: metadata(&[ME]),
            }]
        );
    }

    #[test]
    fn a_deleted_topic_and_a_partition_moved_away_are_removed() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let img = image(&[("a", a, &[(0, &[2])])]);
        let hosted = BTreeMap::from([(tp("a", 0), a), (tp("b", 0), b)]);
        let commands = plan(ME, &img, &hosted, &BTreeMap::new());
        assert_eq!(
            commands,
            vec![
                HostingCommand::Remove {
                    topic_partition: tp("a", 0)
                },
                HostingCommand::Remove {
                    topic_partition: tp("b", 0)
                },
            ]
        );
    }

    #[test]
    fn a_recreated_topic_removes_the_old_log_before_creating_the_new() {
        let old = Uuid::from_u128(1);
        let new = Uuid::from_u128(2);
        let img = image(&[("a", new, &[(0, &[ME])])]);
        let hosted = BTreeMap::from([(tp("a", 0), old)]);
        let commands = plan(ME, &img, &hosted, &BTreeMap::new());
        assert_eq!(
            commands,
            vec![
                HostingCommand::Remove {
                    topic_partition: tp("a", 0)
                },
                HostingCommand::Create {
                    topic_partition: tp("a", 0),
                    topic_id: new,
                    metadata: metadata(&[ME]),
                },
            ]
        );
    }

    #[test]
    fn logs_found_on_disk_are_loaded_when_claimed_and_deleted_otherwise() {
        let a = Uuid::from_u128(1);
        let older = Uuid::from_u128(9);
        let img = image(&[("a", a, &[(0, &[ME]), (1, &[ME]), (2, &[ME])])]);
        let discovered = BTreeMap::from([
            (tp("a", 0), Some(a)),
            (tp("a", 1), None),
            (tp("a", 2), Some(older)),
            (tp("gone", 0), Some(older)),
        ]);
        let commands = plan(ME, &img, &BTreeMap::new(), &discovered);
        assert_eq!(
            commands,
            vec![
                HostingCommand::DeleteStray {
                    topic_partition: tp("a", 2)
                },
                HostingCommand::DeleteStray {
                    topic_partition: tp("gone", 0)
                },
                HostingCommand::Load {
                    topic_partition: tp("a", 0),
                    topic_id: a,
                    metadata: metadata(&[ME]),
                },
                HostingCommand::Load {
                    topic_partition: tp("a", 1),
                    topic_id: a,
                    metadata: metadata(&[ME]),
                },
                HostingCommand::Create {
                    topic_partition: tp("a", 2),
                    topic_id: a,
                    metadata: metadata(&[ME]),
                },
            ]
        );
    }
}
