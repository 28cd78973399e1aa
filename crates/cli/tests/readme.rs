//! The README's command blocks run against a fresh broker, so they stay true.
//!
//! A block runs when its fence is ```` ```sh readme-test [exit=N] [stderr] ````:
//! in order, each in `bash -e -o pipefail`, in one scratch directory (also $HOME),
//! with this build's `rivulet` first on the PATH, `$RIVULET_BROKERS` set to the
//! test broker and `127.0.0.1:9092` in the text replaced by its address. It must
//! exit with N (default 0). A ```` ```text output ```` block right after it is the
//! exact stdout (or stderr, with `stderr`). Other blocks (`cargo install`,
//! `rivulet serve`, kcat) are shown, not run. The sample `config/server.properties`
//! must start a broker without a warning.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const FENCE: &str = "```";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One runnable block of the README.
#[derive(Debug)]
struct Block {
    line: usize,
    script: String,
    exit: i32,
    stderr: bool,
    output: Option<String>,
}

/// The body of the fenced block opening at `lines[start]`, and the line after it.
fn body(lines: &[&str], start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut i = start + 1;
    while i < lines.len() && lines[i].trim_end() != FENCE {
        text.push_str(lines[i]);
        text.push('\n');
        i += 1;
    }
    assert!(i < lines.len(), "README line {}: unclosed block", start + 1);
    (text, i + 1)
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix(FENCE) else {
            i += 1;
            continue;
        };
        let words: Vec<&str> = info.split_whitespace().collect();
        let (text, next) = body(&lines, i);
        if words.first() != Some(&"sh") || words.get(1) != Some(&"readme-test") {
            i = next;
            continue;
        }
        let mut block = Block {
            line: i + 1,
            script: text,
            exit: 0,
            stderr: false,
            output: None,
        };
        for word in &words[2..] {
            match word.strip_prefix("exit=") {
                Some(code) => block.exit = code.parse().unwrap(),
                None if *word == "stderr" => block.stderr = true,
                None => panic!("README line {}: unknown marker {word}", i + 1),
            }
        }
        // The expected output, if the next block (after blank lines) is one.
        let mut j = next;
        while j < lines.len() && lines[j].trim().is_empty() {
            j += 1;
        }
        i = next;
        if j < lines.len() && lines[j].trim_end() == "```text output" {
            let (output, after) = body(&lines, j);
            block.output = Some(output);
            i = after;
        }
        found.push(block);
    }
    found
}

#[test]
fn the_readme_commands_work_as_shown() {
    let readme = std::fs::read_to_string(repository().join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(blocks.len() >= 10, "few runnable blocks found: {blocks:?}");
    let broker = start_broker(&[]);
    let scratch = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for block in blocks {
        let script = block.script.replace("127.0.0.1:9092", &broker.address);
        let mut child = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &script])
            .current_dir(scratch.path())
            .env("PATH", &path)
            .env("HOME", scratch.path())
            .env("XDG_CONFIG_HOME", scratch.path().join(".config"))
            .env("RIVULET_BROKERS", &broker.address)
            .env_remove("RIVULET_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let status = wait_exit(&mut child, Duration::from_secs(60));
        // The collectors finish when the pipes close, right after the exit.
        let (out, err) = {
            std::thread::sleep(Duration::from_millis(20));
            let closed =
                |text: &std::sync::Arc<std::sync::Mutex<String>>| text.lock().unwrap().clone();
            (closed(&stdout), closed(&stderr))
        };
        assert_eq!(
            status.code(),
            Some(block.exit),
            "README line {}:\n{script}\nstdout:\n{out}\nstderr:\n{err}",
            block.line
        );
        if let Some(expected) = &block.output {
            let actual = if block.stderr { &err } else { &out };
            assert_eq!(actual, expected, "README line {}:\n{script}", block.line);
        }
    }
}

#[test]
fn the_sample_config_starts_a_broker_without_warnings() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = command(&["serve", "config/server.properties"])
        .args([
            "--override",
            &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        ])
        .args(["--override", &format!("log.dirs={}", data.path().display())])
        .current_dir(repository())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect(child.stderr.take().unwrap());
    let started = wait_for(&log, Duration::from_secs(20), |l| {
        l.contains("broker started")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(!started.contains("WARN"), "{started}");
    assert!(
        started.contains("config=config/server.properties"),
        "{started}"
    );
}
