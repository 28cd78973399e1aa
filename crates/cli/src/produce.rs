//! `rivulet produce`: records from stdin, one per line, as
//! `kafka-console-producer.sh` and `kcat -P`.
//!
//! A line is the value; with `--key-separator SEP` (kcat's `-K`) the part before
//! the first SEP is the key; Kafka's `--property parse.key=true` and the other
//! console producer keys work as there (see `line_reader`). Producer configs come
//! with `-X key=value` (kcat) or `--producer-property` and `--producer.config`
//! (Kafka), checked against the producer's keys. Ctrl-C or SIGTERM stops reading,
//! sends what was read and exits. With `--json` each line is an object:
//! `{"key": ..., "value": ..., "headers": {"k": "v"}, "partition": 0, "timestamp": 1700000000000}`
//! (every field optional; a string value is sent as its text, any other JSON as
//! its serialisation; `null` is a null key or value).

use std::io::BufRead;

use bytes::Bytes;
use clap::Args;
use rivulet_client::{Producer, ProducerRecord};
use serde_json::Value;

use rivulet_client::config_keys::ClientKind;
use rivulet_client::ClientConfig;

use crate::common::{
    apply_client_properties, parse_pair, CliError, CliResult, ConnectArgs, StopSignals,
};
use crate::line_reader::LineReader;

pub const EXAMPLES: &str = "Examples:
  printf 'k1:v1\\nk2:v2\\n' | rivulet produce orders -K :
  rivulet produce --topic orders --property parse.key=true --property key.separator=: < lines.txt
  rivulet produce orders --json < events.jsonl
  rivulet produce orders -X linger.ms=5 --acks 1 -z zstd < lines.txt";

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic to write to.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// The topic (as Kafka's console producer and kcat take it).
    #[arg(
        long = "topic",
        short = 't',
        value_name = "TOPIC",
        conflicts_with = "topic"
    )]
    topic_flag: Option<String>,
    /// Each line is a JSON object with key, value, headers, partition, timestamp.
    #[arg(long, conflicts_with_all = ["key_separator", "properties"])]
    json: bool,
    /// Split each line into key and value at the first SEP (kcat's -K).
    #[arg(long = "key-separator", short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// A console producer property (repeatable): parse.key, key.separator,
    /// parse.headers, headers.delimiter, headers.separator, headers.key.separator,
    /// null.marker, ignore.error.
    #[arg(
        long = "property",
        visible_alias = "reader-property",
        value_name = "KEY=VALUE",
        value_parser = parse_pair
    )]
    properties: Vec<(String, String)>,
    /// A header on every record (repeatable): --header source=cli
    #[arg(long = "header", short = 'H', value_parser = parse_pair)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition (default: by key, else sticky).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// acks: 0, 1 or all.
    #[arg(long, visible_alias = "request-required-acks", default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(
        long = "compression",
        short = 'z',
        visible_alias = "compression-codec",
        default_value = "none"
    )]
    compression: String,
    /// A producer config (repeatable, kcat's -X): -X linger.ms=10
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_pair)]
    client_properties: Vec<(String, String)>,
    /// A producer config (repeatable, as Kafka's console producer).
    #[arg(
        long = "producer-property",
        visible_alias = "command-property",
        value_name = "KEY=VALUE",
        value_parser = parse_pair
    )]
    producer_properties: Vec<(String, String)>,
    /// A producer .properties file (as Kafka's console producer).
    #[arg(long = "producer.config", value_name = "FILE")]
    producer_config: Option<std::path::PathBuf>,
    /// Print each record's partition and offset.
    #[arg(long)]
    verbose: bool,
}

fn json_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(Bytes::from(s.clone())),
        other => Some(Bytes::from(other.to_string())),
    }
}

fn parse_json_line(topic: &str, line: &str, number: usize) -> CliResult<ProducerRecord> {
    let object: Value = serde_json::from_str(line)
        .map_err(|e| CliError::Usage(format!("line {number}: not JSON: {e}")))?;
    let Value::Object(fields) = object else {
        return Err(CliError::Usage(format!(
            "line {number}: expected a JSON object"
        )));
    };
    let mut record = ProducerRecord::new(topic);
    record.key = fields.get("key").and_then(json_bytes);
    record.value = fields.get("value").and_then(json_bytes);
    if let Some(headers) = fields.get("headers") {
        let Value::Object(headers) = headers else {
            return Err(CliError::Usage(format!(
                "line {number}: headers must be an object"
            )));
        };
        for (key, value) in headers {
            record.headers.push((key.clone(), json_bytes(value)));
        }
    }
    if let Some(partition) = fields.get("partition") {
        let p = partition
            .as_i64()
            .ok_or_else(|| CliError::Usage(format!("line {number}: partition must be a number")))?;
        record.partition = Some(p as i32);
    }
    if let Some(timestamp) = fields.get("timestamp") {
        record.timestamp = Some(timestamp.as_i64().ok_or_else(|| {
            CliError::Usage(format!("line {number}: timestamp must be a number"))
        })?);
    }
    Ok(record)
}

pub async fn run(args: ProduceArgs, connect: ConnectArgs) -> CliResult {
    let topic = args
        .topic
        .clone()
        .or(args.topic_flag.clone())
        .expect("clap requires the topic or --topic");
    let reader = LineReader::new(&args.properties, args.key_separator.as_deref())
        .map_err(CliError::Usage)?;
    let mut config = connect
        .client_config()?
        .set("acks", args.acks.clone())
        .set("compression.type", args.compression.clone());
    if let Some(path) = &args.producer_config {
        config = config.merge(&ClientConfig::from_properties_file(path)?);
    }
    apply_client_properties(
        &mut config,
        ClientKind::Producer,
        "--producer-property",
        &args.producer_properties,
    )?;
    apply_client_properties(
        &mut config,
        ClientKind::Producer,
        "-X",
        &args.client_properties,
    )?;
    let producer = Producer::new(config).await?;
    let mut signals = StopSignals::watch();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut deliveries = Vec::new();
    let mut number = 0usize;
    let mut stopped = None;
    loop {
        let line = tokio::select! {
            line = lines_rx.recv() => line,
            code = signals.next() => {
                stopped = Some(code);
                break;
            }
        };
        let Some(line) = line else { break };
        let line = line?;
        number += 1;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if args.json && line.trim().is_empty() {
            continue;
        }
        let mut record = if args.json {
            parse_json_line(&topic, line, number)?
        } else {
            let parsed = reader.parse(line, number).map_err(CliError::Usage)?;
            let mut record = ProducerRecord::new(topic.clone());
            record.key = parsed.key;
            record.value = parsed.value;
            record.headers = parsed.headers;
            record
        };
        if let Some(p) = args.partition {
            record.partition = Some(p);
        }
        for (k, v) in &args.headers {
            record
                .headers
                .push((k.clone(), Some(Bytes::from(v.clone()))));
        }
        deliveries.push(producer.send(record).await?);
        if deliveries.len() >= 10_000 {
            report(std::mem::take(&mut deliveries), args.verbose).await?;
        }
    }
    // From here a signal ends the process at once (a flush to a broker that is gone).
    signals.exit_on_next();
    producer.flush().await?;
    report(deliveries, args.verbose).await?;
    producer.close().await?;
    match stopped {
        Some(code) => Err(CliError::Stopped(code)),
        None => Ok(()),
    }
}

async fn report(deliveries: Vec<rivulet_client::DeliveryFuture>, verbose: bool) -> CliResult {
    for delivery in deliveries {
        let metadata = delivery.await?;
        if verbose {
            eprintln!(
                "{}-{}@{}",
                metadata.topic, metadata.partition, metadata.offset
            );
        }
    }
    Ok(())
}
