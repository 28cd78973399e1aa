//! openraft's own storage conformance suite (`openraft::testing::Suite`) over
//! the metadata log store and state machine, on the real filesystem in a
//! temporary directory and on `MemFs`.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use protocol::time::ManualClock;
use storage::fs::MemFs;
use storage::LogEnv;

use crate::types::{NodeId, TypeConfig};
use crate::{MetadataLogStore, MetadataStateMachine};

const NOW: i64 = 1_700_000_000_000;

struct TempDirBuilder;

impl StoreBuilder<TypeConfig, MetadataLogStore, MetadataStateMachine, tempfile::TempDir>
    for TempDirBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, MetadataLogStore, MetadataStateMachine), StorageError<NodeId>>
    {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("__cluster_metadata-0");
        let env = LogEnv::real(Arc::new(ManualClock::new(NOW)));
        let log = MetadataLogStore::open(&dir, &env)?;
        let sm = MetadataStateMachine::open(&dir, Arc::clone(&env.fs))?;
        Ok((temp, log, sm))
    }
}

struct MemFsBuilder;

impl StoreBuilder<TypeConfig, MetadataLogStore, MetadataStateMachine, MemFs> for MemFsBuilder {
    async fn build(
        &self,
    ) -> Result<(MemFs, MetadataLogStore, MetadataStateMachine), StorageError<NodeId>> {
        let fs = MemFs::new();
        let dir = std::path::Path::new("/meta/__cluster_metadata-0");
        let env = LogEnv::new(fs.shared(), Arc::new(ManualClock::new(NOW)));
        let log = MetadataLogStore::open(dir, &env)?;
        let sm = MetadataStateMachine::open(dir, fs.shared())?;
        Ok((fs, log, sm))
    }
}

#[test]
fn openraft_conformance_suite_on_the_real_filesystem() {
    Suite::test_all(TempDirBuilder).unwrap();
}

#[test]
fn openraft_conformance_suite_on_memfs() {
    Suite::test_all(MemFsBuilder).unwrap();
}
