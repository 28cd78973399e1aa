use std::path::Path;

use super::*;

const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn config(root: &Path, items: &[(&str, &str)]) -> BrokerConfig {
    let mut pairs: Vec<(String, String)> = vec![
        (
            "log.dirs".into(),
            format!("{},{}", root.join("a").display(), root.join("b").display()),
        ),
        (
            "metadata.log.dir".into(),
            root.join("meta").display().to_string(),
        ),
    ];
    pairs.extend(items.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    BrokerConfig::from_pairs(pairs).unwrap()
}

/// A voter of a static three-voter quorum.
fn voter(root: &Path, node: &str) -> BrokerConfig {
    config(
        root,
        &[
            ("node.id", node),
            (
                "controller.quorum.voters",
                "1@localhost:9093,2@localhost:9095,3@localhost:9097",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
        ],
    )
}

fn options(ignore_formatted: bool) -> FormatOptions {
    FormatOptions {
        cluster_id: CLUSTER.into(),
        ignore_formatted,
        initial_controllers: InitialControllers::Unspecified,
    }
}

fn run_format(config: &BrokerConfig, options: &FormatOptions) -> Result<String, String> {
    let mut out = Vec::new();
    format(config, options, &mut out)
        .map(|()| String::from_utf8(out).unwrap())
        .map_err(|e| e.to_string())
}

fn check_at_start_random(config: &BrokerConfig) -> Result<String, FormatError> {
    check_at_start(config, &Uuid::new_v4)
}

fn meta(dir: &Path) -> MetaProperties {
    MetaProperties::read(dir).unwrap().unwrap()
}

#[test]
fn format_writes_every_directory_once() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let config = voter(r, "2");
    assert_eq!(
        run_format(&config, &options(false)).unwrap(),
        format!(
            "Formatting data directory {a} with metadata.version 4.1-IV1.\nFormatting data directory {b} with metadata.version 4.1-IV1.\nFormatting metadata directory {m} with metadata.version 4.1-IV1.\n",
            a = r.join("a").display(),
            b = r.join("b").display(),
            m = r.join("meta").display()
        )
    );
    let ids: std::collections::BTreeSet<_> = ["a", "b", "meta"]
        .iter()
        .map(|d| {
            let m = meta(&r.join(d));
            assert_eq!(m.cluster_id.as_deref(), Some(CLUSTER));
            assert_eq!(m.node_id, Some(2));
            assert_eq!(m.version, 1);
            m.directory_id.unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 3, "every directory has its own id");

    assert_eq!(
        run_format(&config, &options(false)).unwrap_err(),
        format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", r.join("a").display())
    );
    assert_eq!(
        run_format(&config, &options(true)).unwrap(),
        "All of the log directories are already formatted.\n"
    );
}

#[test]
fn ignore_formatted_formats_only_the_new_directory() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    run_format(&voter(r, "1"), &options(false)).unwrap();
    let before = meta(&r.join("a"));
    let wider = config(
        r,
        &[
            ("node.id", "1"),
            (
                "controller.quorum.voters",
                "1@localhost:9093,2@localhost:9095,3@localhost:9097",
            ),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            (
                "log.dirs",
                &format!("{},{}", r.join("a").display(), r.join("c").display()),
            ),
        ],
    );
    assert_eq!(
        run_format(&wider, &options(true)).unwrap(),
        format!(
            "Formatting data directory {} with metadata.version 4.1-IV1.\n",
            r.join("c").display()
        )
    );
    assert_eq!(
        meta(&r.join("a")),
        before,
        "formatted directories are untouched"
    );
    assert_eq!(meta(&r.join("c")).node_id, Some(1));
}

#[test]
fn format_refuses_another_clusters_or_nodes_directories() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    run_format(&voter(r, "1"), &options(false)).unwrap();
    let other = FormatOptions {
        cluster_id: "AAAAAAAAAAAAAAAAAAAAAw".into(),
        ..options(true)
    };
    assert_eq!(
        run_format(&voter(r, "1"), &other).unwrap_err(),
        format!(
            "Invalid cluster.id in: {}. Expected AAAAAAAAAAAAAAAAAAAAAw, but read {CLUSTER}",
            r.join("a").join("meta.properties").display()
        )
    );
    assert!(run_format(&voter(r, "3"), &options(true))
        .unwrap_err()
        .starts_with("Stored node id 1 doesn't match previous node id 3 in "));
}

#[test]
fn the_cluster_id_must_be_a_kafka_uuid() {
    let root = tempfile::tempdir().unwrap();
    for (id, expected) in [
        (
            "not-a-uuid",
            "Input string `not-a-uuid` is not a base64-encoded UUID of 16 bytes",
        ),
        (
            "MkU3OEVBNTcwNTJENDM2QgMkU3OEVBNTcw",
            "Input string with prefix `MkU3OEVBNTcwNTJENDM2QgMk` is too long to be decoded as a base64 UUID",
        ),
    ] {
        let options = FormatOptions {
            cluster_id: id.into(),
            ..options(false)
        };
        assert_eq!(
            run_format(&voter(root.path(), "1"), &options).unwrap_err(),
            expected
        );
    }
    assert!(!root.path().join("a").exists(), "nothing was written");
}

#[test]
fn standalone_and_initial_controller_rules() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let dynamic = config(
        r,
        &[
            ("node.id", "1"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://localhost:9093",
            ),
        ],
    );
    assert_eq!(
        run_format(&dynamic, &options(false)).unwrap_err(),
        "Because controller.quorum.voters is not set on this controller, you must specify one of the following: --standalone, --initial-controllers, or --no-initial-controllers."
    );
    let broker_only = config(
        r,
        &[
            ("node.id", "4"),
            ("process.roles", "broker"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
        ],
    );
    let standalone = FormatOptions {
        initial_controllers: InitialControllers::Standalone,
        ..options(false)
    };
    assert_eq!(
        run_format(&broker_only, &standalone).unwrap_err(),
        "You can only use --standalone on a controller."
    );
    let output = run_format(&dynamic, &standalone).unwrap();
    assert!(
        output.ends_with(&format!(
            "Formatting dynamic metadata voter directory {} with metadata.version 4.1-IV1.\n",
            r.join("meta").display()
        )),
        "{output}"
    );

    let voters = parse_initial_controllers(
        "1@localhost:9093:J8aAPcfLQt2bqs1JT_rMgQ,2@[::1]:9094:MvDxzVmcRsaTz33bUuRU6A",
    )
    .unwrap();
    assert_eq!(voters[1].host, "::1");
    assert_eq!(voters[1].port, 9094);
    assert_eq!(
        uuid_to_kafka(&voters[0].directory_id),
        "J8aAPcfLQt2bqs1JT_rMgQ"
    );
    assert_eq!(
        parse_initial_controllers("1@h:1:J8aAPcfLQt2bqs1JT_rMgQ,1@h:2:MvDxzVmcRsaTz33bUuRU6A")
            .unwrap_err()
            .to_string(),
        "Node id 1 was specified more than once."
    );
    assert!(parse_initial_controllers("1@localhost:9093").is_err());
}

#[test]
fn a_configured_node_refuses_unformatted_or_foreign_storage() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    assert_eq!(
        check_at_start_random(&voter(r, "1"))
            .unwrap_err()
            .to_string(),
        "No readable meta.properties files found."
    );
    run_format(&voter(r, "1"), &options(false)).unwrap();
    assert_eq!(check_at_start_random(&voter(r, "1")).unwrap(), CLUSTER);
    assert_eq!(
        check_at_start_random(&voter(r, "2")).unwrap_err().to_string(),
        format!("Stored node id 1 doesn't match previous node id 2 in {}. If you moved your data, make sure your configured node id matches. If you intend to create a new node, you should remove all data in your data directories.", r.join("a").join("meta.properties").display())
    );

    // A data directory of another cluster.
    MetaProperties::v1("AAAAAAAAAAAAAAAAAAAAAw", 1, Uuid::from_u128(1 << 90))
        .write(&r.join("b"))
        .unwrap();
    assert_eq!(
        check_at_start_random(&voter(r, "1"))
            .unwrap_err()
            .to_string(),
        format!(
            "Invalid cluster.id in: {}. Expected {CLUSTER}, but read AAAAAAAAAAAAAAAAAAAAAw",
            r.join("b").join("meta.properties").display()
        )
    );

    // An empty data directory.
    std::fs::remove_file(r.join("b").join("meta.properties")).unwrap();
    assert_eq!(
        check_at_start_random(&voter(r, "1")).unwrap_err().to_string(),
        format!("No `meta.properties` found in {} (have you run `rivulet storage format` to format the directory?)", r.join("b").display())
    );

    // A lost metadata directory.
    run_format(&voter(r, "1"), &options(true)).unwrap();
    std::fs::remove_dir_all(r.join("meta")).unwrap();
    assert!(check_at_start_random(&voter(r, "1"))
        .unwrap_err()
        .to_string()
        .starts_with(&format!(
            "The metadata log directory {} is not formatted, but the data directories are",
            r.join("meta").display()
        )));
}

#[test]
fn the_embedded_node_formats_itself_and_keeps_its_cluster_id() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let embedded = config(r, &[]);
    let cluster_id = check_at_start_random(&embedded).unwrap();
    check_cluster_id(&cluster_id).unwrap();
    for dir in ["a", "b", "meta"] {
        assert_eq!(meta(&r.join(dir)).cluster_id.as_deref(), Some(&*cluster_id));
        assert_eq!(meta(&r.join(dir)).node_id, Some(1));
    }
    assert_eq!(check_at_start_random(&embedded).unwrap(), cluster_id);

    // A directory added later joins the same cluster.
    let wider = config(
        r,
        &[(
            "log.dirs",
            &format!("{},{}", r.join("a").display(), r.join("c").display()),
        )],
    );
    assert_eq!(check_at_start_random(&wider).unwrap(), cluster_id);
    assert_eq!(meta(&r.join("c")).cluster_id.as_deref(), Some(&*cluster_id));

    // Its node id is checked as any node's.
    let renamed = config(r, &[("node.id", "9")]);
    assert!(check_at_start_random(&renamed)
        .unwrap_err()
        .to_string()
        .starts_with("Stored node id 1 doesn't match previous node id 9 in "));
}

#[test]
fn a_pre_format_directory_without_a_directory_id_gets_one() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["a", "b", "meta"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
        std::fs::write(
            r.join(dir).join("meta.properties"),
            format!("version=1\nnode.id=1\ncluster.id={CLUSTER}\n"),
        )
        .unwrap();
    }
    assert_eq!(check_at_start_random(&config(r, &[])).unwrap(), CLUSTER);
    let ids: std::collections::BTreeSet<_> = ["a", "b", "meta"]
        .iter()
        .map(|d| meta(&r.join(d)).directory_id.unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
}
