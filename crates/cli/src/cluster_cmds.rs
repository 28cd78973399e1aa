//! `rivulet configs describe|alter`, `rivulet transactions
//! list|describe|describe-producers|abort` and
//! `rivulet cluster describe`: Kafka's `kafka-configs.sh`,
//! `kafka-transactions.sh` and `kafka-cluster.sh`/`kafka-metadata` views.

use clap::{Args, Subcommand};
use protocol::TopicPartition;
use rivulet_client::admin::{AbortTransactionSpec, AlterConfigOp, ConfigResource};
use rivulet_client::Admin;

use crate::common::{print_table, CliError, CliResult, ConnectArgs};

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
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ConfigsCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigsCommand {
    /// Show a topic's or broker's configs and where each value comes from.
    Describe {
        #[command(flatten)]
        entity: Entity,
        /// Also show configs left at their defaults.
        #[arg(long)]
        all: bool,
    },
    /// Set or delete configs: --add-config k=v,k2=v2 --delete-config k3
    Alter {
        #[command(flatten)]
        entity: Entity,
        #[arg(long = "add-config", value_delimiter = ',')]
        add: Vec<String>,
        #[arg(long = "delete-config", value_delimiter = ',')]
        delete: Vec<String>,
    },
}

pub async fn configs(args: ConfigsArgs) -> CliResult {
    let admin = Admin::new(args.connect.client_config()?).await?;
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
            for pair in add {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    CliError::Usage(format!("--add-config {pair:?}: expected key=value"))
                })?;
                ops.push(AlterConfigOp::Set(k.trim().to_string(), v.to_string()));
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
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
enum TransactionsCommand {
    /// Transactional ids known to the coordinators, with their state.
    List,
    /// A transaction's state, producer id and epoch, timeout and partitions.
    Describe {
        #[arg(long = "transactional-id", required = true)]
        transactional_id: String,
    },
    /// The producers a partition's leader knows, with any open transaction's first
    /// offset (what holds the last stable offset back).
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Aborts a hanging transaction on one partition (a transaction no coordinator
    /// will end): by the first offset of the open transaction, or by producer id,
    /// producer epoch and coordinator epoch, as `kafka-transactions.sh abort`.
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        /// The open transaction's first offset (see describe-producers).
        #[arg(long = "start-offset", conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
        start_offset: Option<i64>,
        #[arg(long = "producer-id", requires_all = ["producer_epoch", "coordinator_epoch"])]
        producer_id: Option<i64>,
        #[arg(long = "producer-epoch")]
        producer_epoch: Option<i16>,
        #[arg(long = "coordinator-epoch")]
        coordinator_epoch: Option<i32>,
    },
}

pub async fn transactions(args: TransactionsArgs) -> CliResult {
    let admin = Admin::new(args.connect.client_config()?).await?;
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

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The cluster id, the controller and the brokers.
    Describe,
}

pub async fn cluster(args: ClusterArgs) -> CliResult {
    let admin = Admin::new(args.connect.client_config()?).await?;
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
