//! What every operator command shares: `--bootstrap-server` and
//! `--command-config` (as Kafka's tools take them), a runtime, and one way to
//! report failures: the Kafka error's name, what it was about, and what to do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rivulet_client::config_keys::{check_key, ClientKind};
use rivulet_client::{ClientConfig, ClientError};

/// `println!` to stdout that ends the process quietly when the reader went away
/// (`rivulet topics list | head`) instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// Connection options of every operator command, given before or after the
/// subcommand (`rivulet -b host:9092 topics list` as with kcat).
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// The broker(s) to connect to: host:port[,host:port...]
    /// [default: $RIVULET_BROKERS, the profile's bootstrap.servers, else 127.0.0.1:9092]
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        visible_alias = "bootstrap-servers",
        value_name = "HOST:PORT",
        global = true
    )]
    pub bootstrap_server: Option<String>,
    /// A client .properties file (security, timeouts, client.id...), as Kafka's --command-config.
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub command_config: Option<PathBuf>,
}

/// The environment variable naming the brokers (as rpk's RPK_BROKERS).
pub const BROKERS_ENV: &str = "RIVULET_BROKERS";
/// The environment variable naming the profile file.
pub const PROFILE_ENV: &str = "RIVULET_PROFILE";
const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// The profile: a client .properties file read by every command (bootstrap and
/// security settings, as an rpk profile), `$RIVULET_PROFILE` or
/// `$XDG_CONFIG_HOME/rivulet/profile.properties` (`~/.config/...` by default).
/// A missing default file is no profile; a missing `$RIVULET_PROFILE` is an error.
fn profile() -> Result<Option<(PathBuf, ClientConfig)>, CliError> {
    let (path, explicit) = match std::env::var_os(PROFILE_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), true),
        _ => {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
            match base {
                Some(base) => (base.join("rivulet").join("profile.properties"), false),
                None => return Ok(None),
            }
        }
    };
    if !explicit && !path.exists() {
        return Ok(None);
    }
    let config = ClientConfig::from_properties_file(&path)
        .map_err(|e| CliError::Usage(format!("profile {} ({PROFILE_ENV}): {e}", path.display())))?;
    for (key, _) in config.iter() {
        let known = [
            ClientKind::Producer,
            ClientKind::Consumer,
            ClientKind::Admin,
        ]
        .iter()
        .any(|kind| kind.knows(key));
        if !known {
            let reason = check_key(ClientKind::Admin, key).unwrap_or_default();
            return Err(CliError::Usage(format!(
                "profile {}: {reason}",
                path.display()
            )));
        }
    }
    Ok(Some((path, config)))
}

impl ConnectArgs {
    /// The client config, later sources winning: the profile file,
    /// `$RIVULET_BROKERS`, `--command-config`, then `--bootstrap-server`.
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let mut config = match profile()? {
            Some((_, profile)) => profile,
            None => ClientConfig::new(),
        };
        if let Some(brokers) = std::env::var(BROKERS_ENV)
            .ok()
            .filter(|b| !b.trim().is_empty())
        {
            config.insert("bootstrap.servers", brokers.trim().to_string());
        }
        if let Some(path) = &self.command_config {
            config = config.merge(&ClientConfig::from_properties_file(path)?);
        }
        if let Some(servers) = &self.bootstrap_server {
            config.insert("bootstrap.servers", servers.clone());
        }
        if config.get("bootstrap.servers").is_none() {
            config.insert("bootstrap.servers", DEFAULT_BOOTSTRAP);
        }
        if config.get("client.id").is_none() {
            config.insert("client.id", "rivulet-cli");
        }
        Ok(config)
    }
}

/// Applies `-X key=value` client settings after checking each key belongs to
/// `kind` (kcat refuses an unknown property; a typo must not pass silently).
pub fn apply_client_properties(
    config: &mut ClientConfig,
    kind: ClientKind,
    flag: &str,
    properties: &[(String, String)],
) -> CliResult {
    for (key, value) in properties {
        if let Some(reason) = check_key(kind, key) {
            return Err(CliError::Usage(format!("{flag} {key}={value}: {reason}")));
        }
        config.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    Client(ClientError),
    /// Bad input or arguments; the message says what is wrong.
    Usage(String),
    /// The operation was refused or failed; what happened and what to do.
    Failed {
        message: String,
        hint: String,
    },
    /// Stopped by a signal after a clean stop: exit with this code (128 + signal).
    Stopped(u8),
    Io(std::io::Error),
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Client(e)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Parses `key=value`.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Runs `work` on a runtime and turns its outcome into an exit code, printing
/// errors as `rivulet: <error>` and `  hint: <what to do>`.
pub fn run<F>(work: F) -> ExitCode
where
    F: std::future::Future<Output = CliResult>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("rivulet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("rivulet: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Failed { message, hint }) => {
            eprintln!("rivulet: {message}");
            eprintln!("  hint: {hint}");
            ExitCode::FAILURE
        }
        Err(CliError::Stopped(code)) => ExitCode::from(code),
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(CliError::Io(e)) => {
            eprintln!("rivulet: {e}");
            ExitCode::FAILURE
        }
        Err(CliError::Client(e)) => {
            eprintln!("rivulet: {e}");
            match misspelt_config(&e) {
                Some(hint) => eprintln!("  hint: {hint}"),
                None => {
                    if let Some(hint) = e.hint() {
                        eprintln!("  hint: {hint}");
                    }
                }
            }
            ExitCode::FAILURE
        }
    }
}

/// For a config name the broker does not know: the known one it resembles.
fn misspelt_config(error: &ClientError) -> Option<String> {
    let ClientError::Kafka {
        message: Some(message),
        ..
    } = error
    else {
        return None;
    };
    let name = message
        .strip_prefix("Unknown config name: ")
        .or_else(|| message.strip_prefix("Unknown topic config name: "))
        .or_else(|| message.strip_prefix("Unknown broker config name: "))?;
    let topic = storage::config::TOPIC_CONFIGS.iter().map(|d| d.name);
    let broker = broker::config::BROKER_CONFIGS
        .iter()
        .chain(broker::cluster_config::CLUSTER_CONFIGS)
        .map(|d| d.name);
    let near = rivulet_client::config_keys::did_you_mean(name.trim(), topic.chain(broker))?;
    Some(format!("did you mean {near}?"))
}

/// Prints rows as aligned columns under `header`.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect();
        outln!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Splits Kafka's `--add-config` list: `k=v,k2=[a,b]` at the commas outside
/// brackets; a bracketed value is a list, sent without its brackets (`a,b`), as
/// `kafka-configs.sh` takes `cleanup.policy=[compact,delete]`.
pub fn parse_config_list(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    items.push(current);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let (key, value) = parse_pair(&item)?;
            let value = value.trim();
            let value = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                Some(list) => list.to_string(),
                None => value.to_string(),
            };
            Ok((key, value))
        })
        .collect()
}

/// What stopped a long-running command: Ctrl-C (SIGINT) or SIGTERM.
pub struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts watching SIGINT and SIGTERM (from then on they no longer kill the
    /// process at once). Call inside the runtime.
    pub fn watch() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for a signal; returns the exit code a process killed by it has
    /// (130 for SIGINT, 143 for SIGTERM), as Kafka's tools exit.
    pub async fn next(&mut self) -> u8 {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.interrupt) => 130,
            _ = recv(&mut self.terminate) => 143,
        }
    }

    /// For the clean stop: the next signal ends the process at once, for when the
    /// stop (commit, leave the group, flush) cannot reach the broker.
    pub fn exit_on_next(mut self) {
        tokio::spawn(async move {
            let code = self.next().await;
            eprintln!("rivulet: stopped before the clean shutdown finished");
            std::process::exit(i32::from(code));
        });
    }
}

/// A flag a loop checks between steps: 0 until a signal arrives, then the exit
/// code (130 or 143); a second signal ends the process at once.
pub fn stop_flag() -> std::sync::Arc<std::sync::atomic::AtomicU8> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(0));
    let set = std::sync::Arc::clone(&flag);
    let mut signals = StopSignals::watch();
    tokio::spawn(async move {
        let code = signals.next().await;
        set.store(code, std::sync::atomic::Ordering::Release);
        signals.exit_on_next();
    });
    flag
}

/// The outcome of a loop stopped (or not) by [`stop_flag`].
pub fn stopped(flag: &std::sync::atomic::AtomicU8) -> CliResult {
    match flag.load(std::sync::atomic::Ordering::Acquire) {
        0 => Ok(()),
        code => Err(CliError::Stopped(code)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_keep_bracketed_values_whole() {
        assert_eq!(
            parse_config_list("cleanup.policy=[compact,delete],retention.ms=1000").unwrap(),
            vec![
                ("cleanup.policy".to_string(), "compact,delete".to_string()),
                ("retention.ms".to_string(), "1000".to_string())
            ]
        );
        assert!(parse_config_list("nokey").is_err());
    }
}
