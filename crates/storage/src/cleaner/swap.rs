//! The cleaner's last stage: swapping cleaned segments in for the ones they
//! replace, so that a crash at any point leaves a log that is whole.
//!
//! For each output: `{base}.*.cleaned` are renamed to `.swap` and the directory
//! fsynced; the replaced segments leave the log (renamed to `.deleted`, freed in the
//! background); `.swap` files get their final names; the segment is loaded. At the
//! next start, `.cleaned` files (a crash before the swap) are deleted, and each
//! `{base}.log.swap` (a crash during it) replaces every segment whose base lies in
//! its offset range ([`complete_swaps`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::records::batch::{BatchHeader, HEADER_LEN};

use super::rewrite::CleanedSegment;
use crate::error::StorageError;
use crate::fs::{Fs, OpenMode};
use crate::log::{io_err, Log};
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

/// Swaps one output in: `.cleaned` -> `.swap`, the replaced segments out, `.swap`
/// -> final, loaded.
pub(crate) fn swap_in(log: &mut Log, output: &CleanedSegment) -> Result<(), StorageError> {
    let fs = Arc::clone(log.fs());
    let dir = log.dir().to_path_buf();
    let base = output.base_offset;
    for suffix in SUFFIXES {
        let from = cleaned_path(&dir, base, suffix);
        if suffix == "txnindex"
            && !fs
                .exists(&from)
                .map_err(io_err("listing a cleaned segment"))?
        {
            continue;
        }
        fs.rename(&from, &swap_path(&dir, base, suffix))
            .map_err(io_err("renaming a cleaned segment to .swap"))?;
    }
    fs.sync_dir(&dir)
        .map_err(io_err("syncing the log directory"))?;
    // A crash from here on leaves `.swap` files that the next start completes.
    log.replace_segments(&output.replaces, base, || {
        for suffix in SUFFIXES {
            let from = swap_path(&dir, base, suffix);
            if suffix == "txnindex" && !fs.exists(&from)? {
                continue;
            }
            fs.rename(&from, &dir.join(file_name(base, suffix)))?;
        }
        Ok(())
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

/// At start-up, before segments are listed: finishes swaps a crash interrupted.
/// Each `{base}.log.swap` replaces every segment whose base lies in its offset range.
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
        for suffix in SUFFIXES {
            let from = swap_path(dir, base, suffix);
            if fs.exists(&from)? {
                fs.rename(&from, &dir.join(file_name(base, suffix)))?;
            }
        }
        tracing::warn!(dir = %dir.display(), base, "completed a segment swap interrupted by a crash");
    }
    Ok(())
}
