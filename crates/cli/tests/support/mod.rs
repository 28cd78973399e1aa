//! A broker started as an operator starts it (`rivulet serve`), and the operator
//! commands run against it in an environment of their own: no `$RIVULET_BROKERS`
//! and no profile file from the machine running the tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rivulet");

/// A `rivulet serve` process with its stderr collected.
pub struct Broker {
    pub child: Child,
    pub address: String,
    pub dir: PathBuf,
    pub stderr: Arc<Mutex<String>>,
    _temp: Option<tempfile::TempDir>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `rivulet serve` on a free port in a new directory: the embedded default
/// (no config file) plus `overrides`.
pub fn start_broker(overrides: &[&str]) -> Broker {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut broker = spawn_serve(&dir, overrides, free_port());
    broker._temp = Some(temp);
    broker
}

/// `rivulet serve` with its data in `dir` on `port`; waits until it listens.
pub fn spawn_serve(dir: &Path, overrides: &[&str], port: u16) -> Broker {
    let address = format!("127.0.0.1:{port}");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--override", "node.id=1"])
        .args(["--override", &format!("listeners=PLAINTEXT://{address}")])
        .args(["--override", &format!("log.dirs={}", dir.display())])
        .args(["--override", "offsets.topic.num.partitions=2"]);
    for o in overrides {
        command.args(["--override", o]);
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = collect(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            Instant::now() < deadline,
            "the broker did not start: {}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        address,
        dir: dir.to_path_buf(),
        stderr,
        _temp: None,
    }
}

/// Collects a stream's lines into a string, on a thread.
pub fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    text
}

/// Waits until `text` satisfies `done`, or fails after `within`.
pub fn wait_for(
    text: &Arc<Mutex<String>>,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let now = text.lock().unwrap().clone();
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "timed out; so far:\n{now}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `rivulet` command in a clean environment (no $RIVULET_BROKERS, no profile).
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("RIVULET_BROKERS")
        .env_remove("RIVULET_PROFILE")
        .env("XDG_CONFIG_HOME", "/nonexistent-rivulet-test-config");
    command
}

/// Runs `rivulet ARGS -b BROKER` with `stdin`.
pub fn rivulet(broker: &Broker, args: &[&str], stdin: &str) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--bootstrap-server", &broker.address]);
    run_with_stdin(command(&all), stdin)
}

pub fn run_with_stdin(mut command: Command, stdin: &str) -> Output {
    let mut child = command
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

/// The command's stdout; fails the test unless it succeeded.
pub fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let output = rivulet(broker, args, stdin);
    assert!(
        output.status.success(),
        "rivulet {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The command's stderr; fails the test unless it exited with `code`.
pub fn fails(broker: &Broker, args: &[&str], code: i32) -> String {
    let output = rivulet(broker, args, "");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "rivulet {args:?}: {stderr}"
    );
    stderr
}

/// Sends `signal` (INT, TERM) to a process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for `child` to exit within `within`; kills it and fails otherwise.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
