//! `rivulet topics create|list|describe|alter|delete`: Kafka's `kafka-topics.sh`
//! (the topic as an argument or as `--topic`).

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use rivulet_client::admin::{AlterConfigOp, ConfigResource};
use rivulet_client::{Admin, ErrorCode, NewTopic};

use crate::common::{parse_pair, CliError, CliResult, ConnectArgs};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(subcommand)]
    command: TopicsCommand,
}

/// The topic, as an argument or as kafka-topics.sh's `--topic`.
#[derive(Args, Debug)]
struct TopicArg {
    /// The topic.
    #[arg(value_name = "TOPIC", required_unless_present = "topic_flag")]
    topic: Option<String>,
    /// The topic (as kafka-topics.sh takes it).
    #[arg(
        long = "topic",
        short = 't',
        value_name = "TOPIC",
        conflicts_with = "topic"
    )]
    topic_flag: Option<String>,
}

impl TopicArg {
    fn name(self) -> String {
        self.topic
            .or(self.topic_flag)
            .expect("clap requires the topic or --topic")
    }
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create a topic.
    #[command(after_help = "Examples:
  rivulet topics create orders -p 6 -r 1 --config retention.ms=86400000
  rivulet topics create --topic orders --partitions 6 --if-not-exists
  rivulet topics create orders -p 6 --dry-run      # validate only")]
    Create {
        #[command(flatten)]
        topic: TopicArg,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor", short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config (repeatable): --config retention.ms=86400000
        #[arg(long = "config", short = 'c', value_parser = parse_pair)]
        configs: Vec<(String, String)>,
        /// Succeed if the topic exists already.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
        /// Validate the request on the broker without creating the topic.
        #[arg(long = "dry-run", short = 'd')]
        dry_run: bool,
    },
    /// List topics.
    #[command(after_help = "Example:
  rivulet topics list --include-internal")]
    List {
        /// Include internal topics (__consumer_offsets...).
        #[arg(long = "include-internal")]
        include_internal: bool,
    },
    /// Partitions, leaders, replicas, ISR and non-default configs of topics (all
    /// when none given), as kafka-topics.sh --describe prints them.
    #[command(after_help = "Examples:
  rivulet topics describe orders
  rivulet topics describe")]
    Describe {
        /// The topics (all when none given).
        topics: Vec<String>,
        /// A topic (as kafka-topics.sh takes it; repeatable).
        #[arg(long = "topic", short = 't', value_name = "TOPIC")]
        topic_flags: Vec<String>,
    },
    /// Add partitions, or change topic configs.
    #[command(after_help = "Examples:
  rivulet topics alter orders --partitions 8
  rivulet topics alter orders --config retention.ms=3600000 --dry-run")]
    Alter {
        #[command(flatten)]
        topic: TopicArg,
        /// The new total partition count (only grows).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Set a topic config (repeatable).
        #[arg(long = "config", short = 'c', value_parser = parse_pair)]
        configs: Vec<(String, String)>,
        /// Validate the config change on the broker without applying it.
        #[arg(long = "dry-run", short = 'd', conflicts_with = "partitions")]
        dry_run: bool,
    },
    /// Delete topics.
    #[command(after_help = "Examples:
  rivulet topics delete orders
  rivulet topics delete orders audit --if-exists")]
    Delete {
        /// The topics to delete.
        #[arg(required_unless_present = "topic_flags")]
        topics: Vec<String>,
        /// A topic (as kafka-topics.sh takes it; repeatable).
        #[arg(long = "topic", short = 't', value_name = "TOPIC")]
        topic_flags: Vec<String>,
        /// Succeed if a topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
    },
}

pub async fn run(args: TopicsArgs, connect: ConnectArgs) -> CliResult {
    let admin = Admin::new(connect.client_config()?).await?;
    match args.command {
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
            dry_run,
        } => {
            let topic = topic.name();
            let mut new = NewTopic::new(
                &topic,
                partitions.unwrap_or(-1),
                replication_factor.unwrap_or(-1),
            );
            new.configs = configs.into_iter().collect::<BTreeMap<_, _>>();
            match admin.create_topics_with(&[new], dry_run).await {
                Ok(()) if dry_run => {
                    outln!("Topic {topic} can be created (dry run: nothing changed).")
                }
                Ok(()) => outln!("Created topic {topic}."),
                Err(e) if if_not_exists && e.code() == Some(ErrorCode::TopicAlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        TopicsCommand::List { include_internal } => {
            for topic in admin.list_topics(include_internal).await? {
                outln!("{}", topic.name);
            }
        }
        TopicsCommand::Describe {
            mut topics,
            topic_flags,
        } => {
            topics.extend(topic_flags);
            describe(&admin, topics).await?
        }
        TopicsCommand::Alter {
            topic,
            partitions,
            configs,
            dry_run,
        } => {
            let topic = topic.name();
            if partitions.is_none() && configs.is_empty() {
                return Err(CliError::Usage(
                    "topics alter needs --partitions or --config".into(),
                ));
            }
            if let Some(total) = partitions {
                admin.create_partitions(&topic, total).await?;
                outln!("Topic {topic} now has {total} partitions.");
            }
            if !configs.is_empty() {
                let ops: Vec<AlterConfigOp> = configs
                    .into_iter()
                    .map(|(k, v)| AlterConfigOp::Set(k, v))
                    .collect();
                admin
                    .incremental_alter_configs(&ConfigResource::topic(&topic), &ops, dry_run)
                    .await?;
                if dry_run {
                    outln!("The configs of topic {topic} are valid (dry run: nothing changed).");
                } else {
                    outln!("Updated the configs of topic {topic}.");
                }
            }
        }
        TopicsCommand::Delete {
            mut topics,
            topic_flags,
            if_exists,
        } => {
            topics.extend(topic_flags);
            for topic in topics {
                match admin.delete_topics(&[&topic]).await {
                    Ok(()) => outln!("Deleted topic {topic}."),
                    Err(e) if if_exists && e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    admin.close();
    Ok(())
}

/// kafka-topics.sh --describe: a topic line (partition count, replication
/// factor, the configs that are not defaults), then a line per partition.
async fn describe(admin: &Admin, topics: Vec<String>) -> CliResult {
    let described = if topics.is_empty() {
        admin.list_topics(false).await?
    } else {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        admin.describe_topics(&names).await?
    };
    let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    for topic in described {
        let configs = admin
            .describe_configs(&ConfigResource::topic(&topic.name), None)
            .await?;
        let configs: Vec<String> = configs
            .iter()
            .filter(|c| c.source != "DEFAULT_CONFIG" && !c.is_sensitive)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("null")))
            .collect();
        let replication_factor = topic.partitions.first().map_or(0, |p| p.replicas.len());
        outln!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            topic.name,
            topic.topic_id,
            topic.partitions.len(),
            replication_factor,
            configs.join(",")
        );
        for p in &topic.partitions {
            let leader = if p.leader >= 0 {
                p.leader.to_string()
            } else {
                "none".to_string()
            };
            let error = if p.error.is_ok() {
                String::new()
            } else {
                format!("\tError: {}", p.error.name())
            };
            outln!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tElr: N/A\tLastKnownElr: N/A{}",
                topic.name,
                p.partition,
                leader,
                list(&p.replicas),
                list(&p.isr),
                error
            );
        }
    }
    Ok(())
}
