//! The first hour of a new user (issue 18), each surprise as a test against a real
//! broker: the flags Kafka's scripts, kcat and rpk users type work or are refused
//! with a pointer to ours, long-running commands stop cleanly on a signal, and
//! every error says what went wrong and what to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn consuming_an_unknown_topic_fails_within_its_timeout() {
    let broker = start_broker(&[]);
    for args in [
        vec!["consume", "nosuch", "-e", "--timeout-ms", "1500"],
        vec!["consume", "nosuch", "--group", "g", "--timeout-ms", "1500"],
        vec!["consume", "nosuch"],
    ] {
        let started = Instant::now();
        let stderr = fails(&broker, &args, 1);
        let took = started.elapsed();
        assert!(
            stderr.starts_with("rivulet: UNKNOWN_TOPIC_OR_PARTITION (3) (nosuch)"),
            "{args:?}: {stderr}"
        );
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    // The topic was not created by asking.
    assert_eq!(ok(&broker, &["topics", "list"], ""), "");
}

/// Ctrl-C (or SIGTERM) on `consume --group`: the offsets of what was printed are
/// committed, the member leaves, Kafka's "Processed a total" line is printed, and
/// the next consumer of the group gets the partition at once.
fn stop_a_group_consumer(signal_name: &str, exit_code: i32) {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "orders", "-p", "1"], "");
    ok(&broker, &["produce", "orders"], "a\nb\nc\n");
    let mut first = command(&[
        "consume",
        "orders",
        "--group",
        "billing",
        "--from-beginning",
        "-b",
        &broker.address,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = collect(first.stdout.take().unwrap());
    let stderr = collect(first.stderr.take().unwrap());
    wait_for(&stdout, Duration::from_secs(20), |out| {
        out.lines().count() == 3
    });
    signal(&first, signal_name);
    let status = wait_exit(&mut first, Duration::from_secs(10));
    assert_eq!(status.code(), Some(exit_code));
    let err = wait_for(&stderr, Duration::from_secs(5), |e| e.contains("Processed"));
    assert_eq!(err, "Processed a total of 3 messages\n");
    assert_eq!(stdout.lock().unwrap().as_str(), "a\nb\nc\n");

    // Left and committed: the group has no member and its offset is 3.
    let described = ok(&broker, &["groups", "describe", "billing"], "");
    assert!(
        described.starts_with("Group billing is Empty "),
        "{described}"
    );
    let row: Vec<&str> = described
        .lines()
        .find(|l| l.starts_with("billing "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[..6], ["billing", "orders", "0", "3", "3", "0"]);

    // The next member joins at once (no session to wait out) and resumes after c.
    ok(&broker, &["produce", "orders"], "d\n");
    let started = Instant::now();
    let next = ok(
        &broker,
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--max-messages",
            "1",
        ],
        "",
    );
    let took = started.elapsed();
    assert_eq!(next, "d\n");
    assert!(
        took < Duration::from_secs(1),
        "the next consumer took {took:?}"
    );
}

#[test]
fn sigint_on_a_group_consumer_commits_leaves_and_the_next_joins_at_once() {
    stop_a_group_consumer("INT", 130);
}

#[test]
fn sigterm_on_a_group_consumer_stops_it_the_same_way() {
    stop_a_group_consumer("TERM", 143);
}

#[test]
fn sigint_on_produce_sends_what_was_read() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    let mut producer = command(&["produce", "t", "-b", &broker.address])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = producer.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"one\ntwo\n").unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    // stdin stays open, as at a terminal; wait until both lines are in the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = ok(&broker, &["consume", "t", "-o", "beginning", "-e"], "");
        if read == "one\ntwo\n" {
            break;
        }
        assert!(Instant::now() < deadline, "not produced: {read:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&producer, "INT");
    assert_eq!(
        wait_exit(&mut producer, Duration::from_secs(10)).code(),
        Some(130)
    );
    drop(stdin);
}

#[test]
fn console_properties_shape_what_produce_writes_and_consume_prints() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    ok(
        &broker,
        &[
            "produce",
            "--topic",
            "t",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--property",
            "null.marker=NULL",
        ],
        "k1:v1\nk2:NULL\nNULL:v3\n",
    );
    ok(
        &broker,
        &[
            "produce",
            "t",
            "--reader-property", // Kafka 4.1's name (KIP-1147)
            "parse.headers=true",
            "--property",
            "parse.key=true",
        ],
        "h1:x,h2:y\tk4\tv4\n",
    );
    let printed = ok(
        &broker,
        &[
            "consume",
            "t",
            "-o",
            "beginning",
            "-e",
            "--property",
            "print.key=true",
            "--formatter-property", // Kafka 4.1's name (KIP-1147)
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.headers=true",
            "--property",
            "null.literal=<null>",
            "--property",
            "key.separator= | ",
        ],
        "",
    );
    assert_eq!(
        lines(&printed),
        [
            "Partition:0 | Offset:0 | NO_HEADERS | k1 | v1",
            "Partition:0 | Offset:1 | NO_HEADERS | k2 | <null>",
            "Partition:0 | Offset:2 | NO_HEADERS | <null> | v3",
            "Partition:0 | Offset:3 | h1:x,h2:y | k4 | v4",
        ]
    );
    let timestamps = ok(
        &broker,
        &[
            "consume",
            "t",
            "-o",
            "-1",
            "-e",
            "--property",
            "print.timestamp=true",
            "--property",
            "print.value=false",
        ],
        "",
    );
    assert!(
        timestamps.starts_with("CreateTime:") && timestamps.lines().count() == 1,
        "{timestamps}"
    );
    // Kafka's console producer refuses a line without the separator.
    let stderr = String::from_utf8_lossy(
        &rivulet(
            &broker,
            &["produce", "t", "--property", "parse.key=true"],
            "no-tab-here\n",
        )
        .stderr,
    )
    .into_owned();
    assert!(
        stderr.contains("no key separator found on line number 1: 'no-tab-here'"),
        "{stderr}"
    );
}

#[test]
fn unknown_console_and_client_properties_are_refused_with_what_to_use() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    for (args, expected) in [
        (
            vec!["produce", "t", "-X", "lingerms=5"],
            "rivulet: -X lingerms=5: unknown producer config lingerms (did you mean linger.ms?)",
        ),
        (
            vec!["consume", "t", "-e", "-X", "linger.ms=5"],
            "rivulet: -X linger.ms=5: linger.ms is a producer config, not a consumer config",
        ),
        (
            vec!["consume", "t", "-e", "-X", "fetch.wait.max.ms=5"],
            "rivulet: -X fetch.wait.max.ms=5: fetch.wait.max.ms is librdkafka's name; the consumer config is fetch.max.wait.ms",
        ),
        (
            vec!["produce", "t", "--producer-property", "acsk=1"],
            "rivulet: --producer-property acsk=1: unknown producer config acsk (did you mean acks?)",
        ),
        (
            vec!["perf", "produce", "--topic", "t", "--num-records", "1", "--record-size", "1", "--producer-props", "lingerms=5"],
            "rivulet: --producer-props lingerms=5: unknown producer config lingerms (did you mean linger.ms?)",
        ),
        (
            vec!["consume", "t", "-e", "--property", "max.poll.records=5"],
            "rivulet: --property max.poll.records: a consumer config, not an output property; use -X max.poll.records=... (or --consumer-property)",
        ),
        (
            vec!["consume", "t", "-e", "--property", "print.kye=true"],
            "rivulet: --property print.kye: unknown (did you mean print.key?)",
        ),
        (
            vec!["produce", "t", "--property", "linger.ms=5"],
            "rivulet: --property linger.ms: a producer config, not a line property; use -X linger.ms=... (or --producer-property)",
        ),
        (
            vec!["produce", "t", "--property", "null.literal=x"],
            "rivulet: --property null.literal: that is the console consumer's; the producer's is null.marker",
        ),
    ] {
        let stderr = fails(&broker, &args, 2);
        assert_eq!(stderr.trim_end(), expected, "{args:?}");
    }
    ok(
        &broker,
        &[
            "produce",
            "t",
            "-X",
            "linger.ms=5",
            "--producer-property",
            "acks=1",
            "--command-property", // Kafka 4.1's name (KIP-1147)
            "batch.size=1000",
        ],
        "x\n",
    );
}

#[test]
fn flags_from_kafka_kcat_and_rpk_are_accepted() {
    let broker = start_broker(&[]);
    // -b before the subcommand, as kcat and rpk users type it.
    let created = run_with_stdin(
        command(&[
            "-b",
            &broker.address,
            "topics",
            "create",
            "--topic",
            "t",
            "--partitions",
            "2",
        ]),
        "",
    );
    assert!(created.status.success(), "{created:?}");
    let dry = ok(&broker, &["topics", "create", "u", "--dry-run"], "");
    assert_eq!(dry, "Topic u can be created (dry run: nothing changed).\n");
    assert_eq!(ok(&broker, &["topics", "list"], ""), "t\n");
    ok(&broker, &["produce", "--topic", "t", "-p", "0"], "a\nb\n");
    ok(&broker, &["produce", "-t", "t", "-p", "1"], "c\n");
    // kcat's -o -1: the last record of each partition.
    let mut last = lines(&ok(
        &broker,
        &["consume", "--topic", "t", "-o", "-1", "-e"],
        "",
    ))
    .join(",");
    if last == "c,b" {
        last = "b,c".into();
    }
    assert_eq!(last, "b,c");
    assert_eq!(
        ok(&broker, &["consume", "t", "-p", "0", "-o", "-5", "-e"], ""),
        "a\nb\n",
        "-N past the beginning starts at the beginning"
    );
    // kafka-configs.sh's bracketed list.
    ok(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "t",
            "--add-config",
            "cleanup.policy=[compact,delete],retention.ms=60000",
        ],
        "",
    );
    let described = ok(&broker, &["topics", "describe", "t"], "");
    assert!(
        described.contains("\tConfigs: cleanup.policy=compact,delete,retention.ms=60000\n"),
        "{described}"
    );
    // kafka-consumer-groups.sh's --dry-run: the plan, nothing applied.
    ok(
        &broker,
        &["consume", "t", "-g", "g", "--from-beginning", "-c", "3"],
        "",
    );
    let plan = ok(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--dry-run",
        ],
        "",
    );
    assert_eq!(
        lines(&plan),
        [
            "GROUP  TOPIC  PARTITION  NEW-OFFSET",
            "g      t      0          0",
            "g      t      1          0"
        ]
    );
    let described = ok(&broker, &["groups", "describe", "g"], "");
    assert!(
        !described
            .lines()
            .any(|l| l.starts_with("g ") && l.split_whitespace().nth(3) == Some("0")),
        "a dry run changes nothing: {described}"
    );
}

#[test]
fn flags_of_other_tools_point_to_ours() {
    for (args, expected) in [
        (
            vec!["topics", "--describe"],
            "use `rivulet topics describe TOPIC`",
        ),
        (
            vec!["topics", "create", "--create", "t"],
            "use `rivulet topics create TOPIC`",
        ),
        (
            vec!["configs", "alter", "--entity-type", "topics"],
            "use --topic NAME or --broker ID",
        ),
        (vec!["consume", "t", "--formatter", "x"], "use -f FORMAT"),
        (vec!["consume", "-C", "t"], "use `rivulet consume TOPIC`"),
        (
            vec!["consume", "t", "-G", "g"],
            "use `rivulet consume --group GROUP TOPIC`",
        ),
        (vec!["consume", "t", "-J"], "use --json"),
        (vec!["consume", "t", "-n", "5"], "use --max-messages (-c)"),
        (vec!["produce", "t", "--sync"], "use --acks all"),
        (
            vec!["topics", "list", "--zookeeper", "z:2181"],
            "use --bootstrap-server",
        ),
        (
            vec!["topics", "list", "--brokers", "b:9092"],
            "use --bootstrap-server (-b), or $RIVULET_BROKERS",
        ),
        (
            vec!["consume", "t", "--offset", "stored"],
            "give --group GROUP instead",
        ),
        (
            vec!["serve", "-b", "127.0.0.1:9092"],
            "set its address with --override listeners=",
        ),
    ] {
        let output = command(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn errors_say_what_went_wrong_and_what_to_do() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    ok(&broker, &["topics", "create", "gone", "-p", "1"], "");
    ok(&broker, &["produce", "t"], "a\n");
    ok(&broker, &["produce", "gone"], "z\n");

    // A partition past the topic's count.
    let stderr =
        String::from_utf8_lossy(&rivulet(&broker, &["produce", "t", "-p", "3"], "x\n").stderr)
            .into_owned();
    assert!(
        stderr.starts_with("rivulet: UNKNOWN_TOPIC_OR_PARTITION (3) (t-3): the topic has 1 partition (partition 0)\n"),
        "{stderr}"
    );
    let stderr = fails(&broker, &["consume", "t", "-p", "3", "-e"], 1);
    assert!(
        stderr.starts_with("rivulet: UNKNOWN_TOPIC_OR_PARTITION (3) (t-3): the topic has 1 partition (partition 0)\n"),
        "{stderr}"
    );

    // A config that cannot change while the broker runs.
    let stderr = fails(
        &broker,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--add-config",
            "log.dirs=/x",
        ],
        1,
    );
    assert!(
        stderr.contains("Cannot update these configs dynamically: log.dirs (read at start-up: set them in server.properties and restart the broker)"),
        "{stderr}"
    );
    assert!(!stderr.contains("client bug"), "{stderr}");

    // A misspelt topic config.
    let stderr = fails(
        &broker,
        &["topics", "create", "u", "--config", "retnetion.ms=5"],
        1,
    );
    assert!(
        stderr.ends_with("  hint: did you mean retention.ms?\n"),
        "{stderr}"
    );
    let stderr = fails(
        &broker,
        &[
            "configs",
            "alter",
            "--topic",
            "t",
            "--add-config",
            "segmnet.bytes=5",
        ],
        1,
    );
    assert!(
        stderr.ends_with("  hint: did you mean segment.bytes?\n"),
        "{stderr}"
    );

    // Resetting the offsets of a group with an active member.
    ok(
        &broker,
        &["consume", "gone", "-g", "g", "--from-beginning", "-c", "1"],
        "",
    );
    let mut member = command(&[
        "consume",
        "t",
        "-g",
        "g",
        "--from-beginning",
        "-b",
        &broker.address,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let printed = collect(member.stdout.take().unwrap());
    wait_for(&printed, Duration::from_secs(20), |out| out == "a\n");
    let stderr = fails(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
        ],
        1,
    );
    assert_eq!(
        stderr,
        "rivulet: Assignments can only be reset if the group 'g' is inactive, but the current state is Stable.\n  hint: stop the group's consumers first (`rivulet groups describe g` lists them), then reset\n"
    );
    signal(&member, "INT");
    wait_exit(&mut member, Duration::from_secs(10));

    // --to-offset past the end is clamped, and says so.
    let output = rivulet(
        &broker,
        &[
            "groups",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-offset",
            "100",
        ],
        "",
    );
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("g      t      0          1"));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(
            "rivulet: warning: new offset (100) is higher than latest offset for topic partition t-0. Value will be set to 1"
        ),
        "{output:?}"
    );

    // delete-offsets of a partition that does not exist.
    let output = rivulet(
        &broker,
        &["groups", "delete-offsets", "g", "--topic", "t:5"],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        lines(&String::from_utf8_lossy(&output.stdout)),
        [
            "TOPIC  PARTITION  STATUS",
            "t      5          Error: UNKNOWN_TOPIC_OR_PARTITION (3) (t-5 in group g)"
        ]
    );

    // describe once one of the group's topics is deleted.
    ok(&broker, &["topics", "delete", "gone"], "");
    let described = ok(&broker, &["groups", "describe", "g"], "");
    let rows: Vec<Vec<&str>> = described
        .lines()
        .filter(|l| l.starts_with("g "))
        .map(|l| l.split_whitespace().take(6).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["g", "gone", "0", "1", "-", "-"],
            vec!["g", "t", "0", "1", "1", "0"]
        ]
    );
}

#[test]
fn version_and_shell_completions() {
    let output = command(&["version"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("rivulet {}\n", env!("CARGO_PKG_VERSION"))
    );
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef rivulet"),
        ("fish", "complete -c rivulet"),
    ] {
        let output = command(&["completion", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        assert!(
            script.contains("reset-offsets"),
            "{shell} completes subcommands"
        );
    }
}

#[test]
fn the_banner_names_version_data_dir_listeners_and_the_previous_shutdown() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let port = free_port();
    let mut broker = spawn_serve(&dir, &[], port);
    let banner = wait_for(&broker.stderr, Duration::from_secs(20), |e| {
        e.contains("broker started")
    });
    assert!(banner.contains("config=\"embedded default\""), "{banner}");
    let started = banner
        .lines()
        .find(|l| l.contains("broker started"))
        .unwrap();
    for field in [
        format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        format!("log_dirs={}", dir.display()),
        format!("advertised_listeners=PLAINTEXT://127.0.0.1:{port}"),
        "previous_shutdown=\"none (new data directory)\"".to_string(),
    ] {
        assert!(started.contains(&field), "{field} in {started}");
    }
    signal(&broker.child, "TERM");
    assert!(wait_exit(&mut broker.child, Duration::from_secs(20)).success());
    let again = spawn_serve(&dir, &[], port);
    let banner = wait_for(&again.stderr, Duration::from_secs(20), |e| {
        e.contains("broker started")
    });
    assert!(banner.contains("previous_shutdown=\"clean\""), "{banner}");
}

#[test]
fn start_up_problems_name_their_cause() {
    // A misspelt key: a warning with the key it resembles.
    let broker = start_broker(&["num.partition=3"]);
    let log = wait_for(&broker.stderr, Duration::from_secs(20), |e| {
        e.contains("broker started")
    });
    assert!(log.contains("did you mean num.partitions?"), "{log}");

    // The port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = command(&[
        "serve",
        "--override",
        &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        "--override",
        &format!("log.dirs={}", dir.path().display()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "rivulet: cannot start: cannot listen on 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "hint: another process (another broker?) listens on 127.0.0.1:{port}"
        )),
        "{stderr}"
    );

    // A log dir the broker cannot write names the directory (a .lock that cannot be
    // opened for writing stands in for a read-only one; the tests may run as root).
    let unwritable = tempfile::tempdir().unwrap();
    std::fs::create_dir(unwritable.path().join(".lock")).unwrap();
    let output = command(&[
        "serve",
        "--override",
        &format!("listeners=PLAINTEXT://127.0.0.1:{}", free_port()),
        "--override",
        &format!("log.dirs={}", unwritable.path().display()),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "rivulet: cannot start: opening {}/.lock: ",
            unwritable.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn brokers_come_from_the_environment_or_the_profile() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "t", "-p", "1"], "");
    let from_env = command(&["topics", "list"])
        .env("RIVULET_BROKERS", &broker.address)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_env.stdout),
        "t\n",
        "{from_env:?}"
    );

    let config = tempfile::tempdir().unwrap();
    std::fs::create_dir(config.path().join("rivulet")).unwrap();
    let profile = config.path().join("rivulet").join("profile.properties");
    std::fs::write(
        &profile,
        format!(
            "# my cluster\nbootstrap.servers={}\nclient.id=me\n",
            broker.address
        ),
    )
    .unwrap();
    let from_profile = command(&["topics", "list"])
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_profile.stdout),
        "t\n",
        "{from_profile:?}"
    );
    let named = command(&["topics", "list"])
        .env("RIVULET_PROFILE", &profile)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&named.stdout), "t\n", "{named:?}");

    // -b wins over the environment and the profile.
    let flag = command(&["topics", "list", "-b", "127.0.0.1:1"])
        .env("RIVULET_BROKERS", &broker.address)
        .env("RIVULET_PROFILE", &profile)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&flag.stderr).contains("cannot connect to 127.0.0.1:1"));

    std::fs::write(&profile, "bootstrap.server=x:1\n").unwrap();
    let bad = command(&["topics", "list"])
        .env("RIVULET_PROFILE", &profile)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("(did you mean bootstrap.servers?)"),
        "{bad:?}"
    );
}

#[test]
fn topics_describe_prints_as_kafka_topics() {
    let broker = start_broker(&[]);
    ok(
        &broker,
        &[
            "topics",
            "create",
            "orders",
            "-p",
            "2",
            "--config",
            "retention.ms=3600000",
        ],
        "",
    );
    let described = ok(&broker, &["topics", "describe", "--topic", "orders"], "");
    let lines = lines(&described);
    assert_eq!(lines.len(), 3, "{described}");
    assert!(
        lines[0].starts_with("Topic: orders\tTopicId: "),
        "{described}"
    );
    assert!(
        lines[0]
            .ends_with("\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=3600000"),
        "{described}"
    );
    assert_eq!(
        lines[1],
        "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A"
    );
    assert_eq!(
        lines[2],
        "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1\tElr: N/A\tLastKnownElr: N/A"
    );
}

#[test]
fn the_embedded_default_rebalances_a_new_group_at_once() {
    let broker = start_broker(&[]);
    let configs = ok(&broker, &["configs", "describe", "--broker", "1"], "");
    let row: Vec<&str> = configs
        .lines()
        .find(|l| l.starts_with("group.initial.rebalance.delay.ms "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..2],
        ["group.initial.rebalance.delay.ms", "0"],
        "{configs}"
    );
}

#[test]
fn sigint_on_perf_produce_prints_the_summary_of_what_was_sent() {
    let broker = start_broker(&[]);
    ok(&broker, &["topics", "create", "bench", "-p", "1"], "");
    let mut perf = command(&[
        "perf",
        "produce",
        "--topic",
        "bench",
        "--num-records",
        "1000000",
        "--record-size",
        "10",
        "--throughput",
        "500",
        "--reporting-interval",
        "100",
        "-b",
        &broker.address,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = collect(perf.stdout.take().unwrap());
    let progress = collect(perf.stderr.take().unwrap());
    wait_for(&progress, Duration::from_secs(20), |e| {
        e.contains("records sent")
    });
    signal(&perf, "INT");
    assert_eq!(
        wait_exit(&mut perf, Duration::from_secs(10)).code(),
        Some(130)
    );
    let summary = wait_for(&stdout, Duration::from_secs(5), |o| o.contains("99.9th"));
    let sent: u64 = summary.split_whitespace().next().unwrap().parse().unwrap();
    assert!(sent > 0 && sent < 1_000_000, "{summary}");
}
