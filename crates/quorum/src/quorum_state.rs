//! The `quorum-state` file: a voter's vote, as Kafka's `QuorumStateData` JSON
//! (`raft/src/main/resources/common/message/QuorumStateData.json`, data_version 1):
//!
//! ```text
//! {"leaderId":-1,"leaderEpoch":5,"votedId":2,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}
//! ```
//!
//! openraft's vote is (term, node, committed). A committed vote (the node knows
//! the term's leader) is written `leaderId = node, votedId = -1`; an uncommitted
//! one (a vote cast, no leader known) `leaderId = -1, votedId = node`. Written to
//! a temporary file, fsynced, renamed over the old one, and the directory
//! fsynced: a crash leaves the old vote or the new one.

use std::io;
use std::path::Path;

use openraft::{LeaderId, Vote};
use serde::{Deserialize, Serialize};
use storage::fs::Fs;

use crate::types::{kafka_node_id, NodeId};

pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// Kafka writes the zero directory id when voters have none (static quorums).
const ZERO_DIRECTORY_ID: &str = "AAAAAAAAAAAAAAAAAAAAAA";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct QuorumStateData {
    leader_id: i32,
    leader_epoch: i32,
    voted_id: i32,
    #[serde(default)]
    voted_directory_id: Option<String>,
    #[serde(rename = "data_version")]
    data_version: i16,
}

fn invalid(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

/// The file's text for `vote`.
pub fn encode(vote: &Vote<NodeId>) -> io::Result<String> {
    let epoch = i32::try_from(vote.leader_id.term)
        .map_err(|_| invalid(format!("term {} too large", vote.leader_id.term)))?;
    let (leader_id, voted_id) = match vote.leader_id.voted_for {
        None => (-1, -1),
        Some(node) => {
            let node =
                kafka_node_id(node).ok_or_else(|| invalid(format!("node id {node} too large")))?;
            if vote.committed {
                (node, -1)
            } else {
                (-1, node)
            }
        }
    };
    let data = QuorumStateData {
        leader_id,
        leader_epoch: epoch,
        voted_id,
        voted_directory_id: Some(ZERO_DIRECTORY_ID.to_string()),
        data_version: 1,
    };
    serde_json::to_string(&data).map_err(|e| invalid(e.to_string()))
}

/// The vote in a file's text.
pub fn decode(text: &str) -> io::Result<Vote<NodeId>> {
    let data: QuorumStateData = serde_json::from_str(text)
        .map_err(|e| invalid(format!("{QUORUM_STATE_FILE} is not QuorumStateData: {e}")))?;
    if data.data_version != 0 && data.data_version != 1 {
        return Err(invalid(format!(
            "{QUORUM_STATE_FILE} has unknown data_version {}",
            data.data_version
        )));
    }
    let term = u64::try_from(data.leader_epoch)
        .map_err(|_| invalid(format!("leaderEpoch {} is negative", data.leader_epoch)))?;
    let id = |v: i32| NodeId::try_from(v).map_err(|_| invalid(format!("node id {v} is negative")));
    Ok(match (data.leader_id, data.voted_id) {
        (-1, -1) => Vote {
            leader_id: LeaderId {
                term,
                voted_for: None,
            },
            committed: false,
        },
        (-1, voted) => Vote::new(term, id(voted)?),
        (leader, _) => Vote::new_committed(term, id(leader)?),
    })
}

/// The vote stored in `dir`, if any.
pub fn read(fs: &dyn Fs, dir: &Path) -> io::Result<Option<Vote<NodeId>>> {
    match storage::fs::read_to_string(fs, &dir.join(QUORUM_STATE_FILE)) {
        Ok(text) => decode(&text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores `vote` in `dir`, durably.
pub fn write(fs: &dyn Fs, dir: &Path, vote: &Vote<NodeId>) -> io::Result<()> {
    let text = encode(vote)?;
    storage::fs::write_atomically(fs, &dir.join(QUORUM_STATE_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_are_written_as_kafka_writes_quorum_state() {
        assert_eq!(
            encode(&Vote::new_committed(5, 1)).unwrap(),
            r#"{"leaderId":1,"leaderEpoch":5,"votedId":-1,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}"#
        );
        assert_eq!(
            encode(&Vote::new(7, 3)).unwrap(),
            r#"{"leaderId":-1,"leaderEpoch":7,"votedId":3,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}"#
        );
    }

    #[test]
    fn votes_round_trip() {
        for vote in [
            Vote::default(),
            Vote::new(0, 0),
            Vote::new(100, 0),
            Vote::new_committed(3, 2),
            Vote::new(9, 2),
        ] {
            assert_eq!(decode(&encode(&vote).unwrap()).unwrap(), vote);
        }
    }

    #[test]
    fn a_kafka_file_without_a_vote_reads_as_none_cast() {
        let vote =
            decode(r#"{"leaderId":-1,"leaderEpoch":4,"votedId":-1,"data_version":0}"#).unwrap();
        assert_eq!(vote.leader_id.term, 4);
        assert_eq!(vote.leader_id.voted_for, None);
        assert!(!vote.committed);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "{}",
            r#"{"leaderId":-1,"leaderEpoch":-4,"votedId":-1,"data_version":1}"#,
            r#"{"leaderId":-1,"leaderEpoch":4,"votedId":-7,"data_version":1}"#,
            r#"{"leaderId":-1,"leaderEpoch":4,"votedId":1,"data_version":9}"#,
        ] {
            assert!(decode(text).is_err(), "{text}");
        }
    }
}
