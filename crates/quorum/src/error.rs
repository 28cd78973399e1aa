//! The crate's own storage error, small and free of openraft's types; it
//! becomes openraft's `StorageError` only where openraft calls us.

use openraft::{AnyError, ErrorSubject, ErrorVerb, StorageError, StorageIOError};

use crate::types::NodeId;

/// Why the metadata log, the vote or a snapshot could not be read or written.
/// openraft treats any of them as fatal: the node stops taking part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("reading the metadata log: {0}")]
    ReadLog(String),
    #[error("writing the metadata log: {0}")]
    WriteLog(String),
    #[error("reading the vote: {0}")]
    ReadVote(String),
    #[error("writing the vote: {0}")]
    WriteVote(String),
    #[error("reading a snapshot: {0}")]
    ReadSnapshot(String),
    #[error("writing a snapshot: {0}")]
    WriteSnapshot(String),
    #[error("applying entry {index}: {reason}")]
    Apply { index: u64, reason: String },
}

impl From<StoreError> for StorageError<NodeId> {
    fn from(e: StoreError) -> Self {
        let (subject, verb) = match &e {
            StoreError::ReadLog(_) => (ErrorSubject::Logs, ErrorVerb::Read),
            StoreError::WriteLog(_) => (ErrorSubject::Logs, ErrorVerb::Write),
            StoreError::ReadVote(_) => (ErrorSubject::Vote, ErrorVerb::Read),
            StoreError::WriteVote(_) => (ErrorSubject::Vote, ErrorVerb::Write),
            StoreError::ReadSnapshot(_) => (ErrorSubject::Snapshot(None), ErrorVerb::Read),
            StoreError::WriteSnapshot(_) => (ErrorSubject::Snapshot(None), ErrorVerb::Write),
            StoreError::Apply { .. } => (ErrorSubject::StateMachine, ErrorVerb::Write),
        };
        StorageIOError::new(subject, verb, AnyError::error(e.to_string())).into()
    }
}
