//! `rivulet topics create|list|describe|alter|delete`: Kafka's `kafka-topics.sh`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use rivulet_client::admin::{AlterConfigOp, ConfigResource};
use rivulet_client::{Admin, ErrorCode, NewTopic};

use crate::common::{parse_pair, print_table, CliError, CliResult, ConnectArgs};

#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create a topic.
    Create {
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long = "replication-factor", short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config (repeatable): --config retention.ms=86400000
        #[arg(long = "config", value_parser = parse_pair)]
        configs: Vec<(String, String)>,
        /// Succeed if the topic exists already.
        #[arg(long = "if-not-exists")]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets...).
        #[arg(long = "include-internal")]
        include_internal: bool,
    },
    /// Partitions, leaders, replicas and ISR of topics (all when none given).
    Describe { topics: Vec<String> },
    /// Add partitions, or change topic configs.
    Alter {
        topic: String,
        /// The new total partition count (only grows).
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a topic config (repeatable).
        #[arg(long = "config", value_parser = parse_pair)]
        configs: Vec<(String, String)>,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
        /// Succeed if a topic does not exist.
        #[arg(long = "if-exists")]
        if_exists: bool,
    },
}

pub async fn run(args: TopicsArgs) -> CliResult {
    let admin = Admin::new(args.connect.client_config()?).await?;
    match args.command {
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let mut new = NewTopic::new(
                &topic,
                partitions.unwrap_or(-1),
                replication_factor.unwrap_or(-1),
            );
            new.configs = configs.into_iter().collect::<BTreeMap<_, _>>();
            match admin.create_topics(&[new]).await {
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
        TopicsCommand::Describe { topics } => describe(&admin, topics).await?,
        TopicsCommand::Alter {
            topic,
            partitions,
            configs,
        } => {
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
                    .incremental_alter_configs(&ConfigResource::topic(&topic), &ops, false)
                    .await?;
                outln!("Updated the configs of topic {topic}.");
            }
        }
        TopicsCommand::Delete { topics, if_exists } => {
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

async fn describe(admin: &Admin, topics: Vec<String>) -> CliResult {
    let described = if topics.is_empty() {
        admin.list_topics(false).await?
    } else {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        admin.describe_topics(&names).await?
    };
    for topic in described {
        outln!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tInternal: {}",
            topic.name,
            topic.topic_id,
            topic.partitions.len(),
            topic.is_internal
        );
        let rows: Vec<Vec<String>> = topic
            .partitions
            .iter()
            .map(|p| {
                let list =
                    |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                vec![
                    format!("  {}", p.partition),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    list(&p.replicas),
                    list(&p.isr),
                    if p.error.is_ok() {
                        String::new()
                    } else {
                        p.error.name().to_string()
                    },
                ]
            })
            .collect();
        print_table(
            &["  PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "ERROR"],
            &rows,
        );
    }
    Ok(())
}
