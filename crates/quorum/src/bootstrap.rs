//! The KIP-630 files `kafka-storage.sh format` writes, for `rivulet storage
//! format` to write (step Q8 wires them in):
//!
//! - `bootstrap.checkpoint` in the metadata log directory: the feature levels
//!   (`metadata.version`) the first active controller writes at activation
//!   (Kafka's `BootstrapDirectory`);
//! - `__cluster_metadata-0/00000000000000000000-0000000000.checkpoint` with the
//!   voter set, for `--standalone` / `--initial-controllers`.
//!
//! Both are snapshots in the format of [`crate::snapshot`] with id (0, 0).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use metadata::{ClusterImage, MetadataReplay};
use openraft::StoredMembership;
use storage::fs::Fs;

use crate::snapshot::{self, SnapshotContents, SnapshotId};
use crate::types::VoterSet;

pub const BOOTSTRAP_CHECKPOINT: &str = "bootstrap.checkpoint";

/// The name of `metadata.version`'s feature.
pub const METADATA_VERSION: &str = "metadata.version";

fn contents(
    image: ClusterImage,
    membership: StoredMembership<u64, crate::Voter>,
    now_ms: i64,
) -> SnapshotContents {
    SnapshotContents {
        id: SnapshotId::covering(None),
        last_contained_log_timestamp: now_ms,
        membership,
        replay: MetadataReplay::new(image, 0),
    }
}

/// The bytes of a `bootstrap.checkpoint` with these feature levels.
pub fn encode_bootstrap(features: &BTreeMap<String, i16>, now_ms: i64) -> Vec<u8> {
    let image = ClusterImage {
        features: features.clone(),
        ..ClusterImage::default()
    };
    snapshot::encode(&contents(image, StoredMembership::default(), now_ms))
}

/// Writes `bootstrap.checkpoint` in `metadata_dir`, durably.
pub fn write_bootstrap(
    fs: &dyn Fs,
    metadata_dir: &Path,
    features: &BTreeMap<String, i16>,
    now_ms: i64,
) -> io::Result<()> {
    fs.create_dir_all(metadata_dir)?;
    storage::fs::write_atomically(
        fs,
        &metadata_dir.join(BOOTSTRAP_CHECKPOINT),
        &encode_bootstrap(features, now_ms),
    )
}

/// The feature levels in `metadata_dir`'s `bootstrap.checkpoint`, if it has one.
pub fn read_bootstrap(
    fs: &dyn Fs,
    metadata_dir: &Path,
) -> Result<Option<BTreeMap<String, i16>>, snapshot::SnapshotError> {
    let bytes = match storage::fs::read(fs, &metadata_dir.join(BOOTSTRAP_CHECKPOINT)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let contents = snapshot::decode(SnapshotId::covering(None), bytes.into())?;
    Ok(Some(contents.replay.image().features.clone()))
}

/// Writes the voter set of a new dynamic quorum as the `0-0` snapshot of the
/// metadata log in `log_dir`, durably.
pub fn write_initial_voters(
    fs: &std::sync::Arc<dyn Fs>,
    log_dir: &Path,
    voters: VoterSet,
    now_ms: i64,
) -> io::Result<()> {
    fs.create_dir_all(log_dir)?;
    let bytes = snapshot::encode(&contents(
        ClusterImage::default(),
        StoredMembership::new(None, voters),
        now_ms,
    ));
    snapshot::SnapshotDir {
        fs: std::sync::Arc::clone(fs),
        dir: log_dir.to_path_buf(),
    }
    .write(SnapshotId::covering(None), &bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use kafka_protocol::records::RecordBatchDecoder;
    use metadata::MetadataRecord;
    use openraft::Membership;
    use storage::fs::MemFs;

    use super::*;
    use crate::types::Voter;

    #[test]
    fn the_bootstrap_checkpoint_holds_metadata_version_between_header_and_footer() {
        let fs = MemFs::new();
        let dir = Path::new("/meta");
        let features: BTreeMap<String, i16> = [(METADATA_VERSION.to_string(), 27)].into();
        write_bootstrap(&*fs.shared(), dir, &features, 7).unwrap();
        assert_eq!(read_bootstrap(&*fs.shared(), dir).unwrap(), Some(features));
        assert_eq!(
            read_bootstrap(&*fs.shared(), Path::new("/none")).unwrap(),
            None
        );
        let mut bytes = Bytes::from(fs.contents(&dir.join(BOOTSTRAP_CHECKPOINT)).unwrap());
        let records: Vec<_> = RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .flat_map(|s| s.records)
            .collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key.as_deref(), Some(&[0u8, 0, 0, 3][..]));
        assert_eq!(
            MetadataRecord::decode(records[1].value.as_ref().unwrap()).unwrap(),
            MetadataRecord::FeatureLevel {
                name: METADATA_VERSION.into(),
                feature_level: 27
            }
        );
        assert_eq!(records[2].key.as_deref(), Some(&[0u8, 0, 0, 4][..]));
    }

    #[test]
    fn the_initial_voters_are_the_zero_snapshot_of_the_log() {
        let fs = MemFs::new();
        let dir = Path::new("/meta/__cluster_metadata-0");
        let nodes: BTreeMap<u64, Voter> = [(1, Voter::new("c1", 9093))].into();
        let voters = Membership::new(vec![[1].into()], nodes);
        write_initial_voters(&fs.shared(), dir, voters.clone(), 7).unwrap();
        assert!(fs
            .file_names(dir)
            .contains(&"00000000000000000000-0000000000.checkpoint".to_string()));
        let sm = crate::MetadataStateMachine::open(dir, Arc::clone(&fs.shared())).unwrap();
        assert_eq!(sm.replay().image(), &ClusterImage::default());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (applied, membership) = rt.block_on(async {
            use openraft::storage::RaftStateMachine;
            let mut sm = sm;
            sm.applied_state().await.unwrap()
        });
        assert_eq!(applied, None);
        assert_eq!(membership.membership(), &voters);
    }
}
