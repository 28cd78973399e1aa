//! Broker configuration with Kafka's key names and defaults, read from a Kafka-style
//! `server.properties` and `--override key=value` pairs (later wins).
//!
//! Every known key is typed and validated; an invalid value stops start-up with a
//! message naming the key; an unknown key is a warning (Kafka logs "not a known
//! config"). The raw values are kept too: topic configs take their defaults from
//! the broker keys that are their synonyms (`log.segment.bytes` for
//! `segment.bytes`), resolved once here (`log.roll.hours` into `log.roll.ms`...).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use storage::config::{validate_value, ConfigDef, ConfigType, Validator};

use crate::cluster_config::ClusterConfig;

const LONG_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";

macro_rules! def {
    ($name:literal, $kind:ident, $default:expr, $validator:expr, $doc:literal) => {
        ConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            validator: $validator,
            broker_synonyms: &[],
            doc: $doc,
        }
    };
}

/// The broker keys this broker knows. `""` as a default means "no value".
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def!(
        "advertised.listeners",
        String,
        "",
        Validator::Any,
        "Listeners to publish to clients, if different from listeners."
    ),
    def!(
        "auto.create.topics.enable",
        Boolean,
        "true",
        Validator::Any,
        "Create a topic on first use in metadata requests."
    ),
    def!(
        "broker.id",
        Int,
        "-1",
        Validator::AtLeast(-1),
        "Alias of node.id (ZooKeeper era)."
    ),
    def!(
        "compression.gzip.level",
        Int,
        "-1",
        Validator::Between(-1, 9),
        "Default gzip level."
    ),
    def!(
        "compression.lz4.level",
        Int,
        "9",
        Validator::Between(1, 17),
        "Default lz4 level."
    ),
    def!(
        "compression.type",
        String,
        "producer",
        Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Default topic compression."
    ),
    def!(
        "compression.zstd.level",
        Int,
        "3",
        Validator::Between(-131072, 22),
        "Default zstd level."
    ),
    def!(
        "connections.max.idle.ms",
        Long,
        "600000",
        Validator::AtLeast(0),
        "Close connections idle this long."
    ),
    def!(
        "controller.listener.names",
        String,
        "CONTROLLER",
        Validator::Any,
        "Listeners used by the controller quorum."
    ),
    def!(
        "controller.quorum.voters",
        String,
        "",
        Validator::Any,
        "The controller quorum (id@host:port,...)."
    ),
    def!(
        "default.replication.factor",
        Int,
        "1",
        Validator::AtLeast(1),
        "Replication factor of auto-created topics."
    ),
    def!(
        "delete.topic.enable",
        Boolean,
        "true",
        Validator::Any,
        "Allow deleting topics."
    ),
    // Rivulet's own (Kafka has neither): see docs/decisions.md, "Limits".
    def!(
        "internal.topics.modification.enable",
        Boolean,
        "false",
        Validator::Any,
        "Let clients delete, trim, reconfigure, add partitions to or create __consumer_offsets and __transaction_state."
    ),
    def!(
        "max.broker.partitions",
        Int,
        "100000",
        Validator::AtLeast(1),
        "The most partition replicas one broker hosts (KIP-578's name); creations past it fail with POLICY_VIOLATION."
    ),
    def!(
        "fetch.max.bytes",
        Int,
        "57671680",
        Validator::AtLeast(1024),
        "The most bytes one fetch response carries."
    ),
    def!(
        "group.initial.rebalance.delay.ms",
        Int,
        "3000",
        Validator::AtLeast(0),
        "How long the first rebalance of an empty group waits for more members."
    ),
    def!(
        "group.max.session.timeout.ms",
        Int,
        "1800000",
        Validator::AtLeast(1),
        "The longest session timeout a member may ask for."
    ),
    def!(
        "group.max.size",
        Int,
        INT_MAX,
        Validator::AtLeast(1),
        "The most members a group may have."
    ),
    def!(
        "group.min.session.timeout.ms",
        Int,
        "6000",
        Validator::AtLeast(1),
        "The shortest session timeout a member may ask for."
    ),
    def!(
        "inter.broker.listener.name",
        String,
        "",
        Validator::Any,
        "Listener for broker-to-broker traffic."
    ),
    def!(
        "listener.security.protocol.map",
        String,
        crate::cluster_config::DEFAULT_SECURITY_PROTOCOL_MAP,
        Validator::Any,
        "Listener name to security protocol."
    ),
    def!(
        "listeners",
        String,
        "PLAINTEXT://127.0.0.1:9092",
        Validator::Any,
        "Addresses the broker listens on."
    ),
    def!(
        "log.cleaner.backoff.ms",
        Long,
        "15000",
        Validator::AtLeast(0),
        "How long the cleaner sleeps when there is nothing to clean."
    ),
    def!(
        "log.cleaner.dedupe.buffer.size",
        Long,
        "134217728",
        Validator::AtLeast(1024),
        "Memory for the cleaner's offset map."
    ),
    def!(
        "log.cleaner.delete.retention.ms",
        Long,
        "86400000",
        Validator::AtLeast(0),
        "Default delete.retention.ms."
    ),
    def!(
        "log.cleaner.enable",
        Boolean,
        "true",
        Validator::Any,
        "Run the log cleaner (compaction)."
    ),
    def!(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        "1.7976931348623157E308",
        Validator::Any,
        "I/O limit of the cleaner."
    ),
    def!(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        "Default max.compaction.lag.ms."
    ),
    def!(
        "log.cleaner.min.cleanable.ratio",
        Double,
        "0.5",
        Validator::DoubleBetween(0.0, 1.0),
        "Default min.cleanable.dirty.ratio."
    ),
    def!(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        "0",
        Validator::AtLeast(0),
        "Default min.compaction.lag.ms."
    ),
    def!(
        "log.cleaner.threads",
        Int,
        "1",
        Validator::AtLeast(0),
        "Cleaner threads (one is used)."
    ),
    def!(
        "log.cleanup.policy",
        List,
        "delete",
        Validator::ListOf(&["compact", "delete"]),
        "Default cleanup.policy."
    ),
    def!(
        "log.dir",
        String,
        "./data",
        Validator::Any,
        "The log directory (when log.dirs is not set)."
    ),
    def!(
        "log.dirs",
        String,
        "",
        Validator::Any,
        "Comma-separated log directories."
    ),
    def!(
        "log.flush.interval.messages",
        Long,
        LONG_MAX,
        Validator::AtLeast(1),
        "Default flush.messages."
    ),
    def!(
        "log.flush.interval.ms",
        Long,
        "",
        Validator::AtLeast(0),
        "Default flush.ms (log.flush.scheduler.interval.ms when unset)."
    ),
    def!(
        "log.flush.offset.checkpoint.interval.ms",
        Int,
        "60000",
        Validator::AtLeast(0),
        "How often recovery points are checkpointed."
    ),
    def!(
        "log.flush.scheduler.interval.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        "How often logs are checked for a time-based flush."
    ),
    def!(
        "log.flush.start.offset.checkpoint.interval.ms",
        Int,
        "60000",
        Validator::AtLeast(0),
        "How often log start offsets are checkpointed."
    ),
    def!(
        "log.index.interval.bytes",
        Int,
        "4096",
        Validator::AtLeast(0),
        "Default index.interval.bytes."
    ),
    def!(
        "log.index.size.max.bytes",
        Int,
        "10485760",
        Validator::AtLeast(4),
        "Default segment.index.bytes."
    ),
    def!(
        "log.local.retention.bytes",
        Long,
        "-2",
        Validator::AtLeast(-2),
        "Default local.retention.bytes."
    ),
    def!(
        "log.local.retention.ms",
        Long,
        "-2",
        Validator::AtLeast(-2),
        "Default local.retention.ms."
    ),
    def!(
        "log.message.timestamp.after.max.ms",
        Long,
        "3600000",
        Validator::AtLeast(0),
        "Default message.timestamp.after.max.ms."
    ),
    def!(
        "log.message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        Validator::AtLeast(0),
        "Default message.timestamp.before.max.ms."
    ),
    def!(
        "log.message.timestamp.type",
        String,
        "CreateTime",
        Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        "Default message.timestamp.type."
    ),
    def!(
        "log.preallocate",
        Boolean,
        "false",
        Validator::Any,
        "Default preallocate."
    ),
    def!(
        "log.retention.bytes",
        Long,
        "-1",
        Validator::Any,
        "Default retention.bytes."
    ),
    def!(
        "log.retention.check.interval.ms",
        Long,
        "300000",
        Validator::AtLeast(1),
        "How often retention is checked."
    ),
    def!(
        "log.retention.hours",
        Int,
        "168",
        Validator::Any,
        "Default retention in hours."
    ),
    def!(
        "log.retention.minutes",
        Int,
        "",
        Validator::Any,
        "Default retention in minutes."
    ),
    def!(
        "log.retention.ms",
        Long,
        "",
        Validator::Any,
        "Default retention.ms."
    ),
    def!(
        "log.roll.hours",
        Int,
        "168",
        Validator::AtLeast(1),
        "Default segment.ms in hours."
    ),
    def!(
        "log.roll.jitter.hours",
        Int,
        "0",
        Validator::AtLeast(0),
        "Default segment.jitter.ms in hours."
    ),
    def!(
        "log.roll.jitter.ms",
        Long,
        "",
        Validator::Any,
        "Default segment.jitter.ms."
    ),
    def!(
        "log.roll.ms",
        Long,
        "",
        Validator::Any,
        "Default segment.ms."
    ),
    def!(
        "log.segment.bytes",
        Int,
        "1073741824",
        Validator::AtLeast(14),
        "Default segment.bytes."
    ),
    def!(
        "log.segment.delete.delay.ms",
        Long,
        "60000",
        Validator::AtLeast(0),
        "Default file.delete.delay.ms."
    ),
    def!(
        "max.connections",
        Int,
        INT_MAX,
        Validator::AtLeast(0),
        "The most connections the broker accepts."
    ),
    def!(
        "max.connections.per.ip",
        Int,
        INT_MAX,
        Validator::AtLeast(0),
        "The most connections from one IP address."
    ),
    // Connection and request-memory limits (network/; docs/decisions.md).
    def!(
        "max.connections.per.ip.overrides",
        String,
        "",
        Validator::Any,
        "Per-IP or hostname overrides of max.connections.per.ip: host:count,host:count."
    ),
    def!(
        "max.connection.creation.rate",
        Int,
        INT_MAX,
        Validator::AtLeast(0),
        "The most new connections per second; faster ones are delayed."
    ),
    def!(
        "queued.max.request.bytes",
        Long,
        "-1",
        Validator::Any,
        "Bytes of requests and unwritten responses before no more requests are read (-1: 512 MiB or socket.request.max.bytes if larger)."
    ),
    def!(
        "quota.window.num",
        Int,
        "11",
        Validator::AtLeast(1),
        "Samples kept for rate quotas (max.connection.creation.rate)."
    ),
    def!(
        "quota.window.size.seconds",
        Int,
        "1",
        Validator::AtLeast(1),
        "Length of one rate-quota sample."
    ),
    def!(
        "rivulet.socket.request.read.timeout.ms",
        Long,
        "60000",
        Validator::AtLeast(1),
        "A request's bytes must all arrive this long after its size prefix (not a Kafka key)."
    ),
    def!(
        "message.max.bytes",
        Int,
        "1048588",
        Validator::AtLeast(0),
        "Default max.message.bytes."
    ),
    def!(
        "metadata.log.dir",
        String,
        "",
        Validator::Any,
        "Where the cluster metadata log lives (first log dir when unset)."
    ),
    def!(
        "min.insync.replicas",
        Int,
        "1",
        Validator::AtLeast(1),
        "Default min.insync.replicas."
    ),
    def!(
        "node.id",
        Int,
        "1",
        Validator::AtLeast(0),
        "This node's id in the cluster."
    ),
    def!(
        "num.io.threads",
        Int,
        "8",
        Validator::AtLeast(1),
        "Accepted for compatibility; the async runtime schedules request work."
    ),
    def!(
        "num.network.threads",
        Int,
        "3",
        Validator::AtLeast(1),
        "Accepted for compatibility; connections are async tasks."
    ),
    def!(
        "num.partitions",
        Int,
        "1",
        Validator::AtLeast(1),
        "Partitions of auto-created topics."
    ),
    def!(
        "num.recovery.threads.per.data.dir",
        Int,
        "2",
        Validator::AtLeast(1),
        "Accepted for compatibility."
    ),
    def!(
        "offset.metadata.max.bytes",
        Int,
        "4096",
        // At most what a __consumer_offsets record's string holds (Kafka allows
        // more and then fails to write the record).
        Validator::Between(0, 32767),
        "The largest metadata string an offset commit may carry."
    ),
    def!(
        "offsets.retention.check.interval.ms",
        Long,
        "600000",
        Validator::AtLeast(1),
        "How often expired offsets are removed."
    ),
    def!(
        "offsets.retention.minutes",
        Int,
        "10080",
        Validator::AtLeast(1),
        "How long an empty group's offsets are kept."
    ),
    def!(
        "offsets.topic.num.partitions",
        Int,
        "50",
        Validator::AtLeast(1),
        "Partitions of __consumer_offsets."
    ),
    def!(
        "offsets.topic.replication.factor",
        Int,
        "3",
        Validator::AtLeast(1),
        "Replication factor of __consumer_offsets (capped by the brokers registered)."
    ),
    def!(
        "offsets.topic.segment.bytes",
        Int,
        "104857600",
        Validator::AtLeast(1),
        "Segment size of __consumer_offsets."
    ),
    def!(
        "process.roles",
        List,
        "broker,controller",
        Validator::ListOf(&["broker", "controller"]),
        "broker, controller, or both (combined mode)."
    ),
    def!(
        "queued.max.requests",
        Int,
        "500",
        Validator::AtLeast(1),
        "Requests read ahead of the one each connection is processing, broker-wide, before reading pauses."
    ),
    def!(
        "replica.high.watermark.checkpoint.interval.ms",
        Long,
        "5000",
        Validator::AtLeast(1),
        "How often high watermarks are checkpointed."
    ),
    def!(
        "socket.receive.buffer.bytes",
        Int,
        "102400",
        Validator::AtLeast(-1),
        "SO_RCVBUF (-1: OS default)."
    ),
    def!(
        "socket.request.max.bytes",
        Int,
        "104857600",
        Validator::AtLeast(1),
        "The largest request accepted."
    ),
    def!(
        "socket.send.buffer.bytes",
        Int,
        "102400",
        Validator::AtLeast(-1),
        "SO_SNDBUF (-1: OS default)."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Validator::Any,
        "Default unclean.leader.election.enable."
    ),
];

/// Topic config defaults from broker keys (the synonyms), with Kafka's unit
/// conversions resolved (`log.roll.hours` into `log.roll.ms`...). Used for the
/// static config and again whenever dynamic broker configs change.
pub fn topic_defaults_from(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let get = |key: &str| -> String {
        raw.get(key).cloned().unwrap_or_else(|| {
            def_of(key)
                .map(|d| d.default.to_string())
                .unwrap_or_default()
        })
    };
    let int = |key: &str| -> i64 { get(key).trim().parse().unwrap_or(0) };
    let opt_long = |key: &str| -> Option<i64> { raw.get(key).and_then(|v| v.trim().parse().ok()) };
    let mut topic_defaults = BTreeMap::new();
    for def in storage::config::TOPIC_CONFIGS {
        for key in def.broker_synonyms {
            if let Some(value) = raw.get(*key) {
                topic_defaults.insert(key.to_string(), value.clone());
            }
        }
    }
    let roll_ms = opt_long("log.roll.ms").unwrap_or_else(|| int("log.roll.hours") * 3_600_000);
    topic_defaults.insert("log.roll.ms".into(), roll_ms.to_string());
    let jitter_ms =
        opt_long("log.roll.jitter.ms").unwrap_or_else(|| int("log.roll.jitter.hours") * 3_600_000);
    topic_defaults.insert("log.roll.jitter.ms".into(), jitter_ms.to_string());
    let retention_ms = opt_long("log.retention.ms")
        .or_else(|| opt_long("log.retention.minutes").map(|m| m * 60_000))
        .unwrap_or_else(|| int("log.retention.hours") * 3_600_000);
    topic_defaults.insert("log.retention.ms".into(), retention_ms.to_string());
    let flush_ms =
        opt_long("log.flush.interval.ms").unwrap_or_else(|| int("log.flush.scheduler.interval.ms"));
    topic_defaults.insert("log.flush.interval.ms".into(), flush_ms.to_string());
    // Every topic default must itself be a valid topic value.
    storage::LogConfig::resolve(&BTreeMap::new(), &topic_defaults)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(topic_defaults)
}

/// Broker keys that may change at run time (IncrementalAlterConfigs on a broker or
/// the cluster default): the defaults of topic configs, as in Kafka.
pub fn is_dynamic_broker_key(name: &str) -> bool {
    storage::config::TOPIC_CONFIGS
        .iter()
        .any(|d| d.broker_synonyms.contains(&name))
        || matches!(
            name,
            "log.roll.hours"
                | "log.roll.jitter.hours"
                | "log.retention.hours"
                | "log.retention.minutes"
        )
}

pub fn broker_config_def(name: &str) -> Option<&'static ConfigDef> {
    def_of(name)
}

/// A listener to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every key given (file, then overrides), validated.
    pub raw: BTreeMap<String, String>,
    pub node_id: i32,
    pub listeners: Vec<Listener>,
    pub advertised_listeners: Vec<Listener>,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    /// `internal.topics.modification.enable`.
    pub internal_topics_modification_enable: bool,
    /// `max.broker.partitions`.
    pub max_broker_partitions: u64,
    pub socket_request_max_bytes: usize,
    pub connections_max_idle_ms: u64,
    pub max_connections: usize,
    pub queued_max_requests: usize,
    // Connection and request-memory limits (network/, docs/decisions.md).
    pub max_connections_per_ip: usize,
    /// `max.connections.per.ip.overrides` as (host, count), hosts as written.
    pub max_connections_per_ip_overrides: Vec<(String, usize)>,
    pub max_connection_creation_rate: u32,
    /// `queued.max.request.bytes`; Kafka's -1 ("no pool") resolved to Rivulet's bound.
    pub queued_max_request_bytes: usize,
    pub quota_window_num: u32,
    pub quota_window_size_ms: u64,
    pub request_read_timeout_ms: u64,
    pub fetch_max_bytes: usize,
    pub recovery_checkpoint_interval_ms: u64,
    pub high_watermark_checkpoint_interval_ms: u64,
    pub flush_scheduler_interval_ms: u64,
    pub retention_check_interval_ms: u64,
    /// Test hook `rivulet.testing.drop.produce.response.every`: after appending,
    /// drop every Nth produce response (0: never): the connection stays silent
    /// for the request's timeout, then closes, so clients retry and idempotence
    /// can be tested against real retries.
    pub testing_drop_produce_response_every: u64,
    /// Values for topic config synonyms, keyed by broker key.
    pub topic_defaults: BTreeMap<String, String>,
    /// Roles, quorum, listener kinds, replication and metadata-log keys.
    pub cluster: ClusterConfig,
}

/// Parses Java properties text: `key=value` or `key: value`, `#`/`!` comments,
/// backslash line continuations. Enough for `server.properties`.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if pending.is_empty()
            && (trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!'))
        {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            pending.push_str(body);
            continue;
        }
        pending.push_str(trimmed);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']);
        let (key, value) = match split {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry.as_str(), ""),
        };
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    pairs
}

/// The known key nearest to a misspelt `key` (at most a third of its length in
/// edits), broker keys and topic-config synonyms alike.
pub fn did_you_mean(key: &str) -> Option<&'static str> {
    // Edits: insert, delete, substitute, or swap two neighbours.
    fn distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = best;
            }
        }
        d[a.len()][b.len()]
    }
    let limit = (key.chars().count() / 3).max(1);
    BROKER_CONFIGS
        .iter()
        .chain(crate::cluster_config::CLUSTER_CONFIGS)
        .map(|d| (distance(key, d.name), d.name))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

fn def_of(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS
        .iter()
        .chain(crate::cluster_config::CLUSTER_CONFIGS)
        .find(|d| d.name == name)
}

/// Keys from other broker features that are accepted (and validated later by the
/// features that own them) without a warning.
fn known_elsewhere(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "rivulet.testing.",
        "group.",
        "offsets.",
        "transaction.",
        "transactional.",
        "log.cleaner.",
        "ssl.",
        "sasl.",
        "listener.name.",
        "metadata.",
        "controller.",
        "broker.",
        "replica.",
        "unstable.",
        "metric.",
        "kafka.metrics.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut listeners = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            ConfigError::Invalid(format!(
                "Invalid value {item} for configuration {key}: expected NAME://host:port"
            ))
        };
        let (name, address) = item.split_once("://").ok_or_else(bad)?;
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if name.is_empty() {
            return Err(bad());
        }
        listeners.push(Listener {
            name: name.to_string(),
            host,
            port,
        });
    }
    Ok(listeners)
}

/// Rivulet's request-memory bound where Kafka has none (`queued.max.request.bytes`
/// -1): requests and unwritten responses together.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Kafka's checks of the connection keys (`KafkaConfig.validateValues`): the
/// per-IP overrides as `host:count` pairs (split at the last ':', hosts of
/// `Utils.validHostPattern`'s characters), `max.connections.per.ip` 0 only with
/// overrides, and a request pool no smaller than the largest request.
fn connection_limits(
    get: &dyn Fn(&str) -> String,
) -> Result<(Vec<(String, usize)>, usize), ConfigError> {
    let key = "max.connections.per.ip.overrides";
    let mut overrides = Vec::new();
    for item in get(key).split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.rsplit_once(':').and_then(|(host, count)| {
            let host = host.trim();
            let valid_host = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-%._:".contains(c));
            let count = count.trim().parse::<i32>().ok()?;
            (valid_host && count >= 0).then(|| (host.to_string(), count as usize))
        });
        let Some(pair) = parsed else {
            return Err(ConfigError::Invalid(format!(
                "Invalid value {item} for configuration {key}: expected host:count"
            )));
        };
        overrides.push(pair);
    }
    let number = |key: &str| get(key).trim().parse::<i64>().unwrap_or(0);
    if number("max.connections.per.ip") == 0 && overrides.is_empty() {
        return Err(ConfigError::Invalid(format!(
            "max.connections.per.ip can be set to zero only if {key} property is set."
        )));
    }
    let request_max = number("socket.request.max.bytes").max(0) as usize;
    let pool = match number("queued.max.request.bytes") {
        bytes if bytes <= 0 => DEFAULT_QUEUED_MAX_REQUEST_BYTES.max(request_max),
        bytes if (bytes as u64) < request_max as u64 => {
            return Err(ConfigError::Invalid(
                "queued.max.request.bytes must be larger or equal to socket.request.max.bytes"
                    .into(),
            ))
        }
        bytes => usize::try_from(bytes).unwrap_or(usize::MAX),
    };
    Ok((overrides, pool))
}

impl BrokerConfig {
    /// Builds the config from an optional properties file and overrides.
    pub fn load(
        file: Option<&std::path::Path>,
        overrides: &[(String, String)],
    ) -> Result<BrokerConfig, ConfigError> {
        let mut pairs = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            pairs.extend(parse_properties(&text));
        }
        pairs.extend(overrides.iter().cloned());
        BrokerConfig::from_pairs(pairs)
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<BrokerConfig, ConfigError> {
        let mut raw = BTreeMap::new();
        for (key, value) in pairs {
            match def_of(&key) {
                Some(def) => {
                    validate_value(def, &value).map_err(|e| ConfigError::Invalid(e.to_string()))?;
                }
                None if known_elsewhere(&key) => {}
                None => match did_you_mean(&key) {
                    Some(near) => tracing::warn!(
                        key = %key,
                        "ignoring unknown broker configuration key (not a known config); did you mean {near}?"
                    ),
                    None => tracing::warn!(
                        key = %key,
                        "ignoring unknown broker configuration key (not a known config)"
                    ),
                },
            }
            raw.insert(key, value);
        }
        let get = |key: &str| -> String {
            raw.get(key).cloned().unwrap_or_else(|| {
                def_of(key)
                    .map(|d| d.default.to_string())
                    .unwrap_or_default()
            })
        };
        let int = |key: &str| -> i64 {
            get(key)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{key} was validated as a number"))
        };
        let boolean = |key: &str| get(key).trim().eq_ignore_ascii_case("true");

        let node_id = match (raw.get("node.id"), raw.get("broker.id")) {
            (Some(_), _) => int("node.id") as i32,
            (None, Some(_)) => int("broker.id") as i32,
            (None, None) => int("node.id") as i32,
        };
        let controller_names: Vec<String> = get("controller.listener.names")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let all_listeners = parse_listeners("listeners", &get("listeners"))?;
        let listeners: Vec<Listener> = all_listeners
            .iter()
            .filter(|l| !controller_names.contains(&l.name))
            .cloned()
            .collect();
        let advertised_raw = get("advertised.listeners");
        // Kafka's effective advertised broker listeners: the controller ones left out.
        let advertised: Vec<Listener> = if advertised_raw.trim().is_empty() {
            listeners.clone()
        } else {
            parse_listeners("advertised.listeners", &advertised_raw)?
                .into_iter()
                .filter(|l| !controller_names.contains(&l.name))
                .collect()
        };
        let cluster = crate::cluster_config::resolve(
            &crate::cluster_config::Lookup {
                raw: &raw,
                get: &get,
            },
            node_id,
            &all_listeners,
            &advertised,
        )?;
        for listener in &all_listeners {
            let protocol = cluster.security_protocol(&listener.name).unwrap_or("");
            if protocol != "PLAINTEXT" {
                return Err(ConfigError::Invalid(format!(
                    "Invalid value {} for configuration listeners: security protocol {protocol} is not supported yet (PLAINTEXT only)",
                    listener.name
                )));
            }
        }
        if advertised.iter().any(|a| a.host == "0.0.0.0") {
            return Err(ConfigError::Invalid("advertised.listeners cannot use the nonroutable meta-address 0.0.0.0. Use a routable IP address.".into()));
        }
        // One advertised address per bound broker listener, in the same order.
        let advertised_listeners: Vec<Listener> = listeners
            .iter()
            .map(|l| {
                advertised
                    .iter()
                    .find(|a| a.name == l.name)
                    .unwrap_or(l)
                    .clone()
            })
            .collect();
        let log_dirs: Vec<PathBuf> = {
            let dirs = get("log.dirs");
            let dirs = if dirs.trim().is_empty() {
                get("log.dir")
            } else {
                dirs
            };
            dirs.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        };
        if log_dirs.is_empty() {
            return Err(ConfigError::Invalid(
                "log.dirs must name at least one directory".into(),
            ));
        }
        let metadata_log_dir = match raw.get("metadata.log.dir").filter(|v| !v.trim().is_empty()) {
            Some(dir) => PathBuf::from(dir.trim()),
            None => log_dirs[0].clone(),
        };

        let topic_defaults = topic_defaults_from(&raw)?;
        let (per_ip_overrides, queued_max_request_bytes) = connection_limits(&get)?;

        Ok(BrokerConfig {
            node_id,
            listeners,
            advertised_listeners,
            log_dirs,
            metadata_log_dir,
            num_partitions: int("num.partitions") as i32,
            default_replication_factor: int("default.replication.factor") as i16,
            auto_create_topics_enable: boolean("auto.create.topics.enable"),
            delete_topic_enable: boolean("delete.topic.enable"),
            internal_topics_modification_enable: boolean("internal.topics.modification.enable"),
            max_broker_partitions: int("max.broker.partitions").max(1) as u64,
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            connections_max_idle_ms: int("connections.max.idle.ms") as u64,
            max_connections: int("max.connections").min(1 << 20) as usize,
            queued_max_requests: int("queued.max.requests").min(10_000) as usize,
            max_connections_per_ip: int("max.connections.per.ip").min(1 << 20) as usize,
            max_connections_per_ip_overrides: per_ip_overrides,
            max_connection_creation_rate: int("max.connection.creation.rate") as u32,
            queued_max_request_bytes,
            quota_window_num: int("quota.window.num") as u32,
            quota_window_size_ms: int("quota.window.size.seconds") as u64 * 1000,
            request_read_timeout_ms: int("rivulet.socket.request.read.timeout.ms") as u64,
            fetch_max_bytes: int("fetch.max.bytes") as usize,
            recovery_checkpoint_interval_ms: int("log.flush.offset.checkpoint.interval.ms").max(100)
                as u64,
            high_watermark_checkpoint_interval_ms: int(
                "replica.high.watermark.checkpoint.interval.ms",
            )
            .max(100) as u64,
            flush_scheduler_interval_ms: int("log.flush.scheduler.interval.ms").clamp(100, 1 << 40)
                as u64,
            retention_check_interval_ms: int("log.retention.check.interval.ms").clamp(10, 1 << 40)
                as u64,
            testing_drop_produce_response_every: raw
                .get("rivulet.testing.drop.produce.response.every")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            topic_defaults,
            cluster,
            raw,
        })
    }

    /// The first client listener's address to bind.
    pub fn bind_addresses(&self) -> Result<Vec<(Listener, SocketAddr)>, ConfigError> {
        self.listeners
            .iter()
            .map(|l| {
                let host = if l.host.is_empty() { "0.0.0.0" } else { l.host.as_str() };
                let host = if host == "localhost" { "127.0.0.1" } else { host };
                let addr: SocketAddr = format!("{host}:{}", l.port)
                    .parse()
                    .or_else(|_| format!("[{host}]:{}", l.port).parse())
                    .map_err(|_| ConfigError::Invalid(format!("Invalid value {}://{}:{} for configuration listeners: host must be an IP address or localhost", l.name, l.host, l.port)))?;
                Ok((l.clone(), addr))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_single_node() {
        let config = BrokerConfig::from_pairs(Vec::new()).unwrap();
        assert_eq!(config.node_id, 1);
        assert_eq!(
            config.listeners,
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }]
        );
        assert_eq!(config.log_dirs, vec![PathBuf::from("./data")]);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.socket_request_max_bytes, 104_857_600);
        assert_eq!(config.topic_defaults["log.roll.ms"], "604800000");
    }

    #[test]
    fn properties_parse_like_java() {
        let text = "# comment\n! also\nnode.id=3\nlisteners = PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\nlog.dirs: /tmp/a,\\\n  /tmp/b\n";
        let config = BrokerConfig::from_pairs(parse_properties(text)).unwrap();
        assert_eq!(config.node_id, 3);
        assert_eq!(
            config.listeners.len(),
            1,
            "the CONTROLLER listener is not a client listener"
        );
        assert_eq!(
            config.log_dirs,
            vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (key, value) in [
            ("num.partitions", "zero"),
            ("log.segment.bytes", "5"),
            ("auto.create.topics.enable", "maybe"),
            ("listeners", "nonsense"),
        ] {
            let err = BrokerConfig::from_pairs(pairs(&[(key, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn unit_synonyms_resolve_to_milliseconds() {
        let config = BrokerConfig::from_pairs(pairs(&[
            ("log.roll.hours", "2"),
            ("log.retention.minutes", "3"),
        ]))
        .unwrap();
        assert_eq!(config.topic_defaults["log.roll.ms"], "7200000");
        assert_eq!(config.topic_defaults["log.retention.ms"], "180000");
        let config =
            BrokerConfig::from_pairs(pairs(&[("log.roll.ms", "1000"), ("log.roll.hours", "2")]))
                .unwrap();
        assert_eq!(config.topic_defaults["log.roll.ms"], "1000");
    }

    #[test]
    fn connection_limits_are_checked_as_kafka_checks_them() {
        let config = BrokerConfig::from_pairs(pairs(&[(
            "max.connections.per.ip.overrides",
            "127.0.0.2:5, broker-1.example:0,::1:7",
        )]))
        .unwrap();
        assert_eq!(
            config.max_connections_per_ip_overrides,
            vec![
                ("127.0.0.2".to_string(), 5),
                ("broker-1.example".to_string(), 0),
                ("::1".to_string(), 7)
            ]
        );
        assert_eq!(
            config.queued_max_request_bytes,
            DEFAULT_QUEUED_MAX_REQUEST_BYTES
        );
        for bad in ["127.0.0.2", "host:many", "bad host:1", ":3", "h:-1"] {
            let err = BrokerConfig::from_pairs(pairs(&[("max.connections.per.ip.overrides", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("max.connections.per.ip.overrides"),
                "{bad}: {err}"
            );
        }
        let err = BrokerConfig::from_pairs(pairs(&[("max.connections.per.ip", "0")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("max.connections.per.ip can be set to zero only if"),
            "{err}"
        );
        let err = BrokerConfig::from_pairs(pairs(&[("queued.max.request.bytes", "1000")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must be larger or equal to socket.request.max.bytes"),
            "{err}"
        );
        let large =
            BrokerConfig::from_pairs(pairs(&[("socket.request.max.bytes", "1073741824")])).unwrap();
        assert_eq!(large.queued_max_request_bytes, 1 << 30);
    }

    #[test]
    fn a_misspelt_key_finds_the_known_one() {
        assert_eq!(did_you_mean("num.partition"), Some("num.partitions"));
        assert_eq!(did_you_mean("lgo.dirs"), Some("log.dirs"));
        assert_eq!(did_you_mean("completely.different"), None);
    }

    #[test]
    fn unknown_keys_are_kept_and_only_warned_about() {
        let config = BrokerConfig::from_pairs(pairs(&[("no.such.key", "1")])).unwrap();
        assert_eq!(config.raw.get("no.such.key").map(String::as_str), Some("1"));
    }
}
