//! `rivulet consume`: `kafka-console-consumer.sh` and `kcat -C` in one.
//!
//! Without `--group`, the partitions are assigned directly (all of the topic's,
//! or those given with `--partition`) and start at `--offset` (beginning, end,
//! an offset) or `--timestamp`; with `--group`, the consumer joins the group and
//! starts at the committed offsets (else `--from-beginning` or the end).
//! `--exit-at-end` (`-e`) stops once every assigned partition is read to the end
//! offset it had when the command started; `--timeout-ms` stops after that long
//! without a record.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use clap::Args;
use rivulet_client::{Consumer, TopicPartition};

use crate::common::{parse_pair, CliError, CliResult, ConnectArgs};
use crate::format::{self, Token};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to read.
    topic: String,
    /// Consume as a member of this group (commits offsets).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Start at the beginning when there is no committed offset (or no group).
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Where to start without a group: beginning, end, or an offset.
    #[arg(long, short = 'o', conflicts_with_all = ["group", "timestamp"])]
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
    /// Stop after this long without a record.
    #[arg(long = "timeout-ms")]
    timeout_ms: Option<u64>,
    /// kcat-style output format, e.g. '%t/%p@%o %k=%s\n' (default '%s\n').
    #[arg(long, short = 'f', conflicts_with = "json")]
    format: Option<String>,
    /// Print each record as a JSON object.
    #[arg(long)]
    json: bool,
    /// read_uncommitted or read_committed.
    #[arg(long = "isolation-level", default_value = "read_uncommitted")]
    isolation_level: String,
    /// A consumer config (repeatable): --property max.poll.records=100
    #[arg(long = "property", short = 'X', value_parser = parse_pair)]
    properties: Vec<(String, String)>,
}

enum Output {
    Format(Vec<Token>),
    Json,
}

pub async fn run(args: ConsumeArgs) -> CliResult {
    let output = if args.json {
        Output::Json
    } else {
        Output::Format(
            format::parse(args.format.as_deref().unwrap_or("%s\\n")).map_err(CliError::Usage)?,
        )
    };
    let mut config = args
        .connect
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
    for (k, v) in &args.properties {
        config.insert(k.clone(), v.clone());
    }
    let mut consumer = Consumer::new(config).await?;
    let mut ends: Option<BTreeMap<TopicPartition, i64>> = None;
    if args.group.is_some() {
        consumer.subscribe(&[&args.topic])?;
    } else {
        let partitions: Vec<TopicPartition> = if args.partition.is_empty() {
            consumer.partitions_for(&args.topic).await?
        } else {
            args.partition
                .iter()
                .map(|p| TopicPartition::new(args.topic.as_str(), *p))
                .collect()
        };
        consumer.assign(&partitions)?;
        match (args.offset.as_deref(), args.timestamp) {
            (_, Some(ts)) => consumer.seek_to_time(&partitions, ts)?,
            (Some("beginning" | "earliest" | "start"), _) => {
                consumer.seek_to_beginning(&partitions)?
            }
            (Some("end" | "latest"), _) => consumer.seek_to_end(&partitions)?,
            (Some(n), _) => {
                let offset: i64 = n.parse().map_err(|_| {
                    CliError::Usage(format!("--offset {n:?}: use beginning, end or a number"))
                })?;
                for tp in &partitions {
                    consumer.seek(tp, offset)?;
                }
            }
            (None, None) if args.from_beginning => consumer.seek_to_beginning(&partitions)?,
            (None, None) => consumer.seek_to_end(&partitions)?,
        }
        if args.exit_at_end {
            ends = Some(consumer.end_offsets(&partitions).await?);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut idle = Duration::ZERO;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let poll = Duration::from_millis(200);
    'outer: loop {
        if args.max_messages.is_some_and(|max| count >= max) {
            break;
        }
        if args.exit_at_end {
            if ends.is_none() && !consumer.assignment().is_empty() {
                ends = Some(consumer.end_offsets(&consumer.assignment()).await?);
            }
            if let Some(ends) = &ends {
                let mut done = true;
                for (tp, end) in ends {
                    if consumer.position(tp).await? < *end {
                        done = false;
                        break;
                    }
                }
                if done {
                    break;
                }
            }
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
            match &output {
                Output::Format(tokens) => format::write(&mut out, tokens, record)?,
                Output::Json => writeln!(out, "{}", format::to_json(record))?,
            }
            count += 1;
            if args.max_messages.is_some_and(|max| count >= max) {
                // Rewind what was fetched but not printed, so the group commits
                // only what was printed.
                let mut rewound = std::collections::BTreeSet::new();
                for unprinted in &records[index + 1..] {
                    let tp = TopicPartition::new(unprinted.topic.clone(), unprinted.partition);
                    if rewound.insert(tp.clone()) {
                        consumer.seek(&tp, unprinted.offset)?;
                    }
                }
                break 'outer;
            }
        }
    }
    out.flush()?;
    if args.group.is_some() {
        consumer.commit_sync().await?;
    }
    consumer.close().await?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}
