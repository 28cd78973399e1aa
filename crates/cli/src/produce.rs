//! `rivulet produce`: records from stdin, one per line, as
//! `kafka-console-producer.sh` and `kcat -P`.
//!
//! A line is the value; with `--key-separator SEP` the part before the first SEP
//! is the key. With `--json` each line is an object:
//! `{"key": ..., "value": ..., "headers": {"k": "v"}, "partition": 0, "timestamp": 1700000000000}`
//! (every field optional; a string value is sent as its text, any other JSON as
//! its serialisation; `null` is a null key or value).

use std::io::BufRead;

use bytes::Bytes;
use clap::Args;
use rivulet_client::{Producer, ProducerRecord};
use serde_json::Value;

use crate::common::{parse_pair, CliError, CliResult, ConnectArgs};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to write to.
    topic: String,
    /// Each line is a JSON object with key, value, headers, partition, timestamp.
    #[arg(long, conflicts_with = "key_separator")]
    json: bool,
    /// Split each line into key and value at the first SEP.
    #[arg(long = "key-separator", short = 'K', value_name = "SEP")]
    key_separator: Option<String>,
    /// A header on every record (repeatable): --header source=cli
    #[arg(long = "header", short = 'H', value_parser = parse_pair)]
    headers: Vec<(String, String)>,
    /// Write every record to this partition (default: by key, else sticky).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long = "compression", short = 'z', default_value = "none")]
    compression: String,
    /// A producer config (repeatable): --property linger.ms=10
    #[arg(long = "property", short = 'X', value_parser = parse_pair)]
    properties: Vec<(String, String)>,
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

pub async fn run(args: ProduceArgs) -> CliResult {
    let mut config = args
        .connect
        .client_config()?
        .set("acks", args.acks.clone())
        .set("compression.type", args.compression.clone());
    for (k, v) in &args.properties {
        config.insert(k.clone(), v.clone());
    }
    let producer = Producer::new(config).await?;
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
    while let Some(line) = lines_rx.recv().await {
        let line = line?;
        number += 1;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if args.json && line.trim().is_empty() {
            continue;
        }
        let mut record = if args.json {
            parse_json_line(&args.topic, line, number)?
        } else {
            let mut record = ProducerRecord::new(args.topic.clone());
            match args
                .key_separator
                .as_deref()
                .and_then(|sep| line.split_once(sep))
            {
                Some((key, value)) => {
                    record.key = Some(Bytes::from(key.to_string()));
                    record.value = Some(Bytes::from(value.to_string()));
                }
                None => record.value = Some(Bytes::from(line.to_string())),
            }
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
    producer.flush().await?;
    report(deliveries, args.verbose).await?;
    producer.close().await?;
    Ok(())
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
