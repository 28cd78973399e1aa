//! Moving the start of a log: DeleteRecords, and retention by time and size.
//!
//! Whole segments are deleted from the oldest on, Kafka's way
//! (`UnifiedLog.deleteOldSegments`): a segment goes when its predicate holds, the
//! segments before it went too, and everything up to the next segment's base is
//! below the high watermark. When every segment qualifies, a new empty active
//! segment is rolled first, so the log always has one. The log start offset then
//! moves to the first remaining segment's base (or further, by DeleteRecords).
//! Readers holding a deleted segment's file keep reading it: the file is unlinked,
//! its open descriptor stays valid. Deleting never holds up appends or fetches:
//! under the log's lock the files are only renamed to `.deleted` (a restart removes
//! leftovers); unlinking them and closing them, which frees their page cache and
//! can take a while for a large segment, happens on a background thread
//! ([`retire`]), as Kafka's asynchronous segment deletion does.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::env::SegmentDeletes;
use crate::error::StorageError;
use crate::log::Log;
use crate::segment::{file_name, Segment, SUFFIXES};
use crate::LogEnv;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// DeleteRecords ([`Log::delete_records_before`]): records below `offset` become
/// unreadable and their segments are deleted once wholly below it.
pub(crate) fn delete_records_before(
    log: &mut Log,
    offset: i64,
    high_watermark: i64,
) -> Result<i64, StorageError> {
    log.raise_log_start_offset(offset)?;
    delete_segments_while(log, high_watermark, |segment, next, log_start| {
        next.is_some_and(|n| n.base_offset() <= log_start) && segment.base_offset() < log_start
    })?;
    Ok(log.log_start_offset().0)
}

/// One retention pass ([`Log::apply_retention`]): segments below the log start
/// offset, then by `retention.ms` and `retention.bytes` when `cleanup.policy`
/// includes delete.
pub(crate) fn apply(log: &mut Log, high_watermark: i64) -> Result<RetentionOutcome, StorageError> {
    let mut outcome = RetentionOutcome::default();
    let add = |outcome: &mut RetentionOutcome, (n, bytes): (usize, u64)| {
        outcome.segments_deleted += n;
        outcome.bytes_deleted += bytes;
    };
    let gone = delete_segments_while(log, high_watermark, |_, next, log_start| {
        next.is_some_and(|n| n.base_offset() <= log_start)
    })?;
    add(&mut outcome, gone);
    let config = Arc::clone(log.config());
    if config.cleanup_policy_delete {
        let retention_ms = config.retention_ms;
        if retention_ms >= 0 {
            let now = log.now_ms();
            let gone = delete_segments_while(log, high_watermark, |segment, _, _| {
                now.saturating_sub(segment.largest_timestamp()) > retention_ms
            })?;
            add(&mut outcome, gone);
        }
        let retention_bytes = config.retention_bytes;
        if retention_bytes >= 0 {
            let mut excess = log.size_in_bytes() as i64 - retention_bytes;
            let gone = delete_segments_while(log, high_watermark, |segment, _, _| {
                if excess - i64::from(segment.size()) >= 0 {
                    excess -= i64::from(segment.size());
                    true
                } else {
                    false
                }
            })?;
            add(&mut outcome, gone);
        }
    }
    outcome.log_start_offset = log.log_start_offset().0;
    if outcome.segments_deleted > 0 {
        tracing::info!(partition = %log.topic_partition(), segments = outcome.segments_deleted, bytes = outcome.bytes_deleted, log_start_offset = outcome.log_start_offset, "deleted old segments");
    }
    Ok(outcome)
}

/// Deletes segments from the oldest while `predicate(segment, next, log_start)`
/// holds. Returns the number of segments and bytes deleted.
fn delete_segments_while<F>(
    log: &mut Log,
    high_watermark: i64,
    mut predicate: F,
) -> Result<(usize, u64), StorageError>
where
    F: FnMut(&Segment, Option<&Segment>, i64) -> bool,
{
    let leo = log.log_end_offset().0;
    let log_start = log.log_start_offset().0;
    let segments: Vec<&Segment> = log.segments().collect();
    let mut doomed = 0usize;
    for (i, segment) in segments.iter().enumerate() {
        let next = segments.get(i + 1).copied();
        let last_and_empty = next.is_none() && segment.size() == 0;
        let upper = next.map(|n| n.base_offset()).unwrap_or(leo);
        if last_and_empty || high_watermark < upper || !predicate(segment, next, log_start) {
            break;
        }
        doomed += 1;
    }
    let bytes = log.delete_oldest_segments(doomed)?;
    Ok((doomed, bytes))
}

/// Takes segments out of the log directory at once and frees them in the
/// background: their files are renamed to `.deleted` now (cheap, and a crash
/// leaves only names the next start removes); a thread then unlinks them and drops
/// the segments, closing the files, which is when the kernel frees their pages
/// (or the caller does, where `env.deletes` says so).
/// Readers that still hold a file keep it until they are done.
pub(crate) fn retire(env: &LogEnv, dir: &Path, segments: Vec<Segment>) -> io::Result<()> {
    let fs = &env.fs;
    let mut paths = Vec::new();
    for segment in &segments {
        for suffix in SUFFIXES {
            let from = dir.join(file_name(segment.base_offset(), suffix));
            let to = dir.join(format!(
                "{}.deleted",
                file_name(segment.base_offset(), suffix)
            ));
            match fs.rename(&from, &to) {
                Ok(()) => paths.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let fs = Arc::clone(fs);
    let unlink = move || {
        for path in &paths {
            if let Err(e) = fs.remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "removing a deleted segment file failed; the next start removes it");
                }
            }
        }
        drop(segments);
    };
    if env.deletes == SegmentDeletes::Inline {
        unlink();
        return Ok(());
    }
    let spawned = std::thread::Builder::new()
        .name("segment-delete".into())
        .spawn(unlink);
    if let Err(e) = spawned {
        // The segments are out of the log already; their `.deleted` files stay until
        // the next start.
        tracing::warn!(error = %e, "cannot start a thread to delete segment files; the next start removes them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use protocol::records::{BatchBuilder, Compression, NewRecord};
    use protocol::time::{Clock, ManualClock};
    use protocol::TopicPartition;

    use crate::log::{LoadState, Log, ReadOutcome};
    use crate::{LogConfig, LogEnv, Origin};

    const NOW: i64 = 1_700_000_000_000;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn deleted_segments_leave_at_once_and_readers_keep_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let overrides: BTreeMap<String, String> =
            [("segment.bytes", "200"), ("retention.ms", "1000")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let config = Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap());
        let clock = Arc::new(ManualClock::new(NOW));
        let mut log = Log::open(
            dir.path(),
            TopicPartition::new("r", 0),
            config,
            &LogEnv::real(Arc::clone(&clock) as Arc<dyn Clock>),
            LoadState::default(),
        )
        .unwrap();
        for i in 0..6u8 {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.append(&NewRecord {
                timestamp: NOW,
                key: Some(b"k"),
                value: Some(&[i; 100]),
                headers: &[],
            });
            log.append_as_leader(&builder.build().unwrap(), 0, Origin::Client)
                .unwrap();
        }
        assert!(log.segment_count() >= 3);
        // A fetch in flight holds the first segment's file.
        let ReadOutcome::Data(slice) = log.read(0, 6).unwrap() else {
            panic!("data expected")
        };
        clock.advance(2_000);
        let outcome = log.apply_retention(6).unwrap();
        assert_eq!(outcome.log_start_offset, 6);
        assert!(
            names(dir.path())
                .iter()
                .all(|n| !n.ends_with(".log") || n.starts_with("00000000000000000006")),
            "{:?}",
            names(dir.path())
        );
        // The reader still gets its bytes.
        assert!(!slice.read(1 << 20, true).unwrap().is_empty());
        // The background thread unlinks the renamed files.
        for _ in 0..200 {
            if !names(dir.path()).iter().any(|n| n.ends_with(".deleted")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            !names(dir.path()).iter().any(|n| n.ends_with(".deleted")),
            "{:?}",
            names(dir.path())
        );
    }
}
