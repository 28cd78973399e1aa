//! The `rivulet` binary's operator commands, run as an operator would: a broker
//! started with `rivulet serve`, then each command with `--bootstrap-server`,
//! checking its exact output and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

struct Broker {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new(BIN)
        .args(["serve", "--override", "node.id=1"])
        .args(["--override", &format!("listeners=PLAINTEXT://{address}")])
        .args(["--override", &format!("log.dirs={}", dir.path().display())])
        .args([
            "--override",
            "group.initial.rebalance.delay.ms=0",
            "--override",
            "offsets.topic.num.partitions=2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        child,
        address,
        _dir: dir,
    }
}

fn rivulet(broker: &Broker, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--bootstrap-server", &broker.address])
        .env_remove("RIVULET_BROKERS")
        .env_remove("RIVULET_PROFILE")
        .env("XDG_CONFIG_HOME", "/nonexistent-rivulet-test-config")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let output = rivulet(broker, args, stdin);
    assert!(
        output.status.success(),
        "rivulet {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn topics_create_list_describe_alter_delete() {
    let broker = start_broker();
    assert_eq!(
        ok(
            &broker,
            &[
                "topics",
                "create",
                "orders",
                "-p",
                "3",
                "--config",
                "retention.ms=3600000"
            ],
            ""
        ),
        "Created topic orders.\n"
    );
    ok(&broker, &["topics", "create", "audit", "-p", "1"], "");
    assert_eq!(ok(&broker, &["topics", "list"], ""), "audit\norders\n");
    let described = ok(&broker, &["topics", "describe", "orders"], "");
    assert!(
        described.starts_with("Topic: orders\tTopicId: "),
        "{described}"
    );
    assert!(described.contains("PartitionCount: 3"), "{described}");
    assert_eq!(
        described
            .lines()
            .filter(|l| l.starts_with("\tTopic: orders\tPartition: "))
            .count(),
        3,
        "{described}"
    );

    let again = rivulet(&broker, &["topics", "create", "orders", "-p", "3"], "");
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("TOPIC_ALREADY_EXISTS"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    ok(
        &broker,
        &["topics", "create", "orders", "--if-not-exists"],
        "",
    );

    assert_eq!(
        ok(
            &broker,
            &["topics", "alter", "orders", "--partitions", "4"],
            ""
        ),
        "Topic orders now has 4 partitions.\n"
    );
    assert!(ok(&broker, &["topics", "describe", "orders"], "").contains("PartitionCount: 4"));
    let configs = ok(&broker, &["configs", "describe", "--topic", "orders"], "");
    assert!(
        configs.contains("retention.ms") && configs.contains("3600000"),
        "{configs}"
    );
    ok(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "orders",
            "--add-config",
            "retention.ms=1000",
        ],
        "",
    );
    assert!(ok(&broker, &["configs", "describe", "--topic", "orders"], "").contains("1000"));

    assert_eq!(
        ok(&broker, &["topics", "delete", "audit"], ""),
        "Deleted topic audit.\n"
    );
    let missing = rivulet(&broker, &["topics", "describe", "audit"], "");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"));
}

#[test]
fn produce_lines_and_json_then_consume_with_formats() {
    let broker = start_broker();
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    ok(
        &broker,
        &["produce", "t", "-K", ":", "--header", "src=test"],
        "k1:hello\nk2:world\nnokey\n",
    );
    ok(
        &broker,
        &["produce", "t", "--json"],
        "{\"key\":\"j\",\"value\":{\"n\":1},\"headers\":{\"h\":\"v\"}}\n{\"value\":null}\n",
    );
    let formatted = ok(
        &broker,
        &[
            "consume",
            "t",
            "--offset",
            "beginning",
            "-e",
            "-f",
            "%t/%p@%o %k=%s [%h] %S\\n",
        ],
        "",
    );
    assert_eq!(
        formatted,
        "t/0@0 k1=hello [src=test] 5\nt/0@1 k2=world [src=test] 5\nt/0@2 =nokey [src=test] 5\nt/0@3 j={\"n\":1} [h=v] 7\nt/0@4 = [] -1\n"
    );
    let json = ok(
        &broker,
        &["consume", "t", "--offset", "3", "-e", "--json"],
        "",
    );
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["key"], "j");
    assert_eq!(first["offset"], 3);
    assert_eq!(first["headers"]["h"], "v");
    assert_eq!(
        ok(
            &broker,
            &[
                "consume",
                "t",
                "--offset",
                "beginning",
                "--max-messages",
                "2"
            ],
            ""
        ),
        "hello\nworld\n"
    );

    let partitioned = rivulet(&broker, &["produce", "t", "--partition", "7"], "x\n");
    assert_eq!(partitioned.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&partitioned.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"));
    let missing = rivulet(&broker, &["consume", "nope", "-e"], "");
    assert_eq!(
        missing.status.code(),
        Some(1),
        "consuming a missing topic fails"
    );
}

#[test]
fn groups_describe_lag_reset_and_delete() {
    let broker = start_broker();
    ok(&broker, &["topics", "create", "g", "-p", "2"], "");
    ok(&broker, &["produce", "g", "--partition", "0"], "a\nb\nc\n");
    ok(&broker, &["produce", "g", "--partition", "1"], "d\n");
    let read = ok(
        &broker,
        &[
            "consume",
            "g",
            "--group",
            "readers",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        "",
    );
    assert_eq!(read.lines().count(), 2);
    assert!(ok(&broker, &["groups", "list"], "").contains("readers"));
    let described = ok(&broker, &["groups", "describe", "readers"], "");
    let total_lag: i64 = described
        .lines()
        .filter(|l| l.starts_with("readers "))
        .map(|l| l.split_whitespace().nth(5).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total_lag, 2, "4 records, 2 read and committed: {described}");

    let plan = ok(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "readers",
            "--topic",
            "g",
            "--to-earliest",
        ],
        "",
    );
    assert!(plan.contains("NEW-OFFSET"), "{plan}");
    ok(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "readers",
            "--topic",
            "g",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    let described = ok(&broker, &["groups", "describe", "readers"], "");
    assert!(
        described
            .lines()
            .filter(|l| l.starts_with("readers "))
            .all(|l| l.split_whitespace().nth(3) == Some("0")),
        "{described}"
    );
    ok(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "readers",
            "--topic",
            "g:0",
            "--shift-by",
            "2",
            "--execute",
        ],
        "",
    );
    let after_shift = ok(
        &broker,
        &[
            "consume",
            "g",
            "--group",
            "readers",
            "--max-messages",
            "2",
            "--timeout-ms",
            "5000",
        ],
        "",
    );
    let mut lines: Vec<&str> = after_shift.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec!["c", "d"],
        "partition 0 resumes at offset 2, partition 1 at 0"
    );
    ok(
        &broker,
        &["groups", "delete-offsets", "readers", "--topic", "g:1"],
        "",
    );
    assert_eq!(
        ok(&broker, &["groups", "delete", "readers"], ""),
        "Deleted group readers.\n"
    );
    let gone = rivulet(&broker, &["groups", "delete", "readers"], "");
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("GROUP_ID_NOT_FOUND"));
}

#[test]
fn cluster_describe_perf_and_connection_errors() {
    let broker = start_broker();
    let cluster = ok(&broker, &["cluster", "describe"], "");
    assert!(cluster.starts_with("Cluster ID: "), "{cluster}");
    let port = broker.address.rsplit(':').next().unwrap();
    assert!(
        cluster
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "127.0.0.1", port, "-"]),
        "{cluster}"
    );
    ok(&broker, &["topics", "create", "perf", "-p", "1"], "");
    let perf = ok(
        &broker,
        &[
            "perf",
            "produce",
            "--topic",
            "perf",
            "--num-records",
            "2000",
            "--record-size",
            "100",
        ],
        "",
    );
    assert!(perf.starts_with("2000 records sent, "), "{perf}");
    assert!(perf.contains("ms 99.9th."), "{perf}");
    let consumed = ok(
        &broker,
        &["perf", "consume", "--topic", "perf", "--messages", "2000"],
        "",
    );
    assert!(
        consumed.lines().nth(1).unwrap().contains(", 2000, "),
        "{consumed}"
    );

    let output = Command::new(BIN)
        .args(["topics", "list", "--bootstrap-server", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to 127.0.0.1:1"), "{stderr}");
    assert!(
        stderr.contains("hint: check --bootstrap-server"),
        "{stderr}"
    );
}

#[test]
fn command_config_files_are_read() {
    let broker = start_broker();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.properties");
    std::fs::write(
        &path,
        "# operator settings\nclient.id=ops\nrequest.timeout.ms=nonsense\n",
    )
    .unwrap();
    let output = rivulet(
        &broker,
        &["topics", "list", "--command-config", path.to_str().unwrap()],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("request.timeout.ms"),
        "a bad value names its key"
    );
    std::fs::write(&path, "client.id=ops\nrequest.timeout.ms=5000\n").unwrap();
    ok(
        &broker,
        &["topics", "list", "--command-config", path.to_str().unwrap()],
        "",
    );
}
