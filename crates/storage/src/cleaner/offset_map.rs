//! The cleaner's first stage: the offset map, key -> latest offset, built from the
//! dirty part of the cleanable range and bounded by the dedupe buffer.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::ops::ControlFlow;

use super::transactions::TxnTracker;
use super::{control_kind, for_each_batch, for_each_record, CleanerConfig, Pacer, SegmentView};
use crate::error::StorageError;

/// Bytes of map memory one key costs (hash, offset, table overhead).
const MAP_ENTRY_BYTES: usize = 48;

/// Digests keys for the offset map: SipHash with keys drawn at random for each
/// cleaning (so no one can aim for a collision) and CRC32C, 96 bits in all. Two
/// keys must collide on both to be taken for one: with 10^7 keys the chance is
/// about 10^-15 per cleaning (Kafka keys its map by MD5).
pub(crate) struct KeyDigest(RandomState);

type Digest = (u64, u32);

impl KeyDigest {
    fn new() -> KeyDigest {
        KeyDigest(RandomState::new())
    }

    fn of(&self, key: &[u8]) -> Digest {
        (self.0.hash_one(key), crc32c::crc32c(key))
    }
}

/// The offset map's own hasher: a digest is already uniformly random, so its
/// SipHash half is the hash (no second SipHash per lookup).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }

    fn write_u32(&mut self, v: u32) {
        self.0 ^= u64::from(v).rotate_left(32);
    }
}

type OffsetMap = HashMap<Digest, i64, BuildHasherDefault<DigestHasher>>;

/// The latest offset of each key of the mapped range, and where mapping stopped.
pub(crate) struct MappedRange {
    map: OffsetMap,
    digest: KeyDigest,
    /// Offsets below this were mapped: the cleaning covers the segments below it.
    pub(crate) end: i64,
}

impl MappedRange {
    /// The latest offset of `key` in the mapped range.
    pub(crate) fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&self.digest.of(key)).copied()
    }
}

/// Maps the keys of the segments holding offsets from `first_dirty` on; records of
/// aborted transactions do not count. `None` when the cleaning was told to stop.
pub(crate) fn build(
    views: &[SegmentView],
    first_dirty: i64,
    config: &CleanerConfig,
    pacer: &mut Pacer<'_>,
) -> Result<Option<MappedRange>, StorageError> {
    let all: Vec<&SegmentView> = views.iter().collect();
    let max_keys = (config.dedupe_buffer_bytes / MAP_ENTRY_BYTES).max(1);
    let digest = KeyDigest::new();
    let mut map = OffsetMap::default();
    let mut mapped_end = first_dirty;
    let first_mapped = views
        .iter()
        .find(|v| v.next_offset > first_dirty)
        .map_or(first_dirty, |v| v.base_offset);
    let mut txns = TxnTracker::new(&all, first_mapped);
    // Keys go straight into the map. When it is full, mapping stops at the end of
    // the last whole segment mapped; keys mapped past it (from the segment being
    // read) can only make the cleaning drop records that have a later record of
    // their key, which is always right.
    for view in views.iter().filter(|v| v.next_offset > first_dirty) {
        let first_segment = mapped_end == first_dirty;
        let mut full = false;
        for_each_batch(view, |header, bytes| {
            if !pacer.pace(bytes.len() as u64) {
                return Ok(ControlFlow::Break(()));
            }
            if header.is_control() {
                let kind = control_kind(&header, bytes, config.max_batch_bytes)?;
                txns.on_control(&header, kind);
                return Ok(ControlFlow::Continue(()));
            }
            if txns.on_batch(&header) || header.last_offset() < first_dirty {
                return Ok(ControlFlow::Continue(()));
            }
            if !first_segment && map.len() >= max_keys {
                full = true;
                return Ok(ControlFlow::Break(()));
            }
            for_each_record(&header, bytes, config.max_batch_bytes, |record| {
                if let Some(key) = record.key {
                    map.insert(digest.of(key), record.offset(&header));
                }
            })?;
            Ok(ControlFlow::Continue(()))
        })?;
        if pacer.stopped() {
            return Ok(None);
        }
        if full {
            // The map is full: clean up to here, the rest next time.
            break;
        }
        mapped_end = view.next_offset;
    }
    Ok(Some(MappedRange {
        map,
        digest,
        end: mapped_end,
    }))
}
