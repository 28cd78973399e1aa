//! `rivulet configs describe|alter`, `rivulet transactions
//! list|describe|describe-producers|find-hanging|abort` and
//! `rivulet cluster describe`: Kafka's `kafka-configs.sh`,
//! `kafka-transactions.sh` and `kafka-cluster.sh`/`kafka-metadata` views.

use clap::{Args, Subcommand};
use protocol::TopicPartition;
use rivulet_client::admin::{AbortTransactionSpec, AlterConfigOp, ConfigResource};
use rivulet_client::Admin;

use crate::common::{parse_config_list, print_table, CliError, CliResult, ConnectArgs};

/// The resource a configs command is about.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
struct Entity {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// A broker, by node id.
    #[arg(long)]
    broker: Option<String>,
}

impl Entity {
    fn resource(&self) -> ConfigResource {
        match (&self.topic, &self.broker) {
            (Some(topic), _) => ConfigResource::topic(topic),
            (_, Some(broker)) => ConfigResource::broker(broker),
            _ => unreachable!("clap requires one of --topic and --broker"),
        }
    }
}

#[derive(Args, Debug)]
pub struct ConfigsArgs {
    #[command(subcommand)]
    command: ConfigsCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigsCommand {
    /// Show a topic's or broker's configs and where each value comes from.
    #[command(after_help = "Examples:
  rivulet configs describe --topic orders
  rivulet configs describe --broker 1 --all")]
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Also show configs left at their defaults.
        #[arg(long)]
        all: bool,
    },
    /// Set or delete configs: --add-config k=v,k2=[a,b] --delete-config k3
    #[command(after_help = "Examples:
  rivulet configs alter --topic orders --add-config retention.ms=3600000,segment.bytes=104857600
  rivulet configs alter --topic orders --add-config 'cleanup.policy=[compact,delete]'
  rivulet configs alter --topic orders --delete-config retention.ms")]
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Configs to set: k=v[,k2=v2...]; a list value in brackets: k=[a,b] (repeatable).
        #[arg(long = "add-config", value_name = "K=V,...")]
        add: Vec<String>,
        /// Configs to remove (back to the default): k[,k2...] (repeatable).
        #[arg(long = "delete-config", value_delimiter = ',', value_name = "K,...")]
        delete: Vec<String>,
    },
}

pub async fn configs(args: ConfigsArgs, connect: ConnectArgs) -> CliResult {
    let admin = Admin::new(connect.client_config()?).await?;
    match args.command {
        ConfigsCommand::Describe { entity, all } => {
            let resource = entity.resource();
            let entries = admin.describe_configs(&resource, None).await?;
            let rows: Vec<Vec<String>> = entries
                .iter()
                .filter(|e| all || e.source != "DEFAULT_CONFIG")
                .map(|e| {
                    let value = if e.is_sensitive {
                        "(sensitive)".to_string()
                    } else {
                        e.value.clone().unwrap_or_else(|| "null".into())
                    };
                    vec![
                        e.name.clone(),
                        value,
                        e.source.to_string(),
                        if e.read_only {
                            "read-only".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            outln!("Configs of {:?} {}:", resource.resource_type, resource.name);
            print_table(&["NAME", "VALUE", "SOURCE", ""], &rows);
        }
        ConfigsCommand::Alter {
            entity,
            add,
            delete,
        } => {
            let mut ops = Vec::new();
            for list in add {
                let pairs = parse_config_list(&list)
                    .map_err(|e| CliError::Usage(format!("--add-config {list:?}: {e}")))?;
                ops.extend(pairs.into_iter().map(|(k, v)| AlterConfigOp::Set(k, v)));
            }
            ops.extend(
                delete
                    .into_iter()
                    .map(|k| AlterConfigOp::Delete(k.trim().to_string())),
            );
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "configs alter needs --add-config or --delete-config".into(),
                ));
            }
            let resource = entity.resource();
            admin
                .incremental_alter_configs(&resource, &ops, false)
                .await?;
            outln!(
                "Completed updating the configs of {:?} {}.",
                resource.resource_type,
                resource.name
            );
        }
    }
    admin.close();
    Ok(())
}

#[derive(Args, Debug)]
pub struct TransactionsArgs {
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
enum TransactionsCommand {
    /// Transactional ids known to the coordinators, with their state.
    #[command(after_help = "Example:
  rivulet transactions list")]
    List,
    /// A transaction's state, producer id and epoch, timeout and partitions.
    #[command(after_help = "Example:
  rivulet transactions describe --transactional-id tx-1")]
    Describe {
        /// The producer's transactional.id.
        #[arg(long = "transactional-id", required = true)]
        transactional_id: String,
    },
    /// The producers a partition's leader knows, with any open transaction's first
    /// offset (what holds the last stable offset back).
    #[command(after_help = "Example:
  rivulet transactions describe-producers --topic orders --partition 0")]
    DescribeProducers {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
    },
    /// Open transactions older than the longest a coordinator lets one run that no
    /// coordinator has on record for their partition: hanging, and holding back the
    /// partition's last stable offset (`kafka-transactions.sh find-hanging`).
    #[command(after_help = "Examples:
  rivulet transactions find-hanging --broker-id 1
  rivulet transactions find-hanging --topic orders --partition 0")]
    FindHanging {
        /// Every partition this broker leads.
        #[arg(long = "broker-id", conflicts_with = "topic")]
        broker_id: Option<i32>,
        /// Every partition of this topic (or only --partition).
        #[arg(long, required_unless_present = "broker_id")]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// Minutes; the brokers' transaction.max.timeout.ms (Kafka's default 15).
        #[arg(long = "max-transaction-timeout", default_value_t = 15)]
        max_transaction_timeout: i64,
    },
    /// Aborts a hanging transaction on one partition (a transaction no coordinator
    /// will end): by the first offset of the open transaction, or by producer id,
    /// producer epoch and coordinator epoch, as `kafka-transactions.sh abort`.
    #[command(after_help = "Examples:
  rivulet transactions abort --topic orders --partition 0 --start-offset 42
  rivulet transactions abort --topic orders --partition 0 --producer-id 7 --producer-epoch 0 --coordinator-epoch 0")]
    Abort {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The partition.
        #[arg(long)]
        partition: i32,
        /// The open transaction's first offset (see describe-producers).
        #[arg(long = "start-offset", conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
        start_offset: Option<i64>,
        /// The producer id (with --producer-epoch and --coordinator-epoch).
        #[arg(long = "producer-id", requires_all = ["producer_epoch", "coordinator_epoch"])]
        producer_id: Option<i64>,
        /// The producer epoch (see describe-producers).
        #[arg(long = "producer-epoch")]
        producer_epoch: Option<i16>,
        /// The coordinator epoch (see describe-producers).
        #[arg(long = "coordinator-epoch")]
        coordinator_epoch: Option<i32>,
    },
}

pub async fn transactions(args: TransactionsArgs, connect: ConnectArgs) -> CliResult {
    let admin = Admin::new(connect.client_config()?).await?;
    match args.command {
        TransactionsCommand::List => {
            let rows: Vec<Vec<String>> = admin
                .list_transactions()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.transactional_id,
                        t.coordinator.to_string(),
                        t.producer_id.to_string(),
                        t.state,
                    ]
                })
                .collect();
            print_table(
                &["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"],
                &rows,
            );
        }
        TransactionsCommand::Describe { transactional_id } => {
            let rows: Vec<Vec<String>> = admin
                .describe_transactions(&[&transactional_id])
                .await?
                .into_iter()
                .map(|t| {
                    let partitions: Vec<String> =
                        t.partitions.iter().map(|tp| tp.to_string()).collect();
                    vec![
                        t.coordinator.to_string(),
                        t.transactional_id,
                        t.producer_id.to_string(),
                        t.producer_epoch.to_string(),
                        t.state,
                        t.start_time_ms.to_string(),
                        t.timeout_ms.to_string(),
                        partitions.join(","),
                    ]
                })
                .collect();
            print_table(
                &[
                    "COORDINATOR",
                    "TRANSACTIONAL-ID",
                    "PRODUCER-ID",
                    "EPOCH",
                    "STATE",
                    "START-TIME-MS",
                    "TIMEOUT-MS",
                    "PARTITIONS",
                ],
                &rows,
            );
        }
        TransactionsCommand::DescribeProducers { topic, partition } => {
            let tp = TopicPartition::new(topic.as_str(), partition);
            let producers = admin.describe_producers(std::slice::from_ref(&tp)).await?;
            let rows: Vec<Vec<String>> = producers
                .get(&tp)
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        p.producer_id.to_string(),
                        p.producer_epoch.to_string(),
                        p.coordinator_epoch.to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp.to_string(),
                        p.current_transaction_start_offset
                            .map_or("None".to_string(), |o| o.to_string()),
                    ]
                })
                .collect();
            print_table(
                &[
                    "PRODUCER-ID",
                    "PRODUCER-EPOCH",
                    "LATEST-COORDINATOR-EPOCH",
                    "LAST-SEQUENCE",
                    "LAST-TIMESTAMP",
                    "CURRENT-TRANSACTION-START-OFFSET",
                ],
                &rows,
            );
        }
        TransactionsCommand::FindHanging {
            broker_id,
            topic,
            partition,
            max_transaction_timeout,
        } => {
            let partitions =
                hanging_candidates(&admin, broker_id, topic.as_deref(), partition).await?;
            let rows = find_hanging(
                &admin,
                &partitions,
                max_transaction_timeout.saturating_mul(60_000),
            )
            .await?;
            print_table(
                &[
                    "TOPIC",
                    "PARTITION",
                    "PRODUCER-ID",
                    "PRODUCER-EPOCH",
                    "COORDINATOR-EPOCH",
                    "START-OFFSET",
                    "LAST-TIMESTAMP",
                    "DURATION(MIN)",
                ],
                &rows,
            );
        }
        TransactionsCommand::Abort {
            topic,
            partition,
            start_offset,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            let tp = TopicPartition::new(topic.as_str(), partition);
            let spec = match (start_offset, producer_id, producer_epoch, coordinator_epoch) {
                (Some(offset), None, None, None) => {
                    let producers = admin.describe_producers(std::slice::from_ref(&tp)).await?;
                    let found = producers
                        .get(&tp)
                        .into_iter()
                        .flatten()
                        .find(|p| p.current_transaction_start_offset == Some(offset))
                        .ok_or_else(|| {
                            CliError::Usage(format!(
                                "no open transaction on {tp} starts at offset {offset} \
                                 (see `rivulet transactions describe-producers`)"
                            ))
                        })?;
                    AbortTransactionSpec {
                        partition: tp.clone(),
                        producer_id: found.producer_id,
                        producer_epoch: i16::try_from(found.producer_epoch).map_err(|_| {
                            CliError::Usage(format!("producer epoch {} out of range", found.producer_epoch))
                        })?,
                        coordinator_epoch: found.coordinator_epoch,
                    }
                }
                (None, Some(producer_id), Some(producer_epoch), Some(coordinator_epoch)) => {
                    AbortTransactionSpec {
                        partition: tp.clone(),
                        producer_id,
                        producer_epoch,
                        coordinator_epoch,
                    }
                }
                _ => {
                    return Err(CliError::Usage(
                        "give --start-offset, or --producer-id, --producer-epoch and --coordinator-epoch"
                            .into(),
                    ))
                }
            };
            admin.abort_transaction(&spec).await?;
            outln!(
                "Aborted the transaction of producer {} (epoch {}) on {tp}.",
                spec.producer_id,
                spec.producer_epoch
            );
        }
    }
    admin.close();
    Ok(())
}

/// The partitions find-hanging looks at: those a broker leads, or a topic's.
async fn hanging_candidates(
    admin: &Admin,
    broker_id: Option<i32>,
    topic: Option<&str>,
    partition: Option<i32>,
) -> Result<Vec<TopicPartition>, CliError> {
    let topics = match topic {
        Some(topic) => admin.describe_topics(&[topic]).await?,
        None => admin.list_topics(true).await?,
    };
    let mut out = Vec::new();
    for t in topics {
        for p in &t.partitions {
            if broker_id.is_some_and(|b| p.leader != b)
                || partition.is_some_and(|q| p.partition != q)
            {
                continue;
            }
            out.push(TopicPartition::new(t.name.as_str(), p.partition));
        }
    }
    if let (Some(q), true) = (partition, out.is_empty()) {
        return Err(CliError::Usage(format!(
            "{} has no partition {q}",
            topic.unwrap_or_default()
        )));
    }
    Ok(out)
}

/// Kafka's find-hanging: producers with an open transaction whose last write is
/// older than `max_timeout_ms`, and whose producer id no coordinator lists as in a
/// transaction that includes the partition.
async fn find_hanging(
    admin: &Admin,
    partitions: &[TopicPartition],
    max_timeout_ms: i64,
) -> Result<Vec<Vec<String>>, CliError> {
    let now = rivulet_client::clock::now_ms();
    let mut old_open = Vec::new();
    for (tp, producers) in admin.describe_producers(partitions).await? {
        for p in producers {
            if let Some(start) = p.current_transaction_start_offset {
                if now - p.last_timestamp > max_timeout_ms {
                    old_open.push((tp.clone(), p, start));
                }
            }
        }
    }
    if old_open.is_empty() {
        return Ok(Vec::new());
    }
    // What the coordinators know of those producers' transactions.
    let listed = admin.list_transactions().await?;
    let ids: Vec<&str> = listed
        .iter()
        .filter(|t| {
            old_open
                .iter()
                .any(|(_, p, _)| p.producer_id == t.producer_id)
        })
        .map(|t| t.transactional_id.as_str())
        .collect();
    let described = if ids.is_empty() {
        Vec::new()
    } else {
        admin.describe_transactions(&ids).await?
    };
    let mut rows = Vec::new();
    for (tp, p, start) in old_open {
        let known = described.iter().any(|t| {
            t.producer_id == p.producer_id
                && i32::from(t.producer_epoch) == p.producer_epoch
                && t.state == "Ongoing"
                && t.partitions.contains(&tp)
        });
        if known {
            continue;
        }
        rows.push(vec![
            tp.topic.to_string(),
            tp.partition.to_string(),
            p.producer_id.to_string(),
            p.producer_epoch.to_string(),
            p.coordinator_epoch.to_string(),
            start.to_string(),
            p.last_timestamp.to_string(),
            ((now - p.last_timestamp) / 60_000).to_string(),
        ]);
    }
    Ok(rows)
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The cluster id, the controller and the brokers.
    #[command(after_help = "Example:
  rivulet cluster describe")]
    Describe,
}

pub async fn cluster(args: ClusterArgs, connect: ConnectArgs) -> CliResult {
    let admin = Admin::new(connect.client_config()?).await?;
    match args.command {
        ClusterCommand::Describe => {
            let cluster = admin.describe_cluster().await?;
            outln!(
                "Cluster ID: {}",
                cluster.cluster_id.as_deref().unwrap_or("-")
            );
            outln!("Controller: {}", cluster.controller_id);
            let rows: Vec<Vec<String>> = cluster
                .brokers
                .iter()
                .map(|b| {
                    vec![
                        b.node_id.to_string(),
                        b.host.clone(),
                        b.port.to_string(),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "HOST", "PORT", "RACK"], &rows);
        }
    }
    admin.close();
    Ok(())
}
