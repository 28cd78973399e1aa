//! Zig-zag varints as record batch v2 uses them (protobuf encoding): `varint` for
//! i32 fields, `varlong` for i64 fields. At most 5 and 10 bytes.

use std::io::Read;

/// A varint that ran past its maximum length or past the end of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("varint runs past the end of its input")]
    Truncated,
    #[error("varint is longer than {0} bytes")]
    TooLong(usize),
}

/// Reads an unsigned LEB128 value of at most `max_bytes` bytes.
fn read_unsigned(buf: &mut &[u8], max_bytes: usize) -> Result<u64, VarintError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(VarintError::Truncated);
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VarintError::TooLong(max_bytes))
}

fn read_unsigned_from<R: Read>(reader: &mut R, max_bytes: usize) -> std::io::Result<u64> {
    let mut value: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..max_bytes {
        reader.read_exact(&mut byte)?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        VarintError::TooLong(max_bytes),
    ))
}

fn zigzag_decode(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Reads a zig-zag varint (i32) from the front of `buf`, advancing it.
pub fn read_varint(buf: &mut &[u8]) -> Result<i32, VarintError> {
    let raw = read_unsigned(buf, 5)?;
    // Five 7-bit groups hold 35 bits; keep the low 32 as Kafka does.
    Ok(zigzag_decode(raw & 0xffff_ffff) as i32)
}

/// Reads a zig-zag varlong (i64) from the front of `buf`, advancing it.
pub fn read_varlong(buf: &mut &[u8]) -> Result<i64, VarintError> {
    Ok(zigzag_decode(read_unsigned(buf, 10)?))
}

/// Reads a zig-zag varint (i32) from a stream.
pub fn read_varint_from<R: Read>(reader: &mut R) -> std::io::Result<i32> {
    Ok(zigzag_decode(read_unsigned_from(reader, 5)? & 0xffff_ffff) as i32)
}

/// Reads a zig-zag varlong (i64) from a stream.
pub fn read_varlong_from<R: Read>(reader: &mut R) -> std::io::Result<i64> {
    Ok(zigzag_decode(read_unsigned_from(reader, 10)?))
}

fn write_unsigned(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends `value` as a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, value: i32) {
    write_unsigned(out, u64::from(((value << 1) ^ (value >> 31)) as u32));
}

/// Appends `value` as a zig-zag varlong.
pub fn write_varlong(out: &mut Vec<u8>, value: i64) {
    write_unsigned(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// The encoded length of `value` as a zig-zag varint.
pub fn varint_len(value: i32) -> usize {
    let mut v = u64::from(((value << 1) ^ (value >> 31)) as u32);
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings_match_kafka() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(varint_len(value), bytes.len());
            let mut slice = bytes;
            assert_eq!(read_varint(&mut slice), Ok(value));
            assert!(slice.is_empty());
        }
    }

    #[test]
    fn truncated_and_overlong_varints_are_errors() {
        assert_eq!(read_varint(&mut &[0x80u8][..]), Err(VarintError::Truncated));
        assert_eq!(
            read_varint(&mut &[0xffu8, 0xff, 0xff, 0xff, 0xff, 0x01][..]),
            Err(VarintError::TooLong(5))
        );
    }

    proptest! {
        #[test]
        fn varint_round_trips(value: i32) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(read_varint(&mut out.as_slice()), Ok(value));
            prop_assert_eq!(read_varint_from(&mut out.as_slice()).ok(), Some(value));
        }

        #[test]
        fn varlong_round_trips(value: i64) {
            let mut out = Vec::new();
            write_varlong(&mut out, value);
            prop_assert_eq!(read_varlong(&mut out.as_slice()), Ok(value));
            prop_assert_eq!(read_varlong_from(&mut out.as_slice()).ok(), Some(value));
        }
    }
}
