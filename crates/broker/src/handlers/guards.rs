//! Checks several admin handlers share.
//!
//! - Internal topics (`__consumer_offsets`, `__transaction_state`) change only
//!   through the broker: a client's DeleteTopics, CreatePartitions, AlterConfigs,
//!   IncrementalAlterConfigs on them, or CreateTopics of those names, is refused with
//!   POLICY_VIOLATION unless `internal.topics.modification.enable=true`
//!   (docs/decisions.md, "Internal topics"). Produce and DeleteRecords are refused
//!   with Kafka's own INVALID_TOPIC_EXCEPTION in their handlers.
//! - Topic configs Kafka 4 removed but tools written for 3.x still send are
//!   accepted with a warning and ignored, as Kafka 3.x ignored them.

use metadata::{topic_name, ControllerError};

use crate::broker::Broker;

/// Topic configs Kafka 4.0 removed (KIP-724) that Kafka 3.x accepted and ignored.
pub const REMOVED_TOPIC_CONFIGS: &[&str] =
    &["message.format.version", "message.downconversion.enable"];

/// Refuses `action` on an internal topic unless the operator allowed it.
pub fn refuse_internal(
    broker: &Broker,
    topic: &str,
    action: &'static str,
) -> Result<(), ControllerError> {
    if !topic_name::is_internal(topic) || broker.config.internal_topics_modification_enable {
        return Ok(());
    }
    Err(ControllerError::InternalTopic {
        action,
        topic: topic.to_string(),
    })
}

/// Whether `name` is a topic config Kafka 4 removed; logs that it is ignored.
pub fn is_removed_topic_config(topic: &str, name: &str) -> bool {
    let removed = REMOVED_TOPIC_CONFIGS.contains(&name);
    if removed {
        tracing::warn!(%topic, config = %name, "ignoring topic config removed in Kafka 4.0 (Kafka 3.x ignored it too)");
    }
    removed
}

/// The longest string `__consumer_offsets` and `__transaction_state` records hold
/// (Kafka's generated serializers refuse longer ones).
pub const MAX_STORED_STRING: usize = coordinator::group::records::MAX_STRING_BYTES;

/// What the coordinator adds to a client id or group instance id to make a member
/// id: `-` and a UUID.
pub const MEMBER_ID_SUFFIX: usize = 37;

/// Checks strings a request would have stored in an internal-topic record; the
/// error names the first one that is too long. Kafka fails such a request when it
/// serializes the record (UNKNOWN_SERVER_ERROR, after the coordinator's state has
/// changed); Rivulet refuses it before anything changes.
pub fn stored_strings(fields: &[(&str, Option<&str>, usize)]) -> Result<(), String> {
    for (field, value, reserve) in fields {
        let Some(value) = value else { continue };
        let max = MAX_STORED_STRING - reserve;
        if value.len() > max {
            return Err(format!(
                "{field} is {} bytes long; the most this broker stores is {max}.",
                value.len()
            ));
        }
    }
    Ok(())
}
