//! Flags users bring from Kafka's scripts, kcat and rpk that `rivulet` does not
//! take, each with what to use instead. Consulted when argument parsing fails on
//! an unknown argument, so the error points at our way of doing the same thing.

/// `(flag, where it comes from, what to use instead)`.
const POINTERS: &[(&str, &str, &str)] = &[
    ("--create", "kafka-topics.sh", "`rivulet topics create TOPIC`"),
    ("--list", "Kafka's scripts", "`rivulet topics list` or `rivulet groups list`"),
    (
        "--describe",
        "Kafka's scripts",
        "`rivulet topics describe TOPIC`, `rivulet groups describe GROUP` or `rivulet configs describe --topic TOPIC`",
    ),
    ("--alter", "Kafka's scripts", "`rivulet topics alter TOPIC` or `rivulet configs alter`"),
    ("--delete", "Kafka's scripts", "`rivulet topics delete TOPIC` or `rivulet groups delete GROUP`"),
    ("--reset-offsets", "kafka-consumer-groups.sh", "`rivulet groups reset-offsets GROUP --topic TOPIC --to-earliest`"),
    ("--delete-offsets", "kafka-consumer-groups.sh", "`rivulet groups delete-offsets GROUP --topic TOPIC`"),
    ("--entity-type", "kafka-configs.sh", "--topic NAME or --broker ID"),
    ("--entity-name", "kafka-configs.sh", "--topic NAME or --broker ID"),
    ("--entity-default", "kafka-configs.sh", "--broker ID (cluster-wide defaults are not supported yet)"),
    ("--zookeeper", "old Kafka scripts", "--bootstrap-server (there is no ZooKeeper: the metadata is in the brokers)"),
    ("--broker-list", "old kafka-console-producer.sh", "--bootstrap-server"),
    ("--brokers", "rpk", "--bootstrap-server (-b), or $RIVULET_BROKERS"),
    ("--formatter", "kafka-console-consumer.sh", "-f FORMAT (kcat's %t %p %o %k %s tokens), --json, or --property print.key=true ..."),
    ("--whitelist", "kafka-console-consumer.sh", "--topic TOPIC (consume reads one topic)"),
    ("--include", "kafka-console-consumer.sh", "--topic TOPIC (consume reads one topic)"),
    ("--line-reader", "kafka-console-producer.sh", "--property parse.key=true ... for lines, or --json for JSON objects"),
    ("--sync", "kafka-console-producer.sh", "--acks all -X linger.ms=0 (produce waits for every acknowledgement before it exits)"),
    ("--num", "rpk", "--max-messages (-c)"),
    ("-n", "rpk", "--max-messages (-c)"),
    ("-C", "kcat", "`rivulet consume TOPIC`"),
    ("-P", "kcat", "`rivulet produce TOPIC`"),
    ("-L", "kcat", "`rivulet cluster describe` and `rivulet topics describe`"),
    ("-Q", "kcat", "`rivulet consume TOPIC -o s@TIMESTAMP`"),
    ("-G", "kcat", "`rivulet consume --group GROUP TOPIC`"),
    ("-J", "kcat", "--json"),
    ("-k", "kcat", "-K SEP (key and value on each line) or --property parse.key=true"),
    ("-D", "kcat", "one record per line, or --json for values with newlines"),
];

/// What to use instead of `flag` (given with or without its `=value`), if it is
/// one users bring from another tool.
pub fn pointer(flag: &str) -> Option<String> {
    let name = flag.split_once('=').map_or(flag, |(name, _)| name);
    POINTERS
        .iter()
        .find(|(known, _, _)| *known == name)
        .map(|(known, tool, instead)| {
            format!("{known} (from {tool}) is not a rivulet flag; use {instead}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_flags_point_to_ours() {
        assert_eq!(
            pointer("--entity-type=topics").as_deref(),
            Some("--entity-type (from kafka-configs.sh) is not a rivulet flag; use --topic NAME or --broker ID")
        );
        assert_eq!(pointer("--no-such-flag"), None);
    }
}
