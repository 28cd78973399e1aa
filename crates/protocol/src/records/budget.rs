//! One bound on the bytes a whole request (or file) may decompress to, shared by
//! every batch and wrapper in it.
//!
//! A bound per batch is not enough: a request of many partitions, each just under
//! it, would still cost their sum. So a conversion takes one
//! [`DecompressionBudget`] for the whole request and charges it as it goes; once
//! a decompression would go past what remains, it stops there (having produced at
//! most the remainder plus one byte) and the budget is spent, so whatever follows
//! in the same request is refused without more work.

use std::borrow::Cow;
use std::io::Read;

use crate::records::batch::{BatchError, BatchHeader, HEADER_LEN};
use crate::records::compression::{decompress_reader, Compression};
use crate::records::record::RecordError;

/// What a request may still decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecompressionBudget {
    limit: usize,
    remaining: usize,
}

impl DecompressionBudget {
    pub fn new(limit: usize) -> DecompressionBudget {
        DecompressionBudget {
            limit,
            remaining: limit,
        }
    }

    /// The bound for the whole request.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Bytes charged so far (all of them once the budget was exceeded).
    pub fn used(&self) -> usize {
        self.limit - self.remaining
    }

    fn exceeded(&mut self) -> RecordError {
        self.remaining = 0;
        RecordError::DecompressedTooLarge {
            limit: self.limit as u64,
        }
    }

    /// Charges `bytes`; more than remains spends the budget and is
    /// [`RecordError::DecompressedTooLarge`].
    pub fn charge(&mut self, bytes: usize) -> Result<(), RecordError> {
        if bytes > self.remaining {
            return Err(self.exceeded());
        }
        self.remaining -= bytes;
        Ok(())
    }

    /// Decompresses `body` whole, charging what it yields. Stops (the budget
    /// spent) as soon as it yields more than remains: a bomb costs at most the
    /// remainder. A stream that does not decompress is
    /// [`RecordError::Decompression`].
    pub fn decompress(
        &mut self,
        compression: Compression,
        body: &[u8],
    ) -> Result<Vec<u8>, RecordError> {
        let corrupt = |e: std::io::Error| RecordError::Decompression(e.to_string());
        let reader = decompress_reader(compression, body).map_err(corrupt)?;
        let mut out = Vec::new();
        let read = reader
            .take(self.remaining as u64 + 1)
            .read_to_end(&mut out)
            .map_err(corrupt)?;
        if read > self.remaining {
            return Err(self.exceeded());
        }
        self.remaining -= read;
        Ok(out)
    }

    /// The records section of `batch` (a whole batch with `header`): borrowed,
    /// and not charged, when uncompressed (its bytes are the request's own);
    /// decompressed within the budget otherwise.
    pub fn records_section<'a>(
        &mut self,
        header: &BatchHeader,
        batch: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, RecordError> {
        let compression = header.compression()?;
        let body = batch
            .get(HEADER_LEN..header.size())
            .ok_or(BatchError::Truncated {
                needed: header.size(),
                available: batch.len(),
            })?;
        if compression == Compression::None {
            return Ok(Cow::Borrowed(body));
        }
        self.decompress(compression, body).map(Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::bomb::empty_records_batch;
    use crate::records::compression::compress;

    #[test]
    fn one_budget_covers_every_decompression_charged_to_it() {
        let data = vec![7u8; 1000];
        let gzip = compress(Compression::Gzip, &data).unwrap();
        let mut budget = DecompressionBudget::new(2500);
        assert_eq!(budget.decompress(Compression::Gzip, &gzip).unwrap(), data);
        assert_eq!(budget.decompress(Compression::Gzip, &gzip).unwrap(), data);
        assert_eq!((budget.used(), budget.remaining()), (2000, 500));
        // The third would take the request to 3000 bytes: refused, and the
        // budget is spent, so nothing after it decompresses either.
        assert_eq!(
            budget.decompress(Compression::Gzip, &gzip),
            Err(RecordError::DecompressedTooLarge { limit: 2500 })
        );
        assert_eq!(budget.remaining(), 0);
        let tiny = compress(Compression::Gzip, b"x").unwrap();
        assert!(budget.decompress(Compression::Gzip, &tiny).is_err());
        assert!(budget.charge(1).is_err());
        assert_eq!(budget.charge(0), Ok(()));
    }

    #[test]
    fn a_section_is_charged_only_when_it_is_decompressed() {
        let bomb = empty_records_batch(Compression::Zstd, 1_000_000, 0);
        let header = BatchHeader::parse(&bomb).unwrap();
        let mut budget = DecompressionBudget::new(1 << 20);
        assert_eq!(
            budget.records_section(&header, &bomb),
            Err(RecordError::DecompressedTooLarge { limit: 1 << 20 })
        );
        let plain = crate::records::bomb::empty_records_batch(Compression::None, 10, 0);
        let header = BatchHeader::parse(&plain).unwrap();
        let mut budget = DecompressionBudget::new(0);
        let section = budget.records_section(&header, &plain).unwrap();
        assert!(matches!(section, Cow::Borrowed(_)));
        assert_eq!(section.len(), plain.len() - HEADER_LEN);
    }

    #[test]
    fn garbage_is_corrupt_not_too_large() {
        let mut budget = DecompressionBudget::new(1 << 20);
        assert!(matches!(
            budget.decompress(Compression::Gzip, b"not gzip at all"),
            Err(RecordError::Decompression(_))
        ));
    }
}
