//! Group commit for one log: one fsync for every append waiting on it
//! (`flush.messages`; DESIGN.md).
//!
//! An append whose records must be durable before it is acknowledged asks for
//! everything below its end offset to be synced. When no sync is running, the
//! caller starts a runner ([`GroupCommit::run`], on a blocking thread) which syncs
//! the log as it stands when the sync starts (everything written before it, by
//! whichever request), answers every request that sync covered, and goes round
//! again while requests remain: a request made while a sync runs waits for the
//! next one. Background requests (a roll, `flush.ms`) join the same syncs, with
//! nobody waiting. A failed sync answers every request waiting with the error; the
//! storage layer has taken the log dir offline by then, so later requests fail at
//! once.
//!
//! The syncing itself is the caller's (`HostedPartition` passes a closure that
//! flushes its log outside the locks): this file only batches, so its tests need
//! neither files nor a runtime.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Why a sync did not cover a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The flush failed (its log dir is offline now).
    #[error("{0}")]
    Storage(String),
    /// The log was cut below the records before a sync reached them (a replica
    /// that stopped leading truncates).
    #[error("the log was truncated below the records before they were synced")]
    Truncated,
    /// The log was deleted.
    #[error("the log was deleted")]
    Deleted,
}

pub type SyncResult = Result<(), SyncError>;

/// Answered once the records a request named are synced, or cannot be.
pub type SyncReceiver = oneshot::Receiver<SyncResult>;

struct Waiter {
    up_to: i64,
    answer: oneshot::Sender<SyncResult>,
}

struct State {
    /// Everything below this is synced.
    synced: i64,
    /// The highest offset anyone asked for.
    wanted: i64,
    /// The highest offset a waiting request asked for.
    held: i64,
    running: bool,
    waiters: Vec<Waiter>,
    syncs: u64,
}

pub struct GroupCommit {
    state: Mutex<State>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("GroupCommit")
            .field("synced", &state.synced)
            .field("wanted", &state.wanted)
            .field("waiters", &state.waiters.len())
            .finish()
    }
}

impl GroupCommit {
    /// For a log that is durable below `synced` (its recovery point).
    pub fn new(synced: i64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State {
                synced,
                wanted: synced,
                held: synced,
                running: false,
                waiters: Vec::new(),
                syncs: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request is waiting for records not yet synced: appends made now
    /// wait too, so that nothing becomes visible ahead of records still waiting.
    pub fn holding(&self) -> bool {
        let state = self.lock();
        state.held > state.synced
    }

    /// Syncs run so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Asks for everything below `up_to` to be synced. With `wait`, the answer
    /// comes through the receiver (at once when it is synced already); without,
    /// the sync happens in the background. The second value says whether the
    /// caller must start a runner: call [`GroupCommit::run`] off the async workers.
    pub fn request(&self, up_to: i64, wait: bool) -> (Option<SyncReceiver>, bool) {
        let mut state = self.lock();
        let receiver = if wait {
            let (answer, receiver) = oneshot::channel();
            if up_to <= state.synced {
                let _ = answer.send(Ok(()));
            } else {
                state.held = state.held.max(up_to);
                state.waiters.push(Waiter { up_to, answer });
            }
            Some(receiver)
        } else {
            None
        };
        state.wanted = state.wanted.max(up_to);
        let start = state.wanted > state.synced && !state.running;
        if start {
            state.running = true;
        }
        (receiver, start)
    }

    /// The log was truncated to `offset` (call under the log's lock, so that no
    /// request for the offsets given out again comes first): what is synced ends
    /// there at most, and requests above it are answered with
    /// [`SyncError::Truncated`].
    pub fn truncated(&self, offset: i64) {
        let mut state = self.lock();
        state.synced = state.synced.min(offset);
        state.wanted = state.wanted.min(offset);
        state.held = state.held.min(offset);
        for waiter in std::mem::take(&mut state.waiters) {
            if waiter.up_to <= offset {
                state.waiters.push(waiter);
            } else {
                let _ = waiter.answer.send(Err(SyncError::Truncated));
            }
        }
    }

    /// Syncs while requests remain, answering each once a sync covers it. `sync`
    /// makes everything written so far durable and returns the offset below which
    /// all is durable; it is called without this lock held. Blocking: one runner
    /// at a time (the caller that [`GroupCommit::request`] told to start one).
    pub fn run(&self, mut sync: impl FnMut() -> Result<i64, SyncError>) {
        let guard = RunGuard(self);
        loop {
            {
                let mut state = self.lock();
                if state.wanted <= state.synced {
                    state.running = false;
                    break;
                }
                state.syncs += 1;
            }
            let result = sync();
            let mut state = self.lock();
            match result {
                Ok(up_to) => state.covered(up_to),
                Err(error) => {
                    state.fail_all(error);
                    state.running = false;
                    break;
                }
            }
        }
        std::mem::forget(guard);
    }
}

impl State {
    fn covered(&mut self, up_to: i64) {
        self.synced = self.synced.max(up_to);
        let synced = self.synced;
        let mut kept = Vec::with_capacity(self.waiters.len());
        for waiter in self.waiters.drain(..) {
            if waiter.up_to <= synced {
                let _ = waiter.answer.send(Ok(()));
            } else {
                kept.push(waiter);
            }
        }
        self.waiters = kept;
    }

    fn fail_all(&mut self, error: SyncError) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.answer.send(Err(error.clone()));
        }
        self.wanted = self.synced;
        self.held = self.synced;
    }
}

/// Should a sync panic (a bug), the runner's waiters are failed and the next
/// request starts a new runner, rather than all of them waiting forever.
struct RunGuard<'a>(&'a GroupCommit);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.fail_all(SyncError::Storage("the flush panicked".into()));
        state.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    fn answer(receiver: &mut SyncReceiver) -> Option<SyncResult> {
        receiver.try_recv().ok()
    }

    #[test]
    fn one_sync_answers_every_request_made_before_it_started() {
        let commit = GroupCommit::new(0);
        let mut receivers = Vec::new();
        let mut starts = 0;
        for end in 1..=10 {
            let (receiver, start) = commit.request(end, true);
            receivers.push(receiver.unwrap());
            starts += usize::from(start);
        }
        assert_eq!(starts, 1, "only the first request starts a runner");
        let mut calls = 0;
        commit.run(|| {
            calls += 1;
            Ok(10)
        });
        assert_eq!(calls, 1);
        assert_eq!(commit.syncs(), 1);
        for receiver in &mut receivers {
            assert_eq!(answer(receiver), Some(Ok(())));
        }
        assert!(!commit.holding());
        // Already synced: answered at once, no runner.
        let (receiver, start) = commit.request(7, true);
        assert!(!start);
        assert_eq!(answer(&mut receiver.unwrap()), Some(Ok(())));
    }

    #[test]
    fn a_request_made_during_a_sync_waits_for_the_next_one() {
        let commit = Arc::new(GroupCommit::new(0));
        let (first, start) = commit.request(5, true);
        assert!(start);
        let mut first = first.unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let runner = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || {
                // The log end when each sync starts: records 5..8 are written
                // while the first one runs.
                let mut log_ends = [5, 8].into_iter();
                commit.run(|| {
                    let log_end = log_ends.next().unwrap();
                    started_tx.send(()).unwrap();
                    released.recv().unwrap();
                    Ok(log_end)
                })
            })
        };
        started.recv().unwrap();
        // Records 5..8 were appended after the sync started.
        let (second, start) = commit.request(8, true);
        assert!(!start, "the running runner goes round again");
        let mut second = second.unwrap();
        assert!(commit.holding());
        release.send(()).unwrap();
        started.recv().unwrap();
        assert_eq!(answer(&mut first), Some(Ok(())));
        assert_eq!(answer(&mut second), None, "not covered by the first sync");
        release.send(()).unwrap();
        runner.join().unwrap();
        assert_eq!(answer(&mut second), Some(Ok(())));
        assert_eq!(commit.syncs(), 2);
        assert!(!commit.holding());
    }

    #[test]
    fn a_failed_sync_fails_every_request_waiting_including_those_made_during_it() {
        let commit = Arc::new(GroupCommit::new(0));
        let (first, _) = commit.request(3, true);
        let mut first = first.unwrap();
        let mut during = None;
        commit.run(|| {
            let (receiver, start) = commit.request(4, true);
            assert!(!start);
            during = receiver;
            Err(SyncError::Storage("fsync failed: EIO".into()))
        });
        let failed = Some(Err(SyncError::Storage("fsync failed: EIO".into())));
        assert_eq!(answer(&mut first), failed);
        assert_eq!(answer(&mut during.unwrap()), failed);
        assert_eq!(commit.syncs(), 1);
        assert!(!commit.holding());
        // The next request starts a new runner (whose sync fails at once when the
        // log dir is offline).
        let (_, start) = commit.request(5, true);
        assert!(start);
    }

    #[test]
    fn background_requests_join_the_syncs_and_truncation_answers_what_it_took() {
        let commit = GroupCommit::new(0);
        let (none, start) = commit.request(4, false);
        assert!(none.is_none() && start);
        assert!(!commit.holding(), "nobody waits on a background sync");
        let (waiting, _) = commit.request(6, true);
        let mut waiting = waiting.unwrap();
        // The log is cut to 5 before the sync: 6 is gone, 4 is still wanted.
        commit.truncated(5);
        assert_eq!(answer(&mut waiting), Some(Err(SyncError::Truncated)));
        commit.run(|| Ok(5));
        assert_eq!(commit.syncs(), 1);
        // Cut again below what was synced: those offsets are synced again when
        // they are written again.
        commit.truncated(3);
        let (receiver, start) = commit.request(4, true);
        assert!(start);
        let mut receiver = receiver.unwrap();
        assert_eq!(answer(&mut receiver), None);
        commit.run(|| Ok(4));
        assert_eq!(answer(&mut receiver), Some(Ok(())));
    }

    #[test]
    fn a_panicking_sync_fails_its_waiters_and_lets_the_next_request_start_over() {
        let commit = Arc::new(GroupCommit::new(0));
        let (receiver, _) = commit.request(2, true);
        let mut receiver = receiver.unwrap();
        let panicked = {
            let commit = Arc::clone(&commit);
            std::thread::spawn(move || commit.run(|| panic!("a bug in the flush")))
                .join()
                .is_err()
        };
        assert!(panicked);
        assert!(matches!(
            answer(&mut receiver),
            Some(Err(SyncError::Storage(_)))
        ));
        let (_, start) = commit.request(2, true);
        assert!(start);
    }
}
