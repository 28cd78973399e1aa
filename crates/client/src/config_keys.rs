//! The property names Kafka's Java clients define (`CommonClientConfigs`,
//! `ProducerConfig`, `ConsumerConfig`, `AdminClientConfig`), so a tool can refuse a
//! misspelt key with "did you mean" instead of ignoring it, as kcat refuses an
//! unknown `-X` property. The client itself still ignores keys it does not use, as
//! Kafka's clients log and ignore them.

/// Keys every client takes.
pub const COMMON_KEYS: &[&str] = &[
    "bootstrap.servers",
    "client.dns.lookup",
    "client.id",
    "client.rack",
    "connections.max.idle.ms",
    "default.api.timeout.ms",
    "enable.metrics.push",
    "metadata.max.age.ms",
    "metadata.recovery.strategy",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "receive.buffer.bytes",
    "reconnect.backoff.max.ms",
    "reconnect.backoff.ms",
    "request.timeout.ms",
    "retries",
    "retry.backoff.max.ms",
    "retry.backoff.ms",
    "security.protocol",
    "send.buffer.bytes",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    // Rivulet's client: the largest response frame accepted.
    "max.response.size",
];

/// Keys only the producer takes.
pub const PRODUCER_KEYS: &[&str] = &[
    "acks",
    "batch.size",
    "buffer.memory",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delivery.timeout.ms",
    "enable.idempotence",
    "interceptor.classes",
    "key.serializer",
    "linger.ms",
    "max.block.ms",
    "max.in.flight.requests.per.connection",
    "max.request.size",
    "metadata.max.idle.ms",
    "partitioner.adaptive.partitioning.enable",
    "partitioner.availability.timeout.ms",
    "partitioner.class",
    "partitioner.ignore.keys",
    "transaction.timeout.ms",
    "transactional.id",
    "value.serializer",
];

/// Keys only the consumer takes.
pub const CONSUMER_KEYS: &[&str] = &[
    "allow.auto.create.topics",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "check.crcs",
    "enable.auto.commit",
    "exclude.internal.topics",
    "fetch.max.bytes",
    "fetch.max.wait.ms",
    "fetch.min.bytes",
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "heartbeat.interval.ms",
    "interceptor.classes",
    "isolation.level",
    "key.deserializer",
    "max.partition.fetch.bytes",
    "max.poll.interval.ms",
    "max.poll.records",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "value.deserializer",
];

/// Security settings are families of keys (`ssl.truststore.location`,
/// `sasl.jaas.config`, ...): accepted by prefix.
const SECURITY_PREFIXES: &[&str] = &["ssl.", "sasl."];

/// librdkafka's names (what kcat's `-X` takes) for keys Java names differently.
const LIBRDKAFKA_NAMES: &[(&str, &str)] = &[
    ("queue.buffering.max.ms", "linger.ms"),
    ("queue.buffering.max.kbytes", "buffer.memory"),
    ("batch.num.messages", "batch.size"),
    ("compression.codec", "compression.type"),
    ("message.timeout.ms", "delivery.timeout.ms"),
    ("request.required.acks", "acks"),
    ("message.max.bytes", "max.request.size"),
    ("fetch.wait.max.ms", "fetch.max.wait.ms"),
    ("fetch.error.backoff.ms", "retry.backoff.ms"),
    ("metadata.broker.list", "bootstrap.servers"),
    ("topic.metadata.refresh.interval.ms", "metadata.max.age.ms"),
    ("socket.timeout.ms", "request.timeout.ms"),
];

/// Which client a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Producer,
    Consumer,
    Admin,
}

impl ClientKind {
    fn name(self) -> &'static str {
        match self {
            ClientKind::Producer => "producer",
            ClientKind::Consumer => "consumer",
            ClientKind::Admin => "admin client",
        }
    }

    fn own_keys(self) -> &'static [&'static str] {
        match self {
            ClientKind::Producer => PRODUCER_KEYS,
            ClientKind::Consumer => CONSUMER_KEYS,
            ClientKind::Admin => &[],
        }
    }

    /// Whether `key` is a setting of this kind of client.
    pub fn knows(self, key: &str) -> bool {
        COMMON_KEYS.contains(&key)
            || self.own_keys().contains(&key)
            || SECURITY_PREFIXES.iter().any(|p| key.starts_with(p))
    }
}

/// Why `key` is not a setting of `kind`, with what to use instead; `None` when it is.
pub fn check_key(kind: ClientKind, key: &str) -> Option<String> {
    if kind.knows(key) {
        return None;
    }
    let what = kind.name();
    if let Some((_, java)) = LIBRDKAFKA_NAMES.iter().find(|(name, _)| *name == key) {
        return Some(format!(
            "{key} is librdkafka's name; the {what} config is {java}"
        ));
    }
    let other = [
        ClientKind::Producer,
        ClientKind::Consumer,
        ClientKind::Admin,
    ]
    .into_iter()
    .find(|k| *k != kind && k.knows(key));
    if let Some(other) = other {
        return Some(format!(
            "{key} is a {} config, not a {what} config",
            other.name()
        ));
    }
    let candidates = COMMON_KEYS.iter().chain(kind.own_keys());
    match did_you_mean(key, candidates.copied()) {
        Some(near) => Some(format!(
            "unknown {what} config {key} (did you mean {near}?)"
        )),
        None => Some(format!("unknown {what} config {key}")),
    }
}

/// The candidate nearest to `word` by edit distance, when it is near enough to be
/// a typo (at most a third of the word's length, and at least one edit allowed).
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap of
/// two neighbours as one edit (optimal string alignment), in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j].
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_nearest_key() {
        assert_eq!(
            check_key(ClientKind::Producer, "lingerms").as_deref(),
            Some("unknown producer config lingerms (did you mean linger.ms?)")
        );
        assert_eq!(check_key(ClientKind::Producer, "linger.ms"), None);
        assert_eq!(
            check_key(ClientKind::Consumer, "ssl.truststore.location"),
            None
        );
    }

    #[test]
    fn keys_of_the_other_client_and_librdkafka_names_say_so() {
        assert_eq!(
            check_key(ClientKind::Consumer, "linger.ms").as_deref(),
            Some("linger.ms is a producer config, not a consumer config")
        );
        assert_eq!(
            check_key(ClientKind::Consumer, "fetch.wait.max.ms").as_deref(),
            Some(
                "fetch.wait.max.ms is librdkafka's name; the consumer config is fetch.max.wait.ms"
            )
        );
        assert_eq!(
            check_key(ClientKind::Producer, "zzz").as_deref(),
            Some("unknown producer config zzz")
        );
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("linger.ms", "linger.ms"), 0);
        assert_eq!(edit_distance("lingerms", "linger.ms"), 1);
        assert_eq!(edit_distance("acsk", "acks"), 1);
        assert_eq!(edit_distance("abc", "xyz"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
