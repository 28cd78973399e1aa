//! The records of `__transaction_state`, in Kafka's formats:
//!
//! ```text
//! key:   version=0 i16, transactional_id string
//! value: version=0 i16, producer_id i64, producer_epoch i16, timeout_ms i32,
//!        status i8, partitions [topic string, [partition i32]] (nullable),
//!        last_update_ms i64, start_ms i64
//! ```
//! Strings are `i16` length + UTF-8. A tombstone removes the transactional id.
//! A transactional id lives in partition `abs(hash(id)) % partitions`.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::group::records::{string_length, DecodeError};

/// Kafka's transaction states with their stored ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// Kafka's names (DescribeTransactions, ListTransactions filters).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTxn {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: Vec<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// At most 32,767 bytes, as in `group::records` (same rule, same panic).
fn put_string(out: &mut BytesMut, value: &str) {
    out.put_i16(string_length(value));
    out.put_slice(value.as_bytes());
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError(format!(
            "needs {n} bytes, {} left",
            buf.remaining()
        )))
    } else {
        Ok(())
    }
}

fn get_string(buf: &mut Bytes) -> Result<String, DecodeError> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len < 0 {
        return Err(DecodeError("null string".into()));
    }
    need(buf, len as usize)?;
    String::from_utf8(buf.split_to(len as usize).to_vec()).map_err(|e| DecodeError(e.to_string()))
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(0);
    put_string(&mut out, transactional_id);
    out.freeze()
}

pub fn decode_key(mut buf: Bytes) -> Result<String, DecodeError> {
    need(&buf, 2)?;
    let version = buf.get_i16();
    if version != 0 {
        return Err(DecodeError(format!(
            "unknown transaction key version {version}"
        )));
    }
    get_string(&mut buf)
}

impl StoredTxn {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(0);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.timeout_ms);
        out.put_i8(self.state.id());
        let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> =
            std::collections::BTreeMap::new();
        for (topic, partition) in &self.partitions {
            by_topic.entry(topic.as_str()).or_default().push(*partition);
        }
        out.put_i32(by_topic.len() as i32);
        for (topic, partitions) in by_topic {
            put_string(&mut out, topic);
            out.put_i32(partitions.len() as i32);
            for p in partitions {
                out.put_i32(p);
            }
        }
        out.put_i64(self.last_update_ms);
        out.put_i64(self.start_ms);
        out.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<StoredTxn, DecodeError> {
        need(&buf, 2 + 8 + 2 + 4 + 1 + 4)?;
        let version = buf.get_i16();
        if version != 0 && version != 1 {
            return Err(DecodeError(format!(
                "transaction value version {version} is not supported"
            )));
        }
        let producer_id = buf.get_i64();
        let producer_epoch = buf.get_i16();
        let timeout_ms = buf.get_i32();
        let state = TxnState::from_id(buf.get_i8())
            .ok_or_else(|| DecodeError("unknown transaction status".into()))?;
        let topics = buf.get_i32();
        let mut partitions = Vec::new();
        if topics > 0 {
            if topics as usize > buf.remaining() {
                return Err(DecodeError(format!("topic count {topics}")));
            }
            for _ in 0..topics {
                let topic = get_string(&mut buf)?;
                need(&buf, 4)?;
                let count = buf.get_i32();
                if count < 0 || count as usize * 4 > buf.remaining() {
                    return Err(DecodeError(format!("partition count {count}")));
                }
                for _ in 0..count {
                    partitions.push((topic.clone(), buf.get_i32()));
                }
            }
        }
        need(&buf, 16)?;
        let last_update_ms = buf.get_i64();
        let start_ms = buf.get_i64();
        Ok(StoredTxn {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_records_round_trip_and_reject_garbage() {
        let stored = StoredTxn {
            producer_id: 42,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)],
            last_update_ms: 5,
            start_ms: 4,
        };
        assert_eq!(StoredTxn::decode(stored.encode()).unwrap(), stored);
        assert_eq!(decode_key(encode_key("tx-1")).unwrap(), "tx-1");
        let bytes = stored.encode();
        for cut in 0..bytes.len() {
            assert!(StoredTxn::decode(bytes.slice(..cut)).is_err());
        }
    }
}
