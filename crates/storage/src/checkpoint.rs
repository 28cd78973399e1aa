//! Kafka's checkpoint files, written atomically (temp file, fsync, rename, fsync dir).
//!
//! Offset checkpoints (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`), one per log dir:
//! ```text
//! 0                      <- version
//! 2                      <- entry count
//! orders 0 1042          <- topic partition offset
//! orders 1 998
//! ```
//! The leader epoch checkpoint (`leader-epoch-checkpoint`, one per partition) has the
//! same framing with `epoch start_offset` entries.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use protocol::TopicPartition;

use crate::fs::{Fs, RealFs};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

const VERSION: &str = "0";

fn invalid(path: &Path, reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("checkpoint {}: {reason}", path.display()),
    )
}

/// Reads the entry lines of a checkpoint file, checking version and count.
/// A missing file is an empty checkpoint.
fn read_lines(fs: &dyn Fs, path: &Path) -> io::Result<Vec<String>> {
    let text = match crate::fs::read_to_string(fs, path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let version = lines.next().ok_or_else(|| invalid(path, "empty file"))?;
    if version.trim() != VERSION {
        return Err(invalid(path, format!("unknown version {version}")));
    }
    let count: usize = lines
        .next()
        .ok_or_else(|| invalid(path, "missing entry count"))?
        .trim()
        .parse()
        .map_err(|e| invalid(path, e))?;
    let entries: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if entries.len() != count {
        return Err(invalid(
            path,
            format!("expected {count} entries, found {}", entries.len()),
        ));
    }
    Ok(entries)
}

/// Reads an offset checkpoint on the real filesystem (for checkpoints kept outside
/// storage, such as the replica manager's).
pub fn read_offsets(path: &Path) -> io::Result<BTreeMap<TopicPartition, i64>> {
    read_offsets_in(&RealFs, path)
}

/// Writes an offset checkpoint on the real filesystem (see [`read_offsets`]).
pub fn write_offsets(path: &Path, offsets: &BTreeMap<TopicPartition, i64>) -> io::Result<()> {
    write_offsets_in(&RealFs, path, offsets)
}

/// Reads an offset checkpoint: partition to offset.
pub fn read_offsets_in(fs: &dyn Fs, path: &Path) -> io::Result<BTreeMap<TopicPartition, i64>> {
    let mut offsets = BTreeMap::new();
    for line in read_lines(fs, path)? {
        let mut fields = line.split_whitespace();
        let (Some(topic), Some(partition), Some(offset), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid(path, format!("malformed line {line:?}")));
        };
        let partition: i32 = partition.parse().map_err(|e| invalid(path, e))?;
        let offset: i64 = offset.parse().map_err(|e| invalid(path, e))?;
        offsets.insert(TopicPartition::new(topic, partition), offset);
    }
    Ok(offsets)
}

/// Writes an offset checkpoint atomically.
pub fn write_offsets_in(
    fs: &dyn Fs,
    path: &Path,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", offsets.len());
    for (tp, offset) in offsets {
        text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
    }
    crate::fs::write_atomically(fs, path, text.as_bytes())
}

/// Reads a leader epoch checkpoint: `(epoch, start_offset)` pairs in file order.
pub fn read_epochs(fs: &dyn Fs, path: &Path) -> io::Result<Vec<(i32, i64)>> {
    read_lines(fs, path)?
        .iter()
        .map(|line| {
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next(), fields.next()) {
                (Some(epoch), Some(offset), None) => Ok((
                    epoch.parse().map_err(|e| invalid(path, e))?,
                    offset.parse().map_err(|e| invalid(path, e))?,
                )),
                _ => Err(invalid(path, format!("malformed line {line:?}"))),
            }
        })
        .collect()
}

/// Writes a leader epoch checkpoint atomically.
pub fn write_epochs(fs: &dyn Fs, path: &Path, entries: &[(i32, i64)]) -> io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (epoch, offset) in entries {
        text.push_str(&format!("{epoch} {offset}\n"));
    }
    crate::fs::write_atomically(fs, path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn offsets_round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RECOVERY_POINT_CHECKPOINT);
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new("orders", 0), 1042);
        offsets.insert(TopicPartition::new("orders", 1), 998);
        write_offsets(&path, &offsets).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "0\n2\norders 0 1042\norders 1 998\n"
        );
        assert_eq!(read_offsets(&path).unwrap(), offsets);
    }

    #[test]
    fn a_missing_checkpoint_is_empty_and_a_bad_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        assert!(read_offsets(&path).unwrap().is_empty());
        fs::write(&path, "0\n2\norders 0 1\n").unwrap();
        assert!(read_offsets(&path).is_err());
        fs::write(&path, "1\n0\n").unwrap();
        assert!(read_offsets(&path).is_err());
    }

    #[test]
    fn epochs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        write_epochs(&RealFs, &path, &[(0, 0), (3, 120)]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "0\n2\n0 0\n3 120\n");
        assert_eq!(read_epochs(&RealFs, &path).unwrap(), vec![(0, 0), (3, 120)]);
    }
}
