//! How fast the log cleaner compacts: writes a log of keyed records (1 GiB by
//! default) in Kafka's format, then times one full cleaning of it.
//!
//! ```sh
//! cargo run --release -p rivulet-storage --example cleaner_throughput -- \
//!     [--bytes 1073741824] [--value-bytes 1000] [--batch-records 200] \
//!     [--keys 100000] [--segment-bytes 134217728] [--codec none|gzip|snappy|lz4|zstd] [--dir /tmp]
//! ```
//!
//! Prints the size written, the cleaning time, the rate (bytes of log cleaned per
//! second, Kafka's "cleaned ... MB/sec") and what was left. The log is written just
//! before it is cleaned, so it is read from the page cache, as a broker's recent
//! segments usually are.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::records::{BatchBuilder, Compression, NewRecord};
use protocol::time::Clock;
use protocol::TopicPartition;
use storage::cleaner::{clean, CleanerConfig};
use storage::{LoadState, Log, LogConfig, Origin};

#[derive(Debug)]
struct WallClock;

impl Clock for WallClock {
    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }
}

struct Options {
    bytes: u64,
    value_bytes: usize,
    batch_records: usize,
    keys: u64,
    segment_bytes: u64,
    codec: Compression,
    dir: std::path::PathBuf,
}

fn options() -> Options {
    let mut o = Options {
        bytes: 1 << 30,
        value_bytes: 1000,
        batch_records: 200,
        keys: 100_000,
        segment_bytes: 128 << 20,
        codec: Compression::None,
        dir: std::env::temp_dir(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--bytes" => o.bytes = value.parse().unwrap(),
            "--value-bytes" => o.value_bytes = value.parse().unwrap(),
            "--batch-records" => o.batch_records = value.parse().unwrap(),
            "--keys" => o.keys = value.parse().unwrap(),
            "--segment-bytes" => o.segment_bytes = value.parse().unwrap(),
            "--codec" => o.codec = Compression::from_name(&value).unwrap_or(Compression::None),
            "--dir" => o.dir = value.into(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// CPU seconds this thread has used (Linux /proc), so a figure taken on a busy,
/// shared machine can be told apart from one starved of CPU.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the ')'.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// xorshift64*: reproducible keys and incompressible-enough values without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[allow(clippy::disallowed_methods)]
fn main() {
    let o = options();
    let dir = tempfile::Builder::new()
        .prefix("rivulet-cleaner-bench")
        .tempdir_in(&o.dir)
        .unwrap();
    let overrides: BTreeMap<String, String> = [
        ("cleanup.policy", "compact".to_string()),
        ("segment.bytes", o.segment_bytes.to_string()),
        ("max.message.bytes", (64u64 << 20).to_string()),
        ("min.cleanable.dirty.ratio", "0.01".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Arc::new(LogConfig::resolve(&overrides, &BTreeMap::new()).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(WallClock);
    let mut log = Log::open(
        &dir.path().join("bench-0"),
        TopicPartition::new("bench", 0),
        config,
        &storage::LogEnv::real(Arc::clone(&clock)),
        LoadState::default(),
    )
    .unwrap();

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut value = vec![0u8; o.value_bytes];
    let mut records = 0u64;
    let started = Instant::now();
    while log.size_in_bytes() < o.bytes {
        let now = clock.now_ms();
        let keys: Vec<Vec<u8>> = (0..o.batch_records)
            .map(|_| format!("key-{:010}", rng.next() % o.keys).into_bytes())
            .collect();
        let mut builder = BatchBuilder::new(o.codec);
        for key in &keys {
            for chunk in value.chunks_mut(8) {
                let r = rng.next().to_le_bytes();
                for (v, b) in chunk.iter_mut().zip(r) {
                    *v = b'a' + b % 26;
                }
            }
            builder.append(&NewRecord {
                timestamp: now,
                key: Some(key),
                value: Some(&value),
                headers: &[],
            });
        }
        log.append_as_leader(&builder.build().unwrap(), 0, Origin::Coordinator)
            .unwrap();
        records += o.batch_records as u64;
    }
    log.roll().unwrap();
    let written = log.size_in_bytes();
    let segments = log.segment_count();
    eprintln!(
        "wrote {:.1} MiB: {records} records of {} keys in {segments} segments ({:.1} s)",
        written as f64 / (1 << 20) as f64,
        o.keys,
        started.elapsed().as_secs_f64()
    );

    let leo = log.log_end_offset().0;
    let shared = Mutex::new(log);
    let started = Instant::now();
    let cpu_before = thread_cpu_seconds();
    let outcome = clean(&shared, 0, leo, &CleanerConfig::default(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
    .expect("something to clean");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds() - cpu_before;
    let log = shared.into_inner().unwrap();
    let mb = outcome.bytes_in as f64 / 1e6;
    println!(
        "cleaned {:.1} MB ({} segments) into {:.1} MB ({} segments) in {seconds:.2} s: {:.0} MB/s ({cpu:.2} s of CPU: {:.0} MB per CPU second); {} of {records} records removed, {} segments left",
        mb,
        outcome.segments_in,
        outcome.bytes_out as f64 / 1e6,
        outcome.segments_out,
        mb / seconds,
        mb / cpu.max(0.01),
        outcome.records_removed,
        log.segment_count()
    );
}
