use super::*;

const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn dir_id(n: u128) -> Uuid {
    Uuid::from_u128((1 << 100) + n)
}

fn format(dir: &Path, cluster: &str, node: i32, id: Uuid) {
    MetaProperties::v1(cluster, node, id).write(dir).unwrap();
}

#[test]
fn v1_round_trips_through_kafkas_text_form() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaProperties::v1(CLUSTER, 3, dir_id(1));
    meta.write(dir.path()).unwrap();
    let text = fs::read_to_string(dir.path().join("meta.properties")).unwrap();
    assert_eq!(
        text,
        format!(
            "#\n#Written by rivulet\nnode.id=3\ndirectory.id={}\nversion=1\ncluster.id={CLUSTER}\n",
            uuid_to_kafka(&dir_id(1))
        )
    );
    assert_eq!(MetaProperties::read(dir.path()).unwrap(), Some(meta));
}

#[test]
fn a_file_written_by_kafka_is_read() {
    let text = "#\n#Tue Oct 01 10:00:00 UTC 2024\nnode.id=1\ndirectory.id=J8aAPcfLQt2bqs1JT_rMgQ\nversion=1\ncluster.id=4L6g3nShT-eMCtK--X86sw\n";
    let meta = MetaProperties::from_properties(&parse_java_properties(text)).unwrap();
    assert_eq!(meta.version, 1);
    assert_eq!(meta.node_id, Some(1));
    assert_eq!(meta.cluster_id.as_deref(), Some("4L6g3nShT-eMCtK--X86sw"));
    assert_eq!(
        meta.directory_id.map(|id| uuid_to_kafka(&id)).as_deref(),
        Some("J8aAPcfLQt2bqs1JT_rMgQ")
    );
}

#[test]
fn java_properties_syntax_is_understood() {
    let props = parse_java_properties(
        "! comment\n  key1 = a\\\n    b\nkey2: c\nkey3 d\nkey\\=4=e\\tf\nempty\n",
    );
    assert_eq!(props["key1"], "ab");
    assert_eq!(props["key2"], "c");
    assert_eq!(props["key3"], "d");
    assert_eq!(props["key=4"], "e\tf");
    assert_eq!(props["empty"], "");
}

#[test]
fn malformed_files_are_refused_with_kafkas_messages() {
    for (text, expected) in [
        ("version=1\nnode.id=1\n", "cluster.id was not found."),
        ("version=1\ncluster.id=x\n", "node.id was not found."),
        (
            "version=1\ncluster.id=x\nnode.id=one\n",
            "Unable to read node.id as a base-10 number.",
        ),
        ("version=7\n", "Unknown meta.properties version 7"),
    ] {
        let err = MetaProperties::from_properties(&parse_java_properties(text)).unwrap_err();
        assert_eq!(err.to_string(), expected, "{text}");
    }
    let v0 = MetaProperties::from_properties(&parse_java_properties("broker.id=5\n")).unwrap();
    assert_eq!((v0.version, v0.node_id, v0.cluster_id), (0, Some(5), None));
}

#[test]
fn an_oversized_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("meta.properties"), vec![b'#'; 70_000]).unwrap();
    let err = MetaProperties::read(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is 70000 bytes"), "{err}");
}

#[test]
fn the_verify_matrix() {
    let root = tempfile::tempdir().unwrap();
    let a = root.path().join("a");
    let b = root.path().join("b");
    let m = root.path().join("meta");
    let dirs = vec![a.clone(), b.clone()];
    let load = || Ensemble::load(&dirs, Some(&m)).unwrap();
    let strict = VerifyFlags {
        require_at_least_one_valid: true,
        require_metadata_log_dir: true,
    };

    // Nothing formatted.
    let ensemble = load();
    assert_eq!(ensemble.empty.len(), 3);
    assert_eq!(
        ensemble
            .verify(None, Some(1), strict)
            .unwrap_err()
            .to_string(),
        "No readable meta.properties files found."
    );
    ensemble
        .verify(None, Some(1), VerifyFlags::default())
        .unwrap();

    // All formatted alike.
    format(&a, CLUSTER, 1, dir_id(1));
    format(&b, CLUSTER, 1, dir_id(2));
    format(&m, CLUSTER, 1, dir_id(3));
    let ensemble = load();
    ensemble.verify(Some(CLUSTER), Some(1), strict).unwrap();
    assert_eq!(ensemble.cluster_id(), Some(CLUSTER));
    assert_eq!(ensemble.node_id(), Some(1));

    // The configured node id differs from the stored one.
    let path_a = a.join("meta.properties");
    assert_eq!(
        ensemble.verify(None, Some(2), strict).unwrap_err().to_string(),
        format!("Stored node id 1 doesn't match previous node id 2 in {}. If you moved your data, make sure your configured node id matches. If you intend to create a new node, you should remove all data in your data directories.", path_a.display())
    );
    // Another cluster's id is expected.
    assert_eq!(
        ensemble
            .verify(Some("other"), Some(1), strict)
            .unwrap_err()
            .to_string(),
        format!(
            "Invalid cluster.id in: {}. Expected other, but read {CLUSTER}",
            path_a.display()
        )
    );

    // Two directories of different clusters.
    format(&b, "another", 1, dir_id(2));
    assert_eq!(
        load()
            .verify(None, Some(1), strict)
            .unwrap_err()
            .to_string(),
        format!(
            "Invalid cluster.id in: {}. Expected {CLUSTER}, but read another",
            b.join("meta.properties").display()
        )
    );

    // Two directories of different nodes.
    format(&b, CLUSTER, 7, dir_id(2));
    assert!(load()
        .verify(None, None, strict)
        .unwrap_err()
        .to_string()
        .starts_with("Stored node id 7 doesn't match previous node id 1 in "));

    // A copied directory: the same directory id twice.
    format(&b, CLUSTER, 1, dir_id(1));
    assert_eq!(
        load()
            .verify(None, Some(1), strict)
            .unwrap_err()
            .to_string(),
        format!(
            "Duplicate directory ID Optional[{}] found. It was the ID of {}, but also of {}",
            uuid_to_kafka(&dir_id(1)),
            a.display(),
            b.display()
        )
    );

    // A reserved directory id.
    format(&b, CLUSTER, 1, Uuid::from_u128(2));
    assert_eq!(
        load()
            .verify(None, Some(1), strict)
            .unwrap_err()
            .to_string(),
        format!(
            "Invalid resrved directory ID AAAAAAAAAAAAAAAAAAAAAg found in {}",
            b.display()
        )
    );

    // No metadata log dir given.
    format(&b, CLUSTER, 1, dir_id(2));
    let ensemble = Ensemble::load(&dirs, None).unwrap();
    assert_eq!(
        ensemble
            .verify(None, Some(1), strict)
            .unwrap_err()
            .to_string(),
        "No metadata log directory was specified."
    );
}

#[test]
fn random_kafka_uuids_skip_reserved_and_dash_leading_values() {
    let mut candidates = vec![
        Uuid::from_u128(0),
        Uuid::from_u128(1),
        Uuid::from_u128(99),
        // Text "-" first: the top 6 bits are 62.
        Uuid::from_u128(62u128 << 122),
        dir_id(5),
    ]
    .into_iter();
    assert!(uuid_to_kafka(&Uuid::from_u128(62u128 << 122)).starts_with('-'));
    assert_eq!(random_kafka_uuid(|| candidates.next().unwrap()), dir_id(5));
}
