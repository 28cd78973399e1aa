//! Stable-toolchain fuzzing of the request decoders, run by plain `cargo test`.
//!
//! The same checks as the cargo-fuzz target `fuzz/fuzz_targets/request_decoder.rs`
//! (shared through `support/request_codec.rs`), driven by a seeded generator
//! instead of coverage feedback: random frames, valid requests of every API key
//! and version truncated at every byte, huge length prefixes written over every
//! offset, random mutations, and unknown tagged fields. Any panic, abort or huge
//! allocation fails the test; so does a decoded request that does not round-trip.
//!
//! `RIVULET_FUZZ_SEED=<n>` picks another seed for the random parts;
//! `RIVULET_WRITE_FUZZ_SEEDS=<dir>` writes the valid frames and batches used here as
//! seed corpora for cargo-fuzz (see fuzz/README.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/request_codec.rs"]
mod request_codec;

use bytes::{BufMut, Bytes, BytesMut};
use protocol::kafka::messages::api_versions_request::ApiVersionsRequest;
use protocol::kafka::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use protocol::kafka::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use protocol::kafka::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use protocol::kafka::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use protocol::kafka::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use protocol::kafka::messages::{ApiKey, BrokerId, RequestHeader, TopicName};
use protocol::kafka::protocol::{Encodable, StrBytes};
use protocol::records::{BatchBuilder, Compression, NewRecord};
use request_codec::{check_body, check_frame, default_frame, versions, Checked, KEYS};

/// The system allocator, noting the largest single allocation each thread asks
/// for, so a test can tell a length prefix that was trusted for an allocation.
struct Tracking;

thread_local! {
    static LARGEST_ALLOCATION: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn note_allocation(size: usize) {
    let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to `System` unchanged; the bookkeeping only
// touches a const-initialised thread-local `Cell`, which never allocates.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        note_allocation(layout.size());
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// The largest single allocation `work` makes on this thread.
fn largest_allocation_of<T>(work: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|largest| largest.set(0));
    let result = work();
    (result, LARGEST_ALLOCATION.with(|largest| largest.get()))
}

/// splitmix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("RIVULET_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_4a11_u64);
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Length prefixes that claim far more than any frame holds, or are negative,
/// as i16 (strings), i32 (arrays, bytes) and unsigned varints (compact forms).
const HUGE_LENGTHS: &[&[u8]] = &[
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xfe],
    &[0x7f, 0xff],
    &[0x80, 0x00],
    &[0xff, 0xfe],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0x07],
    &[0x80, 0x80, 0x80, 0x80, 0x08],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

fn assert_ok(result: Result<Checked, String>, frame: &[u8]) -> Checked {
    match result {
        Ok(checked) => checked,
        Err(failure) => panic!("{failure}\n  frame: {frame:02x?}"),
    }
}

fn check(frame: &[u8]) -> Checked {
    assert_ok(check_frame(Bytes::copy_from_slice(frame)), frame)
}

/// [`check`], and the body under every version of its key (as the fuzz target).
fn check_all_versions(frame: &[u8]) -> Checked {
    if let Err(failure) = request_codec::check_input(frame) {
        panic!("{failure}\n  frame: {frame:02x?}");
    }
    check(frame)
}

fn frame_for<M: Encodable>(key: ApiKey, version: i16, body: &M) -> Option<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("decoder-fuzz")));
    let framed = protocol::frame::encode_request(&header, body).ok()?;
    Some(framed.freeze().slice(protocol::frame::SIZE_PREFIX_LEN..))
}

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn sample_records() -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.append(&NewRecord {
        timestamp: 1_000,
        key: Some(b"key"),
        value: Some(b"value"),
        headers: &[("h", Some(b"x"))],
    });
    builder.append(&NewRecord {
        timestamp: 1_001,
        key: None,
        value: None,
        headers: &[],
    });
    Bytes::from(builder.build().unwrap())
}

/// Valid frames with content (arrays, strings, records) for the APIs the broker
/// serves, at every version each knows, plus the default body of every API key at
/// every version.
fn seed_frames() -> Vec<Bytes> {
    let mut frames = Vec::new();
    let s = StrBytes::from_static_str;
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic("orders"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(sample_records()))])]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic("orders"))
            .with_topic_id(uuid::Uuid::from_u128(0x1234))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20)])])
        .with_rack_id(s("rack-a"));
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
            MetadataRequestTopic::default().with_name(Some(topic("payments"))),
        ]))
        .with_allow_auto_topic_creation(false);
    let create_topics = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("orders"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1)])])
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact"))),
                CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(None),
            ])])
        .with_timeout_ms(10_000);
    let list_offsets = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)
                .with_current_leader_epoch(3)])]);
    let api_versions = ApiVersionsRequest::default()
        .with_client_software_name(s("decoder-fuzz"))
        .with_client_software_version(s("1.0"));
    for version in 0..=ApiKey::Produce.valid_versions().max {
        frames.extend(frame_for(ApiKey::Produce, version, &produce));
    }
    for version in 0..=ApiKey::Fetch.valid_versions().max {
        frames.extend(frame_for(ApiKey::Fetch, version, &fetch));
    }
    for version in 0..=ApiKey::Metadata.valid_versions().max {
        frames.extend(frame_for(ApiKey::Metadata, version, &metadata));
    }
    for version in 0..=ApiKey::CreateTopics.valid_versions().max {
        frames.extend(frame_for(ApiKey::CreateTopics, version, &create_topics));
    }
    for version in 0..=ApiKey::ListOffsets.valid_versions().max {
        frames.extend(frame_for(ApiKey::ListOffsets, version, &list_offsets));
    }
    for version in 0..=ApiKey::ApiVersions.valid_versions().max {
        frames.extend(frame_for(ApiKey::ApiVersions, version, &api_versions));
    }
    for &key in KEYS {
        let range = versions(key).unwrap();
        for version in range.min..=range.max {
            frames.extend(default_frame(key, version, 9));
        }
    }
    frames
}

#[test]
fn every_api_key_of_the_codec_has_a_request_type_with_its_versions() {
    let mut keys: Vec<i16> = KEYS.to_vec();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), KEYS.len(), "a request type is listed twice");
    for key in ApiKey::iter() {
        let range = versions(key as i16)
            .unwrap_or_else(|| panic!("{key:?} has no request type in the list"));
        // The key's listed range and the message's own may differ by an unreleased
        // version (OffsetCommit lists v10, its message type stops at v9); a version
        // the message lacks is a decode error, which the random tests cover.
        let listed = key.valid_versions();
        assert!(
            !range.intersect(&listed).is_empty(),
            "{key:?}: {range} vs {listed}"
        );
    }
    assert_eq!(KEYS.len(), ApiKey::iter().count());
}

#[test]
fn valid_requests_of_every_key_and_version_round_trip() {
    let seeds = seed_frames();
    // Every default body encodes at every version of its key.
    let defaults: usize = KEYS
        .iter()
        .map(|&k| {
            let r = versions(k).unwrap();
            (r.max - r.min + 1) as usize
        })
        .sum();
    assert!(
        seeds.len() > defaults,
        "{} seeds for {defaults} key/versions",
        seeds.len()
    );
    for frame in &seeds {
        assert_eq!(
            check(frame),
            Checked::RoundTripped,
            "a valid frame: {frame:02x?}"
        );
    }
}

#[test]
fn valid_requests_truncated_at_every_byte_are_rejected_or_round_trip() {
    for frame in seed_frames() {
        for len in 0..frame.len() {
            let checked = check(&frame[..len]);
            if len < 8 {
                assert_eq!(checked, Checked::HeaderRejected);
            }
        }
    }
}

#[test]
fn huge_length_prefixes_written_over_every_offset_never_allocate_or_panic() {
    for frame in seed_frames() {
        // Skip the fixed key/version/correlation id: they pick the decoder.
        for at in 8..frame.len() {
            for huge in HUGE_LENGTHS {
                let mut mutated = frame.to_vec();
                for (i, &b) in huge.iter().enumerate() {
                    if at + i < mutated.len() {
                        mutated[at + i] = b;
                    } else {
                        mutated.push(b);
                    }
                }
                check(&mutated);
                // And inserted rather than overwritten.
                let mut inserted = frame[..at].to_vec();
                inserted.extend_from_slice(huge);
                inserted.extend_from_slice(&frame[at..]);
                check(&inserted);
            }
        }
    }
}

#[test]
fn random_frames_are_rejected_or_round_trip() {
    let mut rng = Rng::from_env();
    let mut decoded = 0;
    for case in 0..4_000 {
        let mut frame = BytesMut::new();
        if case % 8 == 0 {
            // Pure noise, any length.
            let len = rng.below(96);
            frame.extend_from_slice(&rng.bytes(len));
        } else {
            // A real key and a version near its range, so the body decoder runs.
            let key = *rng.pick(KEYS);
            let range = versions(key).unwrap();
            let version = range.min - 1 + rng.below((range.max - range.min + 3) as usize) as i16;
            frame.put_i16(key);
            frame.put_i16(version);
            frame.put_i32(rng.next() as i32);
            // client_id: null, empty, or short
            match rng.below(3) {
                0 => frame.put_i16(-1),
                1 => frame.put_i16(0),
                _ => {
                    frame.put_i16(3);
                    frame.extend_from_slice(b"abc");
                }
            }
            if protocol::kafka::messages::ApiKey::try_from(key)
                .unwrap()
                .request_header_version(version)
                >= 2
            {
                frame.put_u8(0);
            }
            let len = rng.below(64);
            // Mostly small values: zero bytes and small counts decode furthest.
            for _ in 0..len {
                let b = match rng.below(4) {
                    0 | 1 => 0,
                    2 => rng.below(4) as u8,
                    _ => rng.next() as u8,
                };
                frame.put_u8(b);
            }
        }
        if check_all_versions(&frame) == Checked::RoundTripped {
            decoded += 1;
        }
    }
    // The generator must reach the body decoders, not only fail headers.
    assert!(decoded > 100, "only {decoded} random frames decoded");
}

#[test]
fn mutated_valid_frames_are_rejected_or_round_trip() {
    let mut rng = Rng::from_env();
    let seeds = seed_frames();
    for _ in 0..6_000 {
        let mut frame = rng.pick(&seeds).to_vec();
        for _ in 0..1 + rng.below(4) {
            let len = frame.len();
            match rng.below(7) {
                0 if len > 8 => {
                    let at = 8 + rng.below(len - 8);
                    frame[at] ^= 1 << rng.below(8);
                }
                1 if len > 8 => {
                    let at = 8 + rng.below(len - 8);
                    frame[at] = *rng.pick(&[0x00, 0x01, 0x7f, 0x80, 0xff]);
                }
                2 if len > 8 => {
                    let at = 8 + rng.below(len - 8);
                    let huge = rng.pick(HUGE_LENGTHS);
                    frame.splice(at..at, huge.iter().copied());
                }
                3 if len > 8 => {
                    let at = 8 + rng.below(len - 8);
                    let end = (at + 1 + rng.below(8)).min(len);
                    frame.drain(at..end);
                }
                4 if len > 8 => {
                    // Duplicate a chunk: repeated array elements and fields.
                    let at = 8 + rng.below(len - 8);
                    let end = (at + 1 + rng.below(16)).min(len);
                    let chunk = frame[at..end].to_vec();
                    frame.splice(at..at, chunk);
                }
                5 => {
                    let n = rng.below(8);
                    let extra = rng.bytes(n);
                    frame.extend_from_slice(&extra);
                }
                _ => {
                    // Another version of the same key: fields shift meaning.
                    let key = i16::from_be_bytes([frame[0], frame[1]]);
                    if let Some(range) = versions(key) {
                        let version =
                            range.min + rng.below((range.max - range.min + 1) as usize) as i16;
                        frame[2..4].copy_from_slice(&version.to_be_bytes());
                    }
                }
            }
        }
        check_all_versions(&frame);
    }
}

#[test]
fn a_huge_array_count_reserves_no_more_than_the_bytes_that_follow() {
    // An array claiming 0x7fffffff (or u32::MAX - 1) elements followed by 64 KiB that
    // cannot start an element (a negative or huge length where a name must be).
    // The codec once reserved min(count, bytes left) *elements*: 64 Ki structs of
    // ~70 bytes for a 64 KiB body, gigabytes for a 100 MB request (the default
    // socket.request.max.bytes).
    const PADDING: usize = 64 * 1024;
    let cases: &[(ApiKey, i16, &[u8], u8)] = &[
        // Metadata v1 names are nullable in this codec: 0x8080 is negative, not null.
        (ApiKey::Metadata, 1, &[0x7f, 0xff, 0xff, 0xff], 0x80),
        (ApiKey::Metadata, 9, &[0xff, 0xff, 0xff, 0xff, 0x0f], 0xff),
        (ApiKey::CreateTopics, 4, &[0x7f, 0xff, 0xff, 0xff], 0xff),
        (
            ApiKey::Fetch,
            4,
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
            ],
            0xff,
        ),
        (
            ApiKey::Produce,
            3,
            &[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff],
            0xff,
        ),
    ];
    for &(key, version, prefix, padding) in cases {
        let mut body = prefix.to_vec();
        body.resize(prefix.len() + PADDING, padding);
        let body = Bytes::from(body);
        let (result, largest) =
            largest_allocation_of(|| check_body(key as i16, version, body.clone()).unwrap());
        assert_eq!(result, Ok(Checked::BodyRejected), "{key:?} v{version}");
        assert!(
            largest <= 2 * PADDING,
            "{key:?} v{version}: one allocation of {largest} bytes for a {} byte body",
            body.len()
        );
    }
}

/// `n` as an unsigned varint.
fn uvarint(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

#[test]
fn unknown_tagged_fields_at_the_top_level_round_trip_or_are_rejected() {
    // Tags no message defines, the largest ones an i32 and a u32 hold, and ones
    // that go negative as i32 (the codec keeps tags as i32).
    let tags: &[u32] = &[17, 100, 1_000_000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
    let mut flexible = 0;
    for &key in KEYS {
        let api = ApiKey::try_from(key).unwrap();
        let range = versions(key).unwrap();
        for version in range.min..=range.max {
            if api.request_header_version(version) < 2 {
                continue;
            }
            let body = request_codec::default_body(key, version).unwrap().unwrap();
            // A flexible message ends with its tagged-field count, 0 by default.
            assert_eq!(body.last(), Some(&0), "{api:?} v{version}");
            flexible += 1;
            let prefix = &body[..body.len() - 1];
            // One field per tag, then all of them at once (ascending).
            let mut cases: Vec<Vec<(u32, Vec<u8>)>> = tags
                .iter()
                .map(|&t| vec![(t, b"payload".to_vec())])
                .collect();
            cases.push(tags.iter().map(|&t| (t, vec![t as u8; 3])).collect());
            cases.push(vec![(17, Vec::new())]);
            for fields in cases {
                let mut wire = prefix.to_vec();
                uvarint(&mut wire, fields.len() as u32);
                for (tag, value) in &fields {
                    uvarint(&mut wire, *tag);
                    uvarint(&mut wire, value.len() as u32);
                    wire.extend_from_slice(value);
                }
                let checked = check_body(key, version, Bytes::from(wire.clone())).unwrap();
                match checked {
                    Ok(Checked::RoundTripped) => {}
                    Ok(other) => panic!(
                        "{api:?} v{version}: unknown tagged fields {fields:?} gave {other:?}"
                    ),
                    Err(failure) => panic!("{api:?} v{version}: {failure}"),
                }
            }
            // Lies: a count larger than the fields present, a size larger than the
            // bytes left, a size of u32::MAX.
            for lie in [
                vec![5u8, 17, 1, 0xaa],
                vec![1u8, 17, 0x7f, 0xaa],
                vec![1u8, 17, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xaa],
                vec![0xff, 0xff, 0xff, 0xff, 0x0f],
            ] {
                let mut wire = prefix.to_vec();
                wire.extend_from_slice(&lie);
                let checked = check_body(key, version, Bytes::from(wire)).unwrap();
                assert_eq!(
                    checked,
                    Ok(Checked::BodyRejected),
                    "{api:?} v{version}: {lie:02x?}"
                );
            }
        }
    }
    assert!(flexible > 100, "only {flexible} flexible key/versions");
}

#[test]
fn unknown_tagged_fields_in_a_v2_request_header_round_trip() {
    let body = request_codec::default_body(ApiKey::Metadata as i16, 12)
        .unwrap()
        .unwrap();
    for tags in [
        vec![0u32],
        vec![3, 0x7fff_ffff],
        vec![0x8000_0000, 0xffff_ffff],
    ] {
        let mut frame = Vec::new();
        frame.extend_from_slice(&(ApiKey::Metadata as i16).to_be_bytes());
        frame.extend_from_slice(&12i16.to_be_bytes());
        frame.extend_from_slice(&5i32.to_be_bytes());
        frame.extend_from_slice(&(-1i16).to_be_bytes());
        uvarint(&mut frame, tags.len() as u32);
        for &tag in &tags {
            uvarint(&mut frame, tag);
            uvarint(&mut frame, 2);
            frame.extend_from_slice(b"hi");
        }
        frame.extend_from_slice(&body);
        assert_eq!(check(&frame), Checked::RoundTripped, "{tags:?}");
    }
}

/// Regression inputs found by `cargo fuzz run request_decoder` (see fuzz/README.md).
#[test]
fn fuzz_regressions() {
    let cases: &[&[u8]] = &[
        // DescribeCluster (key 60), the body read as v0: one unknown tagged field
        // numbered 0xffffff80, kept as a negative i32 key, counted in the encoded
        // field count but not written (compute_size 11 bytes, encode wrote 5).
        &[
            0, 60, 40, 14, 47, 0, 0, 49, 46, 0, 2, 0, 0, 128, 255, 255, 255, 127, 0, 0,
        ],
    ];
    for case in cases {
        if let Err(failure) = request_codec::check_input(case) {
            panic!("{failure}\n  input: {case:02x?}");
        }
    }
}

/// Writes seed corpora for cargo-fuzz when `RIVULET_WRITE_FUZZ_SEEDS` names a
/// directory: `<dir>/request_decoder/` and `<dir>/batch_parser/`.
#[test]
fn write_fuzz_seeds_when_asked() {
    let Some(dir) = std::env::var_os("RIVULET_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let requests = dir.join("request_decoder");
    std::fs::create_dir_all(&requests).unwrap();
    for (i, frame) in seed_frames().iter().enumerate() {
        std::fs::write(requests.join(format!("seed-{i:04}")), frame).unwrap();
    }
    let batches = dir.join("batch_parser");
    std::fs::create_dir_all(&batches).unwrap();
    for (i, codec) in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let mut builder = BatchBuilder::new(codec);
        builder.append(&NewRecord {
            timestamp: 1_700_000_000_000,
            key: Some(b"key"),
            value: Some(b"value"),
            headers: &[("h", Some(b"x")), ("n", None)],
        });
        builder.append(&NewRecord {
            timestamp: 1_700_000_000_001,
            key: None,
            value: Some(b""),
            headers: &[],
        });
        let batch = builder.build().unwrap();
        std::fs::write(batches.join(format!("seed-{i}")), &batch).unwrap();
        // Two batches back to back.
        std::fs::write(
            batches.join(format!("seed-{i}-twice")),
            [batch.clone(), batch].concat(),
        )
        .unwrap();
    }
}

/// Kafka 3.9's requests at the versions Kafka 4 removed, as the broker's legacy
/// bridge decodes them: each cut short at every byte and with huge lengths over
/// every offset fails or decodes, without a panic or an allocation beyond the
/// frame's size.
#[test]
fn legacy_requests_mutated_never_allocate_or_panic() {
    use protocol::kafka::legacy_messages as old;
    use protocol::kafka::protocol::Decodable;

    fn bodies() -> Vec<(ApiKey, i16, Bytes)> {
        fn enc<M: Encodable>(key: ApiKey, version: i16, m: &M) -> (ApiKey, i16, Bytes) {
            let mut out = BytesMut::new();
            m.encode(&mut out, version).unwrap();
            (key, version, out.freeze())
        }
        let name = || -> TopicName { StrBytes::from_static_str("t").into() };
        let produce = old::ProduceRequest::default().with_topic_data(vec![
            old::produce_request::TopicProduceData::default()
                .with_name(name())
                .with_partition_data(vec![old::produce_request::PartitionProduceData::default()
                    .with_records(Some(Bytes::from_static(&[0u8; 40])))]),
        ]);
        let fetch = old::FetchRequest::default().with_topics(vec![
            old::fetch_request::FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![old::fetch_request::FetchPartition::default()]),
        ]);
        let list = old::ListOffsetsRequest::default().with_topics(vec![
            old::list_offsets_request::ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![Default::default()]),
        ]);
        let commit = old::OffsetCommitRequest::default().with_topics(vec![
            old::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name())
                .with_partitions(vec![Default::default()]),
        ]);
        let offset_fetch = old::OffsetFetchRequest::default().with_topics(Some(vec![
            old::offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name())
                .with_partition_indexes(vec![0, 1]),
        ]));
        let create = old::CreateTopicsRequest::default().with_topics(vec![
            old::create_topics_request::CreatableTopic::default()
                .with_name(name())
                .with_configs(vec![Default::default()]),
        ]);
        let delete = old::DeleteTopicsRequest::default().with_topic_names(vec![name()]);
        let describe =
            old::DescribeConfigsRequest::default().with_resources(vec![Default::default()]);
        let log_dirs = old::DescribeLogDirsRequest::default().with_topics(Some(vec![
            old::describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name())
                .with_partitions(vec![0]),
        ]));
        let mut out = Vec::new();
        for v in 0..=2 {
            out.push(enc(ApiKey::Produce, v, &produce));
        }
        for v in 0..=3 {
            out.push(enc(ApiKey::Fetch, v, &fetch));
        }
        out.push(enc(ApiKey::ListOffsets, 0, &list));
        out.push(enc(ApiKey::OffsetCommit, 0, &commit));
        out.push(enc(ApiKey::OffsetCommit, 1, &commit));
        out.push(enc(ApiKey::OffsetFetch, 0, &offset_fetch));
        out.push(enc(ApiKey::CreateTopics, 0, &create));
        out.push(enc(ApiKey::CreateTopics, 1, &create));
        out.push(enc(ApiKey::DeleteTopics, 0, &delete));
        out.push(enc(ApiKey::DescribeConfigs, 0, &describe));
        out.push(enc(ApiKey::DescribeLogDirs, 0, &log_dirs));
        out
    }

    fn decode(key: ApiKey, version: i16, body: &[u8]) {
        let mut b = Bytes::copy_from_slice(body);
        let (_, largest) = largest_allocation_of(|| {
            let _ = match key {
                ApiKey::Produce => old::ProduceRequest::decode(&mut b, version).map(drop),
                ApiKey::Fetch => old::FetchRequest::decode(&mut b, version).map(drop),
                ApiKey::ListOffsets => old::ListOffsetsRequest::decode(&mut b, version).map(drop),
                ApiKey::OffsetCommit => old::OffsetCommitRequest::decode(&mut b, version).map(drop),
                ApiKey::OffsetFetch => old::OffsetFetchRequest::decode(&mut b, version).map(drop),
                ApiKey::CreateTopics => old::CreateTopicsRequest::decode(&mut b, version).map(drop),
                ApiKey::DeleteTopics => old::DeleteTopicsRequest::decode(&mut b, version).map(drop),
                ApiKey::DescribeConfigs => {
                    old::DescribeConfigsRequest::decode(&mut b, version).map(drop)
                }
                ApiKey::DescribeLogDirs => {
                    old::DescribeLogDirsRequest::decode(&mut b, version).map(drop)
                }
                other => panic!("{other:?}"),
            };
        });
        assert!(
            largest <= 256 * (body.len() + 64),
            "{key:?} v{version}: a {}-byte body allocated {largest} bytes at once",
            body.len()
        );
    }

    for (key, version, body) in bodies() {
        for cut in 0..body.len() {
            decode(key, version, &body[..cut]);
        }
        for at in 0..body.len() {
            for huge in HUGE_LENGTHS {
                let mut mutated = body.to_vec();
                for (i, &b) in huge.iter().enumerate() {
                    if at + i < mutated.len() {
                        mutated[at + i] = b;
                    } else {
                        mutated.push(b);
                    }
                }
                decode(key, version, &mutated);
            }
        }
    }
}

/// Message sets (magic 0/1, as Produce v0-2 carries them), mutated at random and
/// with huge lengths over every offset, the first CRC fixed up so the later checks
/// run: conversion fails or succeeds, never panics, and allocates at most what the
/// decompression limit allows.
#[test]
fn message_sets_mutated_never_allocate_beyond_the_limit_or_panic() {
    use protocol::records::message_set::{down_convert, to_batch, write_message};
    use protocol::records::DecompressionBudget;
    const LIMIT: usize = 1 << 20;

    fn crc_fixed(mut set: Vec<u8>) -> Vec<u8> {
        if set.len() >= 16 {
            let size = i32::from_be_bytes(set[8..12].try_into().unwrap());
            if let Some(end) = usize::try_from(size)
                .ok()
                .and_then(|s| 12usize.checked_add(s))
            {
                if size >= 4 && end <= set.len() {
                    let mut crc = flate2::Crc::new();
                    crc.update(&set[16..end]);
                    set[12..16].copy_from_slice(&crc.sum().to_be_bytes());
                }
            }
        }
        set
    }

    fn convert(set: Vec<u8>) {
        let set = Bytes::from(crc_fixed(set));
        let (result, largest) =
            largest_allocation_of(|| to_batch(&set, &mut DecompressionBudget::new(LIMIT)));
        if result.is_ok() {
            CONVERTED.with(|c| c.set(c.get() + 1));
        }
        assert!(
            largest <= 4 * LIMIT,
            "{largest} bytes at once for {set:02x?}"
        );
        if let Ok(batch) = result {
            let batch = Bytes::from(batch);
            for magic in [0, 1] {
                down_convert(
                    &batch,
                    magic,
                    0,
                    usize::MAX,
                    &mut DecompressionBudget::new(LIMIT),
                )
                .unwrap();
            }
        }
    }

    let mut plain = Vec::new();
    for offset in 0..3 {
        write_message(
            &mut plain,
            1,
            offset,
            1_700_000_000_000,
            false,
            Some(b"k"),
            Some(b"v"),
        );
    }
    let mut wrapped = Vec::new();
    for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4] {
        let value = protocol::records::compression::compress(codec, &plain).unwrap();
        let mut message = vec![1u8, codec.id() as u8];
        message.extend_from_slice(&0i64.to_be_bytes());
        message.extend_from_slice(&(-1i32).to_be_bytes());
        message.extend_from_slice(&(value.len() as i32).to_be_bytes());
        message.extend_from_slice(&value);
        wrapped.extend_from_slice(&0i64.to_be_bytes());
        wrapped.extend_from_slice(&((message.len() + 4) as i32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&message);
        wrapped.extend_from_slice(&crc.sum().to_be_bytes());
        wrapped.extend_from_slice(&message);
    }
    thread_local! {
        static CONVERTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let mut rng = Rng::from_env();
    convert(wrapped.clone());
    assert_eq!(
        CONVERTED.with(|c| c.get()),
        1,
        "the unmutated seed converts"
    );
    for seed in [plain, wrapped] {
        for at in 0..seed.len() {
            for huge in HUGE_LENGTHS {
                let mut mutated = seed.clone();
                for (i, &b) in huge.iter().enumerate() {
                    if at + i < mutated.len() {
                        mutated[at + i] = b;
                    }
                }
                convert(mutated);
            }
        }
        for _ in 0..2000 {
            let mut mutated = seed.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(mutated.len());
                mutated[at] = rng.next() as u8;
            }
            convert(mutated);
        }
    }
}
