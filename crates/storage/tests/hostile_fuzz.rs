//! Stable-toolchain fuzzing of what a produce request's records and a ListOffsets
//! request reach in storage, run by plain `cargo test`: the checks of the
//! cargo-fuzz targets `fuzz/fuzz_targets/produce_compressed.rs` and
//! `list_offsets.rs` (shared through `support/`) on seeded random inputs, plus
//! decompression bombs in every codec with the memory they may cost measured.
//!
//! `RIVULET_FUZZ_SEED=<n>` picks another seed; `RIVULET_FUZZ_RUNS=<n>` more runs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/list_offsets_checks.rs"]
mod list_offsets_checks;
#[path = "support/produce_checks.rs"]
mod produce_checks;

use protocol::records::bomb::empty_records_batch;
use protocol::records::Compression;
use storage::AppendError;

/// The system allocator, noting the largest single allocation each thread asks
/// for (as in crates/protocol/tests/decoder_fuzz.rs). Codecs written in C (zstd)
/// allocate outside it; their windows are bounded in `compression.rs`.
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

fn largest_allocation_of<T>(work: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.with(|largest| largest.set(0));
    let result = work();
    (result, LARGEST_ALLOCATION.with(|largest| largest.get()))
}

/// splitmix64, as in crates/protocol/tests/decoder_fuzz.rs.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed = std::env::var("RIVULET_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_b0b0_u64);
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn runs(default: usize) -> usize {
    std::env::var("RIVULET_FUZZ_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn compressed_produce_batches_validate_and_recompress_within_bounds() {
    let mut rng = Rng::from_env();
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..runs(1_500) {
        let len = (rng.next() % 400) as usize;
        let mut input = rng.bytes(len);
        if let Some(flags) = input.get_mut(2) {
            // Built records three times in four: they get past the CRC and count checks.
            if !rng.next().is_multiple_of(4) {
                *flags &= !4;
            }
        }
        let (batch, config) = produce_checks::produce_input(&input);
        let (outcome, largest) =
            largest_allocation_of(|| produce_checks::check_produce(&batch, &config));
        match outcome {
            Ok(()) => accepted += 1,
            Err(_) => refused += 1,
        }
        assert!(
            largest <= 4 * batch.len() + 2 * config.max_message_bytes as usize + (1 << 20),
            "a {}-byte batch made a {largest}-byte allocation",
            batch.len()
        );
    }
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn recompressing_a_bomb_holds_no_more_than_the_batch_it_writes() {
    // 500,000 empty records (3.5 MB) in a few KiB of zstd, to a gzip topic: the
    // records are streamed into the new codec, never held (the decoder this
    // replaced held them as 500,000 `Record`s: about 50 MB).
    let bomb = empty_records_batch(Compression::Zstd, 500_000, produce_checks::NOW_MS);
    let config = produce_checks::config(0, 2);
    let (outcome, largest) =
        largest_allocation_of(|| produce_checks::check_produce(&bomb, &config));
    assert!(
        matches!(outcome, Ok(()) | Err(AppendError::MessageTooLarge { .. })),
        "{outcome:?}"
    );
    assert!(largest < 4 << 20, "a {largest}-byte allocation");
}

#[test]
fn list_offsets_by_timestamp_answers_as_kafka_does() {
    let mut rng = Rng::from_env();
    for _ in 0..runs(60) {
        let dir = tempfile::tempdir().unwrap();
        let len = (rng.next() % 300) as usize;
        list_offsets_checks::check_list_offsets(&rng.bytes(len), dir.path(), false);
    }
}

/// With DeleteRecords moving the log start into the middle of a batch, that
/// batch's late records may all lie below the log start; Kafka's
/// `LogSegment.findOffsetByTimestamp` then answers with a later batch of the same
/// segment, and so must we (the lookup's fallback batch).
#[test]
fn list_offsets_by_timestamp_answers_as_kafka_does_after_delete_records() {
    let mut rng = Rng::from_env();
    for _ in 0..runs(60) {
        let dir = tempfile::tempdir().unwrap();
        let len = (rng.next() % 300) as usize;
        list_offsets_checks::check_list_offsets(&rng.bytes(len), dir.path(), true);
    }
}
