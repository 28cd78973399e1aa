//! Raft entries as Kafka record batches, and the KRaft control records.
//!
//! Every entry is one v2 batch holding one record (`cluster-design.md` §1.3):
//!
//! | entry | batch | record |
//! |---|---|---|
//! | `Normal(record)` | data batch | key null, value = the record's `ApiMessageAndVersion` |
//! | `Blank` | control batch | key (0, type 2 LEADER_CHANGE), value = `LeaderChangeMessage` v0 |
//! | `Membership(m)` | control batch | key (0, type 6 KRAFT_VOTERS), value = `VotersRecord` v0 |
//!
//! In each, `partition_leader_epoch` = the term, `base_offset` = the index,
//! `last_offset_delta` = 0, producer id -1, no compression. A control record's
//! key is `version int16 (0) | type int16`; its value is the message in Kafka's
//! flexible encoding, starting with the message's own `Version` field (Kafka's
//! `ControlRecordUtils`, `MessageUtil.toByteBuffer`).
//!
//! `VotersRecord` cannot say everything an openraft membership can: a joint
//! configuration's second voter set and learners. Those go in a Rivulet tagged
//! field ([`RIVULET_MEMBERSHIP_TAG`]), which Kafka's tools skip as unknown.
//! Every voter has one endpoint, named [`CONTROLLER_LISTENER`].
//!
//! Decoding trusts nothing: the CRC, magic, record count, offsets, epochs and
//! every length are checked before use (`metadata::wire`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use metadata::records::RecordError as MetadataRecordError;
use metadata::wire::{Reader, WireError, Writer};
use metadata::MetadataRecord;
use openraft::Membership;
use protocol::records::batch::{self, BatchError, BatchHeader, Batches};
use protocol::records::{decode_records_shared, BatchBuilder, Compression, NewRecord, RecordError};
use uuid::Uuid;

use crate::types::{entry_id, kafka_epoch, kafka_node_id, MetadataEntry, NodeId, Payload, Voter};

/// Kafka's `ControlRecordType` ids used by the metadata log.
pub const LEADER_CHANGE: i16 = 2;
pub const SNAPSHOT_HEADER: i16 = 3;
pub const SNAPSHOT_FOOTER: i16 = 4;
pub const KRAFT_VERSION: i16 = 5;
pub const KRAFT_VOTERS: i16 = 6;

/// The name of the one endpoint each voter has in a `VotersRecord`.
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The tag of the Rivulet field in `VotersRecord` holding what Kafka's record
/// has no place for (a joint configuration's other voter sets, learners). High,
/// so that a tag Kafka adds later cannot collide with it.
pub const RIVULET_MEMBERSHIP_TAG: u32 = 10_000;

/// KRaft versions a Rivulet voter supports (`KRaftVersionFeature`).
const KRAFT_VERSION_MIN: i16 = 0;
const KRAFT_VERSION_MAX: i16 = 1;

/// The largest batch a metadata entry may take when decoded (uncompressed it is
/// the batch itself; a compressed one may not expand past this).
pub const MAX_ENTRY_BYTES: usize = 8 << 20;

/// Why bytes are not a valid metadata log entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Records(#[from] RecordError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Record(#[from] MetadataRecordError),
    #[error("a metadata log batch holds exactly one record, this one {0}")]
    RecordCount(i32),
    #[error("batch at offset {offset} has invalid leader epoch {epoch}")]
    Epoch { offset: i64, epoch: i32 },
    #[error("batch has invalid base offset {0}")]
    Offset(i64),
    #[error("control record has no valid key")]
    ControlKey,
    #[error("unknown control record type {0} in the metadata log")]
    ControlType(i16),
    #[error("data record without a value")]
    NoValue,
    #[error("{what}: {value} is not a valid node id")]
    NodeId { what: &'static str, value: i64 },
    #[error("the batch does not match its entry: {0}")]
    Mismatch(String),
    #[error("more than {max} entries in one run of batches")]
    TooManyEntries { max: usize },
}

fn control_key(kind: i16) -> [u8; 4] {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.to_be_bytes());
    key
}

/// One record in one batch at `(term, index)`.
fn build_batch(
    term: i32,
    index: i64,
    timestamp: i64,
    control: Option<i16>,
    value: &[u8],
) -> Vec<u8> {
    let key = control.map(control_key);
    let mut builder = BatchBuilder::new(Compression::None)
        .base_offset(index)
        .partition_leader_epoch(term)
        .control(control.is_some());
    builder.append(&NewRecord {
        timestamp,
        key: key.as_ref().map(|k| &k[..]),
        value: Some(value),
        headers: &[],
    });
    builder
        .build()
        .expect("an uncompressed batch builds without I/O errors")
}

/// Encodes `entry` as its batch. `timestamp` is the leader's clock; `leader` is
/// the node writing a Blank entry (its `LeaderChangeMessage.LeaderId`, -1 when
/// not known).
pub fn encode_entry(entry: &MetadataEntry, timestamp: i64, leader: i32) -> Bytes {
    let term = kafka_epoch(entry.log_id.leader_id.term);
    let index = i64::try_from(entry.log_id.index).expect("a Raft index fits an int64 offset");
    let batch = match &entry.payload {
        Payload::Normal(record) => build_batch(term, index, timestamp, None, &record.encode()),
        Payload::Blank => build_batch(
            term,
            index,
            timestamp,
            Some(LEADER_CHANGE),
            &encode_leader_change(leader),
        ),
        Payload::Membership(m) => build_batch(
            term,
            index,
            timestamp,
            Some(KRAFT_VOTERS),
            &encode_voters(m),
        ),
    };
    Bytes::from(batch)
}

/// The single record of a batch: its header, key and value.
struct OneRecord {
    header: BatchHeader,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

fn one_record(bytes: &Bytes) -> Result<OneRecord, CodecError> {
    let header = BatchHeader::parse(bytes)?;
    if header.size() != bytes.len() {
        return Err(BatchError::Truncated {
            needed: header.size(),
            available: bytes.len(),
        }
        .into());
    }
    batch::verify_crc(bytes)?;
    if header.records_count != 1 || header.last_offset_delta != 0 {
        return Err(CodecError::RecordCount(header.records_count));
    }
    if header.base_offset < 0 {
        return Err(CodecError::Offset(header.base_offset));
    }
    if header.partition_leader_epoch < 0 {
        return Err(CodecError::Epoch {
            offset: header.base_offset,
            epoch: header.partition_leader_epoch,
        });
    }
    let (_, mut records) = decode_records_shared(bytes, MAX_ENTRY_BYTES)?;
    if records.len() != 1 {
        return Err(CodecError::RecordCount(records.len() as i32));
    }
    let record = records.pop().expect("one record");
    Ok(OneRecord {
        header,
        key: record.key,
        value: record.value,
    })
}

/// The control type of a control record's key.
pub fn control_type(key: Option<&[u8]>) -> Result<i16, CodecError> {
    match key {
        Some(k) if k.len() >= 4 && k[..2] == [0, 0] => Ok(i16::from_be_bytes([k[2], k[3]])),
        _ => Err(CodecError::ControlKey),
    }
}

/// Decodes one whole batch (exactly `bytes`) into its entry, keeping the bytes.
pub fn decode_entry(bytes: Bytes) -> Result<MetadataEntry, CodecError> {
    let record = one_record(&bytes)?;
    let header = record.header;
    let value = record.value.ok_or(CodecError::NoValue)?;
    let payload = if header.is_control() {
        match control_type(record.key.as_deref())? {
            LEADER_CHANGE => {
                decode_leader_change(&value)?;
                Payload::Blank
            }
            KRAFT_VOTERS => Payload::Membership(decode_voters(&value)?),
            other => return Err(CodecError::ControlType(other)),
        }
    } else {
        Payload::Normal(MetadataRecord::decode(&value)?)
    };
    let term = u64::try_from(header.partition_leader_epoch).expect("checked non-negative");
    let index = u64::try_from(header.base_offset).expect("checked non-negative");
    Ok(MetadataEntry::decoded(
        entry_id(term, index),
        payload,
        bytes,
    ))
}

/// Splits `bytes` (whole batches, as read from the log or sent by a leader)
/// into entries. More than `max` batches is refused before any is decoded or
/// anything allocated for them: the count is taken from the batch headers.
pub fn decode_entries(bytes: &Bytes, max: usize) -> Result<Vec<MetadataEntry>, CodecError> {
    let count = Batches::new(bytes).take(max.saturating_add(1)).count();
    if count > max {
        return Err(CodecError::TooManyEntries { max });
    }
    let mut entries = Vec::with_capacity(count);
    for item in Batches::new(bytes) {
        let (_, batch) = item?;
        entries.push(decode_entry(bytes.slice_ref(batch))?);
    }
    Ok(entries)
}

/// Checks that `bytes` is the batch of `entry` (a follower about to write the
/// leader's batch verbatim): it decodes, to the same id and payload. An entry
/// decoded from these very bytes ([`decode_entry`]) is not decoded again.
pub fn check_batch(entry: &MetadataEntry, bytes: &Bytes) -> Result<(), CodecError> {
    if entry.was_decoded_from(bytes) {
        return Ok(());
    }
    let decoded = decode_entry(bytes.clone())?;
    if decoded != *entry {
        return Err(CodecError::Mismatch(format!(
            "batch holds {decoded}, entry is {entry}"
        )));
    }
    Ok(())
}

// ---- LeaderChangeMessage v0 ----

/// `LeaderChangeMessage` v0 with no voter lists: openraft's blank entry does not
/// say who voted (`docs/decisions.md`).
pub fn encode_leader_change(leader: i32) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i32(leader);
    w.compact_array::<i32>(&[], |w, v| {
        w.i32(*v);
        w.tagged_fields(&[]);
    });
    w.compact_array::<i32>(&[], |w, v| {
        w.i32(*v);
        w.tagged_fields(&[]);
    });
    w.tagged_fields(&[]);
    w.buf
}

/// The leader id of a `LeaderChangeMessage` v0.
pub fn decode_leader_change(bytes: &[u8]) -> Result<i32, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("LeaderChangeMessage version")?;
    if version != 0 {
        return Err(WireError::Invalid {
            what: "LeaderChangeMessage version",
            value: i64::from(version),
        }
        .into());
    }
    let leader = r.i32("LeaderId")?;
    for what in ["Voters", "GrantingVoters"] {
        r.compact_array(what, 2, |r| {
            let id = r.i32("VoterId")?;
            r.tagged_fields(|_, inner| skip(inner))?;
            Ok(id)
        })?;
    }
    r.tagged_fields(|_, inner| skip(inner))?;
    finish(&r, "LeaderChangeMessage")?;
    Ok(leader)
}

fn skip(r: &mut Reader<'_>) -> Result<(), WireError> {
    let n = r.remaining();
    for _ in 0..n {
        r.i8("unknown tagged field")?;
    }
    Ok(())
}

fn finish(r: &Reader<'_>, what: &'static str) -> Result<(), WireError> {
    if r.remaining() != 0 {
        return Err(WireError::Invalid {
            what,
            value: r.remaining() as i64,
        });
    }
    Ok(())
}

// ---- VotersRecord v0 ----

fn node_i32(what: &'static str, node: NodeId) -> i32 {
    // Node ids come from `node.id` and `controller.quorum.voters`, both checked to
    // be Kafka int32s when the configuration is read.
    kafka_node_id(node).unwrap_or_else(|| panic!("{what} {node} is not a Kafka int32 node id"))
}

fn write_voter(w: &mut Writer, id: NodeId, voter: &Voter) {
    w.i32(node_i32("voter", id));
    w.uuid(&Uuid::nil());
    w.compact_array(std::slice::from_ref(voter), |w, v| {
        w.compact_string(CONTROLLER_LISTENER);
        w.compact_string(&v.host);
        w.u16(v.port);
        w.tagged_fields(&[]);
    });
    w.i16(KRAFT_VERSION_MIN);
    w.i16(KRAFT_VERSION_MAX);
    w.tagged_fields(&[]);
    w.tagged_fields(&[]);
}

fn read_voter(r: &mut Reader<'_>) -> Result<(NodeId, Voter), CodecError> {
    let id = r.i32("VoterId")?;
    let id = NodeId::try_from(id).map_err(|_| CodecError::NodeId {
        what: "VoterId",
        value: i64::from(id),
    })?;
    r.uuid("VoterDirectoryId")?;
    let endpoints = r.compact_array("Endpoints", 4, |r| {
        let _name = r.compact_string("Name")?;
        let host = r.compact_string("Host")?;
        let port = r.u16("Port")?;
        r.tagged_fields(|_, inner| skip(inner))?;
        Ok(Voter { host, port })
    })?;
    r.i16("MinSupportedVersion")?;
    r.i16("MaxSupportedVersion")?;
    r.tagged_fields(|_, inner| skip(inner))?;
    r.tagged_fields(|_, inner| skip(inner))?;
    Ok((id, endpoints.into_iter().next().unwrap_or_default()))
}

/// `VotersRecord` v0 of a voter set: the voters of its first configuration, and
/// the rest in the Rivulet tagged field.
pub fn encode_voters(m: &Membership<NodeId, Voter>) -> Vec<u8> {
    let configs = m.get_joint_config();
    let first: BTreeSet<NodeId> = configs.first().cloned().unwrap_or_default();
    let voters: Vec<(NodeId, Voter)> = m
        .nodes()
        .filter(|(id, _)| first.contains(id))
        .map(|(id, n)| (*id, n.clone()))
        .collect();
    let others: Vec<(NodeId, Voter)> = m
        .nodes()
        .filter(|(id, _)| !first.contains(id))
        .map(|(id, n)| (*id, n.clone()))
        .collect();
    let mut w = Writer::default();
    w.i16(0);
    w.compact_array(&voters, |w, (id, v)| write_voter(w, *id, v));
    let mut tags = Vec::new();
    if configs.len() > 1 || !others.is_empty() {
        let field = Writer::field(|w| {
            let rest: Vec<Vec<i32>> = configs
                .iter()
                .skip(1)
                .map(|c| c.iter().map(|id| node_i32("voter", *id)).collect())
                .collect();
            w.compact_array(&rest, |w, c| w.compact_i32_array(c));
            w.compact_array(&others, |w, (id, v)| write_voter(w, *id, v));
            w.tagged_fields(&[]);
        });
        tags.push((RIVULET_MEMBERSHIP_TAG, field));
    }
    w.tagged_fields(&tags);
    w.buf
}

/// The Rivulet field of `VotersRecord`: the voter sets after the first (as
/// ids), and the nodes not in the first (with their endpoints).
type RivuletMembership = (Vec<Vec<i32>>, Vec<(NodeId, Voter)>);

/// The voter set of a `VotersRecord` v0.
pub fn decode_voters(bytes: &[u8]) -> Result<Membership<NodeId, Voter>, CodecError> {
    let mut r = Reader::new(bytes);
    let version = r.i16("VotersRecord version")?;
    if version != 0 {
        return Err(WireError::Invalid {
            what: "VotersRecord version",
            value: i64::from(version),
        }
        .into());
    }
    let mut error = None;
    let voters = r.compact_array("Voters", 26, |r| {
        read_voter(r).map_err(|e| {
            error = Some(e);
            WireError::Invalid {
                what: "Voter",
                value: 0,
            }
        })
    });
    if let Some(e) = error.take() {
        return Err(e);
    }
    let voters = voters?;
    let mut configs = vec![voters.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>()];
    let mut nodes: BTreeMap<NodeId, Voter> = voters.into_iter().collect();
    let mut extra: Option<RivuletMembership> = None;
    r.tagged_fields(|tag, inner| {
        if tag != RIVULET_MEMBERSHIP_TAG {
            return skip(inner);
        }
        let rest = inner.compact_array("configs", 1, |r| r.compact_i32_array("config"))?;
        let others = inner.compact_array("others", 26, |r| {
            read_voter(r).map_err(|e| {
                error = Some(e);
                WireError::Invalid {
                    what: "Voter",
                    value: 0,
                }
            })
        })?;
        inner.tagged_fields(|_, inner| skip(inner))?;
        extra = Some((rest, others));
        Ok(())
    })
    .map_err(|e| error.take().unwrap_or(CodecError::Wire(e)))?;
    finish(&r, "VotersRecord")?;
    if let Some((rest, others)) = extra {
        for config in rest {
            let ids = config
                .into_iter()
                .map(|id| {
                    NodeId::try_from(id).map_err(|_| CodecError::NodeId {
                        what: "voter",
                        value: i64::from(id),
                    })
                })
                .collect::<Result<BTreeSet<_>, _>>()?;
            configs.push(ids);
        }
        nodes.extend(others);
    }
    Ok(Membership::new(configs, nodes))
}

// ---- SnapshotHeaderRecord / SnapshotFooterRecord v0 ----

/// `SnapshotHeaderRecord` v0.
pub fn encode_snapshot_header(last_contained_log_timestamp: i64) -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.i64(last_contained_log_timestamp);
    w.tagged_fields(&[]);
    w.buf
}

/// `SnapshotFooterRecord` v0.
pub fn encode_snapshot_footer() -> Vec<u8> {
    let mut w = Writer::default();
    w.i16(0);
    w.tagged_fields(&[]);
    w.buf
}

/// A control batch of one control record, as a snapshot holds them (base
/// offset 0 and epoch 0 are rewritten by nobody: snapshots are not logs).
pub fn control_batch(kind: i16, timestamp: i64, value: &[u8]) -> Vec<u8> {
    build_batch(0, 0, timestamp, Some(kind), value)
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
