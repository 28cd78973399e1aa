//! What a fetch reads: whole batches from a byte range of one segment file, read
//! outside the log's lock.

use std::io;

use bytes::Bytes;
use protocol::records::batch;

use crate::fs::FileRef;
use crate::StorageError;

/// Where a fetch's bytes lie: a byte range of one segment file. Reading it is done
/// outside the log's lock with [`ReadSlice::read`].
#[derive(Debug, Clone)]
pub struct ReadSlice {
    file: FileRef,
    position: u32,
    /// The reader may not see bytes at or past this position.
    limit: u32,
    /// The size of the first batch, which is returned whole even past `max_bytes`.
    first_batch_size: u32,
    /// The base offset of the first batch (may be below the fetch offset).
    pub first_batch_base_offset: i64,
}

impl ReadSlice {
    pub(crate) fn new(
        file: FileRef,
        position: u32,
        limit: u32,
        first_batch_size: u32,
        first_batch_base_offset: i64,
    ) -> ReadSlice {
        ReadSlice {
            file,
            position,
            limit,
            first_batch_size,
            first_batch_base_offset,
        }
    }

    /// Reads whole batches from the slice: at least the first batch when
    /// `min_one_batch`, then as many as fit in `max_bytes`. Never cuts a batch.
    pub fn read(&self, max_bytes: usize, min_one_batch: bool) -> Result<Bytes, StorageError> {
        self.read_batches(max_bytes, min_one_batch)
            .map_err(|e| StorageError::io("reading a segment's slice", e))
    }

    fn read_batches(&self, max_bytes: usize, min_one_batch: bool) -> io::Result<Bytes> {
        let available = (self.limit - self.position) as usize;
        let first = self.first_batch_size as usize;
        let want = if min_one_batch {
            max_bytes.max(first)
        } else {
            max_bytes
        };
        let want = want.min(available);
        if want < first {
            return Ok(Bytes::new());
        }
        if want >= crate::read_pool::POOLED_MIN {
            // A reused buffer: no zeroing, no fresh pages (read_pool.rs).
            let mut buffer = crate::read_pool::take(want);
            self.file
                .read_exact_at(&mut buffer[..want], u64::from(self.position))?;
            let end = whole_batches(&buffer[..want]);
            return Ok(crate::read_pool::into_bytes(buffer, end));
        }
        // Read into uninitialised capacity: zeroing the buffer first cost a tenth of
        // the broker's fetch CPU (bench/README.md, scenario 3).
        let mut buffer: Vec<u8> = Vec::with_capacity(want);
        while buffer.len() < want {
            let at = u64::from(self.position) + buffer.len() as u64;
            let read = self.file.read_spare_at(&mut buffer, at)?;
            if read == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the segment ends before the slice",
                ));
            }
        }
        // The capacity may exceed `want`: never return bytes past the limit.
        buffer.truncate(want);
        let end = whole_batches(&buffer);
        buffer.truncate(end);
        Ok(Bytes::from(buffer))
    }
}

/// The length of the whole batches at the start of `bytes`.
fn whole_batches(bytes: &[u8]) -> usize {
    let mut end = 0usize;
    while end + batch::LOG_OVERHEAD <= bytes.len() {
        let length = i32::from_be_bytes(bytes[end + 8..end + 12].try_into().expect("4 bytes"));
        let size = batch::LOG_OVERHEAD + length.max(0) as usize;
        if length < 0 || end + size > bytes.len() {
            break;
        }
        end += size;
    }
    end
}

/// What a fetch finds.
#[derive(Debug, Clone)]
pub enum ReadOutcome {
    /// Nothing at or after the offset yet (it is the LEO or the bound).
    Empty,
    Data(ReadSlice),
}
