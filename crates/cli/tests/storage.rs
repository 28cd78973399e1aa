//! `rivulet storage format|random-uuid` as an operator runs them, and what
//! `rivulet serve` says when its storage is not its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rivulet");
const CLUSTER: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn rivulet(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A server.properties for node `node` of a one-voter static quorum in `dir`.
fn properties(dir: &Path, node: i32) -> std::path::PathBuf {
    let path = dir.join(format!("server-{node}.properties"));
    std::fs::write(
        &path,
        format!(
            "process.roles=broker,controller\nnode.id={node}\ncontroller.quorum.voters={node}@127.0.0.1:19093\nlisteners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:19093\nlog.dirs={}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Runs `serve` and expects it to exit on its own (refusing to start).
fn serve_refuses(config: &Path) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "-c", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (status.code().unwrap_or(-1), text(&output.stderr));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn random_uuid_prints_a_kafka_cluster_id() {
    let out = rivulet(&["storage", "random-uuid"]);
    assert!(out.status.success());
    let id = text(&out.stdout);
    let id = id.trim_end();
    assert_eq!(id.len(), 22, "{id}");
    assert!(!id.starts_with('-'));
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_ne!(
        id,
        text(&rivulet(&["storage", "random-uuid"]).stdout).trim_end()
    );
}

#[test]
fn format_twice_fails_unless_ignore_formatted() {
    let dir = tempfile::tempdir().unwrap();
    let config = properties(dir.path(), 1);
    let config = config.to_str().unwrap();
    let data = dir.path().join("data");
    let out = rivulet(&["storage", "format", "-t", CLUSTER, "-c", config]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Formatting metadata directory {} with metadata.version 4.1-IV1.\n",
            data.display()
        )
    );
    let meta = std::fs::read_to_string(data.join("meta.properties")).unwrap();
    assert!(meta.contains(&format!("cluster.id={CLUSTER}\n")), "{meta}");
    assert!(meta.contains("node.id=1\n"), "{meta}");

    let out = rivulet(&["storage", "format", "-t", CLUSTER, "-c", config]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.\n", data.display())
    );
    let out = rivulet(&["storage", "format", "-t", CLUSTER, "-c", config, "-g"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "All of the log directories are already formatted.\n"
    );
    let out = rivulet(&["storage", "format", "-t", "nope", "-c", config, "-g"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Input string `nope` is not a base64-encoded UUID of 16 bytes\n"
    );
}

#[test]
fn serve_refuses_unformatted_or_another_nodes_storage() {
    let dir = tempfile::tempdir().unwrap();
    let node1 = properties(dir.path(), 1);
    let (code, stderr) = serve_refuses(&node1);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("No readable meta.properties files found."),
        "{stderr}"
    );

    let out = rivulet(&[
        "storage",
        "format",
        "-t",
        CLUSTER,
        "-c",
        node1.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // The same directories under another node id.
    let node2 = properties(dir.path(), 2);
    let (code, stderr) = serve_refuses(&node2);
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!("Stored node id 1 doesn't match previous node id 2 in {}. If you moved your data, make sure your configured node id matches.", dir.path().join("data").join("meta.properties").display())),
        "{stderr}"
    );
}
