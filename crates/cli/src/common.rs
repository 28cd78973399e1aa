//! What every operator command shares: `--bootstrap-server` and
//! `--command-config` (as Kafka's tools take them), a runtime, and one way to
//! report failures: the Kafka error's name, what it was about, and what to do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
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

/// Connection options of every operator command.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker(s) to connect to: host:port[,host:port...].
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// A client .properties file (security, timeouts, client.id...), as Kafka's --command-config.
    #[arg(long = "command-config", value_name = "FILE", global = true)]
    pub command_config: Option<PathBuf>,
}

impl ConnectArgs {
    /// The client config: the file first, then --bootstrap-server.
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let mut config = match &self.command_config {
            Some(path) => ClientConfig::from_properties_file(path)?,
            None => ClientConfig::new(),
        };
        config.insert("bootstrap.servers", self.bootstrap_server.clone());
        if config.get("client.id").is_none() {
            config.insert("client.id", "rivulet-cli");
        }
        Ok(config)
    }
}

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    Client(ClientError),
    /// Bad input or arguments; the message says what is wrong.
    Usage(String),
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
        Err(CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(CliError::Io(e)) => {
            eprintln!("rivulet: {e}");
            ExitCode::FAILURE
        }
        Err(CliError::Client(e)) => {
            eprintln!("rivulet: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("  hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
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
