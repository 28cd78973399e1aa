//! `rivulet groups list|describe|reset-offsets|delete-offsets|delete`:
//! Kafka's `kafka-consumer-groups.sh`.
//!
//! `describe` prints, per partition the group has an offset for or a member
//! owns: the committed offset, the log end offset, the lag, and the owner;
//! then the members and their assignments. `reset-offsets` prints the plan and
//! applies it only with `--execute` (the group must have no active members).

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use rivulet_client::rpc::{EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use rivulet_client::{Admin, ErrorCode, OffsetAndMetadata, TopicPartition};

use crate::common::{print_table, CliError, CliResult, ConnectArgs};

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
}

/// Which partitions a command is about.
#[derive(Args, Debug, Clone)]
struct Selection {
    /// A topic, optionally with partitions: orders or orders:0,2
    #[arg(long = "topic", short = 't')]
    topics: Vec<String>,
    /// Every topic the group has offsets for.
    #[arg(long = "all-topics", conflicts_with = "topics")]
    all_topics: bool,
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// List groups.
    #[command(after_help = "Example:
  rivulet groups list")]
    List,
    /// Members, assignments, committed offsets and lag per partition.
    #[command(after_help = "Example:
  rivulet groups describe billing")]
    Describe {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (prints the plan; --execute applies it).
    /// The group must have no active members, as with kafka-consumer-groups.sh.
    #[command(after_help = "Examples:
  rivulet groups reset-offsets billing --topic orders --to-earliest            # the plan only
  rivulet groups reset-offsets billing --topic orders:0,1 --shift-by -10 --execute
  rivulet groups reset-offsets billing --all-topics --to-datetime-ms 1700000000000 --execute")]
    ResetOffsets {
        /// The group.
        group: String,
        #[command(flatten)]
        selection: Selection,
        /// To each partition's log start offset.
        #[arg(long = "to-earliest", group = "target")]
        to_earliest: bool,
        /// To each partition's end (skip everything not yet read).
        #[arg(long = "to-latest", group = "target")]
        to_latest: bool,
        /// To this offset (clamped into each partition's log, with a warning).
        #[arg(long = "to-offset", group = "target")]
        to_offset: Option<i64>,
        /// The first offset at or after this time (ms since the epoch).
        #[arg(
            long = "to-timestamp",
            visible_alias = "to-datetime-ms",
            group = "target"
        )]
        to_timestamp: Option<i64>,
        /// Move each committed offset by N (may be negative).
        #[arg(long = "shift-by", group = "target", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Apply the plan (otherwise it is only printed).
        #[arg(long, conflicts_with = "dry_run")]
        execute: bool,
        /// Only print the plan (the default without --execute).
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
    /// Delete a group's committed offsets for partitions.
    #[command(after_help = "Example:
  rivulet groups delete-offsets billing --topic orders:0")]
    DeleteOffsets {
        /// The group.
        group: String,
        #[command(flatten)]
        selection: Selection,
    },
    /// Delete groups (they must be empty).
    #[command(after_help = "Example:
  rivulet groups delete billing")]
    Delete {
        /// The groups.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

pub async fn run(args: GroupsArgs, connect: ConnectArgs) -> CliResult {
    let admin = Admin::new(connect.client_config()?).await?;
    match args.command {
        GroupsCommand::List => {
            let groups = admin.list_groups().await?;
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                .collect();
            print_table(&["GROUP", "STATE", "TYPE"], &rows);
        }
        GroupsCommand::Describe { groups } => {
            for group in groups {
                describe(&admin, &group).await?;
            }
        }
        GroupsCommand::ResetOffsets {
            group,
            selection,
            to_earliest,
            to_latest,
            to_offset,
            to_timestamp,
            shift_by,
            execute,
            dry_run: _,
        } => {
            ensure_inactive(&admin, &group).await?;
            let partitions = select(&admin, &group, &selection).await?;
            let target = match (to_earliest, to_latest, to_offset, to_timestamp, shift_by) {
                (true, ..) => Target::Timestamp(EARLIEST_TIMESTAMP),
                (_, true, ..) => Target::Timestamp(LATEST_TIMESTAMP),
                (_, _, Some(offset), ..) => Target::Offset(offset),
                (_, _, _, Some(ts), _) => Target::Timestamp(ts),
                (_, _, _, _, Some(n)) => Target::Shift(n),
                _ => return Err(CliError::Usage("reset-offsets needs one of --to-earliest, --to-latest, --to-offset, --to-timestamp, --shift-by".into())),
            };
            reset(&admin, &group, &partitions, target, execute).await?;
        }
        GroupsCommand::DeleteOffsets { group, selection } => {
            let partitions = select(&admin, &group, &selection).await?;
            delete_offsets(&admin, &group, &partitions).await?;
        }
        GroupsCommand::Delete { groups } => {
            for group in groups {
                admin.delete_groups(&[&group]).await?;
                outln!("Deleted group {group}.");
            }
        }
    }
    admin.close();
    Ok(())
}

async fn describe(admin: &Admin, group: &str) -> CliResult {
    let Some(description) = admin.describe_groups(&[group]).await?.into_iter().next() else {
        return Ok(());
    };
    outln!(
        "Group {} is {} (protocol {}, assignor {}, coordinator {})",
        description.group_id,
        description.state,
        if description.protocol_type.is_empty() {
            "-"
        } else {
            &description.protocol_type
        },
        if description.protocol.is_empty() {
            "-"
        } else {
            &description.protocol
        },
        description.coordinator
    );
    let committed = admin.list_consumer_group_offsets(group, None).await?;
    let mut owner: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    for member in &description.members {
        for tp in &member.assignment {
            owner.insert(
                tp.clone(),
                (
                    member.member_id.clone(),
                    member.host.clone(),
                    member.client_id.clone(),
                ),
            );
        }
    }
    let partitions: BTreeSet<TopicPartition> =
        committed.keys().chain(owner.keys()).cloned().collect();
    // A topic deleted since the group committed has no end offset: its rows show
    // "-" (as kafka-consumer-groups.sh), instead of the whole describe failing.
    let existing: BTreeSet<String> = admin
        .list_topics(true)
        .await?
        .iter()
        .map(|t| t.name.clone())
        .collect();
    let queries: Vec<(TopicPartition, i64)> = partitions
        .iter()
        .filter(|tp| existing.contains(&*tp.topic))
        .map(|tp| (tp.clone(), LATEST_TIMESTAMP))
        .collect();
    let ends = if queries.is_empty() {
        BTreeMap::new()
    } else {
        admin.list_offsets(&queries).await?
    };
    let rows: Vec<Vec<String>> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp).map(|o| o.offset);
            let end = ends.get(tp).map(|o| o.offset);
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => "-".into(),
            };
            let (member, host, client) = owner
                .get(tp)
                .cloned()
                .unwrap_or_else(|| ("-".into(), "-".into(), "-".into()));
            vec![
                group.to_string(),
                tp.topic.to_string(),
                tp.partition.to_string(),
                current.map_or("-".into(), |c| c.to_string()),
                end.map_or("-".into(), |e| e.to_string()),
                lag,
                member,
                host,
                client,
            ]
        })
        .collect();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    if !description.members.is_empty() {
        outln!();
        let rows: Vec<Vec<String>> = description
            .members
            .iter()
            .map(|m| {
                let assignment: Vec<String> =
                    m.assignment.iter().map(|tp| tp.to_string()).collect();
                vec![
                    m.member_id.clone(),
                    m.group_instance_id.clone().unwrap_or_else(|| "-".into()),
                    m.host.clone(),
                    m.client_id.clone(),
                    assignment.join(","),
                ]
            })
            .collect();
        print_table(
            &[
                "CONSUMER-ID",
                "INSTANCE-ID",
                "HOST",
                "CLIENT-ID",
                "ASSIGNMENT",
            ],
            &rows,
        );
    }
    outln!();
    Ok(())
}

async fn select(
    admin: &Admin,
    group: &str,
    selection: &Selection,
) -> CliResult<Vec<TopicPartition>> {
    if selection.all_topics {
        return Ok(admin
            .list_consumer_group_offsets(group, None)
            .await?
            .into_keys()
            .collect());
    }
    if selection.topics.is_empty() {
        return Err(CliError::Usage(
            "give --topic TOPIC[:P,P...] or --all-topics".into(),
        ));
    }
    let mut partitions = Vec::new();
    for spec in &selection.topics {
        match spec.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',') {
                    let p: i32 = p.trim().parse().map_err(|_| {
                        CliError::Usage(format!("--topic {spec}: partitions are numbers"))
                    })?;
                    partitions.push(TopicPartition::new(topic, p));
                }
            }
            None => {
                let topic = &admin.describe_topics(&[spec]).await?[0];
                partitions.extend(
                    topic
                        .partitions
                        .iter()
                        .map(|p| TopicPartition::new(spec.as_str(), p.partition)),
                );
            }
        }
    }
    Ok(partitions)
}

enum Target {
    Offset(i64),
    Timestamp(i64),
    Shift(i64),
}

async fn reset(
    admin: &Admin,
    group: &str,
    partitions: &[TopicPartition],
    target: Target,
    execute: bool,
) -> CliResult {
    let earliest = admin
        .list_offsets(
            &partitions
                .iter()
                .map(|tp| (tp.clone(), EARLIEST_TIMESTAMP))
                .collect::<Vec<_>>(),
        )
        .await?;
    let latest = admin
        .list_offsets(
            &partitions
                .iter()
                .map(|tp| (tp.clone(), LATEST_TIMESTAMP))
                .collect::<Vec<_>>(),
        )
        .await?;
    let committed = admin
        .list_consumer_group_offsets(group, Some(partitions))
        .await?;
    let found = match target {
        Target::Timestamp(ts) => {
            admin
                .list_offsets(
                    &partitions
                        .iter()
                        .map(|tp| (tp.clone(), ts))
                        .collect::<Vec<_>>(),
                )
                .await?
        }
        _ => BTreeMap::new(),
    };
    let mut plan = BTreeMap::new();
    for tp in partitions {
        let low = earliest.get(tp).map_or(0, |o| o.offset);
        let high = latest.get(tp).map_or(0, |o| o.offset);
        let wanted = match target {
            Target::Offset(offset) => offset,
            Target::Timestamp(_) => found
                .get(tp)
                .map(|o| o.offset)
                .filter(|o| *o >= 0)
                .unwrap_or(high),
            Target::Shift(n) => committed.get(tp).map_or(low, |o| o.offset) + n,
        };
        // As Kafka's tool: clamp into the log, and say so.
        if wanted > high {
            eprintln!("rivulet: warning: new offset ({wanted}) is higher than latest offset for topic partition {tp}. Value will be set to {high}");
        } else if wanted < low {
            eprintln!("rivulet: warning: new offset ({wanted}) is lower than earliest offset for topic partition {tp}. Value will be set to {low}");
        }
        plan.insert(tp.clone(), OffsetAndMetadata::new(wanted.clamp(low, high)));
    }
    let rows: Vec<Vec<String>> = plan
        .iter()
        .map(|(tp, o)| {
            vec![
                group.to_string(),
                tp.topic.to_string(),
                tp.partition.to_string(),
                o.offset.to_string(),
            ]
        })
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if execute {
        match admin.alter_consumer_group_offsets(group, &plan).await {
            // A member joined between the check and the commit.
            Err(e) if e.code() == Some(ErrorCode::UnknownMemberId) => {
                return Err(active_group(group, "active"))
            }
            result => result?,
        }
    } else {
        eprintln!("(dry run: add --execute to apply)");
    }
    Ok(())
}

fn active_group(group: &str, state: &str) -> CliError {
    CliError::Failed {
        message: format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
        ),
        hint: format!(
            "stop the group's consumers first (`rivulet groups describe {group}` lists them), then reset"
        ),
    }
}

/// kafka-consumer-groups.sh resets only a group without members (Empty, or Dead:
/// unknown); a commit against an active group would fail with UNKNOWN_MEMBER_ID.
async fn ensure_inactive(admin: &Admin, group: &str) -> CliResult {
    let described = admin.describe_groups(&[group]).await?;
    let state = described
        .first()
        .map_or("Dead".to_string(), |d| d.state.clone());
    match state.as_str() {
        "Empty" | "Dead" | "" => Ok(()),
        _ => Err(active_group(group, &state)),
    }
}

/// Deletes the offsets and prints Kafka's per-partition table; fails if any
/// partition failed.
async fn delete_offsets(admin: &Admin, group: &str, partitions: &[TopicPartition]) -> CliResult {
    let outcomes = admin
        .delete_consumer_group_offsets_each(group, partitions)
        .await?;
    let mut failed = 0;
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|(tp, outcome)| {
            let status = match outcome {
                Ok(()) => "Successful".to_string(),
                Err(e) => {
                    failed += 1;
                    format!("Error: {e}")
                }
            };
            vec![tp.topic.to_string(), tp.partition.to_string(), status]
        })
        .collect();
    print_table(&["TOPIC", "PARTITION", "STATUS"], &rows);
    if failed > 0 {
        return Err(CliError::Failed {
            message: format!("{failed} of {} offsets were not deleted", rows.len()),
            hint: "see each partition's STATUS; `rivulet topics describe TOPIC` lists a topic's partitions"
                .into(),
        });
    }
    Ok(())
}
