//! The cleaner's last stage: swapping cleaned segments in for the ones they
//! replace, so that a crash at any step leaves either the old segments or the new
//! one (Kafka's `.cleaned`/`.swap` protocol), never a mix.
//!
//! For each output:
//! 1. `{base}.*.cleaned` (written and fsynced) are renamed to `.swap`, index files
//!    first and the `.log` last, and the directory fsynced. `{base}.log.swap` is the
//!    commit point: once it exists, every file of the output is `.swap`.
//! 2. The replaced segments leave the log (renamed to `.deleted`, freed in the
//!    background).
//! 3. The `.swap` files take their final names, index files first and the `.log`
//!    last, and the segment is loaded.
//!
//! At the next start ([`complete_swaps`], before segments are listed): each
//! `{base}.log.swap` replaces every segment whose base lies in its offset range and
//! its files take their final names; `.swap` files without a `{base}.log.swap` (a
//! crash inside step 1) and `.cleaned` files are deleted, leaving the old segments.
//! Outputs are swapped one after the other, each a whole replacement for its own
//! range, so a crash between two leaves the first new and the second old.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::records::batch::{BatchHeader, HEADER_LEN};

use super::rewrite::CleanedSegment;
use crate::error::StorageError;
use crate::fs::{Fs, OpenMode};
use crate::log::Log;
use crate::segment::{file_name, SUFFIXES};

pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.cleaned", file_name(base, suffix)))
}

fn swap_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.swap", file_name(base, suffix)))
}

/// Removes the `.cleaned` files of one output segment (best effort: leftovers are
/// deleted at the next start anyway).
pub(crate) fn remove_cleaned(fs: &dyn Fs, dir: &Path, base: i64) {
    for suffix in SUFFIXES {
        let _ = fs.remove_file(&cleaned_path(dir, base, suffix));
    }
}

/// The suffixes in the order their files are renamed: the `.log` last.
const SWAP_ORDER: [&str; 4] = ["index", "timeindex", "txnindex", "log"];

/// Swaps one output in (steps 1 to 3 above). A failure takes the log dir offline:
/// the next start completes or drops the swap.
pub(crate) fn swap_in(log: &mut Log, output: &CleanedSegment) -> Result<(), StorageError> {
    let fs = Arc::clone(log.fs());
    let dir = log.dir().to_path_buf();
    let base = output.base_offset;
    let mut suffixes = Vec::with_capacity(SWAP_ORDER.len());
    let prepared = (|| {
        for suffix in SWAP_ORDER {
            let from = cleaned_path(&dir, base, suffix);
            // A cleaned segment without aborted transactions has no .txnindex.
            if suffix == "txnindex" && !fs.exists(&from)? {
                continue;
            }
            fs.rename(&from, &swap_path(&dir, base, suffix))?;
            suffixes.push(suffix);
        }
        fs.sync_dir(&dir)
    })();
    prepared.map_err(|e| log.io_failure("renaming a cleaned segment to .swap", e, false))?;
    // A crash from here on leaves `.swap` files that the next start completes.
    log.replace_segments(&output.replaces, base, || {
        for suffix in &suffixes {
            fs.rename(
                &swap_path(&dir, base, suffix),
                &dir.join(file_name(base, suffix)),
            )?;
        }
        fs.sync_dir(&dir)
    })
}

/// The last offset of the batches in the file at `path` (`base` when none).
fn last_offset_in(fs: &dyn Fs, path: &Path, base: i64) -> io::Result<i64> {
    let file = fs.open(path, OpenMode::Existing)?;
    let len = file.size()?;
    let mut last_offset = base;
    let mut position = 0u64;
    let mut head = [0u8; HEADER_LEN];
    while position + HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut head, position)?;
        let Ok(header) = BatchHeader::parse(&head) else {
            break;
        };
        last_offset = header.last_offset();
        position += header.size() as u64;
    }
    Ok(last_offset)
}

/// At start-up, before segments are listed: finishes the swaps a crash
/// interrupted after their commit point and drops those it interrupted before.
pub fn complete_swaps(fs: &dyn Fs, dir: &Path) -> io::Result<()> {
    let mut swaps = Vec::new();
    for entry in fs.list_dir(dir)? {
        if let Some(stem) = entry.name.strip_suffix(".log.swap") {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        }
    }
    swaps.sort_unstable();
    for base in swaps {
        let last_offset = last_offset_in(fs, &swap_path(dir, base, "log"), base)?;
        for entry in fs.list_dir(dir)? {
            let Some(stem) = entry.name.strip_suffix(".log") else {
                continue;
            };
            let Ok(old) = stem.parse::<i64>() else {
                continue;
            };
            if old >= base && old <= last_offset {
                crate::segment::delete_segment_files(fs, dir, old)?;
            }
        }
        for suffix in SWAP_ORDER {
            let from = swap_path(dir, base, suffix);
            if fs.exists(&from)? {
                fs.rename(&from, &dir.join(file_name(base, suffix)))?;
            }
        }
        fs.sync_dir(dir)?;
        tracing::warn!(dir = %dir.display(), base, "completed a segment swap interrupted by a crash");
    }
    Ok(())
}
