use super::*;
use crate::config::BrokerConfig;

fn load(items: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::from_pairs(
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn error(items: &[(&str, &str)]) -> String {
    load(items).unwrap_err().to_string()
}

/// A node of a three-voter combined cluster, with `extra` on top.
fn voter_node(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut items = vec![
        ("node.id", "1"),
        ("process.roles", "broker,controller"),
        (
            "controller.quorum.voters",
            "1@localhost:9093,2@localhost:9095,3@localhost:9097",
        ),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
    ];
    items.extend_from_slice(extra);
    items
}

#[test]
fn defaults_are_kafkas() {
    let config = load(&[]).unwrap();
    let c = &config.cluster;
    assert_eq!(
        c.process_roles,
        ProcessRoles {
            broker: true,
            controller: true
        }
    );
    assert_eq!(c.quorum, QuorumMode::Embedded);
    assert!(!c.node_id_configured);
    assert_eq!(c.controller_listener_names, vec!["CONTROLLER".to_string()]);
    assert!(c.controller_listeners.is_empty());
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    assert_eq!(c.broker_rack, None);
    assert_eq!(
        c.quorum_timeouts,
        QuorumTimeouts {
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            election_backoff_max_ms: 1000,
            request_timeout_ms: 2000,
            retry_backoff_ms: 20,
            append_linger_ms: 25,
        }
    );
    assert_eq!(c.broker_heartbeat_interval_ms, 2000);
    assert_eq!(c.broker_session_timeout_ms, 9000);
    assert_eq!(c.initial_broker_registration_timeout_ms, 60000);
    assert_eq!(
        c.replica,
        ReplicaFetchConfig {
            lag_time_max_ms: 30000,
            fetch_max_bytes: 1_048_576,
            fetch_min_bytes: 1,
            fetch_wait_max_ms: 500,
            fetch_backoff_ms: 1000,
            fetch_response_max_bytes: 10_485_760,
            socket_timeout_ms: 30000,
            socket_receive_buffer_bytes: 65536,
            num_replica_fetchers: 1,
        }
    );
    assert_eq!(c.min_insync_replicas, 1);
    assert!(c.controlled_shutdown_enable);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.transaction_state_log_replication_factor, 3);
    assert_eq!(c.transaction_state_log_min_isr, 2);
    assert_eq!(
        c.metadata_log,
        MetadataLogSettings {
            max_record_bytes_between_snapshots: 20_971_520,
            max_snapshot_interval_ms: 3_600_000,
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            max_retention_bytes: 104_857_600,
            max_retention_ms: 604_800_000,
        }
    );
    let map: Vec<(&str, &str)> = c
        .security_protocol_map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        map,
        vec![
            ("CONTROLLER", "PLAINTEXT"),
            ("PLAINTEXT", "PLAINTEXT"),
            ("SASL_PLAINTEXT", "SASL_PLAINTEXT"),
            ("SASL_SSL", "SASL_SSL"),
            ("SSL", "SSL"),
        ],
        "Kafka's map, plus the controller listener as PLAINTEXT (KRaft, default map)"
    );
    assert!(c.is_voter(1), "the embedded node is its own quorum");
}

#[test]
fn every_cluster_key_is_typed_and_set() {
    let config = load(&[
        ("broker.rack", "rack-a"),
        ("controller.quorum.election.timeout.ms", "1500"),
        ("controller.quorum.fetch.timeout.ms", "800"),
        ("controller.quorum.election.backoff.max.ms", "300"),
        ("controller.quorum.request.timeout.ms", "900"),
        ("controller.quorum.retry.backoff.ms", "5"),
        ("controller.quorum.append.linger.ms", "0"),
        ("broker.heartbeat.interval.ms", "200"),
        ("broker.session.timeout.ms", "2000"),
        ("initial.broker.registration.timeout.ms", "7000"),
        ("replica.lag.time.max.ms", "3000"),
        ("replica.fetch.max.bytes", "1000"),
        ("replica.fetch.min.bytes", "2"),
        ("replica.fetch.wait.max.ms", "100"),
        ("replica.fetch.backoff.ms", "50"),
        ("replica.fetch.response.max.bytes", "5000"),
        ("replica.socket.timeout.ms", "4000"),
        ("replica.socket.receive.buffer.bytes", "-1"),
        ("num.replica.fetchers", "2"),
        ("min.insync.replicas", "2"),
        ("controlled.shutdown.enable", "false"),
        ("offsets.topic.replication.factor", "1"),
        ("transaction.state.log.replication.factor", "1"),
        ("transaction.state.log.min.isr", "1"),
        ("metadata.log.max.record.bytes.between.snapshots", "1024"),
        ("metadata.log.max.snapshot.interval.ms", "0"),
        ("metadata.log.segment.bytes", "4096"),
        ("metadata.log.segment.ms", "1000"),
        ("metadata.max.retention.bytes", "-1"),
        ("metadata.max.retention.ms", "-1"),
    ])
    .unwrap();
    let c = &config.cluster;
    assert_eq!(c.broker_rack.as_deref(), Some("rack-a"));
    assert_eq!(
        c.quorum_timeouts,
        QuorumTimeouts {
            election_timeout_ms: 1500,
            fetch_timeout_ms: 800,
            election_backoff_max_ms: 300,
            request_timeout_ms: 900,
            retry_backoff_ms: 5,
            append_linger_ms: 0,
        }
    );
    assert_eq!(
        (
            c.broker_heartbeat_interval_ms,
            c.broker_session_timeout_ms,
            c.initial_broker_registration_timeout_ms
        ),
        (200, 2000, 7000)
    );
    assert_eq!(
        c.replica,
        ReplicaFetchConfig {
            lag_time_max_ms: 3000,
            fetch_max_bytes: 1000,
            fetch_min_bytes: 2,
            fetch_wait_max_ms: 100,
            fetch_backoff_ms: 50,
            fetch_response_max_bytes: 5000,
            socket_timeout_ms: 4000,
            socket_receive_buffer_bytes: -1,
            num_replica_fetchers: 2,
        }
    );
    assert_eq!(c.min_insync_replicas, 2);
    assert!(!c.controlled_shutdown_enable);
    assert_eq!(
        (
            c.offsets_topic_replication_factor,
            c.transaction_state_log_replication_factor,
            c.transaction_state_log_min_isr
        ),
        (1, 1, 1)
    );
    assert_eq!(
        c.metadata_log,
        MetadataLogSettings {
            max_record_bytes_between_snapshots: 1024,
            max_snapshot_interval_ms: 0,
            segment_bytes: 4096,
            segment_ms: 1000,
            max_retention_bytes: -1,
            max_retention_ms: -1,
        }
    );
}

#[test]
fn voters_parse_with_ipv6_and_names() {
    let voters = parse_voters("1@localhost:9093, 2@[::1]:9094,3@10.0.0.3:9095").unwrap();
    assert_eq!(
        voters,
        vec![
            QuorumVoter {
                id: 1,
                host: "localhost".into(),
                port: 9093
            },
            QuorumVoter {
                id: 2,
                host: "::1".into(),
                port: 9094
            },
            QuorumVoter {
                id: 3,
                host: "10.0.0.3".into(),
                port: 9095
            },
        ]
    );
    assert_eq!(parse_voters("").unwrap(), vec![]);
}

#[test]
fn bad_voters_get_kafkas_messages() {
    let form = "Each entry should be in the form `{id}@{host}:{port}`.";
    for (value, expected) in [
        (
            "1localhost:9093",
            format!("Invalid configuration value for controller.quorum.voters. {form}"),
        ),
        (
            "1@a@b:1",
            format!("Invalid configuration value for controller.quorum.voters. {form}"),
        ),
        (
            "x@localhost:9093",
            "Failed to parse voter ID as an integer from x".to_string(),
        ),
        (
            "1@localhost",
            format!("Failed to parse host name from entry 1@localhost for the configuration controller.quorum.voters. {form}"),
        ),
        (
            "1@localhost:port",
            format!("Failed to parse host port from entry 1@localhost:port for the configuration controller.quorum.voters. {form}"),
        ),
        (
            "1@localhost:99999",
            format!("Failed to parse host port from entry 1@localhost:99999 for the configuration controller.quorum.voters. {form}"),
        ),
        (
            "1@h:1,1@h:2",
            "Duplicate voter id 1 in controller.quorum.voters=1@h:1,1@h:2".to_string(),
        ),
    ] {
        assert_eq!(parse_voters(value).unwrap_err().to_string(), expected, "{value}");
    }
}

#[test]
fn bootstrap_servers_parse_and_select_the_dynamic_quorum() {
    let config = load(&[
        ("node.id", "1"),
        (
            "controller.quorum.bootstrap.servers",
            "localhost:9093,[::1]:9094",
        ),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
    ])
    .unwrap();
    assert_eq!(
        config.cluster.quorum,
        QuorumMode::Dynamic(vec![
            HostPort {
                host: "localhost".into(),
                port: 9093
            },
            HostPort {
                host: "::1".into(),
                port: 9094
            },
        ])
    );
    assert_eq!(
        parse_bootstrap_servers("localhost").unwrap_err().to_string(),
        "Failed to parse host name from localhost for the configuration controller.quorum.bootstrap.servers. Each entry should be in the form \"{host}:{port}\""
    );
}

#[test]
fn a_combined_voter_splits_its_listeners_by_kind() {
    let config = load(&voter_node(&[])).unwrap();
    assert_eq!(
        config.cluster.controller_listeners,
        vec![Listener {
            name: "CONTROLLER".into(),
            host: "127.0.0.1".into(),
            port: 9093
        }]
    );
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "PLAINTEXT");
    assert_eq!(config.advertised_listeners, config.listeners);
    assert!(config.cluster.is_voter(1));
    assert!(!config.cluster.is_voter(4));
    match &config.cluster.quorum {
        QuorumMode::Static(voters) => assert_eq!(voters.len(), 3),
        other => panic!("expected a static quorum, got {other:?}"),
    }
}

#[test]
fn cross_key_rules_get_kafkas_messages() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            voter_node(&[("node.id", "4")]),
            "If process.roles contains the 'controller' role, the node id 4 must be included in the set of voters controller.quorum.voters={1, 2, 3}",
        ),
        (
            voter_node(&[("listeners", "PLAINTEXT://127.0.0.1:9092")]),
            "controller.listener.names must contain at least one value appearing in the 'listeners' configuration when running the KRaft controller role",
        ),
        (
            voter_node(&[("controller.listener.names", "CONTROLLER,OTHER")]),
            "controller.listener.names must only contain values appearing in the 'listeners' configuration when running the KRaft controller role",
        ),
        (
            voter_node(&[("listeners", "CONTROLLER://127.0.0.1:9093")]),
            "There must be at least one broker advertised listener. Perhaps all listeners appear in controller.listener.names?",
        ),
        (
            vec![("node.id", "1"), ("process.roles", "broker")],
            "If using process.roles, either controller.quorum.bootstrap.servers must contain the set of bootstrap controllers or controller.quorum.voters must contain a parseable set of controllers.",
        ),
        (
            vec![
                ("node.id", "2"),
                ("process.roles", "broker"),
                ("controller.quorum.voters", "2@localhost:9093"),
            ],
            "If process.roles contains just the 'broker' role, the node id 2 must not be included in the set of voters controller.quorum.voters={2}",
        ),
        (
            vec![
                ("node.id", "2"),
                ("process.roles", "broker"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ],
            "controller.listener.names must not contain a value appearing in the 'listeners' configuration when running KRaft with just the broker role",
        ),
        (
            vec![
                ("node.id", "2"),
                ("process.roles", "broker"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("controller.listener.names", ""),
            ],
            "controller.listener.names must contain at least one value when running KRaft with just the broker role",
        ),
        (
            vec![
                ("node.id", "2"),
                ("process.roles", "broker"),
                ("controller.quorum.voters", "1@localhost:9093"),
                ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT"),
            ],
            "Controller listener with name CONTROLLER defined in controller.listener.names not found in listener.security.protocol.map  (an explicit security mapping for each controller listener is required if listener.security.protocol.map is non-empty, or if there are security protocols other than PLAINTEXT in use)",
        ),
        (
            voter_node(&[]).into_iter().filter(|(k, _)| *k != "node.id").collect(),
            "Missing configuration `node.id` which is required when `process.roles` is defined (i.e. when running in KRaft mode).",
        ),
        (
            vec![("node.id", "1"), ("broker.id", "2")],
            "You must set `node.id` to the same value as `broker.id`.",
        ),
        (
            vec![("process.roles", "broker,broker")],
            "Duplicate role names found in `process.roles`: [\"broker\", \"broker\"]",
        ),
        (
            vec![("process.roles", "controller")],
            "process.roles must include 'broker': a controller-only node is not supported yet",
        ),
        (
            vec![("inter.broker.listener.name", "CONTROLLER")],
            "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are PLAINTEXT",
        ),
        (
            vec![("inter.broker.listener.name", "REPLICATION")],
            "Listener with name REPLICATION defined in inter.broker.listener.name not found in listener.security.protocol.map.",
        ),
        (
            vec![
                ("inter.broker.listener.name", "PLAINTEXT"),
                ("security.inter.broker.protocol", "PLAINTEXT"),
            ],
            "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.",
        ),
        (
            vec![("advertised.listeners", "OTHER://127.0.0.1:1")],
            "inter.broker.listener.name must be a listener name defined in advertised.listeners. The valid options based on currently configured listeners are OTHER",
        ),
        (
            vec![
                ("advertised.listeners", "OTHER://127.0.0.1:1"),
                ("inter.broker.listener.name", "OTHER"),
                ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"),
            ],
            "advertised.listeners listener names must be equal to or a subset of the ones defined in listeners. Found OTHER. The valid options based on the current configuration are PLAINTEXT",
        ),
        (
            vec![("listeners", "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2")],
            "Each listener must have a different name, listeners: PLAINTEXT,PLAINTEXT",
        ),
        (
            vec![("listeners", "PLAINTEXT://127.0.0.1:1,EXTERNAL://127.0.0.1:2")],
            "No security protocol defined for listener EXTERNAL",
        ),
        (
            vec![("listener.security.protocol.map", "PLAINTEXT:TLS")],
            "Invalid security protocol `TLS` defined in listener.security.protocol.map",
        ),
        (
            vec![("replica.fetch.wait.max.ms", "5000"), ("replica.socket.timeout.ms", "1000")],
            "replica.socket.timeout.ms should always be at least replica.fetch.wait.max.ms to prevent unnecessary socket timeouts",
        ),
        (
            vec![("replica.fetch.wait.max.ms", "5000"), ("replica.lag.time.max.ms", "1000")],
            "replica.fetch.wait.max.ms should always be less than or equal to replica.lag.time.max.ms to prevent frequent changes in ISR",
        ),
        (
            vec![("broker.heartbeat.interval.ms", "9000")],
            "broker.heartbeat.interval.ms (9000) must be less than broker.session.timeout.ms (9000), or brokers are fenced between two heartbeats",
        ),
        (
            vec![("unclean.leader.election.enable", "true")],
            "Invalid value true for configuration unclean.leader.election.enable: unclean leader election is not supported yet",
        ),
        (
            vec![("listeners", "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093")],
            "Invalid value SSL for configuration listeners: security protocol SSL is not supported yet (PLAINTEXT only)",
        ),
    ];
    for (items, expected) in cases {
        assert_eq!(error(&items), expected, "{items:?}");
    }
}

#[test]
fn key_types_are_checked_before_cross_key_rules() {
    for (key, value) in [
        ("broker.session.timeout.ms", "soon"),
        ("controller.quorum.fetch.timeout.ms", "0"),
        ("replica.lag.time.max.ms", "-5"),
        ("controlled.shutdown.enable", "perhaps"),
        ("security.inter.broker.protocol", "TLS"),
    ] {
        let err = error(&[(key, value)]);
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn the_advertised_listener_follows_its_listener_by_name() {
    let config = load(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "advertised.listeners",
            "CONTROLLER://ctl.example:9093,PLAINTEXT://broker.example:19092",
        ),
    ])
    .unwrap();
    assert_eq!(
        config.advertised_listeners,
        vec![Listener {
            name: "PLAINTEXT".into(),
            host: "broker.example".into(),
            port: 19092
        }]
    );
}
