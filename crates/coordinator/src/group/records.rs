//! The records of `__consumer_offsets`, in Kafka's own formats so Kafka's tools can
//! read the topic. A group lives in partition `abs(hash(group_id)) % partitions`
//! (Java's `String.hashCode`), so all its records are in one partition, in order.
//!
//! ```text
//! offset commit   key:   version=1 i16, group string, topic string, partition i32
//!                 value: version=3 i16, offset i64, leader_epoch i32,
//!                        metadata string, commit_timestamp i64
//! group metadata  key:   version=2 i16, group string
//!                 value: version=3 i16, protocol_type string, generation i32,
//!                        protocol string?, leader string?, current_state_timestamp i64,
//!                        members [member_id string, group_instance_id string?,
//!                                 client_id string, client_host string,
//!                                 rebalance_timeout i32, session_timeout i32,
//!                                 subscription bytes, assignment bytes]
//! ```
//! Strings are `i16` length + UTF-8 (`-1` = null), bytes are `i32` length. A null
//! value (tombstone) deletes the key.
//!
//! A string is at most [`MAX_STRING_BYTES`] (32,767) bytes, as in Kafka's generated
//! serializers. Requests whose strings would be stored here are refused up front
//! when a string is longer (`broker/src/handlers/guards.rs`); reaching the encoder
//! with one anyway is a bug and panics rather than writing a length that wraps and
//! makes every later record of the partition unreadable.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest string an internal-topic record holds: `i16::MAX` bytes.
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// The i16 length of a string to be written; see the module documentation.
pub fn string_length(value: &str) -> i16 {
    i16::try_from(value.len()).unwrap_or_else(|_| {
        panic!(
            "a {}-byte string reached an internal-topic record; requests with strings over {MAX_STRING_BYTES} bytes must be refused up front",
            value.len()
        )
    })
}

pub use protocol::types::java_string_hash;

/// Kafka's `Utils.abs(hash) % partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group_id);
    protocol::types::java_abs(hash) % partitions.max(1)
}

/// A key of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A stored group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

/// A stored offset commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

fn put_string(out: &mut BytesMut, value: Option<&str>) {
    match value {
        None => out.put_i16(-1),
        Some(v) => {
            out.put_i16(string_length(v));
            out.put_slice(v.as_bytes());
        }
    }
}

fn put_bytes(out: &mut BytesMut, value: &[u8]) {
    // Bytes come from requests of at most `socket.request.max.bytes` (< 2 GiB).
    out.put_i32(i32::try_from(value.len()).expect("request bytes fit in i32"));
    out.put_slice(value);
}

/// Why stored bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable __consumer_offsets record: {0}")]
pub struct DecodeError(pub String);

fn need(buf: &impl Buf, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError(format!(
            "needs {n} bytes, {} left",
            buf.remaining()
        )))
    } else {
        Ok(())
    }
}

fn get_string(buf: &mut Bytes) -> Result<Option<String>, DecodeError> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len == -1 {
        return Ok(None);
    }
    if len < 0 {
        return Err(DecodeError(format!("string length {len}")));
    }
    need(buf, len as usize)?;
    let bytes = buf.split_to(len as usize);
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|e| DecodeError(e.to_string()))
}

fn get_required_string(buf: &mut Bytes) -> Result<String, DecodeError> {
    get_string(buf)?.ok_or_else(|| DecodeError("null where a string is required".into()))
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    need(buf, 4)?;
    let len = buf.get_i32();
    if len < 0 {
        return Ok(Bytes::new());
    }
    need(buf, len as usize)?;
    Ok(buf.split_to(len as usize))
}

impl OffsetsKey {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            OffsetsKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.put_i16(1);
                put_string(&mut out, Some(group));
                put_string(&mut out, Some(topic));
                out.put_i32(*partition);
            }
            OffsetsKey::Group { group } => {
                out.put_i16(2);
                put_string(&mut out, Some(group));
            }
        }
        out.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<OffsetsKey, DecodeError> {
        need(&buf, 2)?;
        match buf.get_i16() {
            0 | 1 => {
                let group = get_required_string(&mut buf)?;
                let topic = get_required_string(&mut buf)?;
                need(&buf, 4)?;
                Ok(OffsetsKey::Offset {
                    group,
                    topic,
                    partition: buf.get_i32(),
                })
            }
            2 => Ok(OffsetsKey::Group {
                group: get_required_string(&mut buf)?,
            }),
            other => Err(DecodeError(format!("unknown key version {other}"))),
        }
    }
}

impl StoredOffset {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        out.put_i64(self.offset);
        out.put_i32(self.leader_epoch);
        put_string(&mut out, Some(&self.metadata));
        out.put_i64(self.commit_timestamp_ms);
        out.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<StoredOffset, DecodeError> {
        need(&buf, 2)?;
        let version = buf.get_i16();
        if !(0..=3).contains(&version) {
            return Err(DecodeError(format!(
                "offset value version {version} is not supported"
            )));
        }
        need(&buf, 8)?;
        let offset = buf.get_i64();
        let leader_epoch = if version >= 3 {
            need(&buf, 4)?;
            buf.get_i32()
        } else {
            -1
        };
        let metadata = get_string(&mut buf)?.unwrap_or_default();
        need(&buf, 8)?;
        let commit_timestamp_ms = buf.get_i64();
        // v1 carried an expire timestamp; it is not used any more.
        Ok(StoredOffset {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl StoredGroup {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        put_string(&mut out, Some(&self.protocol_type));
        out.put_i32(self.generation_id);
        put_string(&mut out, self.protocol.as_deref());
        put_string(&mut out, self.leader.as_deref());
        out.put_i64(self.current_state_timestamp_ms);
        out.put_i32(i32::try_from(self.members.len()).expect("group.max.size bounds members"));
        for m in &self.members {
            put_string(&mut out, Some(&m.member_id));
            put_string(&mut out, m.group_instance_id.as_deref());
            put_string(&mut out, Some(&m.client_id));
            put_string(&mut out, Some(&m.client_host));
            out.put_i32(m.rebalance_timeout_ms);
            out.put_i32(m.session_timeout_ms);
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<StoredGroup, DecodeError> {
        need(&buf, 2)?;
        let version = buf.get_i16();
        if !(0..=3).contains(&version) {
            return Err(DecodeError(format!(
                "group value version {version} is not supported"
            )));
        }
        let protocol_type = get_required_string(&mut buf)?;
        need(&buf, 4)?;
        let generation_id = buf.get_i32();
        let protocol = get_string(&mut buf)?;
        let leader = get_string(&mut buf)?;
        let current_state_timestamp_ms = if version >= 2 {
            need(&buf, 8)?;
            buf.get_i64()
        } else {
            -1
        };
        need(&buf, 4)?;
        let count = buf.get_i32();
        if count < 0 || count as usize > buf.remaining() {
            return Err(DecodeError(format!("member count {count}")));
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let member_id = get_required_string(&mut buf)?;
            let group_instance_id = if version >= 3 {
                get_string(&mut buf)?
            } else {
                None
            };
            let client_id = get_required_string(&mut buf)?;
            let client_host = get_required_string(&mut buf)?;
            let rebalance_timeout_ms = if version >= 1 {
                need(&buf, 4)?;
                buf.get_i32()
            } else {
                -1
            };
            need(&buf, 4)?;
            let session_timeout_ms = buf.get_i32();
            let subscription = get_bytes(&mut buf)?;
            let assignment = get_bytes(&mut buf)?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            };
            members.push(StoredMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(StoredGroup {
            protocol_type,
            generation_id,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_and_partition_match_kafka() {
        // "".hashCode() == 0, "a" == 97, "console-consumer-1" per Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // A negative hash: Utils.abs.
        let negative = "polygenelubricants";
        assert_eq!(java_string_hash(negative), i32::MIN);
        assert_eq!(partition_for(negative, 50), 0);
    }

    #[test]
    fn keys_and_values_round_trip() {
        let key = OffsetsKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(OffsetsKey::decode(key.encode()).unwrap(), key);
        let key = OffsetsKey::Group { group: "g".into() };
        assert_eq!(OffsetsKey::decode(key.encode()).unwrap(), key);
        let offset = StoredOffset {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
        };
        assert_eq!(StoredOffset::decode(offset.encode()).unwrap(), offset);
        let group = StoredGroup {
            protocol_type: "consumer".into(),
            generation_id: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 5,
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(StoredGroup::decode(group.encode()).unwrap(), group);
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let group = StoredGroup {
            protocol_type: "consumer".into(),
            generation_id: 1,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: 0,
            members: vec![],
        };
        let bytes = group.encode();
        for cut in 0..bytes.len() {
            assert!(StoredGroup::decode(bytes.slice(..cut)).is_err());
        }
        assert!(OffsetsKey::decode(Bytes::from_static(&[0, 9])).is_err());
    }
}
