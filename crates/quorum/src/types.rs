//! The types openraft is instantiated with, and the entry of the metadata log.
//!
//! Node ids are `u64` for openraft and Kafka's `int32` on disk and on the wire;
//! terms are `u64` for openraft and a batch's `int32` partition leader epoch on
//! disk. Both are checked where they are narrowed ([`kafka_node_id`],
//! [`kafka_epoch`]).

use std::fmt;
use std::io::Cursor;

use bytes::Bytes;
use metadata::MetadataRecord;
use openraft::entry::{FromAppData, RaftEntry, RaftPayload};
use openraft::{LogId, Membership, RaftLogId};

/// A controller's node id as openraft sees it.
pub type NodeId = u64;

/// A voter's controller endpoint (from `controller.quorum.voters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Voter {
    pub host: String,
    pub port: u16,
}

impl Voter {
    pub fn new(host: impl Into<String>, port: u16) -> Voter {
        Voter {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Voter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

openraft::declare_raft_types!(
    /// The quorum's openraft configuration.
    pub TypeConfig:
        D = MetadataRecord,
        R = (),
        NodeId = NodeId,
        Node = Voter,
        Entry = MetadataEntry,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft log id (term, index) of a metadata log entry.
pub type EntryId = LogId<NodeId>;
/// A voter set, possibly joint.
pub type VoterSet = Membership<NodeId, Voter>;

/// What an entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// The first entry of a leader's term (a LEADER_CHANGE control batch).
    Blank,
    /// A metadata record (a data batch).
    Normal(MetadataRecord),
    /// A voter set (a KRAFT_VOTERS control batch).
    Membership(VoterSet),
}

/// One Raft entry, which is one Kafka record batch of one record in
/// `__cluster_metadata-0`: term = the batch's partition leader epoch, index = its
/// base offset (`docs/research/cluster-design.md` §1.3).
#[derive(Debug, Clone)]
pub struct MetadataEntry {
    pub log_id: EntryId,
    pub payload: Payload,
    /// The batch as stored: encoded once by the leader when it appends the entry,
    /// then sent and written verbatim by every voter, so their logs are
    /// byte-identical. `None` until the leader's log store encodes it.
    pub batch: Option<Bytes>,
    /// The bytes `log_id` and `payload` were decoded from, when they were
    /// (`codec::decode_entry`; a shared handle, not a copy): a log store writing
    /// those very bytes need not decode them again to know they are this entry.
    /// Held here so that their memory cannot be reused while the entry lives: a
    /// `batch` set by hand is other memory, and is checked.
    decoded_from: Option<Bytes>,
}

impl MetadataEntry {
    pub fn new(log_id: EntryId, payload: Payload) -> MetadataEntry {
        MetadataEntry {
            log_id,
            payload,
            batch: None,
            decoded_from: None,
        }
    }

    /// The entry `codec::decode_entry` decoded from `batch`.
    pub(crate) fn decoded(log_id: EntryId, payload: Payload, batch: Bytes) -> MetadataEntry {
        MetadataEntry {
            log_id,
            payload,
            decoded_from: Some(batch.clone()),
            batch: Some(batch),
        }
    }

    /// Whether this entry's id and payload were decoded from `bytes` itself
    /// (the same memory, not merely equal bytes).
    pub(crate) fn was_decoded_from(&self, bytes: &Bytes) -> bool {
        self.decoded_from
            .as_ref()
            .is_some_and(|from| from.as_ptr() == bytes.as_ptr() && from.len() == bytes.len())
    }
}

/// Entries are equal when their id and payload are: the batch is their encoding.
impl PartialEq for MetadataEntry {
    fn eq(&self, other: &Self) -> bool {
        self.log_id == other.log_id && self.payload == other.payload
    }
}

impl Eq for MetadataEntry {}

impl fmt::Display for MetadataEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.payload {
            Payload::Blank => write!(f, "{}:blank", self.log_id),
            Payload::Normal(record) => write!(f, "{}:record {}", self.log_id, record.api_key()),
            Payload::Membership(m) => write!(f, "{}:voters {:?}", self.log_id, m),
        }
    }
}

impl RaftPayload<NodeId, Voter> for MetadataEntry {
    fn is_blank(&self) -> bool {
        matches!(self.payload, Payload::Blank)
    }

    fn get_membership(&self) -> Option<&VoterSet> {
        match &self.payload {
            Payload::Membership(m) => Some(m),
            _ => None,
        }
    }
}

impl RaftLogId<NodeId> for MetadataEntry {
    fn get_log_id(&self) -> &EntryId {
        &self.log_id
    }

    fn set_log_id(&mut self, log_id: &EntryId) {
        // A new id makes the old encoding (offset and epoch) wrong.
        if self.log_id != *log_id {
            self.batch = None;
            self.decoded_from = None;
        }
        self.log_id = *log_id;
    }
}

impl RaftEntry<NodeId, Voter> for MetadataEntry {
    fn new_blank(log_id: EntryId) -> Self {
        MetadataEntry::new(log_id, Payload::Blank)
    }

    fn new_membership(log_id: EntryId, m: VoterSet) -> Self {
        MetadataEntry::new(log_id, Payload::Membership(m))
    }
}

impl FromAppData<MetadataRecord> for MetadataEntry {
    fn from_app_data(record: MetadataRecord) -> Self {
        MetadataEntry::new(EntryId::default(), Payload::Normal(record))
    }
}

/// A term as Kafka's leader epoch. Terms grow by one per election, so a term
/// past `i32::MAX` is a broken invariant, not an input error.
pub fn kafka_epoch(term: u64) -> i32 {
    i32::try_from(term).expect("a Raft term fits Kafka's int32 leader epoch")
}

/// A node id as Kafka's `int32` broker id; `None` when it does not fit.
pub fn kafka_node_id(node: NodeId) -> Option<i32> {
    i32::try_from(node).ok()
}

/// The log id of an entry written in `term` at `index`.
pub fn entry_id(term: u64, index: u64) -> EntryId {
    EntryId::new(openraft::CommittedLeaderId::new(term, 0), index)
}
