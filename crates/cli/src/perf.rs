//! `rivulet perf produce|consume`: Kafka's `kafka-producer-perf-test.sh` and
//! `kafka-consumer-perf-test.sh`, with their output lines.
//!
//! produce: sends `--num-records` records of `--record-size` bytes (random
//! uppercase letters, as Kafka's tool) as fast as allowed (`--throughput`
//! records/s, -1 for no limit), measuring each record's latency from `send` to
//! its acknowledgement; prints a progress line every `--reporting-interval` ms
//! and a summary with percentiles.
//! consume: reads `--messages` records (in a fresh group unless `--group`) and
//! prints Kafka's CSV summary; a progress line goes to stderr while it runs.
//! Ctrl-C or SIGTERM stops either early, with the summary of what was done.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use rivulet_client::{ClientConfig, Consumer, Producer, ProducerRecord};
use tokio::time::Instant;

use rivulet_client::config_keys::ClientKind;

use crate::common::{
    apply_client_properties, parse_pair, stop_flag, stopped, CliError, CliResult, ConnectArgs,
};

#[derive(Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(Subcommand, Debug)]
enum PerfCommand {
    /// Producer throughput and latency (kafka-producer-perf-test.sh).
    #[command(after_help = "Example:
  rivulet perf produce --topic bench --num-records 100000 --record-size 100 --producer-props acks=1 linger.ms=5")]
    Produce(ProducePerf),
    /// Consumer throughput (kafka-consumer-perf-test.sh).
    #[command(after_help = "Example:
  rivulet perf consume --topic bench --messages 100000")]
    Consume(ConsumePerf),
}

#[derive(Args, Debug)]
struct ProducePerf {
    /// The topic to write to.
    #[arg(long)]
    topic: String,
    /// Records to send.
    #[arg(long = "num-records", alias = "records")]
    num_records: u64,
    /// Bytes per record (random uppercase letters, as Kafka's tool).
    #[arg(long = "record-size")]
    record_size: usize,
    /// Records per second at most; -1 for no limit.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    throughput: i64,
    /// Producer configs: --producer-props acks=1 linger.ms=5
    #[arg(long = "producer-props", visible_alias = "command-property", value_parser = parse_pair, num_args = 1..)]
    producer_props: Vec<(String, String)>,
    /// A producer .properties file.
    #[arg(long = "producer.config")]
    producer_config: Option<PathBuf>,
    /// Milliseconds between progress lines.
    #[arg(long = "reporting-interval", default_value_t = 5000)]
    reporting_interval: u64,
}

#[derive(Args, Debug)]
struct ConsumePerf {
    /// The topic to read.
    #[arg(long)]
    topic: String,
    /// Records to read.
    #[arg(long, alias = "num-records")]
    messages: u64,
    /// The group (default: a new one, so reading starts at the beginning).
    #[arg(long)]
    group: Option<String>,
    /// Give up after this long without a record (ms).
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Consumer configs: --consumer-props fetch.max.wait.ms=100
    #[arg(long = "consumer-props", visible_alias = "command-property", value_parser = parse_pair, num_args = 1..)]
    consumer_props: Vec<(String, String)>,
    /// A consumer .properties file.
    #[arg(long = "consumer.config")]
    consumer_config: Option<PathBuf>,
    /// Milliseconds between progress lines.
    #[arg(long = "reporting-interval", default_value_t = 5000)]
    reporting_interval: u64,
}

pub async fn run(args: PerfArgs, connect: ConnectArgs) -> CliResult {
    match args.command {
        PerfCommand::Produce(perf) => produce(&connect, perf).await,
        PerfCommand::Consume(perf) => consume(&connect, perf).await,
    }
}

fn merged_config(
    connect: &ConnectArgs,
    file: &Option<PathBuf>,
    kind: ClientKind,
    flag: &str,
    props: &[(String, String)],
) -> CliResult<ClientConfig> {
    let mut config = connect.client_config()?;
    if let Some(path) = file {
        config = config.merge(&ClientConfig::from_properties_file(path)?);
    }
    apply_client_properties(&mut config, kind, flag, props)?;
    Ok(config)
}

/// Latency samples and window counters, updated from delivery callbacks.
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    window_count: u64,
    window_bytes: u64,
    window_latency_us: u64,
    window_max_us: u64,
    total_latency_us: u64,
    max_us: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn record(&mut self, latency_us: u64, bytes: u64) {
        self.latencies_us
            .push(latency_us.min(u64::from(u32::MAX)) as u32);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_latency_us += latency_us;
        self.window_max_us = self.window_max_us.max(latency_us);
        self.total_latency_us += latency_us;
        self.max_us = self.max_us.max(latency_us);
    }

    fn take_window(&mut self) -> (u64, u64, u64, u64) {
        let window = (
            self.window_count,
            self.window_bytes,
            self.window_latency_us,
            self.window_max_us,
        );
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_latency_us = 0;
        self.window_max_us = 0;
        window
    }
}

fn payload(size: usize) -> Bytes {
    // Kafka's tool: random uppercase letters. A fixed xorshift keeps runs comparable.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'A' + (x % 26) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn produce(connect: &ConnectArgs, perf: ProducePerf) -> CliResult {
    let config = merged_config(
        connect,
        &perf.producer_config,
        ClientKind::Producer,
        "--producer-props",
        &perf.producer_props,
    )?;
    let producer = Producer::new(config).await?;
    producer.partitions_for(&perf.topic).await?;
    let value = payload(perf.record_size);
    let stats = Arc::new(Mutex::new(Stats {
        latencies_us: Vec::with_capacity(perf.num_records.min(50_000_000) as usize),
        ..Default::default()
    }));
    let start = Instant::now();
    let interval = Duration::from_millis(perf.reporting_interval.max(100));
    let reporter = {
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(interval).await;
                let (count, bytes, latency_us, max_us) =
                    stats.lock().expect("stats lock poisoned").take_window();
                let elapsed = last.elapsed().as_secs_f64();
                last = Instant::now();
                eprintln!(
                    "{count} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                    count as f64 / elapsed,
                    bytes as f64 / elapsed / (1024.0 * 1024.0),
                    if count > 0 { latency_us as f64 / count as f64 / 1000.0 } else { 0.0 },
                    max_us as f64 / 1000.0
                );
            }
        })
    };
    let record_bytes = perf.record_size as u64;
    // Ctrl-C stops sending; the summary covers what was sent.
    let stop = stop_flag();
    for sent in 0..perf.num_records {
        if stop.load(Ordering::Acquire) != 0 {
            break;
        }
        if perf.throughput > 0 {
            let due = start + Duration::from_secs_f64(sent as f64 / perf.throughput as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
        }
        let sent_at = Instant::now();
        let stats = Arc::clone(&stats);
        let record = ProducerRecord::new(perf.topic.clone()).value(value.clone());
        producer
            .send_with_callback(record, move |result| {
                let mut stats = stats.lock().expect("stats lock poisoned");
                match result {
                    Ok(_) => stats.record(sent_at.elapsed().as_micros() as u64, record_bytes),
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            })
            .await?;
    }
    producer.flush().await?;
    let elapsed = start.elapsed().as_secs_f64();
    reporter.abort();
    producer.close().await?;
    let mut stats = stats.lock().expect("stats lock poisoned");
    if let Some(error) = &stats.first_error {
        eprintln!("{} records failed; the first: {error}", stats.errors);
    }
    let count = stats.latencies_us.len() as u64;
    stats.latencies_us.sort_unstable();
    let percentile = |p: f64| -> u64 {
        if stats.latencies_us.is_empty() {
            return 0;
        }
        let index =
            ((stats.latencies_us.len() as f64 * p) as usize).min(stats.latencies_us.len() - 1);
        u64::from(stats.latencies_us[index]) / 1000
    };
    outln!(
        "{count} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        count as f64 / elapsed,
        (count * record_bytes) as f64 / elapsed / (1024.0 * 1024.0),
        if count > 0 { stats.total_latency_us as f64 / count as f64 / 1000.0 } else { 0.0 },
        stats.max_us as f64 / 1000.0,
        percentile(0.5),
        percentile(0.95),
        percentile(0.99),
        percentile(0.999),
    );
    if stats.errors > 0 {
        return Err(CliError::Usage(format!(
            "{} of {} records failed",
            stats.errors, perf.num_records
        )));
    }
    stopped(&stop)
}

async fn consume(connect: &ConnectArgs, perf: ConsumePerf) -> CliResult {
    let group = perf
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", rivulet_client::clock::now_ms()));
    let mut config = merged_config(
        connect,
        &perf.consumer_config,
        ClientKind::Consumer,
        "--consumer-props",
        &perf.consumer_props,
    )?;
    config.insert("group.id", group);
    if config.get("auto.offset.reset").is_none() {
        config.insert("auto.offset.reset", "earliest");
    }
    let mut consumer = Consumer::new(config).await?;
    consumer.subscribe(&[&perf.topic])?;
    let start = Instant::now();
    let start_ms = rivulet_client::clock::now_ms();
    let mut first_record_at: Option<Instant> = None;
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut last_record = Instant::now();
    let mut last_report = Instant::now();
    let (mut window_count, mut window_bytes) = (0u64, 0u64);
    let interval = Duration::from_millis(perf.reporting_interval.max(100));
    // Ctrl-C stops reading; the summary covers what was read.
    let stop = stop_flag();
    while count < perf.messages && stop.load(Ordering::Acquire) == 0 {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        if records.is_empty() {
            if last_record.elapsed() >= Duration::from_millis(perf.timeout) {
                eprintln!("WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded.", perf.timeout);
                break;
            }
            continue;
        }
        first_record_at.get_or_insert_with(Instant::now);
        last_record = Instant::now();
        for record in &records {
            let size = record.value.as_ref().map_or(0, Bytes::len)
                + record.key.as_ref().map_or(0, Bytes::len);
            bytes += size as u64;
            window_bytes += size as u64;
        }
        count += records.len() as u64;
        window_count += records.len() as u64;
        if last_report.elapsed() >= interval {
            let secs = last_report.elapsed().as_secs_f64();
            eprintln!(
                "{count} records consumed, {:.1} records/sec ({:.2} MB/sec)",
                window_count as f64 / secs,
                window_bytes as f64 / secs / (1024.0 * 1024.0)
            );
            last_report = Instant::now();
            window_count = 0;
            window_bytes = 0;
        }
    }
    let end_ms = rivulet_client::clock::now_ms();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let rebalance_ms = first_record_at.map_or(0.0, |t| (t - start).as_secs_f64() * 1000.0);
    let fetch_secs = (elapsed - rebalance_ms / 1000.0).max(1e-9);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    consumer.close().await?;
    outln!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
    outln!(
        "{start_ms}, {end_ms}, {mb:.4}, {:.4}, {count}, {:.4}, {rebalance_ms:.0}, {:.0}, {:.4}, {:.4}",
        mb / elapsed,
        count as f64 / elapsed,
        fetch_secs * 1000.0,
        mb / fetch_secs,
        count as f64 / fetch_secs
    );
    stopped(&stop)
}
