//! Decompression bombs for tests and fuzzing: a valid v2 batch whose few KiB of
//! compressed records expand to millions of empty records. Built by streaming, so
//! making one costs no more memory than the bomb itself.

use std::io::{self, Read};

use crate::records::batch::{self, HEADER_LEN, LOG_OVERHEAD};
use crate::records::compression::{compress_stream, Compression};
use crate::records::{BatchBuilder, NewRecord};
use crate::varint::write_varint;

/// Yields the record bytes of `count` identical empty records (null key and
/// value, no headers, timestamp and offset delta 0: neither Kafka nor Rivulet
/// checks a record's offset delta against its index, so a bomb can do this).
struct EmptyRecords {
    next: i32,
    count: i32,
    pending: Vec<u8>,
    at: usize,
}

impl Read for EmptyRecords {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            self.pending.clear();
            self.at = 0;
            // Refill with up to 4 KiB of records.
            while self.next < self.count && self.pending.len() < 4096 {
                let mut body = vec![0u8, 0u8];
                write_varint(&mut body, 0);
                write_varint(&mut body, -1);
                write_varint(&mut body, -1);
                write_varint(&mut body, 0);
                write_varint(&mut self.pending, body.len() as i32);
                self.pending.extend_from_slice(&body);
                self.next += 1;
            }
            if self.pending.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.pending.len() - self.at);
        out[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A batch (base offset 0, CreateTime `timestamp`) of `count` empty records
/// compressed with `codec`, its header consistent with its records.
pub fn empty_records_batch(codec: Compression, count: i32, timestamp: i64) -> Vec<u8> {
    let mut header = BatchBuilder::new(codec);
    header.append(&NewRecord {
        timestamp,
        ..NewRecord::default()
    });
    let mut out = header.build().expect("one empty record compresses");
    out.truncate(HEADER_LEN);
    let mut records = EmptyRecords {
        next: 0,
        count,
        pending: Vec::new(),
        at: 0,
    };
    let mut out = compress_stream(codec, &mut records, out).expect("writing to a Vec");
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[batch::BATCH_LENGTH_AT..batch::BATCH_LENGTH_AT + 4]
        .copy_from_slice(&batch_length.to_be_bytes());
    out[batch::LAST_OFFSET_DELTA_AT..batch::LAST_OFFSET_DELTA_AT + 4]
        .copy_from_slice(&(count - 1).to_be_bytes());
    out[batch::RECORDS_COUNT_AT..batch::RECORDS_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = batch::compute_crc(&out);
    batch::set_crc(&mut out, crc);
    out
}
