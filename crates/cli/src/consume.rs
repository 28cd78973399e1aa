//! `rivulet consume`: `kafka-console-consumer.sh` and `kcat -C` in one.
//!
//! Without `--group`, the partitions are assigned directly (all of the topic's,
//! or those given with `--partition`) and start at `--offset` (kcat's values:
//! beginning, end, an offset, `-N` for N before the end, `s@TIMESTAMP`) or
//! `--timestamp`; with `--group`, the consumer joins the group and starts at the
//! committed offsets (else `--from-beginning` or the end). A topic that does not
//! exist is an error at once (or once `--timeout-ms` passes without it).
//! `--exit-at-end` (`-e`) stops once every assigned partition is read to the end
//! offset it had when the command started; `--timeout-ms` stops after that long
//! without a record. Ctrl-C or SIGTERM stops cleanly: the group's offsets are
//! committed, the consumer leaves the group (so the next member takes over at
//! once), and "Processed a total of N messages" is printed, as Kafka's tool does.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use clap::Args;
use rivulet_client::config_keys::ClientKind;
use rivulet_client::{ClientConfig, Consumer, ConsumerRecord, TopicPartition};

use crate::common::{
    apply_client_properties, parse_pair, CliError, CliResult, ConnectArgs, StopSignals,
};
use crate::format::{self, KafkaFormat, Token};

pub const EXAMPLES: &str = "Examples:
  rivulet consume orders -o beginning -e
  rivulet consume orders -o -1 -e                       # the last record of each partition
  rivulet consume orders -f '%t/%p@%o %k=%s\\n' -e
  rivulet consume --topic orders --from-beginning --property print.key=true --property print.offset=true
  rivulet consume orders --group billing --from-beginning --max-messages 10";

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to read.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// The topic (as Kafka's console consumer and kcat take it).
    #[arg(
        long = "topic",
        short = 't',
        value_name = "TOPIC",
        conflicts_with = "topic"
    )]
    topic_flag: Option<String>,
    /// Consume as a member of this group (commits offsets).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Start at the beginning when there is no committed offset (or no group).
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Where to start without a group: beginning, end, an offset, -N (N before the
    /// end of each partition) or s@TIMESTAMP (ms).
    #[arg(long, short = 'o', allow_hyphen_values = true, conflicts_with_all = ["group", "timestamp"])]
    offset: Option<String>,
    /// Start at the first record at or after this time (ms since the epoch).
    #[arg(long, conflicts_with = "group")]
    timestamp: Option<i64>,
    /// Read only these partitions (repeatable; no group).
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Vec<i32>,
    /// Stop after this many records.
    #[arg(long = "max-messages", short = 'c')]
    max_messages: Option<u64>,
    /// Stop at the end of the partitions (their end offsets when the command started).
    #[arg(long = "exit-at-end", short = 'e')]
    exit_at_end: bool,
    /// Stop after this long without a record; also how long to wait for a topic
    /// that does not exist yet.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// kcat-style output format, e.g. '%t/%p@%o %k=%s\n' (default '%s\n').
    #[arg(long, short = 'f', conflicts_with_all = ["json", "properties"])]
    format: Option<String>,
    /// Print each record as a JSON object.
    #[arg(long, conflicts_with = "properties")]
    json: bool,
    /// A console consumer output property (repeatable): print.key, print.timestamp,
    /// print.partition, print.offset, print.headers, print.value, key.separator,
    /// line.separator, headers.separator, null.literal.
    #[arg(
        long = "property",
        visible_alias = "formatter-property",
        value_name = "KEY=VALUE",
        value_parser = parse_pair
    )]
    properties: Vec<(String, String)>,
    /// read_uncommitted or read_committed.
    #[arg(long = "isolation-level", default_value = "read_uncommitted")]
    isolation_level: String,
    /// A consumer config (repeatable, kcat's -X): -X max.poll.records=100
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_pair)]
    client_properties: Vec<(String, String)>,
    /// A consumer config (repeatable, as Kafka's console consumer).
    #[arg(
        long = "consumer-property",
        visible_alias = "command-property",
        value_name = "KEY=VALUE",
        value_parser = parse_pair
    )]
    consumer_properties: Vec<(String, String)>,
    /// A consumer .properties file (as Kafka's console consumer).
    #[arg(long = "consumer.config", value_name = "FILE")]
    consumer_config: Option<std::path::PathBuf>,
}

enum Output {
    Format(Vec<Token>),
    Kafka(KafkaFormat),
    Json,
}

impl Output {
    fn write(&self, out: &mut impl Write, record: &ConsumerRecord) -> std::io::Result<()> {
        match self {
            Output::Format(tokens) => format::write(out, tokens, record),
            Output::Kafka(format) => format.write(out, record),
            Output::Json => writeln!(out, "{}", format::to_json(record)),
        }
    }
}

/// Where reading starts without a group.
enum Start {
    Beginning,
    End,
    Offset(i64),
    BeforeEnd(i64),
    Timestamp(i64),
}

fn parse_start(
    offset: Option<&str>,
    timestamp: Option<i64>,
    from_beginning: bool,
) -> CliResult<Start> {
    if let Some(ts) = timestamp {
        return Ok(Start::Timestamp(ts));
    }
    let Some(text) = offset else {
        return Ok(if from_beginning {
            Start::Beginning
        } else {
            Start::End
        });
    };
    let bad = || {
        CliError::Usage(format!(
            "--offset {text:?}: use beginning, end, an offset, -N (N before the end) or s@TIMESTAMP"
        ))
    };
    Ok(match text {
        "beginning" | "earliest" | "start" | "oldest" => Start::Beginning,
        "end" | "latest" | "newest" => Start::End,
        "stored" => {
            return Err(CliError::Usage(
                "--offset stored: give --group GROUP instead (it starts at the committed offsets)"
                    .into(),
            ))
        }
        t if t.starts_with("e@") => {
            return Err(CliError::Usage(
                "--offset e@TIMESTAMP (stop at a time) is not supported; use --max-messages or -e"
                    .into(),
            ))
        }
        t => match t.strip_prefix("s@") {
            Some(ts) => Start::Timestamp(ts.parse().map_err(|_| bad())?),
            None => match t.parse::<i64>().map_err(|_| bad())? {
                n if n < 0 => Start::BeforeEnd(n.checked_neg().ok_or_else(bad)?),
                n => Start::Offset(n),
            },
        },
    })
}

fn output(args: &ConsumeArgs) -> CliResult<Output> {
    Ok(if args.json {
        Output::Json
    } else if !args.properties.is_empty() {
        Output::Kafka(KafkaFormat::from_properties(&args.properties).map_err(CliError::Usage)?)
    } else {
        Output::Format(
            format::parse(args.format.as_deref().unwrap_or("%s\\n")).map_err(CliError::Usage)?,
        )
    })
}

fn consumer_config(args: &ConsumeArgs, connect: &ConnectArgs) -> CliResult<ClientConfig> {
    let mut config = connect
        .client_config()?
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("isolation.level", args.isolation_level.clone())
        // Reading must not create the topic (kcat and Kafka's tool report it missing).
        .set("allow.auto.create.topics", "false");
    if let Some(group) = &args.group {
        config.insert("group.id", group.clone());
    }
    if let Some(path) = &args.consumer_config {
        config = config.merge(&ClientConfig::from_properties_file(path)?);
    }
    apply_client_properties(
        &mut config,
        ClientKind::Consumer,
        "--consumer-property",
        &args.consumer_properties,
    )?;
    apply_client_properties(
        &mut config,
        ClientKind::Consumer,
        "-X",
        &args.client_properties,
    )?;
    Ok(config)
}

/// Assigns the partitions and seeks per `start` (no group).
async fn assign(consumer: &mut Consumer, partitions: &[TopicPartition], start: Start) -> CliResult {
    consumer.assign(partitions)?;
    match start {
        Start::Timestamp(ts) => consumer.seek_to_time(partitions, ts)?,
        Start::Beginning => consumer.seek_to_beginning(partitions)?,
        Start::End => consumer.seek_to_end(partitions)?,
        Start::Offset(offset) => {
            for tp in partitions {
                consumer.seek(tp, offset)?;
            }
        }
        Start::BeforeEnd(n) => {
            let ends = consumer.end_offsets(partitions).await?;
            let beginnings = consumer.beginning_offsets(partitions).await?;
            for tp in partitions {
                let end = ends.get(tp).copied().unwrap_or(0);
                let beginning = beginnings.get(tp).copied().unwrap_or(0);
                consumer.seek(tp, end.saturating_sub(n).max(beginning))?;
            }
        }
    }
    Ok(())
}

pub async fn run(args: ConsumeArgs, connect: ConnectArgs) -> CliResult {
    let topic = args
        .topic
        .clone()
        .or(args.topic_flag.clone())
        .expect("clap requires the topic or --topic");
    let output = output(&args)?;
    let start = parse_start(args.offset.as_deref(), args.timestamp, args.from_beginning)?;
    let mut consumer = Consumer::new(consumer_config(&args, &connect)?).await?;
    // A missing topic is an error now (or once --timeout-ms passes), as kcat says
    // "Unknown topic or partition" instead of waiting for it forever.
    let wait_for_topic = Duration::from_millis(args.timeout_ms.unwrap_or(0));
    let all = consumer
        .partitions_for_within(&topic, wait_for_topic)
        .await?;
    let mut ends: Option<BTreeMap<TopicPartition, i64>> = None;
    if args.group.is_some() {
        consumer.subscribe(&[&topic])?;
    } else {
        let partitions: Vec<TopicPartition> = if args.partition.is_empty() {
            all
        } else {
            args.partition
                .iter()
                .map(|p| TopicPartition::new(topic.as_str(), *p))
                .collect()
        };
        assign(&mut consumer, &partitions, start).await?;
        if args.exit_at_end {
            ends = Some(consumer.end_offsets(&partitions).await?);
        }
    }
    let mut signals = StopSignals::watch();
    let mut count = 0u64;
    let outcome = tokio::select! {
        result = read(&mut consumer, &args, &output, &mut ends, &mut count) => result.map(|()| None),
        code = signals.next() => Ok(Some(code)),
    };
    // From here a signal (the first, or a second one) ends the process at once:
    // commit and leave may hang on a broker that is gone.
    signals.exit_on_next();
    let stopped = outcome?;
    if args.group.is_some() {
        consumer.commit_sync().await?;
    }
    consumer.close().await?;
    eprintln!("Processed a total of {count} messages");
    match stopped {
        Some(code) => Err(CliError::Stopped(code)),
        None => Ok(()),
    }
}

/// Polls and prints until a stop condition; `count` is what was printed. Dropping
/// this future (on a signal) loses nothing: a poll returns its records at once.
async fn read(
    consumer: &mut Consumer,
    args: &ConsumeArgs,
    output: &Output,
    ends: &mut Option<BTreeMap<TopicPartition, i64>>,
    count: &mut u64,
) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut idle = Duration::ZERO;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let poll = Duration::from_millis(200);
    loop {
        if args.max_messages.is_some_and(|max| *count >= max) {
            break;
        }
        if args.exit_at_end && at_end(consumer, ends).await? {
            break;
        }
        let records = consumer.poll(poll).await?;
        if records.is_empty() {
            idle += poll;
            if timeout.is_some_and(|t| idle >= t) {
                break;
            }
            out.flush()?;
            continue;
        }
        idle = Duration::ZERO;
        for (index, record) in records.iter().enumerate() {
            output.write(&mut out, record)?;
            *count += 1;
            if args.max_messages.is_some_and(|max| *count >= max) {
                // Rewind what was fetched but not printed, so the group commits
                // only what was printed.
                let mut rewound = std::collections::BTreeSet::new();
                for unprinted in &records[index + 1..] {
                    let tp = TopicPartition::new(unprinted.topic.clone(), unprinted.partition);
                    if rewound.insert(tp.clone()) {
                        consumer.seek(&tp, unprinted.offset)?;
                    }
                }
                out.flush()?;
                return Ok(());
            }
        }
        // Printed records reach the reader before the next wait (a pipe or a
        // signal must not leave them in the buffer).
        out.flush()?;
    }
    out.flush()?;
    Ok(())
}

/// Whether every assigned partition is read to its end offset at the start.
async fn at_end(
    consumer: &mut Consumer,
    ends: &mut Option<BTreeMap<TopicPartition, i64>>,
) -> CliResult<bool> {
    if ends.is_none() && !consumer.assignment().is_empty() {
        *ends = Some(consumer.end_offsets(&consumer.assignment()).await?);
    }
    let Some(ends) = ends else {
        return Ok(false);
    };
    for (tp, end) in ends.iter() {
        if consumer.position(tp).await? < *end {
            return Ok(false);
        }
    }
    Ok(true)
}
