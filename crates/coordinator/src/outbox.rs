//! The writes a coordinator asks for, and what it does once each is done.
//!
//! A coordinator never writes its internal topic itself: a state change that
//! must be persisted queues a write here with a continuation and returns. The
//! shell takes the queued writes ([`Outbox::take`]) after each call, appends them
//! in order outside the coordinator's lock (acks=all), and reports each result
//! back, in the same order, through the coordinator's `write_completed`, which
//! runs the continuation. The in-memory state therefore changes in log order, and
//! a write never holds the state's lock while it waits for the disk or the ISR.

use std::collections::HashMap;

use crate::error::WriteError;

/// A queued write's id, unique within one coordinator.
pub type WriteId = u64;

/// What to do once a write is done (or failed).
pub type Continuation<C> = Box<dyn FnOnce(&mut C, Result<(), WriteError>) + Send>;

pub struct Outbox<W, C> {
    next_id: WriteId,
    queued: Vec<(WriteId, W)>,
    waiting: HashMap<WriteId, Continuation<C>>,
}

impl<W, C> Default for Outbox<W, C> {
    fn default() -> Self {
        Outbox {
            next_id: 0,
            queued: Vec::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<W, C> Outbox<W, C> {
    /// Queues `write`; `then` runs when it completes.
    pub fn push(&mut self, write: W, then: Continuation<C>) -> WriteId {
        let id = self.next_id;
        self.next_id += 1;
        self.queued.push((id, write));
        self.waiting.insert(id, then);
        id
    }

    /// The writes queued since the last call, oldest first.
    pub fn take(&mut self) -> Vec<(WriteId, W)> {
        std::mem::take(&mut self.queued)
    }

    /// The continuation of a completed write; `None` for an unknown id.
    pub fn complete(&mut self, id: WriteId) -> Option<Continuation<C>> {
        self.waiting.remove(&id)
    }

    /// Writes taken or queued whose result has not come back yet.
    pub fn in_flight(&self) -> usize {
        self.waiting.len()
    }
}
