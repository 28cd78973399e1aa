//! The configuration of a node in a cluster (KRaft's keys, Kafka's names and
//! defaults): its roles, the controller quorum, named listeners and what each is
//! for, broker registration and heartbeats, replica fetching, and the metadata log.
//!
//! Sources of the defaults and rules: Kafka's `KRaftConfigs.java`,
//! `QuorumConfig.java`, `ReplicationConfigs.java`, `SocketServerConfigs.java` and
//! `KafkaConfig.validateValues` (messages kept word for word where Kafka has one).
//!
//! Three ways to run (see `docs/research/cluster-design.md` §1.8):
//! - **embedded** (no `controller.quorum.voters`, no
//!   `controller.quorum.bootstrap.servers`, roles include `controller`): one node that
//!   is its own single-voter quorum and needs no controller listener. Kafka refuses
//!   this configuration; it is Rivulet's `rivulet serve` with no configuration.
//! - **static quorum**: `controller.quorum.voters=id@host:port,...`.
//! - **dynamic quorum**: `controller.quorum.bootstrap.servers=host:port,...`, with the
//!   voters written by `rivulet storage format`.

use std::collections::{BTreeMap, BTreeSet};

use storage::config::{ConfigDef, ConfigType, Validator};

use crate::config::{ConfigError, Listener};

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

/// Kafka's `listener.security.protocol.map` default: each security protocol maps
/// to itself (the text Kafka 4 shows). With KRaft and the default map, the
/// controller listeners are added as PLAINTEXT (`effectiveListenerSecurityProtocolMap`).
pub const DEFAULT_SECURITY_PROTOCOL_MAP: &str =
    "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT";

const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The cluster keys this broker knows, besides those in `config::BROKER_CONFIGS`
/// (which keeps the ones that existed before the cluster work: `node.id`,
/// `process.roles`, `listeners`, `controller.quorum.voters`...).
pub const CLUSTER_CONFIGS: &[ConfigDef] = &[
    def!(
        "broker.heartbeat.interval.ms",
        Int,
        "2000",
        Validator::AtLeast(1),
        "The length of time in milliseconds between broker heartbeats."
    ),
    def!(
        "broker.rack",
        String,
        "",
        Validator::Any,
        "Rack of the broker, used in rack aware replica placement."
    ),
    def!(
        "broker.session.timeout.ms",
        Int,
        "9000",
        Validator::AtLeast(1),
        "How long a broker lease lasts if no heartbeats are made."
    ),
    def!(
        "controlled.shutdown.enable",
        Boolean,
        "true",
        Validator::Any,
        "Move leaderships away before a broker stops."
    ),
    def!(
        "controller.quorum.append.linger.ms",
        Int,
        "25",
        Validator::AtLeast(0),
        "How long the leader waits for writes to accumulate before flushing (accepted; the Raft engine batches on its own)."
    ),
    def!(
        "controller.quorum.bootstrap.servers",
        List,
        "",
        Validator::Any,
        "host:port list of controllers used to discover the quorum."
    ),
    def!(
        "controller.quorum.election.backoff.max.ms",
        Int,
        "1000",
        Validator::AtLeast(0),
        "Maximum time before starting a new election (randomised backoff)."
    ),
    def!(
        "controller.quorum.election.timeout.ms",
        Int,
        "1000",
        Validator::AtLeast(1),
        "Maximum time without a leader before an election starts."
    ),
    def!(
        "controller.quorum.fetch.timeout.ms",
        Int,
        "2000",
        Validator::AtLeast(1),
        "Maximum time without a successful fetch from the leader before a voter becomes a candidate."
    ),
    def!(
        "controller.quorum.request.timeout.ms",
        Int,
        "2000",
        Validator::AtLeast(1),
        "How long a quorum request waits for its response."
    ),
    def!(
        "controller.quorum.retry.backoff.ms",
        Int,
        "20",
        Validator::AtLeast(0),
        "Wait before retrying a failed quorum request."
    ),
    def!(
        "initial.broker.registration.timeout.ms",
        Int,
        "60000",
        Validator::AtLeast(1),
        "How long the first broker registration may take before the broker gives up."
    ),
    def!(
        "metadata.log.max.record.bytes.between.snapshots",
        Long,
        "20971520",
        Validator::AtLeast(1),
        "Bytes of new metadata records after which a snapshot is taken."
    ),
    def!(
        "metadata.log.max.snapshot.interval.ms",
        Long,
        "3600000",
        Validator::AtLeast(0),
        "Longest time between metadata snapshots when records were written (0: never by time)."
    ),
    def!(
        "metadata.log.segment.bytes",
        Int,
        "1073741824",
        Validator::AtLeast(12),
        "Segment size of the metadata log."
    ),
    def!(
        "metadata.log.segment.ms",
        Long,
        "604800000",
        Validator::AtLeast(1),
        "Longest time before a metadata log segment is rolled."
    ),
    def!(
        "metadata.max.retention.bytes",
        Long,
        "104857600",
        Validator::AtLeast(-1),
        "Bytes of metadata log and snapshots kept (-1: unlimited)."
    ),
    def!(
        "metadata.max.retention.ms",
        Long,
        "604800000",
        Validator::AtLeast(-1),
        "How long metadata log files and snapshots are kept (-1: forever)."
    ),
    def!(
        "num.replica.fetchers",
        Int,
        "1",
        Validator::AtLeast(1),
        "Fetcher connections per source broker."
    ),
    def!(
        "replica.fetch.backoff.ms",
        Int,
        "1000",
        Validator::AtLeast(0),
        "Wait after a fetch error before fetching the partition again."
    ),
    def!(
        "replica.fetch.max.bytes",
        Int,
        "1048576",
        Validator::AtLeast(0),
        "Bytes fetched per partition (a larger first batch is still returned)."
    ),
    def!(
        "replica.fetch.min.bytes",
        Int,
        "1",
        Validator::AtLeast(0),
        "Minimum bytes a replica fetch waits for."
    ),
    def!(
        "replica.fetch.response.max.bytes",
        Int,
        "10485760",
        Validator::AtLeast(0),
        "Bytes expected for one whole replica fetch response."
    ),
    def!(
        "replica.fetch.wait.max.ms",
        Int,
        "500",
        Validator::AtLeast(0),
        "Longest wait of a replica fetch for replica.fetch.min.bytes."
    ),
    def!(
        "replica.lag.time.max.ms",
        Long,
        "30000",
        Validator::AtLeast(1),
        "A follower that has not caught up for this long leaves the ISR."
    ),
    def!(
        "replica.socket.receive.buffer.bytes",
        Int,
        "65536",
        Validator::AtLeast(-1),
        "SO_RCVBUF of replica fetcher connections (-1: OS default)."
    ),
    def!(
        "replica.socket.timeout.ms",
        Int,
        "30000",
        Validator::AtLeast(1),
        "Socket timeout of replica fetch requests."
    ),
    def!(
        "security.inter.broker.protocol",
        String,
        "PLAINTEXT",
        Validator::OneOf(SECURITY_PROTOCOLS),
        "Security protocol between brokers (when inter.broker.listener.name is not set)."
    ),
    def!(
        "transaction.state.log.min.isr",
        Int,
        "2",
        Validator::AtLeast(1),
        "min.insync.replicas of __transaction_state."
    ),
    def!(
        "transaction.state.log.replication.factor",
        Int,
        "3",
        Validator::AtLeast(1),
        "Replication factor of __transaction_state (capped by the brokers registered)."
    ),
];

/// What a node does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// A `controller.quorum.voters` entry: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

/// A `host:port` (`controller.quorum.bootstrap.servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

/// How this node finds its controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumMode {
    /// No quorum configured: this node alone is the quorum (`rivulet serve`).
    Embedded,
    /// `controller.quorum.voters`.
    Static(Vec<QuorumVoter>),
    /// `controller.quorum.bootstrap.servers` (voters come from the formatted storage).
    Dynamic(Vec<HostPort>),
}

/// The quorum's timing keys (`controller.quorum.*`), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumTimeouts {
    pub election_timeout_ms: u32,
    pub fetch_timeout_ms: u32,
    pub election_backoff_max_ms: u32,
    pub request_timeout_ms: u32,
    pub retry_backoff_ms: u32,
    pub append_linger_ms: u32,
}

/// The replica fetchers' keys (`replica.*`, `num.replica.fetchers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaFetchConfig {
    pub lag_time_max_ms: u64,
    pub fetch_max_bytes: u32,
    pub fetch_min_bytes: u32,
    pub fetch_wait_max_ms: u32,
    pub fetch_backoff_ms: u32,
    pub fetch_response_max_bytes: u32,
    pub socket_timeout_ms: u32,
    /// -1: the OS default.
    pub socket_receive_buffer_bytes: i32,
    pub num_replica_fetchers: u32,
}

/// The metadata log's snapshot, segment and retention keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLogSettings {
    pub max_record_bytes_between_snapshots: u64,
    pub max_snapshot_interval_ms: u64,
    pub segment_bytes: u32,
    pub segment_ms: u64,
    /// -1: unlimited.
    pub max_retention_bytes: i64,
    /// -1: forever.
    pub max_retention_ms: i64,
}

/// The typed cluster keys of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub process_roles: ProcessRoles,
    /// Whether `node.id` (or `broker.id`) was given rather than defaulted.
    pub node_id_configured: bool,
    pub quorum: QuorumMode,
    pub controller_listener_names: Vec<String>,
    /// The entries of `listeners` named in `controller.listener.names`.
    pub controller_listeners: Vec<Listener>,
    /// Listener name -> security protocol, Kafka's effective map.
    pub security_protocol_map: BTreeMap<String, String>,
    pub inter_broker_listener_name: String,
    pub broker_rack: Option<String>,
    pub quorum_timeouts: QuorumTimeouts,
    pub broker_heartbeat_interval_ms: u32,
    pub broker_session_timeout_ms: u32,
    pub initial_broker_registration_timeout_ms: u32,
    pub replica: ReplicaFetchConfig,
    pub min_insync_replicas: i32,
    pub controlled_shutdown_enable: bool,
    pub offsets_topic_replication_factor: i16,
    pub transaction_state_log_replication_factor: i16,
    pub transaction_state_log_min_isr: i32,
    pub metadata_log: MetadataLogSettings,
}

impl ClusterConfig {
    /// Whether this node votes in the controller quorum.
    pub fn is_voter(&self, node_id: i32) -> bool {
        match &self.quorum {
            QuorumMode::Embedded => self.process_roles.controller,
            QuorumMode::Static(voters) => voters.iter().any(|v| v.id == node_id),
            QuorumMode::Dynamic(_) => self.process_roles.controller,
        }
    }

    /// The security protocol of a listener name, if the map has it.
    pub fn security_protocol(&self, listener_name: &str) -> Option<&str> {
        self.security_protocol_map
            .get(listener_name)
            .map(String::as_str)
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

fn csv(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `host:port` (`[v6]:port` too) as Kafka's `Utils.getHost`/`getPort` do.
fn split_host_port(address: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':'));
    if !valid_host {
        return None;
    }
    let port = if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() {
        port.parse().ok()
    } else {
        None
    };
    Some((host.to_string(), port))
}

/// Parses `controller.quorum.voters` (`id@host:port,...`) with Kafka's messages.
pub fn parse_voters(value: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    const KEY: &str = "controller.quorum.voters";
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in csv(value) {
        let parts: Vec<&str> = entry.split('@').collect();
        let [id, address] = parts[..] else {
            return Err(invalid(format!("Invalid configuration value for {KEY}. Each entry should be in the form `{{id}}@{{host}}:{{port}}`.")));
        };
        let id: i32 = id
            .parse()
            .map_err(|_| invalid(format!("Failed to parse voter ID as an integer from {id}")))?;
        let Some((host, port)) = split_host_port(address) else {
            return Err(invalid(format!("Failed to parse host name from entry {entry} for the configuration {KEY}. Each entry should be in the form `{{id}}@{{host}}:{{port}}`.")));
        };
        let Some(port) = port else {
            return Err(invalid(format!("Failed to parse host port from entry {entry} for the configuration {KEY}. Each entry should be in the form `{{id}}@{{host}}:{{port}}`.")));
        };
        if id < 0 {
            return Err(invalid(format!(
                "Invalid voter id {id} in {KEY}: node ids are at least 0"
            )));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(format!("Duplicate voter id {id} in {KEY}={value}")));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok(voters)
}

/// Parses `controller.quorum.bootstrap.servers` (`host:port,...`).
pub fn parse_bootstrap_servers(value: &str) -> Result<Vec<HostPort>, ConfigError> {
    const KEY: &str = "controller.quorum.bootstrap.servers";
    csv(value)
        .into_iter()
        .map(|entry| match split_host_port(&entry) {
            None => Err(invalid(format!("Failed to parse host name from {entry} for the configuration {KEY}. Each entry should be in the form \"{{host}}:{{port}}\""))),
            Some((_, None)) => Err(invalid(format!("Failed to parse host port from {entry} for the configuration {KEY}. Each entry should be in the form \"{{host}}:{{port}}\""))),
            Some((host, Some(port))) => Ok(HostPort { host, port }),
        })
        .collect()
}

/// Parses `process.roles`: `broker`, `controller`, or both, no duplicates.
fn parse_roles(value: &str) -> Result<ProcessRoles, ConfigError> {
    let roles = csv(value);
    let mut seen = BTreeSet::new();
    for role in &roles {
        if role != "broker" && role != "controller" {
            return Err(invalid(format!(
                "Unknown process role '{role}' (only 'broker' and 'controller' are allowed roles)"
            )));
        }
        if !seen.insert(role.as_str()) {
            return Err(invalid(format!(
                "Duplicate role names found in `process.roles`: {roles:?}"
            )));
        }
    }
    Ok(ProcessRoles {
        broker: seen.contains("broker"),
        controller: seen.contains("controller"),
    })
}

/// Kafka's effective `listener.security.protocol.map`: the configured map, plus
/// PLAINTEXT for the controller listeners when the map was left at its default and
/// no listener uses SSL or SASL.
fn security_protocol_map(
    raw: &BTreeMap<String, String>,
    controller_listener_names: &[String],
    listeners: &[Listener],
) -> Result<BTreeMap<String, String>, ConfigError> {
    const KEY: &str = "listener.security.protocol.map";
    let text = raw
        .get(KEY)
        .map(String::as_str)
        .unwrap_or(DEFAULT_SECURITY_PROTOCOL_MAP);
    let mut map = BTreeMap::new();
    for pair in csv(text) {
        let Some((name, protocol)) = pair.split_once(':') else {
            return Err(invalid(format!(
                "Invalid value {text} for configuration {KEY}: expected NAME:PROTOCOL pairs"
            )));
        };
        let protocol = protocol.trim();
        if !SECURITY_PROTOCOLS.contains(&protocol) {
            return Err(invalid(format!(
                "Invalid security protocol `{protocol}` defined in {KEY}"
            )));
        }
        map.insert(name.trim().to_string(), protocol.to_string());
    }
    let ssl_or_sasl = |name: &str| matches!(name, "SSL" | "SASL_SSL" | "SASL_PLAINTEXT");
    if !raw.contains_key(KEY)
        && !controller_listener_names.iter().any(|n| ssl_or_sasl(n))
        && !listeners.iter().any(|l| ssl_or_sasl(&l.name))
    {
        for name in controller_listener_names {
            map.entry(name.clone())
                .or_insert_with(|| "PLAINTEXT".to_string());
        }
    }
    Ok(map)
}

/// Values of the keys, typed. `get` returns a key's value or its default; numbers
/// were validated against the key's type before.
pub(crate) struct Lookup<'a> {
    pub raw: &'a BTreeMap<String, String>,
    pub get: &'a dyn Fn(&str) -> String,
}

impl Lookup<'_> {
    fn int(&self, key: &str) -> i64 {
        (self.get)(key)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{key} was validated as a number"))
    }

    fn u32(&self, key: &str) -> u32 {
        self.int(key).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn boolean(&self, key: &str) -> bool {
        (self.get)(key).trim().eq_ignore_ascii_case("true")
    }
}

/// Builds the typed cluster config and checks it as Kafka's `validateValues` does.
/// `listeners` is every entry of `listeners`; `advertised` the advertised broker
/// listeners (already without the controller ones).
pub(crate) fn resolve(
    keys: &Lookup<'_>,
    node_id: i32,
    listeners: &[Listener],
    advertised: &[Listener],
) -> Result<ClusterConfig, ConfigError> {
    let roles = parse_roles(&(keys.get)("process.roles"))?;
    let voters = parse_voters(&(keys.get)("controller.quorum.voters"))?;
    let bootstrap = parse_bootstrap_servers(&(keys.get)("controller.quorum.bootstrap.servers"))?;
    let quorum = match (voters.is_empty(), bootstrap.is_empty()) {
        (true, true) => QuorumMode::Embedded,
        (false, _) => QuorumMode::Static(voters.clone()),
        (true, false) => QuorumMode::Dynamic(bootstrap),
    };
    let node_id_configured = keys.raw.contains_key("node.id") || keys.raw.contains_key("broker.id");
    if let (Some(node), Some(broker)) = (keys.raw.get("node.id"), keys.raw.get("broker.id")) {
        if node.trim() != broker.trim() {
            return Err(invalid(
                "You must set `node.id` to the same value as `broker.id`.",
            ));
        }
    }
    let controller_listener_names = csv(&(keys.get)("controller.listener.names"));
    let controller_listeners: Vec<Listener> = listeners
        .iter()
        .filter(|l| controller_listener_names.contains(&l.name))
        .cloned()
        .collect();
    let security_protocol_map =
        security_protocol_map(keys.raw, &controller_listener_names, listeners)?;
    for listener in listeners {
        if !security_protocol_map.contains_key(&listener.name) {
            return Err(invalid(format!(
                "No security protocol defined for listener {}",
                listener.name
            )));
        }
    }
    let inter_broker_listener_name = inter_broker_listener_name(keys, &security_protocol_map)?;

    let config = ClusterConfig {
        process_roles: roles,
        node_id_configured,
        quorum,
        controller_listener_names,
        controller_listeners,
        security_protocol_map,
        inter_broker_listener_name,
        broker_rack: keys
            .raw
            .get("broker.rack")
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty()),
        quorum_timeouts: QuorumTimeouts {
            election_timeout_ms: keys.u32("controller.quorum.election.timeout.ms"),
            fetch_timeout_ms: keys.u32("controller.quorum.fetch.timeout.ms"),
            election_backoff_max_ms: keys.u32("controller.quorum.election.backoff.max.ms"),
            request_timeout_ms: keys.u32("controller.quorum.request.timeout.ms"),
            retry_backoff_ms: keys.u32("controller.quorum.retry.backoff.ms"),
            append_linger_ms: keys.u32("controller.quorum.append.linger.ms"),
        },
        broker_heartbeat_interval_ms: keys.u32("broker.heartbeat.interval.ms"),
        broker_session_timeout_ms: keys.u32("broker.session.timeout.ms"),
        initial_broker_registration_timeout_ms: keys.u32("initial.broker.registration.timeout.ms"),
        replica: ReplicaFetchConfig {
            lag_time_max_ms: keys.int("replica.lag.time.max.ms").max(1) as u64,
            fetch_max_bytes: keys.u32("replica.fetch.max.bytes"),
            fetch_min_bytes: keys.u32("replica.fetch.min.bytes"),
            fetch_wait_max_ms: keys.u32("replica.fetch.wait.max.ms"),
            fetch_backoff_ms: keys.u32("replica.fetch.backoff.ms"),
            fetch_response_max_bytes: keys.u32("replica.fetch.response.max.bytes"),
            socket_timeout_ms: keys.u32("replica.socket.timeout.ms"),
            socket_receive_buffer_bytes: keys.int("replica.socket.receive.buffer.bytes") as i32,
            num_replica_fetchers: keys.u32("num.replica.fetchers"),
        },
        min_insync_replicas: keys.int("min.insync.replicas") as i32,
        controlled_shutdown_enable: keys.boolean("controlled.shutdown.enable"),
        offsets_topic_replication_factor: keys
            .int("offsets.topic.replication.factor")
            .min(i64::from(i16::MAX)) as i16,
        transaction_state_log_replication_factor: keys
            .int("transaction.state.log.replication.factor")
            .min(i64::from(i16::MAX)) as i16,
        transaction_state_log_min_isr: keys.int("transaction.state.log.min.isr") as i32,
        metadata_log: MetadataLogSettings {
            max_record_bytes_between_snapshots: keys
                .int("metadata.log.max.record.bytes.between.snapshots")
                .max(1) as u64,
            max_snapshot_interval_ms: keys.int("metadata.log.max.snapshot.interval.ms").max(0)
                as u64,
            segment_bytes: keys.u32("metadata.log.segment.bytes"),
            segment_ms: keys.int("metadata.log.segment.ms").max(1) as u64,
            max_retention_bytes: keys.int("metadata.max.retention.bytes"),
            max_retention_ms: keys.int("metadata.max.retention.ms"),
        },
    };
    validate(&config, keys, node_id, listeners, advertised)?;
    Ok(config)
}

/// `inter.broker.listener.name`, or the listener named like
/// `security.inter.broker.protocol` (Kafka allows only one of the two).
fn inter_broker_listener_name(
    keys: &Lookup<'_>,
    map: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let named = keys
        .raw
        .get("inter.broker.listener.name")
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    match named {
        Some(_) if keys.raw.contains_key("security.inter.broker.protocol") => Err(invalid(
            "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.",
        )),
        Some(name) if !map.contains_key(&name) => Err(invalid(format!(
            "Listener with name {name} defined in inter.broker.listener.name not found in listener.security.protocol.map."
        ))),
        Some(name) => Ok(name),
        None => Ok((keys.get)("security.inter.broker.protocol").trim().to_string()),
    }
}

/// The cross-key rules of Kafka's `KafkaConfig.validateValues` for KRaft, plus
/// Rivulet's own (named as such).
fn validate(
    config: &ClusterConfig,
    keys: &Lookup<'_>,
    node_id: i32,
    listeners: &[Listener],
    advertised: &[Listener],
) -> Result<(), ConfigError> {
    let roles = config.process_roles;
    if !roles.broker {
        // Rivulet: every node serves clients until dedicated controllers land.
        return Err(invalid(
            "process.roles must include 'broker': a controller-only node is not supported yet",
        ));
    }
    let voter_ids: BTreeSet<i32> = match &config.quorum {
        QuorumMode::Static(voters) => voters.iter().map(|v| v.id).collect(),
        _ => BTreeSet::new(),
    };
    let configured_quorum = config.quorum != QuorumMode::Embedded;
    if configured_quorum && !config.node_id_configured {
        return Err(invalid("Missing configuration `node.id` which is required when `process.roles` is defined (i.e. when running in KRaft mode)."));
    }
    let names: BTreeSet<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    if names.len() != listeners.len() {
        let all: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        return Err(invalid(format!(
            "Each listener must have a different name, listeners: {}",
            all.join(",")
        )));
    }
    if roles.controller {
        if !voter_ids.is_empty() && !voter_ids.contains(&node_id) {
            return Err(invalid(format!("If process.roles contains the 'controller' role, the node id {node_id} must be included in the set of voters controller.quorum.voters={voter_ids:?}")));
        }
        if configured_quorum {
            if config.controller_listeners.is_empty() {
                return Err(invalid("controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role"));
            }
            if !config
                .controller_listener_names
                .iter()
                .all(|n| names.contains(n.as_str()))
            {
                return Err(invalid("controller.listener.names must only contain values appearing in the 'listeners' configuration when running the KRaft controller role"));
            }
        }
    } else {
        if !configured_quorum {
            return Err(invalid("If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers."));
        }
        if voter_ids.contains(&node_id) {
            return Err(invalid(format!("If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters controller.quorum.voters={voter_ids:?}")));
        }
        if config.controller_listener_names.is_empty() {
            return Err(invalid("controller.listener.names must contain at least one value when running KRaft with just the broker role"));
        }
        if !config.controller_listeners.is_empty() {
            return Err(invalid("controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role"));
        }
        for name in &config.controller_listener_names {
            if !config.security_protocol_map.contains_key(name) {
                return Err(invalid(format!("Controller listener with name {name} defined in controller.listener.names not found in listener.security.protocol.map  (an explicit security mapping for each controller listener is required if listener.security.protocol.map is non-empty, or if there are security protocols other than PLAINTEXT in use)")));
            }
        }
    }
    validate_broker_listeners(config, listeners, advertised)?;
    let replica = &config.replica;
    if replica.fetch_wait_max_ms > replica.socket_timeout_ms {
        return Err(invalid("replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms to prevent unnecessary socket timeouts"));
    }
    if u64::from(replica.fetch_wait_max_ms) > replica.lag_time_max_ms {
        return Err(invalid("replica.fetch.wait.max.ms should always be less than or equal to replica.lag.time.max.ms to prevent frequent changes in ISR"));
    }
    // Rivulet: a session shorter than one heartbeat fences every broker.
    if config.broker_heartbeat_interval_ms >= config.broker_session_timeout_ms {
        return Err(invalid(format!(
            "broker.heartbeat.interval.ms ({}) must be less than broker.session.timeout.ms ({}), or brokers are fenced between two heartbeats",
            config.broker_heartbeat_interval_ms, config.broker_session_timeout_ms
        )));
    }
    // Rivulet: unclean election is not implemented; refusing beats ignoring it.
    if keys.boolean("unclean.leader.election.enable") {
        return Err(invalid("Invalid value true for configuration unclean.leader.election.enable: unclean leader election is not supported yet"));
    }
    Ok(())
}

/// Kafka's rules on the broker listeners: at least one advertised, the
/// inter-broker one among them, and advertised names a subset of `listeners`.
fn validate_broker_listeners(
    config: &ClusterConfig,
    listeners: &[Listener],
    advertised: &[Listener],
) -> Result<(), ConfigError> {
    if advertised.is_empty() {
        return Err(invalid("There must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?"));
    }
    let advertised_names: Vec<&str> = advertised.iter().map(|l| l.name.as_str()).collect();
    if !advertised_names.contains(&config.inter_broker_listener_name.as_str()) {
        return Err(invalid(format!("inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are {}", advertised_names.join(","))));
    }
    let listener_names: Vec<&str> = listeners.iter().map(|l| l.name.as_str()).collect();
    if !advertised_names.iter().all(|n| listener_names.contains(n)) {
        return Err(invalid(format!("advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found {}. The valid options based on the current configuration are {}", advertised_names.join(","), listener_names.join(","))));
    }
    Ok(())
}

#[cfg(test)]
#[path = "cluster_config_tests.rs"]
mod tests;
