//! The four codecs Kafka batches use, as streams.
//!
//! Everything a batch's compressed body decompresses to is read as a stream, so a
//! small batch that claims a huge decompressed size cannot make us allocate it:
//! validation skims records without holding them.
//!
//! - gzip: RFC 1952 (one or more members).
//! - snappy: either the xerial framing the Java client writes
//!   (`\x82SNAPPY\0`, version, compatible version, then `[i32 length][raw block]`*)
//!   or one raw snappy block as librdkafka writes it. We write xerial framing.
//! - lz4: the LZ4 frame format.
//! - zstd: a zstd frame.

use std::io::{self, Read, Write};

use crate::records::batch::BatchError;

/// A codec id from bits 0-2 of the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
const XERIAL_BLOCK: usize = 32 * 1024;

/// The largest zstd window (log2 bytes) a batch may need to decompress.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

/// Snappy cannot expand input by more than this factor (a 3-byte copy op yields at
/// most 64 bytes); a raw block claiming more is corrupt, not a reason to allocate.
const SNAPPY_MAX_RATIO: usize = 22;

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        Self::from_id(attributes & 0x07)
    }

    pub fn from_id(id: i16) -> Result<Compression, BatchError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnknownCompression(other)),
        }
    }

    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name for the codec (`compression.type` values).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "none" | "uncompressed" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "snappy" => Some(Compression::Snappy),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A reader of the decompressed bytes of `body`.
pub fn decompress_reader<'a>(
    compression: Compression,
    body: &'a [u8],
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(body),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Compression::Snappy => Box::new(SnappyReader::new(body)?),
        Compression::Lz4 => Box::new(lz4::Decoder::new(body)?),
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body)?;
            // A frame may ask for a window up to 2^27 bytes (Kafka's limit, 128 MiB
            // of memory per decompression); we allow 2^25: a few hundred bytes of
            // produce must not cost 128 MiB. Producers use 2^21-2^23 in practice.
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(decoder)
        }
    })
}

/// Decompresses `body` whole, refusing to produce more than `limit` bytes.
pub fn decompress_to_vec(
    compression: Compression,
    body: &[u8],
    limit: usize,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let reader = decompress_reader(compression, body)?;
    let read = reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if read > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("decompressed data exceeds {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Compresses `data` as a batch body for `compression`.
pub fn compress(compression: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data)?;
            encoder.finish()
        }
        Compression::Snappy => snappy_xerial_compress(data),
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .level(1)
                .build(Vec::new())?;
            encoder.write_all(data)?;
            let (out, result) = encoder.finish();
            result.map(|()| out)
        }
        Compression::Zstd => zstd::bulk::compress(data, 3),
    }
}

/// Compresses everything `reader` yields into `writer` as a batch body for
/// `compression`, streaming: the memory used is the codec's own state and one
/// block, whatever the size of the input. Returns the writer.
pub fn compress_stream<R: Read, W: Write>(
    compression: Compression,
    reader: &mut R,
    writer: W,
) -> io::Result<W> {
    match compression {
        Compression::None => {
            let mut writer = writer;
            io::copy(reader, &mut writer)?;
            Ok(writer)
        }
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(writer, flate2::Compression::default());
            io::copy(reader, &mut encoder)?;
            encoder.finish()
        }
        Compression::Snappy => {
            let mut writer = writer;
            writer.write_all(XERIAL_MAGIC)?;
            writer.write_all(&1i32.to_be_bytes())?;
            writer.write_all(&1i32.to_be_bytes())?;
            let mut encoder = snap::raw::Encoder::new();
            let mut chunk = vec![0u8; XERIAL_BLOCK];
            let mut block = vec![0u8; snap::raw::max_compress_len(XERIAL_BLOCK)];
            loop {
                let filled = read_full(reader, &mut chunk)?;
                if filled == 0 {
                    break;
                }
                let n = encoder
                    .compress(&chunk[..filled], &mut block)
                    .map_err(io::Error::other)?;
                writer.write_all(&(n as i32).to_be_bytes())?;
                writer.write_all(&block[..n])?;
            }
            Ok(writer)
        }
        Compression::Lz4 => {
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .level(1)
                .build(writer)?;
            io::copy(reader, &mut encoder)?;
            let (writer, result) = encoder.finish();
            result.map(|()| writer)
        }
        Compression::Zstd => {
            let mut encoder = zstd::stream::write::Encoder::new(writer, 3)?;
            io::copy(reader, &mut encoder)?;
            encoder.finish()
        }
    }
}

/// Fills `buf` from `reader` as far as it goes; fewer bytes only at its end.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn snappy_xerial_compress(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 64);
    out.extend_from_slice(XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut encoder = snap::raw::Encoder::new();
    for chunk in data.chunks(XERIAL_BLOCK) {
        let block = encoder.compress_vec(chunk).map_err(io::Error::other)?;
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    Ok(out)
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Decompresses snappy block by block: xerial framing or one raw block.
struct SnappyReader<'a> {
    /// Remaining xerial blocks, or empty once the raw block has been taken.
    rest: &'a [u8],
    xerial: bool,
    block: Vec<u8>,
    position: usize,
    decoder: snap::raw::Decoder,
}

impl<'a> SnappyReader<'a> {
    fn new(body: &'a [u8]) -> io::Result<Self> {
        let xerial = body.len() >= XERIAL_HEADER_LEN && &body[..8] == XERIAL_MAGIC;
        let rest = if xerial {
            &body[XERIAL_HEADER_LEN..]
        } else {
            body
        };
        Ok(SnappyReader {
            rest,
            xerial,
            block: Vec::new(),
            position: 0,
            decoder: snap::raw::Decoder::new(),
        })
    }

    fn decode_block(&mut self, compressed: &[u8]) -> io::Result<()> {
        let len = snap::raw::decompress_len(compressed).map_err(|e| invalid(e.to_string()))?;
        if len > compressed.len().saturating_mul(SNAPPY_MAX_RATIO) + 64 {
            return Err(invalid(format!(
                "snappy block claims {len} bytes from {}",
                compressed.len()
            )));
        }
        self.block.resize(len, 0);
        let written = self
            .decoder
            .decompress(compressed, &mut self.block)
            .map_err(|e| invalid(e.to_string()))?;
        self.block.truncate(written);
        self.position = 0;
        Ok(())
    }

    /// Loads the next block; false at the end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        if !self.xerial {
            let compressed = std::mem::take(&mut self.rest);
            self.decode_block(compressed)?;
            return Ok(true);
        }
        if self.rest.len() < 4 {
            return Err(invalid("truncated xerial snappy block length"));
        }
        let len = i32::from_be_bytes(self.rest[..4].try_into().expect("4 bytes"));
        if len < 0 || len as usize > self.rest.len() - 4 {
            return Err(invalid(format!(
                "xerial snappy block of {len} bytes runs past the batch"
            )));
        }
        let (compressed, rest) = self.rest[4..].split_at(len as usize);
        self.rest = rest;
        self.decode_block(compressed)?;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.position == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.position);
        out[..n].copy_from_slice(&self.block[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let compressed = compress(codec, &data).unwrap();
            let back = decompress_to_vec(codec, &compressed, data.len()).unwrap();
            assert_eq!(back, data, "{codec:?}");
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_read() {
        let data = b"hello hello hello hello snappy".repeat(100);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress_to_vec(Compression::Snappy, &raw, 1 << 20).unwrap(),
            data
        );
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let data = vec![0u8; 100_000];
        for codec in ALL {
            let compressed = compress(codec, &data).unwrap();
            assert!(
                decompress_to_vec(codec, &compressed, 99_999).is_err(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn a_raw_snappy_block_claiming_a_huge_size_is_refused_before_allocating() {
        // varint length 0xffffffff, then garbage.
        let bogus = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01];
        assert!(decompress_to_vec(Compression::Snappy, &bogus, usize::MAX - 1).is_err());
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let garbage = b"definitely not a compressed stream, not at all";
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(
                decompress_to_vec(codec, garbage, 1 << 20).is_err(),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn codec_ids_and_names_match_kafka() {
        for codec in ALL {
            assert_eq!(Compression::from_id(codec.id()), Ok(codec));
            assert_eq!(Compression::from_name(codec.name()), Some(codec));
        }
        assert!(Compression::from_id(5).is_err());
    }
}
