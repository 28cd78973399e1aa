//! A Fetch response frame whose record bytes are shared, not copied.
//!
//! The records are most of a Fetch response. Encoding them with the rest copies
//! every byte once more on the way from the log to the socket; here the response is
//! encoded with a 16-byte sentinel in place of each large `records` field, and the
//! frame is cut at the sentinels into chunks: the encoded parts, each records'
//! length prefix, and the records' own `Bytes`. The chunks, written in order, are
//! byte for byte the frame [`encode_response`] gives (a test checks every version).
//!
//! A sentinel is 8 random bytes, fixed per process, and the records' index. If the
//! encoded frame holds the random part anywhere but at the sentinels (a topic name
//! that happens to contain it), or a sentinel is not preceded by the length prefix
//! a 16-byte field has, the frame is encoded the plain way instead: the result is
//! always correct, the sharing only an optimisation.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, FetchResponse};

use crate::frame::{encode_response, EncodeError, SIZE_PREFIX_LEN};

/// Records shorter than this are copied into the frame like any other field.
pub const SHARE_RECORDS_BYTES: usize = 4096;

const SENTINEL_LEN: usize = 16;

/// The first flexible Fetch version: `records` is COMPACT_RECORDS (an unsigned
/// varint of length + 1) from here, RECORDS (an i32 length) before.
const FIRST_FLEXIBLE_VERSION: i16 = 12;

fn salt() -> [u8; 8] {
    static SALT: OnceLock<[u8; 8]> = OnceLock::new();
    *SALT.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::process::id().into());
        hasher.finish().to_be_bytes()
    })
}

fn sentinel(salt: [u8; 8], index: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(SENTINEL_LEN);
    out.put_slice(&salt);
    out.put_u64(index as u64);
    out.freeze()
}

/// The Fetch response as chunks of one frame, size prefix included.
pub fn encode_fetch_response(
    api_version: i16,
    correlation_id: i32,
    body: FetchResponse,
) -> Result<Vec<Bytes>, EncodeError> {
    encode_with_salt(api_version, correlation_id, body, salt())
}

fn encode_with_salt(
    api_version: i16,
    correlation_id: i32,
    mut body: FetchResponse,
    salt: [u8; 8],
) -> Result<Vec<Bytes>, EncodeError> {
    let mut shared: Vec<Bytes> = Vec::new();
    for partition in body
        .responses
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
    {
        if let Some(records) = partition.records.as_mut() {
            if records.len() >= SHARE_RECORDS_BYTES {
                let marker = sentinel(salt, shared.len());
                shared.push(std::mem::replace(records, marker));
            }
        }
    }
    if shared.is_empty() {
        return Ok(vec![encode_response(
            ApiKey::Fetch,
            api_version,
            correlation_id,
            &body,
        )?
        .freeze()]);
    }
    let encoded = encode_response(ApiKey::Fetch, api_version, correlation_id, &body)?.freeze();
    match split_at_sentinels(
        &encoded,
        &shared,
        api_version >= FIRST_FLEXIBLE_VERSION,
        salt,
    ) {
        Some(chunks) => Ok(chunks),
        None => {
            // Put the records back, in the order they were taken, and copy them.
            let mut taken = shared.into_iter();
            for partition in body
                .responses
                .iter_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                if let Some(records) = partition.records.as_mut() {
                    if records.len() == SENTINEL_LEN && records[..8] == salt {
                        if let Some(original) = taken.next() {
                            *records = original;
                        }
                    }
                }
            }
            Ok(vec![encode_response(
                ApiKey::Fetch,
                api_version,
                correlation_id,
                &body,
            )?
            .freeze()])
        }
    }
}

/// Where `needle` occurs in `haystack`, every place.
fn occurrences(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        match haystack[from..].iter().position(|&b| b == needle[0]) {
            None => break,
            Some(p) => {
                let at = from + p;
                if haystack.len() - at >= needle.len() && haystack[at..at + needle.len()] == *needle
                {
                    found.push(at);
                }
                from = at + 1;
            }
        }
    }
    found
}

fn split_at_sentinels(
    encoded: &Bytes,
    shared: &[Bytes],
    flexible: bool,
    salt: [u8; 8],
) -> Option<Vec<Bytes>> {
    let at = occurrences(encoded, &salt);
    if at.len() != shared.len() {
        return None;
    }
    // The length prefix a 16-byte records field is encoded with.
    let marker_prefix: &[u8] = if flexible {
        &[SENTINEL_LEN as u8 + 1]
    } else {
        &[0, 0, 0, SENTINEL_LEN as u8]
    };
    let mut chunks = Vec::with_capacity(3 * shared.len() + 1);
    let mut from = 0usize;
    for (index, (&position, records)) in at.iter().zip(shared).enumerate() {
        let end = position + SENTINEL_LEN;
        let start = position.checked_sub(marker_prefix.len())?;
        if start < from.max(SIZE_PREFIX_LEN)
            || end > encoded.len()
            || encoded[start..position] != *marker_prefix
            || encoded[position + 8..end] != (index as u64).to_be_bytes()
        {
            return None;
        }
        chunks.push(encoded.slice(from..start));
        let mut prefix = BytesMut::with_capacity(5);
        if flexible {
            put_unsigned_varint(&mut prefix, u32::try_from(records.len() + 1).ok()?);
        } else {
            prefix.put_i32(i32::try_from(records.len()).ok()?);
        }
        chunks.push(prefix.freeze());
        chunks.push(records.clone());
        from = end;
    }
    chunks.push(encoded.slice(from..));
    let size = chunks.iter().map(Bytes::len).sum::<usize>() - SIZE_PREFIX_LEN;
    let mut head = BytesMut::from(&chunks[0][..]);
    head[..SIZE_PREFIX_LEN].copy_from_slice(&i32::try_from(size).ok()?.to_be_bytes());
    chunks[0] = head.freeze();
    chunks.retain(|c| !c.is_empty());
    Some(chunks)
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn records(len: usize, seed: u8) -> Bytes {
        Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect::<Vec<u8>>(),
        )
    }

    fn response(version: i16, topic_name: &str, sizes: &[&[usize]]) -> FetchResponse {
        let responses = sizes
            .iter()
            .enumerate()
            .map(|(t, partitions)| {
                let topic = FetchableTopicResponse::default().with_partitions(
                    partitions
                        .iter()
                        .enumerate()
                        .map(|(p, &len)| {
                            PartitionData::default()
                                .with_partition_index(p as i32)
                                .with_high_watermark(1000 + p as i64)
                                .with_last_stable_offset(900)
                                .with_log_start_offset(7)
                                .with_aborted_transactions((p % 2 == 0).then(|| {
                                    vec![AbortedTransaction::default()
                                        .with_producer_id(ProducerId(5))
                                        .with_first_offset(3)]
                                }))
                                .with_preferred_read_replica(BrokerId(-1))
                                .with_records(Some(records(len, p as u8)))
                        })
                        .collect(),
                );
                if version >= 13 {
                    topic.with_topic_id(uuid::Uuid::from_u128(t as u128 + 1))
                } else {
                    topic.with_topic(TopicName(StrBytes::from_string(format!("{topic_name}{t}"))))
                }
            })
            .collect();
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses)
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn the_chunks_are_the_plain_frame_in_every_version() {
        let shapes: [&[&[usize]]; 5] = [
            &[&[0]],
            &[&[10, 5000]],
            &[&[4096, 4095, 70_000], &[200_000]],
            &[&[], &[1 << 20, 0, 9000]],
            &[&[127 * 1024, 16_383, 16_384]],
        ];
        for version in 4..=18i16 {
            for shape in shapes {
                let body = response(version, "orders", shape);
                let plain = encode_response(ApiKey::Fetch, version, 42, &body).unwrap();
                let large: Vec<*const u8> = body
                    .responses
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .filter_map(|p| p.records.as_ref())
                    .filter(|r| r.len() >= SHARE_RECORDS_BYTES)
                    .map(|r| r.as_ptr())
                    .collect();
                let chunks = encode_fetch_response(version, 42, body).unwrap();
                assert_eq!(joined(&chunks), plain.to_vec(), "v{version} {shape:?}");
                // Each large records field is a chunk of its own: the very bytes read
                // from the log, not a copy.
                let shared: Vec<*const u8> = chunks
                    .iter()
                    .map(|c| c.as_ptr())
                    .filter(|p| large.contains(p))
                    .collect();
                assert_eq!(shared, large, "v{version} {shape:?}");
            }
        }
    }

    #[test]
    fn a_topic_name_holding_the_salt_falls_back_to_the_plain_frame() {
        let salt = *b"\x01salty\x02\x03";
        for version in [4i16, 11, 12] {
            // The name carries the salt, a 16-byte prefix and sentinel 0: the sharing
            // must notice and copy instead.
            let mut name = String::from_utf8_lossy(&[0, 0, 0, 16]).into_owned();
            name.push_str(std::str::from_utf8(&salt).unwrap());
            let body = response(version, &name, &[&[5000, 6000]]);
            let plain = encode_response(ApiKey::Fetch, version, 7, &body).unwrap();
            let chunks = encode_with_salt(version, 7, body, salt).unwrap();
            assert_eq!(chunks.len(), 1, "v{version}: the plain frame");
            assert_eq!(joined(&chunks), plain.to_vec(), "v{version}");
        }
    }
}
