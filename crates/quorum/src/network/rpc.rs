//! The bodies of the controllers' Raft RPCs (`cluster-design.md` §1.6).
//!
//! openraft pushes AppendEntries, RequestVote and InstallSnapshot; Kafka's own
//! Raft RPCs are a pull protocol with other rules, so these travel under
//! private API keys on the controller listener, never advertised:
//!
//! | key | RPC |
//! |---|---|
//! | 32100 | RivuletRaftVote |
//! | 32101 | RivuletRaftAppendEntries |
//! | 32102 | RivuletRaftInstallSnapshot |
//!
//! Bodies use Kafka's flexible encoding (`metadata::wire`), each ending with a
//! tagged-field section:
//!
//! ```text
//! vote          = term i64 | node i32 (-1: none) | committed bool
//! log_id        = term i32 (-1: none) | index i64 (-1)
//! Vote req      = cluster_id compact_string | vote | last_log_id
//! Vote resp     = error_code i16 | vote | granted bool | last_log_id
//! Append req    = cluster_id | vote | prev_log_id | leader_commit
//!                 | entries compact_bytes (the stored batches, concatenated)
//! Append resp   = error_code i16 | kind i8 (0 Success, 1 PartialSuccess,
//!                 2 Conflict, 3 HigherVote) | vote | matching log_id
//! Snapshot req  = cluster_id | vote | last_log_id | membership log_id
//!                 | voters compact_bytes (VotersRecord) | snapshot_id compact_string
//!                 | offset i64 | data compact_bytes | done bool
//! Snapshot resp = error_code i16 | vote | mismatch: expected id, offset, got id, offset
//! ```
//!
//! A request for another cluster is answered `INCONSISTENT_CLUSTER_ID` (104), as
//! Kafka answers its Raft RPCs. Decoding is bounded by the frame: every length
//! is checked against the bytes left, and an AppendEntries may carry at most
//! [`MAX_ENTRIES`] entries.

use bytes::Bytes;
use metadata::wire::{Reader, WireError, Writer};
use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{LeaderId, SnapshotMeta, SnapshotSegmentId, StoredMembership, Vote};

use crate::codec::{self, CodecError};
use crate::types::{entry_id, kafka_epoch, EntryId, NodeId, TypeConfig};

pub const RAFT_VOTE: i16 = 32100;
pub const RAFT_APPEND_ENTRIES: i16 = 32101;
pub const RAFT_INSTALL_SNAPSHOT: i16 = 32102;

/// Kafka's error codes used here.
pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
/// Rivulet's own, in the private RPCs only: the snapshot chunk does not
/// continue the snapshot being received (the sender restarts from offset 0).
pub const SNAPSHOT_MISMATCH: i16 = -2;

/// The most entries one AppendEntries may carry: twice openraft's
/// `max_payload_entries` (300).
pub const MAX_ENTRIES: usize = 600;

/// Why an RPC body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("{0} bytes after the body")]
    Trailing(usize),
    #[error("unknown Raft RPC key {0}")]
    UnknownKey(i16),
}

fn write_vote(w: &mut Writer, vote: &Vote<NodeId>) {
    w.i64(i64::try_from(vote.leader_id.term).expect("a term fits an int64"));
    let node = vote
        .leader_id
        .voted_for
        .map(|n| crate::types::kafka_node_id(n).expect("node ids are Kafka int32s"))
        .unwrap_or(-1);
    w.i32(node);
    w.bool(vote.committed);
}

fn read_vote(r: &mut Reader<'_>) -> Result<Vote<NodeId>, WireError> {
    let term = r.i64("vote term")?;
    let node = r.i32("vote node")?;
    let committed = r.bool("vote committed")?;
    let term = u64::try_from(term).map_err(|_| WireError::Invalid {
        what: "vote term",
        value: term,
    })?;
    let voted_for = match node {
        -1 => None,
        n => Some(NodeId::try_from(n).map_err(|_| WireError::Invalid {
            what: "vote node",
            value: i64::from(n),
        })?),
    };
    Ok(Vote {
        leader_id: LeaderId { term, voted_for },
        committed,
    })
}

fn write_log_id(w: &mut Writer, id: Option<&EntryId>) {
    match id {
        Some(id) => {
            w.i32(kafka_epoch(id.leader_id.term));
            w.i64(i64::try_from(id.index).expect("an index fits an int64"));
        }
        None => {
            w.i32(-1);
            w.i64(-1);
        }
    }
}

fn read_log_id(r: &mut Reader<'_>) -> Result<Option<EntryId>, WireError> {
    let term = r.i32("log id term")?;
    let index = r.i64("log id index")?;
    match (term, index) {
        (-1, -1) => Ok(None),
        (t, i) if t >= 0 && i >= 0 => Ok(Some(entry_id(t as u64, i as u64))),
        _ => Err(WireError::Invalid {
            what: "log id",
            value: index,
        }),
    }
}

fn skip_tags(r: &mut Reader<'_>) -> Result<(), WireError> {
    r.tagged_fields(|_, inner| {
        for _ in 0..inner.remaining() {
            inner.i8("unknown tagged field")?;
        }
        Ok(())
    })
}

fn finish(r: &Reader<'_>) -> Result<(), RpcError> {
    match r.remaining() {
        0 => Ok(()),
        n => Err(RpcError::Trailing(n)),
    }
}

// ---- Vote ----

pub fn encode_vote_request(cluster_id: &str, req: &VoteRequest<NodeId>) -> Bytes {
    let mut w = Writer::default();
    w.compact_string(cluster_id);
    write_vote(&mut w, &req.vote);
    write_log_id(&mut w, req.last_log_id.as_ref());
    w.tagged_fields(&[]);
    w.buf.into()
}

pub fn decode_vote_request(bytes: &[u8]) -> Result<(String, VoteRequest<NodeId>), RpcError> {
    let mut r = Reader::new(bytes);
    let cluster_id = r.compact_string("cluster_id")?;
    let vote = read_vote(&mut r)?;
    let last_log_id = read_log_id(&mut r)?;
    skip_tags(&mut r)?;
    finish(&r)?;
    Ok((cluster_id, VoteRequest { vote, last_log_id }))
}

pub fn encode_vote_response(error_code: i16, resp: &VoteResponse<NodeId>) -> Bytes {
    let mut w = Writer::default();
    w.i16(error_code);
    write_vote(&mut w, &resp.vote);
    w.bool(resp.vote_granted);
    write_log_id(&mut w, resp.last_log_id.as_ref());
    w.tagged_fields(&[]);
    w.buf.into()
}

pub fn decode_vote_response(bytes: &[u8]) -> Result<(i16, VoteResponse<NodeId>), RpcError> {
    let mut r = Reader::new(bytes);
    let error_code = r.i16("error_code")?;
    let vote = read_vote(&mut r)?;
    let vote_granted = r.bool("granted")?;
    let last_log_id = read_log_id(&mut r)?;
    skip_tags(&mut r)?;
    finish(&r)?;
    Ok((
        error_code,
        VoteResponse {
            vote,
            vote_granted,
            last_log_id,
        },
    ))
}

// ---- AppendEntries ----

/// `leader` names the node a LEADER_CHANGE names, for an entry that reaches
/// the network without its stored batch (entries are read from the log, so
/// they all have one).
pub fn encode_append_request(cluster_id: &str, req: &AppendEntriesRequest<TypeConfig>) -> Bytes {
    let mut w = Writer::default();
    w.compact_string(cluster_id);
    write_vote(&mut w, &req.vote);
    write_log_id(&mut w, req.prev_log_id.as_ref());
    write_log_id(&mut w, req.leader_commit.as_ref());
    let leader = req
        .vote
        .leader_id
        .voted_for
        .and_then(crate::types::kafka_node_id)
        .unwrap_or(-1);
    let mut entries = Vec::new();
    for entry in &req.entries {
        match &entry.batch {
            Some(batch) => entries.extend_from_slice(batch),
            None => entries.extend_from_slice(&codec::encode_entry(entry, -1, leader)),
        }
    }
    w.compact_bytes(&entries);
    w.tagged_fields(&[]);
    w.buf.into()
}

/// The entries share `bytes` (the request's body) rather than copying it.
pub fn decode_append_request(
    bytes: &Bytes,
) -> Result<(String, AppendEntriesRequest<TypeConfig>), RpcError> {
    let mut r = Reader::new(bytes);
    let cluster_id = r.compact_string("cluster_id")?;
    let vote = read_vote(&mut r)?;
    let prev_log_id = read_log_id(&mut r)?;
    let leader_commit = read_log_id(&mut r)?;
    let batches = bytes.slice_ref(r.compact_bytes("entries")?);
    skip_tags(&mut r)?;
    finish(&r)?;
    let entries = codec::decode_entries(&batches, MAX_ENTRIES)?;
    Ok((
        cluster_id,
        AppendEntriesRequest {
            vote,
            prev_log_id,
            entries,
            leader_commit,
        },
    ))
}

pub fn encode_append_response(error_code: i16, resp: &AppendEntriesResponse<NodeId>) -> Bytes {
    let mut w = Writer::default();
    w.i16(error_code);
    let (kind, vote, matching) = match resp {
        AppendEntriesResponse::Success => (0, None, None),
        AppendEntriesResponse::PartialSuccess(m) => (1, None, m.as_ref()),
        AppendEntriesResponse::Conflict => (2, None, None),
        AppendEntriesResponse::HigherVote(v) => (3, Some(v), None),
    };
    w.i8(kind);
    write_vote(&mut w, vote.unwrap_or(&Vote::default()));
    write_log_id(&mut w, matching);
    w.tagged_fields(&[]);
    w.buf.into()
}

pub fn decode_append_response(
    bytes: &[u8],
) -> Result<(i16, AppendEntriesResponse<NodeId>), RpcError> {
    let mut r = Reader::new(bytes);
    let error_code = r.i16("error_code")?;
    let kind = r.i8("kind")?;
    let vote = read_vote(&mut r)?;
    let matching = read_log_id(&mut r)?;
    skip_tags(&mut r)?;
    finish(&r)?;
    let resp = match kind {
        0 => AppendEntriesResponse::Success,
        1 => AppendEntriesResponse::PartialSuccess(matching),
        2 => AppendEntriesResponse::Conflict,
        3 => AppendEntriesResponse::HigherVote(vote),
        other => {
            return Err(WireError::Invalid {
                what: "AppendEntries response kind",
                value: i64::from(other),
            }
            .into())
        }
    };
    Ok((error_code, resp))
}

// ---- InstallSnapshot ----

pub fn encode_snapshot_request(
    cluster_id: &str,
    req: &InstallSnapshotRequest<TypeConfig>,
) -> Bytes {
    let mut w = Writer::default();
    w.compact_string(cluster_id);
    write_vote(&mut w, &req.vote);
    write_log_id(&mut w, req.meta.last_log_id.as_ref());
    write_log_id(&mut w, req.meta.last_membership.log_id().as_ref());
    w.compact_bytes(&codec::encode_voters(req.meta.last_membership.membership()));
    w.compact_string(&req.meta.snapshot_id);
    w.i64(i64::try_from(req.offset).expect("a snapshot offset fits an int64"));
    w.compact_bytes(&req.data);
    w.bool(req.done);
    w.tagged_fields(&[]);
    w.buf.into()
}

pub fn decode_snapshot_request(
    bytes: &[u8],
) -> Result<(String, InstallSnapshotRequest<TypeConfig>), RpcError> {
    let mut r = Reader::new(bytes);
    let cluster_id = r.compact_string("cluster_id")?;
    let vote = read_vote(&mut r)?;
    let last_log_id = read_log_id(&mut r)?;
    let membership_log_id = read_log_id(&mut r)?;
    let voters = codec::decode_voters(r.compact_bytes("voters")?)?;
    let snapshot_id = r.compact_string("snapshot_id")?;
    let offset = r.i64("offset")?;
    let offset = u64::try_from(offset).map_err(|_| WireError::Invalid {
        what: "snapshot offset",
        value: offset,
    })?;
    let data = r.compact_bytes("data")?.to_vec();
    let done = r.bool("done")?;
    skip_tags(&mut r)?;
    finish(&r)?;
    let meta = SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(membership_log_id, voters),
        snapshot_id,
    };
    Ok((
        cluster_id,
        InstallSnapshotRequest {
            vote,
            meta,
            offset,
            data,
            done,
        },
    ))
}

/// An InstallSnapshot answer: the receiver's vote, or the mismatch that makes
/// the sender start over.
pub fn encode_snapshot_response(
    error_code: i16,
    vote: &Vote<NodeId>,
    mismatch: Option<&SnapshotMismatch>,
) -> Bytes {
    let mut w = Writer::default();
    w.i16(error_code);
    write_vote(&mut w, vote);
    let segment = |w: &mut Writer, s: Option<&SnapshotSegmentId>| {
        w.compact_string(s.map(|s| s.id.as_str()).unwrap_or(""));
        w.i64(s.map(|s| s.offset as i64).unwrap_or(-1));
    };
    segment(&mut w, mismatch.map(|m| &m.expect));
    segment(&mut w, mismatch.map(|m| &m.got));
    w.tagged_fields(&[]);
    w.buf.into()
}

/// The answer: error code, vote, and a mismatch when the code says so.
pub type SnapshotAnswer = (
    i16,
    InstallSnapshotResponse<NodeId>,
    Option<InstallSnapshotError>,
);

pub fn decode_snapshot_response(bytes: &[u8]) -> Result<SnapshotAnswer, RpcError> {
    let mut r = Reader::new(bytes);
    let error_code = r.i16("error_code")?;
    let vote = read_vote(&mut r)?;
    let segment = |r: &mut Reader<'_>| -> Result<SnapshotSegmentId, WireError> {
        let id = r.compact_string("snapshot id")?;
        let offset = r.i64("snapshot offset")?;
        Ok(SnapshotSegmentId {
            id,
            offset: offset.max(0) as u64,
        })
    };
    let expect = segment(&mut r)?;
    let got = segment(&mut r)?;
    skip_tags(&mut r)?;
    finish(&r)?;
    let mismatch = (error_code == SNAPSHOT_MISMATCH).then_some(
        InstallSnapshotError::SnapshotMismatch(SnapshotMismatch { expect, got }),
    );
    Ok((error_code, InstallSnapshotResponse { vote }, mismatch))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use metadata::MetadataRecord;
    use openraft::Membership;

    use super::*;
    use crate::types::{MetadataEntry, Payload, Voter};

    fn entries() -> Vec<MetadataEntry> {
        let voters: BTreeMap<NodeId, Voter> = [(1, Voter::new("a", 1))].into_iter().collect();
        let raw = vec![
            MetadataEntry::new(
                entry_id(0, 0),
                Payload::Membership(Membership::new(vec![[1].into_iter().collect()], voters)),
            ),
            MetadataEntry::new(entry_id(1, 1), Payload::Blank),
            MetadataEntry::new(entry_id(1, 2), Payload::Normal(MetadataRecord::NoOp)),
        ];
        // As read from a log: with their batches.
        raw.into_iter()
            .map(|e| {
                let batch = codec::encode_entry(&e, 1, 1);
                codec::decode_entry(batch).unwrap()
            })
            .collect()
    }

    /// Every prefix of `bytes` fails to decode, without a panic.
    fn prefixes_fail<T>(bytes: &[u8], decode: impl Fn(&[u8]) -> Result<T, RpcError>) {
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "prefix of {cut} bytes");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(RpcError::Trailing(1))));
    }

    #[test]
    fn append_entries_round_trip_with_the_stored_batches() {
        let req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(3, 2),
            prev_log_id: Some(entry_id(1, 4)),
            entries: entries(),
            leader_commit: None,
        };
        let bytes = encode_append_request("c1", &req);
        let (cluster, back) = decode_append_request(&bytes).unwrap();
        assert_eq!(cluster, "c1");
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.prev_log_id, req.prev_log_id);
        assert_eq!(back.leader_commit, None);
        assert_eq!(back.entries, req.entries);
        let sent: Vec<_> = req.entries.iter().map(|e| e.batch.clone()).collect();
        let got: Vec<_> = back.entries.iter().map(|e| e.batch.clone()).collect();
        assert_eq!(sent, got, "the batches travel byte for byte");
        prefixes_fail(&bytes, |b| {
            decode_append_request(&Bytes::copy_from_slice(b)).map(|_| ())
        });
        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(Some(entry_id(2, 9))),
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(7, 3)),
        ] {
            let bytes = encode_append_response(NONE, &resp);
            assert_eq!(decode_append_response(&bytes).unwrap(), (NONE, resp));
            prefixes_fail(&bytes, decode_append_response);
        }
    }

    #[test]
    fn an_append_of_more_than_max_entries_is_refused() {
        let entries: Vec<MetadataEntry> = (0..=MAX_ENTRIES as u64)
            .map(|index| {
                let entry = MetadataEntry::new(entry_id(1, index), Payload::Blank);
                codec::decode_entry(codec::encode_entry(&entry, 1, 1)).unwrap()
            })
            .collect();
        let mut req = AppendEntriesRequest::<TypeConfig> {
            vote: Vote::new_committed(1, 1),
            prev_log_id: None,
            entries,
            leader_commit: None,
        };
        let bytes = encode_append_request("c", &req);
        assert_eq!(
            decode_append_request(&bytes).map(|_| ()),
            Err(RpcError::Codec(CodecError::TooManyEntries {
                max: MAX_ENTRIES
            }))
        );
        req.entries.pop();
        let bytes = encode_append_request("c", &req);
        let (_, back) = decode_append_request(&bytes).unwrap();
        assert_eq!(back.entries.len(), MAX_ENTRIES);
        // The entries share the request's memory.
        let body = bytes.as_ptr_range();
        assert!(back.entries.iter().all(|e| {
            let batch = e.batch.as_ref().unwrap().as_ptr_range();
            body.start <= batch.start && batch.end <= body.end
        }));
    }

    #[test]
    fn votes_round_trip() {
        let req = VoteRequest {
            vote: Vote::new(5, 1),
            last_log_id: Some(entry_id(4, 100)),
        };
        let bytes = encode_vote_request("c", &req);
        assert_eq!(decode_vote_request(&bytes).unwrap(), ("c".into(), req));
        prefixes_fail(&bytes, decode_vote_request);
        let resp = VoteResponse {
            vote: Vote::new_committed(5, 1),
            vote_granted: true,
            last_log_id: None,
        };
        let bytes = encode_vote_response(NONE, &resp);
        assert_eq!(decode_vote_response(&bytes).unwrap(), (NONE, resp));
        prefixes_fail(&bytes, decode_vote_response);
    }

    #[test]
    fn snapshot_chunks_and_mismatches_round_trip() {
        let voters: BTreeMap<NodeId, Voter> = (1..=3)
            .map(|id| (id, Voter::new("h", 9000 + id as u16)))
            .collect();
        let membership = Membership::new(vec![voters.keys().copied().collect()], voters);
        let req = InstallSnapshotRequest::<TypeConfig> {
            vote: Vote::new_committed(2, 1),
            meta: SnapshotMeta {
                last_log_id: Some(entry_id(2, 50)),
                last_membership: StoredMembership::new(Some(entry_id(0, 0)), membership),
                snapshot_id: "00000000000000000051-0000000002".into(),
            },
            offset: 1 << 20,
            data: vec![7; 100],
            done: false,
        };
        let bytes = encode_snapshot_request("c", &req);
        let (_, back) = decode_snapshot_request(&bytes).unwrap();
        assert_eq!(back.vote, req.vote);
        assert_eq!(back.meta, req.meta);
        assert_eq!(
            (back.offset, &back.data, back.done),
            (req.offset, &req.data, false)
        );
        prefixes_fail(&bytes, |b| decode_snapshot_request(b).map(|_| ()));
        let mismatch = SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: "a".into(),
                offset: 0,
            },
            got: SnapshotSegmentId {
                id: "b".into(),
                offset: 5,
            },
        };
        let bytes = encode_snapshot_response(SNAPSHOT_MISMATCH, &req.vote, Some(&mismatch));
        let (code, resp, got) = decode_snapshot_response(&bytes).unwrap();
        assert_eq!(code, SNAPSHOT_MISMATCH);
        assert_eq!(resp.vote, req.vote);
        let Some(InstallSnapshotError::SnapshotMismatch(m)) = got else {
            panic!("a mismatch");
        };
        assert_eq!(m.to_string(), mismatch.to_string());
        let bytes = encode_snapshot_response(NONE, &req.vote, None);
        assert!(decode_snapshot_response(&bytes).unwrap().2.is_none());
    }
}
