//! The consumer protocol: what group members put in JoinGroup's metadata
//! (a [`Subscription`]) and what the leader hands each member in SyncGroup (an
//! [`Assignment`]), each prefixed by its i16 version, as Kafka's
//! `ConsumerProtocol` writes them. We write subscription v3 (owned partitions,
//! generation, rack) and assignment v3, and read v0-v3.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use protocol::kafka::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedTopic,
};
use protocol::kafka::messages::consumer_protocol_subscription::{
    ConsumerProtocolSubscription, TopicPartition as OwnedTopic,
};
use protocol::kafka::protocol::{Decodable, Encodable};
use protocol::TopicPartition;

use crate::error::{ClientError, Result};
use crate::rpc::{sb, topic_name};

const SUBSCRIPTION_VERSION: i16 = 3;
const ASSIGNMENT_VERSION: i16 = 3;

/// A member's subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (cooperative and sticky assignors use them).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions are from (-1: unknown).
    pub generation_id: i32,
    pub rack_id: Option<String>,
}

/// A member's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut grouped: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for tp in partitions {
        grouped
            .entry(tp.topic.to_string())
            .or_default()
            .push(tp.partition);
    }
    grouped.into_iter().collect()
}

pub fn encode_subscription(subscription: &Subscription) -> Result<Bytes> {
    let message = ConsumerProtocolSubscription::default()
        .with_topics(subscription.topics.iter().map(|t| sb(t)).collect())
        .with_user_data(subscription.user_data.clone())
        .with_owned_partitions(
            group_by_topic(&subscription.owned_partitions)
                .into_iter()
                .map(|(t, p)| {
                    OwnedTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(p)
                })
                .collect(),
        )
        .with_generation_id(subscription.generation_id)
        .with_rack_id(subscription.rack_id.as_deref().map(sb));
    encode_versioned(&message, SUBSCRIPTION_VERSION)
}

pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription> {
    let (version, mut body) = split_version(bytes)?;
    let message =
        ConsumerProtocolSubscription::decode(&mut body, version.min(SUBSCRIPTION_VERSION))
            .map_err(|e| ClientError::Protocol(format!("consumer subscription v{version}: {e}")))?;
    Ok(Subscription {
        topics: message.topics.iter().map(|t| t.to_string()).collect(),
        user_data: message.user_data,
        owned_partitions: message
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        generation_id: if version >= 2 {
            message.generation_id
        } else {
            -1
        },
        rack_id: message.rack_id.map(|r| r.to_string()),
    })
}

pub fn encode_assignment(assignment: &Assignment) -> Result<Bytes> {
    let message = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            group_by_topic(&assignment.partitions)
                .into_iter()
                .map(|(t, p)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(p)
                })
                .collect(),
        )
        .with_user_data(assignment.user_data.clone());
    encode_versioned(&message, ASSIGNMENT_VERSION)
}

/// An empty byte string is an empty assignment (a member the leader gave nothing).
pub fn decode_assignment(bytes: &[u8]) -> Result<Assignment> {
    if bytes.is_empty() {
        return Ok(Assignment::default());
    }
    let (version, mut body) = split_version(bytes)?;
    let message = ConsumerProtocolAssignment::decode(&mut body, version.min(ASSIGNMENT_VERSION))
        .map_err(|e| ClientError::Protocol(format!("consumer assignment v{version}: {e}")))?;
    Ok(Assignment {
        partitions: message
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        user_data: message.user_data,
    })
}

fn encode_versioned<M: Encodable>(message: &M, version: i16) -> Result<Bytes> {
    let size = message
        .compute_size(version)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut out = BytesMut::with_capacity(2 + size);
    out.put_i16(version);
    message
        .encode(&mut out, version)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    Ok(out.freeze())
}

fn split_version(bytes: &[u8]) -> Result<(i16, Bytes)> {
    if bytes.len() < 2 {
        return Err(ClientError::Protocol(format!(
            "consumer protocol message of {} bytes",
            bytes.len()
        )));
    }
    let mut body = Bytes::copy_from_slice(bytes);
    let version = body.get_i16();
    if version < 0 {
        return Err(ClientError::Protocol(format!(
            "consumer protocol version {version}"
        )));
    }
    Ok((version, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_round_trip() {
        let subscription = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(b"u")),
            owned_partitions: vec![TopicPartition::new("a", 0), TopicPartition::new("a", 2)],
            generation_id: 7,
            rack_id: Some("r1".into()),
        };
        let bytes = encode_subscription(&subscription).unwrap();
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_subscription(&bytes).unwrap(), subscription);
    }

    #[test]
    fn assignments_round_trip_and_empty_is_nothing() {
        let assignment = Assignment {
            partitions: vec![TopicPartition::new("t", 1)],
            user_data: None,
        };
        assert_eq!(
            decode_assignment(&encode_assignment(&assignment).unwrap()).unwrap(),
            assignment
        );
        assert_eq!(decode_assignment(&[]).unwrap(), Assignment::default());
    }

    /// A v0 subscription as old Java clients and librdkafka write it.
    #[test]
    fn v0_subscriptions_decode() {
        let bytes = [0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let subscription = decode_subscription(&bytes).unwrap();
        assert_eq!(subscription.topics, vec!["t"]);
        assert_eq!(subscription.user_data, None);
        assert_eq!(subscription.generation_id, -1);
    }
}
