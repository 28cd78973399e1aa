//! KIP-630 snapshots of the cluster image: `{endOffset:020}-{epoch:010}.checkpoint`
//! files in the metadata log directory (`raft/.../snapshot/Snapshots.java`),
//! written as `.checkpoint.part` and renamed.
//!
//! `endOffset` is exclusive (the index after the last entry the snapshot
//! covers) and `epoch` is that entry's term. The file is what Kafka's
//! `RecordsSnapshotWriter` writes: batches at offsets 0, 1, 2... in the
//! snapshot's epoch,
//!
//! ```text
//! control  SnapshotHeaderRecord {Version 0, LastContainedLogTimestamp}
//! control  VotersRecord (the voter set, when there is one)
//! data     the records that rebuild the image (ClusterImage::write_records)
//! data     BeginTransactionRecord and the records after it, when the snapshot
//!          falls inside a KIP-868 transaction
//! control  SnapshotFooterRecord {Version 0}
//! ```
//!
//! What Kafka's records cannot say, and replay needs to give back the very same
//! state, is in a Rivulet tagged field of the header ([`RIVULET_SNAPSHOT_TAG`]):
//! the image's own last offset and epoch, the log id of the voter set's entry,
//! and the log offsets of an open transaction's records.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use metadata::wire::{Reader, WireError, Writer};
use metadata::{ClusterImage, MetadataRecord, MetadataReplay, ReplayError};
use openraft::StoredMembership;
use protocol::records::batch::{self, BatchError};
use protocol::records::{
    BatchBuilder, Compression, DecompressionBudget, NewRecord, RecordError, RecordViews,
};
use storage::fs::Fs;

use crate::codec::{self, CodecError};
use crate::types::{entry_id, kafka_epoch, EntryId, NodeId, Voter, VoterSet};

pub const SNAPSHOT_SUFFIX: &str = ".checkpoint";
pub const PART_SUFFIX: &str = ".checkpoint.part";

/// The Rivulet field of `SnapshotHeaderRecord`.
pub const RIVULET_SNAPSHOT_TAG: u32 = 10_000;

/// Data batches of a snapshot hold about this many bytes of records.
const BATCH_TARGET_BYTES: usize = 512 << 10;

/// The most bytes a snapshot file may take, and the most its compressed batches
/// may decompress to, all of them together: a corrupt or hostile file costs at
/// most this much work and memory however its batches are cut.
const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// Why a snapshot cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("snapshot is not valid: {0}")]
    Invalid(String),
}

fn invalid(reason: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(reason.into())
}

/// A snapshot's id: the exclusive end offset and the epoch of the last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

impl SnapshotId {
    /// The id of a snapshot covering up to `last` (none: the empty snapshot).
    pub fn covering(last: Option<EntryId>) -> SnapshotId {
        match last {
            None => SnapshotId {
                end_offset: 0,
                epoch: 0,
            },
            Some(id) => SnapshotId {
                end_offset: i64::try_from(id.index).expect("an index fits an offset") + 1,
                epoch: kafka_epoch(id.leader_id.term),
            },
        }
    }

    /// The last entry covered.
    pub fn last_log_id(&self) -> Option<EntryId> {
        (self.end_offset > 0).then(|| entry_id(self.epoch as u64, (self.end_offset - 1) as u64))
    }

    /// `{endOffset:020}-{epoch:010}`, Kafka's snapshot file stem.
    pub fn stem(&self) -> String {
        format!("{:020}-{:010}", self.end_offset, self.epoch)
    }

    pub fn file_name(&self) -> String {
        format!("{}{SNAPSHOT_SUFFIX}", self.stem())
    }

    /// The id in a snapshot file's stem (its name without the suffix).
    pub fn parse_stem(stem: &str) -> Option<SnapshotId> {
        let (offset, epoch) = stem.split_once('-')?;
        if offset.len() != 20 || epoch.len() != 10 {
            return None;
        }
        if !offset
            .bytes()
            .chain(epoch.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(SnapshotId {
            end_offset: offset.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }

    /// The id in a snapshot file's name, if it is one.
    pub fn parse_file_name(name: &str) -> Option<SnapshotId> {
        SnapshotId::parse_stem(name.strip_suffix(SNAPSHOT_SUFFIX)?)
    }
}

/// Everything a snapshot gives back.
#[derive(Debug, Clone)]
pub struct SnapshotContents {
    pub id: SnapshotId,
    /// The time of the last entry covered (the header's LastContainedLogTimestamp).
    pub last_contained_log_timestamp: i64,
    pub membership: StoredMembership<NodeId, Voter>,
    /// The replay state: the image, its epoch, and an open transaction.
    pub replay: MetadataReplay,
}

fn write_entry_id(w: &mut Writer, id: Option<EntryId>) {
    match id {
        Some(id) => {
            w.i32(kafka_epoch(id.leader_id.term));
            w.i64(i64::try_from(id.index).expect("an index fits an offset"));
        }
        None => {
            w.i32(-1);
            w.i64(-1);
        }
    }
}

fn read_entry_id(r: &mut Reader<'_>) -> Result<Option<EntryId>, WireError> {
    let term = r.i32("term")?;
    let index = r.i64("index")?;
    Ok(match (u64::try_from(term), u64::try_from(index)) {
        (Ok(term), Ok(index)) => Some(entry_id(term, index)),
        _ => None,
    })
}

/// The header record, with the Rivulet field.
fn encode_header(contents: &SnapshotContents) -> Vec<u8> {
    let replay = &contents.replay;
    let field = Writer::field(|w| {
        w.i64(replay.image().last_offset);
        w.i32(replay.image_epoch());
        write_entry_id(w, *contents.membership.log_id());
        let offsets: Vec<i64> = replay
            .open_transaction()
            .map(|(begin, records)| {
                std::iter::once(begin)
                    .chain(records.iter().map(|(o, _)| *o))
                    .collect()
            })
            .unwrap_or_default();
        w.compact_array(&offsets, |w, o| w.i64(*o));
        w.tagged_fields(&[]);
    });
    let mut w = Writer::default();
    w.i16(0);
    w.i64(contents.last_contained_log_timestamp);
    w.tagged_fields(&[(RIVULET_SNAPSHOT_TAG, field)]);
    w.buf
}

/// The Rivulet field: image offset, image epoch, the voter set's log id, and
/// the offsets of an open transaction's Begin and records.
type RivuletField = (i64, i32, Option<EntryId>, Vec<i64>);

/// What the header says: the timestamp, and the Rivulet field (absent from a
/// snapshot Kafka wrote).
type Header = (i64, Option<RivuletField>);

fn decode_header(bytes: &[u8]) -> Result<Header, SnapshotError> {
    let mut r = Reader::new(bytes);
    if r.i16("SnapshotHeaderRecord version")? != 0 {
        return Err(invalid("unknown SnapshotHeaderRecord version"));
    }
    let timestamp = r.i64("LastContainedLogTimestamp")?;
    let mut rivulet = None;
    r.tagged_fields(|tag, inner| {
        if tag != RIVULET_SNAPSHOT_TAG {
            let n = inner.remaining();
            for _ in 0..n {
                inner.i8("unknown tagged field")?;
            }
            return Ok(());
        }
        let offset = inner.i64("image offset")?;
        let epoch = inner.i32("image epoch")?;
        let membership = read_entry_id(inner)?;
        let txn = inner.compact_array("transaction offsets", 8, |r| r.i64("offset"))?;
        inner.tagged_fields(|_, inner| {
            let n = inner.remaining();
            for _ in 0..n {
                inner.i8("unknown tagged field")?;
            }
            Ok(())
        })?;
        rivulet = Some((offset, epoch, membership, txn));
        Ok(())
    })?;
    Ok((timestamp, rivulet))
}

/// Accumulates data records into batches of about [`BATCH_TARGET_BYTES`].
struct Batches {
    out: Vec<u8>,
    next_offset: i64,
    epoch: i32,
    timestamp: i64,
    pending: Vec<Vec<u8>>,
    pending_bytes: usize,
}

impl Batches {
    fn control(&mut self, kind: i16, value: &[u8]) {
        self.flush();
        let key = {
            let mut k = [0u8; 4];
            k[2..].copy_from_slice(&kind.to_be_bytes());
            k
        };
        let mut builder = BatchBuilder::new(Compression::None)
            .base_offset(self.next_offset)
            .partition_leader_epoch(self.epoch)
            .control(true);
        builder.append(&NewRecord {
            timestamp: self.timestamp,
            key: Some(&key),
            value: Some(value),
            headers: &[],
        });
        self.out
            .extend_from_slice(&builder.build().expect("uncompressed batches build"));
        self.next_offset += 1;
    }

    fn record(&mut self, record: &MetadataRecord) {
        let value = record.encode();
        self.pending_bytes += value.len();
        self.pending.push(value);
        if self.pending_bytes >= BATCH_TARGET_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut builder = BatchBuilder::new(Compression::None)
            .base_offset(self.next_offset)
            .partition_leader_epoch(self.epoch);
        for value in &self.pending {
            builder.append(&NewRecord {
                timestamp: self.timestamp,
                key: None,
                value: Some(value),
                headers: &[],
            });
        }
        self.out
            .extend_from_slice(&builder.build().expect("uncompressed batches build"));
        self.next_offset += self.pending.len() as i64;
        self.pending.clear();
        self.pending_bytes = 0;
    }
}

/// The snapshot file's bytes.
pub fn encode(contents: &SnapshotContents) -> Vec<u8> {
    let mut batches = Batches {
        out: Vec::new(),
        next_offset: 0,
        epoch: contents.id.epoch,
        timestamp: contents.last_contained_log_timestamp,
        pending: Vec::new(),
        pending_bytes: 0,
    };
    batches.control(codec::SNAPSHOT_HEADER, &encode_header(contents));
    if contents.membership.log_id().is_some()
        || contents.membership.membership().nodes().next().is_some()
    {
        batches.control(
            codec::KRAFT_VOTERS,
            &codec::encode_voters(contents.membership.membership()),
        );
    }
    for record in contents.replay.image().write_records() {
        batches.record(&record);
    }
    if let Some((_, records)) = contents.replay.open_transaction() {
        batches.record(&MetadataRecord::BeginTransaction { name: None });
        for (_, record) in records {
            batches.record(record);
        }
    }
    batches.control(codec::SNAPSHOT_FOOTER, &codec::encode_snapshot_footer());
    batches.out
}

/// What a snapshot file's batches hold, in order.
#[derive(Default)]
struct Scanned {
    header: Option<Header>,
    voters: Option<VoterSet>,
    footer: bool,
    image_records: Vec<MetadataRecord>,
    /// The records after a BeginTransaction, when the snapshot has one.
    txn_records: Option<Vec<MetadataRecord>>,
}

impl Scanned {
    fn control(&mut self, key: Option<&[u8]>, value: &[u8]) -> Result<(), SnapshotError> {
        match codec::control_type(key)? {
            codec::SNAPSHOT_HEADER if self.header.is_none() => {
                self.header = Some(decode_header(value)?)
            }
            codec::KRAFT_VOTERS if self.header.is_some() && self.voters.is_none() => {
                self.voters = Some(codec::decode_voters(value)?)
            }
            codec::SNAPSHOT_FOOTER if self.header.is_some() => self.footer = true,
            // Kafka's `format` writes the KRaft version beside the voters.
            codec::KRAFT_VERSION if self.header.is_some() => {}
            other => return Err(invalid(format!("unexpected control record {other}"))),
        }
        Ok(())
    }

    fn data(&mut self, value: &[u8]) -> Result<(), SnapshotError> {
        if self.header.is_none() {
            return Err(invalid("data before the header"));
        }
        let record = MetadataRecord::decode(value).map_err(CodecError::from)?;
        match (&mut self.txn_records, record) {
            (None, MetadataRecord::BeginTransaction { .. }) => self.txn_records = Some(Vec::new()),
            (None, record) => self.image_records.push(record),
            (Some(buffered), record) => buffered.push(record),
        }
        Ok(())
    }
}

/// Walks the batches of a snapshot file: header first, footer last. The file
/// may take at most `max_bytes`, and its compressed batches decompress to at
/// most that, all together.
fn scan(bytes: &Bytes, max_bytes: usize) -> Result<Scanned, SnapshotError> {
    if bytes.len() > max_bytes {
        return Err(invalid(format!("{} bytes is too large", bytes.len())));
    }
    let mut scanned = Scanned::default();
    let mut budget = DecompressionBudget::new(max_bytes);
    for item in batch::Batches::new(bytes) {
        if scanned.footer {
            return Err(invalid("batches after the footer"));
        }
        let (header, batch) = match item {
            Err(BatchError::Truncated { .. }) => {
                return Err(invalid("the last batch is truncated"))
            }
            other => other.map_err(CodecError::from)?,
        };
        batch::verify_crc(batch).map_err(CodecError::from)?;
        let section = budget
            .records_section(&header, batch)
            .map_err(CodecError::from)?;
        let mut count = 0usize;
        for record in RecordViews::new(&section) {
            let record = record.map_err(CodecError::from)?;
            count += 1;
            let value = record.value.unwrap_or_default();
            if header.is_control() {
                scanned.control(record.key, value)?;
            } else {
                scanned.data(value)?;
            }
        }
        if count != header.records_count.max(0) as usize {
            return Err(CodecError::from(RecordError::CountMismatch {
                declared: header.records_count,
                actual: count,
            })
            .into());
        }
    }
    if !scanned.footer {
        return Err(invalid("no SnapshotFooterRecord"));
    }
    Ok(scanned)
}

#[cfg(test)]
#[path = "snapshot_scan_tests.rs"]
mod scan_tests;

/// A snapshot file's contents; `id` is from its name.
pub fn decode(id: SnapshotId, bytes: Bytes) -> Result<SnapshotContents, SnapshotError> {
    let scanned = scan(&bytes, MAX_SNAPSHOT_BYTES)?;
    let (timestamp, rivulet) = scanned
        .header
        .ok_or_else(|| invalid("no SnapshotHeaderRecord"))?;
    let voters = scanned.voters;
    // A snapshot Kafka wrote: its image ends with it, and the voter set is
    // taken as of its last entry.
    let (image_offset, image_epoch, membership_id, txn_offsets) = rivulet.unwrap_or_else(|| {
        let membership = voters.as_ref().and(id.last_log_id());
        (id.end_offset - 1, id.epoch, membership, Vec::new())
    });
    let mut image = ClusterImage::default();
    for record in &scanned.image_records {
        image
            .apply(image_offset, record)
            .map_err(|source| ReplayError::Image {
                offset: image_offset,
                source,
            })?;
    }
    image.last_offset = image_offset;
    let mut replay = MetadataReplay::new(image, image_epoch);
    if let Some(records) = scanned.txn_records {
        if txn_offsets.len() != records.len() + 1 {
            return Err(invalid(
                "the open transaction's offsets do not match its records",
            ));
        }
        replay.apply(
            txn_offsets[0],
            image_epoch,
            &MetadataRecord::BeginTransaction { name: None },
        )?;
        for (offset, record) in txn_offsets[1..].iter().zip(&records) {
            replay.apply(*offset, image_epoch, record)?;
        }
    }
    let membership = match (membership_id, voters) {
        (log_id, Some(voters)) => StoredMembership::new(log_id, voters),
        (None, None) => StoredMembership::default(),
        (Some(_), None) => return Err(invalid("a voter set's log id without the voter set")),
    };
    Ok(SnapshotContents {
        id,
        last_contained_log_timestamp: timestamp,
        membership,
        replay,
    })
}

/// The snapshot files of a metadata log directory.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    pub fs: std::sync::Arc<dyn Fs>,
    pub dir: PathBuf,
}

impl SnapshotDir {
    pub fn path(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(id.file_name())
    }

    /// The snapshots present, oldest first. Leftover `.part` files (a write cut
    /// short) are removed.
    pub fn list(&self) -> io::Result<Vec<SnapshotId>> {
        let mut ids = Vec::new();
        for entry in self.fs.list_dir(&self.dir)? {
            if entry.name.ends_with(PART_SUFFIX) {
                storage::fs::remove_if_exists(&*self.fs, &self.dir.join(&entry.name))?;
            } else if let Some(id) = SnapshotId::parse_file_name(&entry.name) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Writes a snapshot durably: a `.part` file, fsynced, renamed, the
    /// directory fsynced.
    pub fn write(&self, id: SnapshotId, bytes: &[u8]) -> io::Result<()> {
        let part = self.dir.join(format!("{}{PART_SUFFIX}", id.stem()));
        storage::fs::write_atomically_via(&*self.fs, &part, &self.path(id), bytes)
    }

    pub fn read(&self, id: SnapshotId) -> io::Result<Vec<u8>> {
        storage::fs::read(&*self.fs, &self.path(id))
    }

    pub fn remove(&self, id: SnapshotId) -> io::Result<()> {
        storage::fs::remove_if_exists(&*self.fs, &self.path(id))
    }
}

/// Whether `name` in a metadata log directory is a snapshot file.
pub fn is_snapshot_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(SnapshotId::parse_file_name)
        .is_some()
}
