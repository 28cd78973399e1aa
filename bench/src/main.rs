//! Throughput and latency of librdkafka against its in-memory mock cluster and
//! against a running rivulet broker, side by side in one process run.
//!
//! Scenarios (issue 2):
//! 1. produce 1 M x 100 B, acks=1, 1 partition, then read back;
//! 2. produce 1 M x 1 KiB, acks=all, 6 partitions, then read back;
//! 3. consume the topic scenario 2 left behind, as fast as possible;
//! 4. end to end: 10 k records/s with a caught-up consumer, send time in the value.
//!
//! Every read checks the record count and a checksum of the values (the wrapping sum
//! of each value's CRC32) against what was produced. Each scenario runs once cold
//! (reported, not counted) and then `--runs` times; the table shows the median.
//! Targets alternate run by run (mock, broker, mock, broker, ...) so that a change
//! in the machine's load hits both alike.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

// ---------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Options {
    broker: Option<String>,
    /// The broker's process id, to report its CPU time.
    broker_pid: Option<String>,
    targets: Vec<Target>,
    scenarios: Vec<u32>,
    runs: usize,
    records: usize,
    e2e_seconds: f64,
    e2e_rate: f64,
    /// Delete the previous run's topic before the next (frees page cache for reuse).
    delete_between_runs: bool,
    /// Pause after deleting the previous run's topic.
    settle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Mock,
    Broker,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Mock => "mock",
            Target::Broker => "rivulet",
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: rivulet-bench [--broker HOST:PORT] [--broker-pid PID] [--targets mock,broker] [--scenarios 1,2,3,4]\n\
         \x20                    [--runs 3] [--records 1000000] [--e2e-seconds 5] [--e2e-rate 10000]\n\
         \x20                    [--keep-topics] [--settle-ms 0]"
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    let mut options = Options {
        broker: None,
        broker_pid: None,
        targets: vec![Target::Mock, Target::Broker],
        scenarios: vec![1, 2, 3, 4],
        runs: 3,
        records: 1_000_000,
        e2e_seconds: 5.0,
        e2e_rate: 10_000.0,
        delete_between_runs: true,
        settle: Duration::ZERO,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--broker" => options.broker = Some(value()),
            "--broker-pid" => options.broker_pid = Some(value()),
            "--targets" => {
                options.targets = value()
                    .split(',')
                    .map(|t| match t {
                        "mock" => Target::Mock,
                        "broker" | "rivulet" => Target::Broker,
                        _ => usage(),
                    })
                    .collect()
            }
            "--scenarios" => options.scenarios = value().split(',').map(|s| s.parse().unwrap_or_else(|_| usage())).collect(),
            "--runs" => options.runs = value().parse().unwrap_or_else(|_| usage()),
            "--records" => options.records = value().parse().unwrap_or_else(|_| usage()),
            "--e2e-seconds" => options.e2e_seconds = value().parse().unwrap_or_else(|_| usage()),
            "--e2e-rate" => options.e2e_rate = value().parse().unwrap_or_else(|_| usage()),
            "--keep-topics" => options.delete_between_runs = false,
            "--settle-ms" => options.settle = Duration::from_millis(value().parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
    if options.targets.contains(&Target::Broker) && options.broker.is_none() {
        eprintln!("--broker is required when the targets include the broker");
        usage();
    }
    options
}

// ---------------------------------------------------------------------------
// Client configuration: identical for the mock and the broker.

const PRODUCER_CONFIG: &[(&str, &str)] = &[
    ("compression.type", "none"),
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("batch.num.messages", "10000"),
    ("queue.buffering.max.messages", "100000"),
    ("queue.buffering.max.kbytes", "1048576"),
    ("max.in.flight.requests.per.connection", "5"),
    ("enable.idempotence", "false"),
    ("socket.nagle.disable", "true"),
    ("message.timeout.ms", "120000"),
];

/// Scenario 4 only: send each record at once.
const E2E_LINGER_MS: &str = "0";

const CONSUMER_CONFIG: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("enable.partition.eof", "true"),
    ("fetch.wait.max.ms", "500"),
    ("fetch.min.bytes", "1"),
    ("max.partition.fetch.bytes", "1048576"),
    ("fetch.max.bytes", "52428800"),
    ("queued.min.messages", "100000"),
    ("socket.nagle.disable", "true"),
];

fn config(bootstrap: &str, pairs: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config.set("client.id", "rivulet-bench");
    for (k, v) in pairs {
        config.set(*k, *v);
    }
    // librdkafka's own debug contexts, e.g. BENCH_DEBUG=fetch,protocol.
    if let Ok(debug) = std::env::var("BENCH_DEBUG") {
        config.set("debug", debug);
    }
    config
}

// ---------------------------------------------------------------------------
// Clusters

enum Cluster {
    Mock(MockCluster<'static, DefaultProducerContext>),
    Broker { bootstrap: String, admin: AdminClient<DefaultClientContext> },
}

/// Runs a future to completion on this thread (the admin client completes its
/// futures from its own polling thread).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

impl Cluster {
    fn open(target: Target, options: &Options) -> Cluster {
        match target {
            Target::Mock => Cluster::Mock(MockCluster::new(1).expect("mock cluster")),
            Target::Broker => {
                let bootstrap = options.broker.clone().expect("--broker");
                let admin: AdminClient<DefaultClientContext> = config(&bootstrap, &[]).create().expect("admin client");
                Cluster::Broker { bootstrap, admin }
            }
        }
    }

    fn bootstrap(&self) -> String {
        match self {
            Cluster::Mock(mock) => mock.bootstrap_servers(),
            Cluster::Broker { bootstrap, .. } => bootstrap.clone(),
        }
    }

    fn create_topic(&self, name: &str, partitions: i32) {
        match self {
            Cluster::Mock(mock) => mock.create_topic(name, partitions, 1).expect("mock create_topic"),
            Cluster::Broker { admin, .. } => {
                let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
                let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
                let results = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
                for result in results {
                    if let Err((topic, code)) = result {
                        assert_eq!(code, RDKafkaErrorCode::TopicAlreadyExists, "creating {topic}: {code}");
                    }
                }
            }
        }
    }

    fn delete_topic(&self, name: &str) {
        if let Cluster::Broker { admin, .. } = self {
            let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            match block_on(admin.delete_topics(&[name], &options)) {
                Ok(results) => {
                    for result in results {
                        if let Err((topic, code)) = result {
                            eprintln!("warning: deleting {topic}: {code}");
                        }
                    }
                }
                Err(e) => eprintln!("warning: deleting {name}: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Records and checksums

/// The values of a run: record `i` is `template` with `i` in its first 8 bytes,
/// sent to partition `i % partitions`. The CRC32 of every value is computed before
/// timing, so a reader checks each record it gets against the one sent.
struct Values {
    template: Vec<u8>,
    crcs: Vec<u32>,
    expected: Digest,
}

impl Values {
    fn new(size: usize, seed: u64, n: usize) -> Values {
        assert!(size >= 16, "values carry an index and a timestamp");
        let mut x = seed | 1;
        let template = (0..size)
            .map(|_| {
                // xorshift64: incompressible filler.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut values = Values { template, crcs: Vec::with_capacity(n), expected: Digest::default() };
        let mut buf = Vec::with_capacity(size);
        for i in 0..n as u64 {
            values.fill(&mut buf, i);
            values.crcs.push(crc32fast::hash(&buf));
            values.expected.add(&buf);
        }
        values
    }

    fn fill(&self, buf: &mut Vec<u8>, i: u64) {
        buf.clear();
        buf.extend_from_slice(&self.template);
        buf[..8].copy_from_slice(&i.to_le_bytes());
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Digest {
    count: u64,
    bytes: u64,
    /// Wrapping sum of the values' CRC32s: independent of the order across partitions.
    checksum: u64,
}

impl Digest {
    fn add(&mut self, value: &[u8]) {
        self.add_crc(value.len(), crc32fast::hash(value));
    }

    fn add_crc(&mut self, len: usize, crc: u32) {
        self.count += 1;
        self.bytes += len as u64;
        self.checksum = self.checksum.wrapping_add(u64::from(crc));
    }
}

/// What a read-back saw, checked record by record against [`Values`].
#[derive(Debug, Clone)]
struct ReadCheck {
    digest: Digest,
    /// Records whose CRC, index or partition is not what was sent.
    bad: u64,
    /// Per partition: count, lowest and highest record index read.
    partitions: Vec<(u64, u64, u64)>,
}

impl ReadCheck {
    fn new(partitions: i32) -> ReadCheck {
        ReadCheck { digest: Digest::default(), bad: 0, partitions: vec![(0, u64::MAX, 0); partitions as usize] }
    }

    fn add(&mut self, values: &Values, partition: i32, value: &[u8]) {
        let crc = crc32fast::hash(value);
        self.digest.add_crc(value.len(), crc);
        let index = value.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let p = self.partitions.len() as u64;
        match index {
            Some(i) if (i as usize) < values.crcs.len() && values.crcs[i as usize] == crc && i % p == partition as u64 => {
                let entry = &mut self.partitions[partition as usize];
                entry.0 += 1;
                entry.1 = entry.1.min(i);
                entry.2 = entry.2.max(i);
            }
            _ => self.bad += 1,
        }
    }

    /// Every record came back: the count and checksum of all that was sent.
    fn is_complete(&self, values: &Values) -> bool {
        self.bad == 0 && self.digest == values.expected
    }

    /// Each partition holds an unbroken run of the last records sent to it (the
    /// mock cluster keeps only the newest 5 MiB of each partition).
    fn is_exact_tail(&self, values: &Values) -> bool {
        let n = values.crcs.len() as u64;
        let p = self.partitions.len() as u64;
        self.bad == 0
            && self.partitions.iter().enumerate().all(|(partition, &(count, low, high))| {
                let last = (0..n).rev().find(|i| i % p == partition as u64);
                count > 0 && Some(high) == last && count == (high - low) / p + 1
            })
    }
}

// ---------------------------------------------------------------------------
// Latency

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[derive(Debug, Clone, Copy, Default)]
struct Latency {
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

impl Latency {
    fn of(mut samples: Vec<u64>) -> Latency {
        samples.sort_unstable();
        Latency {
            p50_us: percentile(&samples, 0.50),
            p99_us: percentile(&samples, 0.99),
            p999_us: percentile(&samples, 0.999),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }
}

fn ms(us: u64) -> String {
    if us >= 100_000 {
        format!("{:.0}", us as f64 / 1000.0)
    } else {
        format!("{:.2}", us as f64 / 1000.0)
    }
}

// ---------------------------------------------------------------------------
// Producing

/// Records each delivery's latency (send call to delivery report), in µs.
struct AckContext {
    start: Instant,
    latencies: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    last_delivery_ns: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl AckContext {
    fn new(start: Instant, n: usize) -> AckContext {
        AckContext {
            start,
            latencies: Mutex::new(Vec::with_capacity(n)),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            last_delivery_ns: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    /// The send time, in ns since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.start.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => {
                self.latencies.lock().expect("latencies").push((now - sent_ns as u64) / 1000);
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().expect("error").get_or_insert_with(|| e.to_string());
            }
        }
        self.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
    }
}

struct ProduceResult {
    elapsed: Duration,
    acks: Latency,
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, acks: &str, values: &Values, n: usize) -> ProduceResult {
    let mut cfg = config(bootstrap, PRODUCER_CONFIG);
    cfg.set("acks", acks);
    let producer: ThreadedProducer<AckContext> = cfg.create_with_context(AckContext::new(Instant::now(), n)).expect("producer");
    // Fetch metadata before timing, so the first send does not wait for it.
    producer.client().fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let start = producer.context().start;
    let mut buf = Vec::with_capacity(values.template.len());
    let t0 = start.elapsed();
    for i in 0..n as u64 {
        values.fill(&mut buf, i);
        let partition = (i % partitions as u64) as i32;
        loop {
            let sent_ns = start.elapsed().as_nanos() as usize;
            let record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, sent_ns).partition(partition).payload(&buf);
            match producer.send(record) {
                Ok(()) => break,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} deliveries failed, first: {:?}", context.first_error.lock().expect("error"));
    assert_eq!(context.delivered.load(Ordering::Relaxed), n as u64, "deliveries");
    let end = Duration::from_nanos(context.last_delivery_ns.load(Ordering::Relaxed));
    let acks = Latency::of(std::mem::take(&mut *context.latencies.lock().expect("latencies")));
    ProduceResult { elapsed: end.saturating_sub(t0), acks }
}

// ---------------------------------------------------------------------------
// Consuming

fn consumer(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let mut cfg = config(bootstrap, CONSUMER_CONFIG);
    cfg.set("group.id", format!("rivulet-bench-{}", std::process::id()));
    let consumer: BaseConsumer = cfg.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads every partition from its start until it has `values.crcs.len()` records
/// or every partition has reported its end. Returns the time from the first record
/// to the last (the rate at which records arrive), the time from the assign to the
/// first record (connection, metadata, offset lookup), and what was read.
fn consume(bootstrap: &str, topic: &str, partitions: i32, values: &Values) -> (Duration, Duration, ReadCheck) {
    let n = values.crcs.len() as u64;
    let start = Instant::now();
    let consumer = consumer(bootstrap, topic, partitions);
    let mut check = ReadCheck::new(partitions);
    let mut at_end = vec![false; partitions as usize];
    // The clock is read at the first record and when the loop ends, not per record.
    let mut first_record = None;
    let mut idle_since: Option<(Instant, u64)> = None;
    while check.digest.count < n && !at_end.iter().all(|&e| e) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let partition = message.partition();
                check.add(values, partition, message.payload().unwrap_or(&[]));
                at_end[partition as usize] = false;
                if first_record.is_none() {
                    first_record = Some(Instant::now());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => at_end[partition as usize] = true,
            Some(Err(e)) => eprintln!("consumer error: {e}"),
            None => match idle_since {
                Some((since, count)) if count == check.digest.count => {
                    if since.elapsed() > Duration::from_secs(30) {
                        eprintln!("consumer stalled at {} of {n} records", check.digest.count);
                        break;
                    }
                }
                _ => idle_since = Some((Instant::now(), check.digest.count)),
            },
        }
    }
    let last_record = Instant::now();
    let first_record = first_record.unwrap_or(last_record);
    (last_record - first_record, first_record - start, check)
}

// ---------------------------------------------------------------------------
// Results

/// How a run's records were checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verified {
    /// Every record came back: count and checksum match what was sent.
    All,
    /// The mock cluster keeps only the newest 5 MiB of each partition: the records
    /// read are exactly that unbroken tail, each one checked.
    Tail { records: u64 },
    Failed,
}

impl Verified {
    fn label(self) -> String {
        match self {
            Verified::All => "all".into(),
            Verified::Tail { records } => format!("tail {records}"),
            Verified::Failed => "FAILED".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Measurement {
    records_per_s: f64,
    mb_per_s: f64,
    latency: Option<Latency>,
    /// Read-back throughput after producing (scenarios 1 and 2), MB/s.
    readback_mb_per_s: Option<f64>,
    verified: Verified,
    load: String,
    cpu: Cpu,
}

/// CPU seconds (user + system) spent during a run: by this process (the client,
/// and for the mock the mock cluster's thread too) and by the broker process.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    bench: f64,
    broker: f64,
}

/// User + system CPU seconds of a process so far, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

struct CpuMeter {
    broker_pid: Option<String>,
    bench: f64,
    broker: f64,
}

impl CpuMeter {
    fn start(target: Target, options: &Options) -> CpuMeter {
        let broker_pid = if target == Target::Broker { options.broker_pid.clone() } else { None };
        let broker = broker_pid.as_deref().map(cpu_seconds).unwrap_or(0.0);
        CpuMeter { broker_pid, bench: cpu_seconds("self"), broker }
    }

    fn stop(&self) -> Cpu {
        Cpu {
            bench: cpu_seconds("self") - self.bench,
            broker: self.broker_pid.as_deref().map(cpu_seconds).unwrap_or(0.0) - self.broker,
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn median_by<T: Clone>(items: &[T], key: impl Fn(&T) -> f64) -> Option<T> {
    let mut sorted: Vec<T> = items.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).cloned()
}

/// Checks a read-back: all records for the broker; the retained tail for the mock.
fn verify_read(what: &str, target: Target, values: &Values, check: &ReadCheck) -> Verified {
    if check.is_complete(values) {
        return Verified::All;
    }
    if target == Target::Mock && check.is_exact_tail(values) {
        return Verified::Tail { records: check.digest.count };
    }
    eprintln!(
        "VERIFY FAILED {what}: expected {:?}, read {:?}, {} records not as sent, per partition (count, first, last index) {:?}",
        values.expected, check.digest, check.bad, check.partitions
    );
    Verified::Failed
}

fn print_run(scenario: u32, target: Target, run: &str, m: &Measurement) {
    let lat = m.latency.map(|l| format!("{} / {} / {} / {}", ms(l.p50_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us))).unwrap_or_else(|| "-".into());
    let readback = m.readback_mb_per_s.map(|r| format!("{r:.0}")).unwrap_or_else(|| "-".into());
    println!(
        "  {scenario:<2} {:<8} {run:<5} {:>10.0} rec/s {:>7.1} MB/s  ms p50/p99/p999/max {lat:<30} read-back {readback:>5} MB/s  verified {:<12} cpu s bench {:.2} broker {:.2}  load {}",
        target.name(),
        m.records_per_s,
        m.mb_per_s,
        m.verified.label(),
        m.cpu.bench,
        m.cpu.broker,
        m.load
    );
}

#[derive(Default)]
struct Report {
    /// (scenario, target) -> (cold, warm runs)
    rows: BTreeMap<(u32, Target), (Option<Measurement>, Vec<Measurement>)>,
}

impl Report {
    fn record(&mut self, scenario: u32, target: Target, cold: bool, m: Measurement) {
        print_run(scenario, target, if cold { "cold" } else { "warm" }, &m);
        let entry = self.rows.entry((scenario, target)).or_default();
        if cold {
            entry.0 = Some(m);
        } else {
            entry.1.push(m);
        }
    }

    fn print(&self, options: &Options) {
        let titles: BTreeMap<u32, &str> = [
            (1, "produce 100 B, acks=1, 1 partition"),
            (2, "produce 1 KiB, acks=all, 6 partitions"),
            (3, "consume pre-filled 1 KiB, 6 partitions"),
            (4, "end to end, 10 k rec/s, 100 B"),
        ]
        .into_iter()
        .collect();
        println!();
        println!(
            "{} records per run; median of {} warm runs (scenario 4: the run with the median p99), the cold (first) run \
             shown apart. Latency in ms: scenarios 1-2 ack latency (send call to delivery report), 4 send to consumer \
             receipt. CPU: seconds used during the run by the benchmark process (client; for the mock, the mock too) \
             and by the broker process.",
            options.records, options.runs
        );
        println!();
        println!("| # | scenario | target | records/s | MB/s | ratio rivulet/mock | lat p50 | p99 | p999 | max | read-back MB/s | CPU s bench + broker | cold records/s | cold MB/s | verified |");
        println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for (&(scenario, target), (cold, warm)) in &self.rows {
            // The median run: by throughput, or by p99 latency for the paced scenario 4.
            let key = |m: &Measurement| if scenario == 4 { m.latency.map(|l| l.p99_us as f64).unwrap_or(0.0) } else { m.records_per_s };
            let Some(m) = median_by(warm, key).or_else(|| cold.clone()) else { continue };
            let ratio = match (target, scenario) {
                (Target::Broker, 1 | 2) => self
                    .rows
                    .get(&(scenario, Target::Mock))
                    .and_then(|(_, w)| median_by(w, |m| m.records_per_s))
                    .map(|mock| format!("{:.2}", m.records_per_s / mock.records_per_s))
                    .unwrap_or_else(|| "-".into()),
                _ => "".into(),
            };
            let (p50, p99, p999, max) = match m.latency {
                Some(l) => (ms(l.p50_us), ms(l.p99_us), ms(l.p999_us), ms(l.max_us)),
                None => ("".into(), "".into(), "".into(), "".into()),
            };
            let readback = median_by(warm, |m| m.readback_mb_per_s.unwrap_or(0.0)).and_then(|m| m.readback_mb_per_s).map(|r| format!("{r:.0}")).unwrap_or_default();
            let (cold_rps, cold_mbs) = cold.as_ref().map(|c| (format!("{:.0}", c.records_per_s), format!("{:.1}", c.mb_per_s))).unwrap_or_default();
            let all: Vec<Verified> = cold.iter().chain(warm.iter()).map(|m| m.verified).collect();
            let verified = if all.contains(&Verified::Failed) {
                "FAILED".to_string()
            } else if all.iter().all(|v| *v == Verified::All) {
                format!("all, {} runs", all.len())
            } else {
                format!("{} ({} runs)", m.verified.label(), all.len())
            };
            let cpu = if target == Target::Broker && m.cpu.broker > 0.0 { format!("{:.2} + {:.2}", m.cpu.bench, m.cpu.broker) } else { format!("{:.2}", m.cpu.bench) };
            println!(
                "| {scenario} | {} | {} | {:.0} | {:.1} | {ratio} | {p50} | {p99} | {p999} | {max} | {readback} | {cpu} | {cold_rps} | {cold_mbs} | {verified} |",
                titles.get(&scenario).copied().unwrap_or(""),
                target.name(),
                m.records_per_s,
                m.mb_per_s,
            );
        }
        println!();
        let all_ok = self.rows.values().all(|(cold, warm)| cold.iter().chain(warm.iter()).all(|m| m.verified != Verified::Failed));
        println!("{}", if all_ok { "every run verified (count and checksum)" } else { "SOME RUNS FAILED VERIFICATION" });
    }

    fn failed(&self) -> bool {
        self.rows.values().any(|(cold, warm)| cold.iter().chain(warm.iter()).any(|m| m.verified == Verified::Failed))
    }
}

// ---------------------------------------------------------------------------
// Scenarios

struct ProduceScenario {
    id: u32,
    value_size: usize,
    partitions: i32,
    acks: &'static str,
}

/// Produces into a fresh topic and reads it back; leaves the cluster and topic in
/// `previous` (scenario 3 reads the last one again).
fn run_produce(s: &ProduceScenario, target: Target, run: usize, options: &Options, values: &Values, previous: &mut Option<(Cluster, String)>) -> Measurement {
    if let Some((cluster, topic)) = previous.take() {
        if options.delete_between_runs {
            cluster.delete_topic(&topic);
            std::thread::sleep(options.settle);
        }
    }
    let cluster = Cluster::open(target, options);
    let topic = format!("bench-s{}-{}-r{run}-{}", s.id, target.name(), std::process::id());
    cluster.create_topic(&topic, s.partitions);
    let load = loadavg();
    let bootstrap = cluster.bootstrap();
    let meter = CpuMeter::start(target, options);
    let produced = produce(&bootstrap, &topic, s.partitions, s.acks, values, options.records);
    let cpu = meter.stop();
    let (read_elapsed, _, read) = consume(&bootstrap, &topic, s.partitions, values);
    let verified = verify_read(&format!("scenario {} {} run {run}", s.id, target.name()), target, values, &read);
    let secs = produced.elapsed.as_secs_f64();
    *previous = Some((cluster, topic));
    Measurement {
        records_per_s: options.records as f64 / secs,
        mb_per_s: values.expected.bytes as f64 / secs / 1e6,
        latency: Some(produced.acks),
        readback_mb_per_s: Some(read.digest.bytes as f64 / read_elapsed.as_secs_f64() / 1e6),
        verified,
        load,
        cpu,
    }
}

fn run_consume(target: Target, cluster: &Cluster, topic: &str, partitions: i32, values: &Values, options: &Options) -> Measurement {
    let load = loadavg();
    let meter = CpuMeter::start(target, options);
    let (elapsed, startup, read) = consume(&cluster.bootstrap(), topic, partitions, values);
    let cpu = meter.stop();
    let secs = elapsed.as_secs_f64();
    println!("     (scenario 3, {}: {:.0} ms from assign to the first record, {:.2} s first to last)", target.name(), startup.as_secs_f64() * 1000.0, secs);
    Measurement {
        records_per_s: read.digest.count as f64 / secs,
        mb_per_s: read.digest.bytes as f64 / secs / 1e6,
        latency: None,
        readback_mb_per_s: None,
        verified: verify_read(&format!("scenario 3 {topic}"), target, values, &read),
        load,
        cpu,
    }
}

/// Scenario 4: a paced producer (linger.ms=0) and a caught-up consumer. The value
/// carries its index and send time; the first second is warm-up, not measured.
fn run_e2e(target: Target, run: usize, options: &Options) -> Measurement {
    const VALUE_SIZE: usize = 100;
    let cluster = Cluster::open(target, options);
    let topic = format!("bench-s4-{}-r{run}-{}", target.name(), std::process::id());
    cluster.create_topic(&topic, 1);
    let bootstrap = cluster.bootstrap();
    let meter = CpuMeter::start(target, options);
    let warmup = options.e2e_rate as usize; // one second
    let total = warmup + (options.e2e_rate * options.e2e_seconds) as usize;
    let start = Instant::now();
    let values = Values::new(VALUE_SIZE, 4 + run as u64, 0);

    let consumer_thread = {
        let bootstrap = bootstrap.clone();
        let topic = topic.clone();
        std::thread::spawn(move || {
            let consumer = consumer(&bootstrap, &topic, 1);
            let mut digest = Digest::default();
            let mut latencies = Vec::with_capacity(total);
            let mut last_progress = Instant::now();
            while digest.count < total as u64 {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        let now = start.elapsed().as_nanos() as u64;
                        let value = message.payload().unwrap_or(&[]);
                        if value.len() >= 16 {
                            let index = u64::from_le_bytes(value[..8].try_into().expect("8 bytes"));
                            let sent = u64::from_le_bytes(value[8..16].try_into().expect("8 bytes"));
                            if index >= warmup as u64 {
                                latencies.push(now.saturating_sub(sent) / 1000);
                            }
                        }
                        digest.add(value);
                        last_progress = Instant::now();
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(e)) => eprintln!("consumer error: {e}"),
                    None => {
                        if last_progress.elapsed() > Duration::from_secs(30) {
                            eprintln!("e2e consumer stalled at {} of {total}", digest.count);
                            break;
                        }
                    }
                }
            }
            (digest, latencies)
        })
    };

    let mut cfg = config(&bootstrap, PRODUCER_CONFIG);
    cfg.set("acks", "1").set("linger.ms", E2E_LINGER_MS);
    let producer: ThreadedProducer<AckContext> = cfg.create_with_context(AckContext::new(start, total)).expect("producer");
    producer.client().fetch_metadata(Some(topic.as_str()), Duration::from_secs(10)).expect("metadata");
    // Give the consumer time to start fetching; the first second is warm-up anyway.
    std::thread::sleep(Duration::from_millis(500));
    let load = loadavg();
    let mut sent = Digest::default();
    let mut buf = Vec::with_capacity(VALUE_SIZE);
    let interval = Duration::from_secs_f64(1.0 / options.e2e_rate);
    let t0 = Instant::now();
    for i in 0..total as u64 {
        let due = t0 + interval * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        values.fill(&mut buf, i);
        let sent_ns = start.elapsed().as_nanos() as u64;
        buf[8..16].copy_from_slice(&sent_ns.to_le_bytes());
        sent.add(&buf);
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, sent_ns as usize).partition(0).payload(&buf[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
    }
    let produce_secs = t0.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(60)).expect("flush");
    let (digest, latencies) = consumer_thread.join().expect("consumer thread");
    let cpu = meter.stop();
    let acks = Latency::of(producer.context().latencies.lock().expect("latencies")[warmup.min(total)..].to_vec());
    println!(
        "     (scenario 4, {}: produce ack latency p50/p99/p999/max {} / {} / {} / {} ms)",
        target.name(),
        ms(acks.p50_us),
        ms(acks.p99_us),
        ms(acks.p999_us),
        ms(acks.max_us)
    );
    let verified = if digest == sent {
        Verified::All
    } else {
        eprintln!("VERIFY FAILED scenario 4 {} run {run}: sent {sent:?}, read {digest:?}", target.name());
        Verified::Failed
    };
    Measurement {
        records_per_s: total as f64 / produce_secs,
        mb_per_s: (total * VALUE_SIZE) as f64 / produce_secs / 1e6,
        latency: Some(Latency::of(latencies)),
        readback_mb_per_s: None,
        verified,
        load,
        cpu,
    }
}

fn main() {
    let options = parse_options();
    println!("rivulet-bench: targets {:?}, scenarios {:?}, {} records, 1 cold + {} warm runs", options.targets, options.scenarios, options.records, options.runs);
    println!("producer config (mock and broker alike): {}", PRODUCER_CONFIG.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    println!("  scenario 1 acks=1, scenario 2 acks=all, scenario 4 acks=1 linger.ms={E2E_LINGER_MS}; partition = record index % partitions");
    println!("consumer config: {}", CONSUMER_CONFIG.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    println!("load average at start: {}", loadavg());
    let mut report = Report::default();
    let produce_scenarios = [
        ProduceScenario { id: 1, value_size: 100, partitions: 1, acks: "1" },
        ProduceScenario { id: 2, value_size: 1024, partitions: 6, acks: "all" },
    ];
    // The topic scenario 2 (or a single fill for scenario 3) left behind, per target.
    let mut prefilled: BTreeMap<Target, (Cluster, String)> = BTreeMap::new();
    let mut s2_values = None;
    for s in &produce_scenarios {
        let measured = options.scenarios.contains(&s.id);
        if !(measured || (s.id == 2 && options.scenarios.contains(&3))) {
            continue;
        }
        let values = Values::new(s.value_size, u64::from(s.id), options.records);
        let runs = if measured { options.runs + 1 } else { 1 };
        let mut previous: BTreeMap<Target, Option<(Cluster, String)>> = options.targets.iter().map(|&t| (t, None)).collect();
        for run in 0..runs {
            for &target in &options.targets {
                let m = run_produce(s, target, run, &options, &values, previous.get_mut(&target).expect("target"));
                if measured {
                    report.record(s.id, target, run == 0, m);
                }
            }
        }
        if s.id == 2 {
            prefilled.extend(previous.into_iter().filter_map(|(t, last)| last.map(|l| (t, l))));
            s2_values = Some(values);
        }
    }
    if options.scenarios.contains(&3) {
        let values = s2_values.as_ref().expect("scenario 2 values");
        for run in 0..=options.runs {
            for &target in &options.targets {
                let (cluster, topic) = prefilled.get(&target).expect("pre-filled topic");
                let m = run_consume(target, cluster, topic, 6, values, &options);
                report.record(3, target, run == 0, m);
            }
        }
    }
    drop(prefilled);
    if options.scenarios.contains(&4) {
        for run in 0..=options.runs {
            for &target in &options.targets {
                let m = run_e2e(target, run, &options);
                report.record(4, target, run == 0, m);
            }
        }
    }
    report.print(&options);
    println!("load average at end: {}", loadavg());
    if report.failed() {
        std::process::exit(1);
    }
}
